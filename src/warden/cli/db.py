"""`warden db ...`: schema migrations (Alembic, shipped inside the package)."""

from __future__ import annotations

import typer

from warden.cli._common import DATABASE_URL_HELP, open_store

db_app = typer.Typer(help="Database schema migrations.", no_args_is_help=True)


@db_app.command("upgrade")
def upgrade(
    database_url: str | None = typer.Option(None, "--database-url", help=DATABASE_URL_HELP),
) -> None:
    """Apply all pending migrations (safe to run repeatedly and concurrently on PostgreSQL)."""
    store = open_store(database_url, upgrade=False)
    try:
        before = store.current_revision()
        store.upgrade()
        after = store.current_revision()
    except Exception as exc:
        typer.secho(f"migration failed: {type(exc).__name__}: {str(exc)[:300]}", err=True, fg=typer.colors.RED)
        raise typer.Exit(1) from None
    finally:
        store.close()
    typer.echo(f"database at revision {after} (was {before or 'empty'})")


@db_app.command("current")
def current(
    database_url: str | None = typer.Option(None, "--database-url", help=DATABASE_URL_HELP),
) -> None:
    """Show the database's migration revision and the newest one this Warden ships."""
    store = open_store(database_url, upgrade=False)
    try:
        typer.echo(f"current: {store.current_revision() or 'empty'}; head: {store.head_revision()}")
    finally:
        store.close()
