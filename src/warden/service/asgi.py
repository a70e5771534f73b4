"""ASGI entry for process managers and multi-worker uvicorn:

    uvicorn --factory warden.service.asgi:create_app_from_env

Reads WARDEN_POLICY (default policies/default.yaml), WARDEN_DATABASE_URL (default
sqlite:///warden.db) and the WARDEN_MAX_* limits. Does not run migrations (`warden db upgrade`
or `warden serve` do).
"""

from __future__ import annotations

import os

from fastapi import FastAPI

from warden.service.app import create_app
from warden.service.logs import install_log_redaction
from warden.service.settings import ServiceSettings
from warden.store import Store

DEFAULT_POLICY = "policies/default.yaml"


def create_app_from_env() -> FastAPI:
    from warden.moderator import Moderator

    install_log_redaction()
    moderator = Moderator.from_file(os.environ.get("WARDEN_POLICY") or DEFAULT_POLICY)
    return create_app(moderator=moderator, store=Store.from_url(), settings=ServiceSettings.from_env())
