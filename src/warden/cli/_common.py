"""Helpers shared by the serve, keys and db commands."""

from __future__ import annotations

import getpass

import typer

from warden.store import Store, database_url_from_env

DATABASE_URL_HELP = (
    "Database URL, e.g. postgresql+psycopg://user@host/db. Default: env WARDEN_DATABASE_URL, else sqlite:///warden.db."
)


def cli_actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:
        return "cli:unknown"


def open_store(database_url: str | None, *, upgrade: bool = True, auth_cache_seconds: float = 0.0) -> Store:
    url = database_url or database_url_from_env()
    try:
        store = Store.from_url(url, auth_cache_seconds=auth_cache_seconds)
        if upgrade:
            store.upgrade()
    except Exception as exc:
        typer.secho(f"cannot open the database: {type(exc).__name__}: {str(exc)[:300]}", err=True, fg=typer.colors.RED)
        raise typer.Exit(1) from None
    return store
