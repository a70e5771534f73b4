"""`warden serve`: the HTTP API (FastAPI on uvicorn)."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from warden.cli._common import DATABASE_URL_HELP, cli_actor, open_store
from warden.store import Store
from warden.store.repository import SERVICE_AUTH_CACHE_SECONDS

BOOTSTRAP_KEY_NAME = "bootstrap-admin"


def bootstrap_admin_key(store: Store) -> str | None:
    """Create an admin key when the database has no API key at all (not even a revoked one).

    Returns the plaintext (to print once) or None. Revoking every key does not trigger a new
    bootstrap key: that would let anyone who can restart the server mint an admin key.
    """
    if store.count_api_keys() > 0:
        return None
    record, plaintext = store.create_api_key(BOOTSTRAP_KEY_NAME, "admin")
    store.append_audit(
        cli_actor(),
        "api_key.create",
        f"api_key:{record.id}",
        {"name": record.name, "role": record.role, "prefix": record.prefix, "bootstrap": True},
    )
    return plaintext


def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to bind (0.0.0.0 for all)."),
    port: int = typer.Option(8000, "--port", help="TCP port."),
    policy: str = typer.Option("policies/default.yaml", "--policy", "-p", help="Policy YAML file."),
    database_url: str | None = typer.Option(None, "--database-url", help=DATABASE_URL_HELP),
    workers: int = typer.Option(1, "--workers", min=1, help="Worker processes (each loads the models)."),
    shadow_policy: str | None = typer.Option(
        None,
        "--shadow-policy",
        help="Candidate policy YAML to run in shadow mode beside the live one: its decisions are stored in "
        "shadow_decisions, never returned or acted on (compare with `warden eval shadow`). "
        "Default: env WARDEN_SHADOW_POLICY.",
    ),
    archive_content: bool = typer.Option(
        False,
        "--archive-content",
        help="Keep the text of moderated items for backtests (stores user content: set a retention). "
        "Default: env WARDEN_ARCHIVE_CONTENT.",
    ),
) -> None:
    """Serve the HTTP API: POST /v1/moderate, GET /v1/decisions/{id}, /healthz, /metrics, /docs.

    Applies pending database migrations at start-up. On the very first start (a database with
    no API keys at all) it creates one admin API key and prints it ONCE to stderr: copy it
    then, it is stored only as a hash and cannot be shown again. Make more keys with
    `warden keys create --name NAME --role client`.
    """
    import uvicorn

    from warden.service.logs import install_log_redaction, uvicorn_log_config

    install_log_redaction()
    url = database_url or os.environ.get("WARDEN_DATABASE_URL") or "sqlite:///warden.db"
    store = open_store(url, upgrade=True, auth_cache_seconds=SERVICE_AUTH_CACHE_SECONDS)

    from warden.moderator import Moderator

    policy_path = Path(policy)
    try:
        moderator = Moderator.from_file(policy_path)
    except Exception as exc:  # PolicyError, missing model files: a clear message, no traceback
        typer.secho(f"cannot load policy {policy_path}: {exc}", err=True, fg=typer.colors.RED)
        raise typer.Exit(1) from None

    from warden.service import ServiceSettings

    settings = ServiceSettings.from_env(
        shadow_policy=shadow_policy or None, archive_content=True if archive_content else None
    )
    shadow_moderator = None
    if settings.shadow_policy:
        try:
            shadow_moderator = Moderator.from_file(settings.shadow_policy)
        except Exception as exc:
            typer.secho(f"cannot load shadow policy {settings.shadow_policy}: {exc}", err=True, fg=typer.colors.RED)
            raise typer.Exit(1) from None
        typer.secho(
            f"shadow mode: candidate {shadow_moderator.policy.name!r} version {shadow_moderator.policy.version} "
            f"runs beside live version {moderator.policy.version}; its decisions are only stored",
            err=True,
        )

    from warden.enforce.dispatcher import WebhookConfigError, WebhookDispatcher, WebhookSettings

    try:  # WARDEN_WEBHOOK_URL set: deliver the enforcement outbox in the background
        webhooks = WebhookSettings.from_env()
    except WebhookConfigError as exc:
        typer.secho(f"webhooks: {exc}", err=True, fg=typer.colors.RED)
        raise typer.Exit(1) from None
    if webhooks is not None:
        typer.secho(f"enforcement webhooks: delivering to {webhooks.display_url}", err=True)

    plaintext = bootstrap_admin_key(store)
    if plaintext is not None:
        typer.secho(
            "\nNo API keys existed, so an admin key was created. It is shown ONCE, store it now:\n\n"
            f"    {plaintext}\n\n"
            "Use it as 'Authorization: Bearer <key>'. Create client keys with `warden keys create`.\n",
            err=True,
            fg=typer.colors.YELLOW,
        )

    log_config = uvicorn_log_config()
    if workers == 1:
        from warden.service import create_app

        dispatcher = WebhookDispatcher.from_settings(store, webhooks) if webhooks is not None else None
        app = create_app(moderator=moderator, store=store, settings=settings, shadow_moderator=shadow_moderator,
                         dispatcher=dispatcher)
        uvicorn.run(app, host=host, port=port, log_config=log_config, proxy_headers=False)
        return
    # Several processes: each worker builds its own app from the environment.
    store.close()
    os.environ["WARDEN_POLICY"] = str(policy_path.resolve())
    os.environ["WARDEN_DATABASE_URL"] = url
    if settings.shadow_policy:
        os.environ["WARDEN_SHADOW_POLICY"] = str(Path(settings.shadow_policy).resolve())
    if settings.archive_content:
        os.environ["WARDEN_ARCHIVE_CONTENT"] = "1"
    uvicorn.run(
        "warden.service.asgi:create_app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=log_config,
        proxy_headers=False,
    )
