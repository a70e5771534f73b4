"""ASGI entry for process managers and multi-worker uvicorn:

    uvicorn --factory warden.service.asgi:create_app_from_env

Reads WARDEN_POLICY (default policies/default.yaml), WARDEN_DATABASE_URL (default
sqlite:///warden.db), the WARDEN_MAX_* limits, WARDEN_SHADOW_POLICY (a candidate policy run in
shadow mode), WARDEN_ARCHIVE_CONTENT and WARDEN_WEBHOOK_* (enforcement webhooks, see
`warden.enforce.dispatcher.WebhookSettings`). Does not run migrations (`warden db upgrade`
or `warden serve` do).
"""

from __future__ import annotations

import os

from fastapi import FastAPI

from warden.enforce.dispatcher import WebhookDispatcher, WebhookSettings
from warden.service.app import create_app
from warden.service.logs import install_log_redaction
from warden.service.settings import ServiceSettings
from warden.store import Store
from warden.store.repository import SERVICE_AUTH_CACHE_SECONDS

DEFAULT_POLICY = "policies/default.yaml"


def create_app_from_env() -> FastAPI:
    from warden.moderator import Moderator

    install_log_redaction()
    moderator = Moderator.from_file(os.environ.get("WARDEN_POLICY") or DEFAULT_POLICY)
    settings = ServiceSettings.from_env()
    shadow = Moderator.from_file(settings.shadow_policy) if settings.shadow_policy else None
    store = Store.from_url(auth_cache_seconds=SERVICE_AUTH_CACHE_SECONDS)
    webhooks = WebhookSettings.from_env()  # one dispatcher per worker: leases keep them from double-sending
    dispatcher = WebhookDispatcher.from_settings(store, webhooks) if webhooks is not None else None
    return create_app(moderator=moderator, store=store, settings=settings, shadow_moderator=shadow,
                      dispatcher=dispatcher)
