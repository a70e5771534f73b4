"""`warden keys ...`: API keys for HTTP clients. Keys are stored hashed; the plaintext is shown once."""

from __future__ import annotations

import json
from enum import StrEnum

import typer

from warden.cli._common import DATABASE_URL_HELP, cli_actor, open_store

keys_app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)


class Role(StrEnum):
    client = "client"
    reviewer = "reviewer"
    admin = "admin"


@keys_app.command("create")
def create(
    name: str = typer.Option(..., "--name", help="What the key is for, e.g. 'web-backend' (1-128 chars)."),
    role: Role = typer.Option(
        Role.client, "--role", help="client: moderate + read decisions; reviewer: read decisions; admin: everything."
    ),
    database_url: str | None = typer.Option(None, "--database-url", help=DATABASE_URL_HELP),
) -> None:
    """Create a key and print it ONCE on stdout (store it in your secret manager; it cannot be shown again)."""
    store = open_store(database_url)
    try:
        try:
            record, plaintext = store.create_api_key(name, role.value)
        except ValueError as exc:
            typer.secho(str(exc), err=True, fg=typer.colors.RED)
            raise typer.Exit(2) from None
        store.append_audit(
            cli_actor(),
            "api_key.create",
            f"api_key:{record.id}",
            {"name": record.name, "role": record.role, "prefix": record.prefix},
        )
    finally:
        store.close()
    typer.echo(f"created key {record.id} {record.name!r} role={record.role} (shown once, store it now):", err=True)
    typer.echo(plaintext)


@keys_app.command("list")
def list_keys(
    as_json: bool = typer.Option(False, "--json", help="JSON lines instead of a table."),
    database_url: str | None = typer.Option(None, "--database-url", help=DATABASE_URL_HELP),
) -> None:
    """List keys (id, name, prefix, role, dates). Secrets are never stored, so never shown."""
    store = open_store(database_url)
    try:
        records = store.list_api_keys()
    finally:
        store.close()
    if as_json:
        for r in records:
            typer.echo(
                json.dumps(
                    {
                        "id": r.id,
                        "name": r.name,
                        "prefix": r.prefix,
                        "role": r.role,
                        "created_at": r.created_at.isoformat(),
                        "last_used_at": r.last_used_at.isoformat() if r.last_used_at else None,
                        "revoked_at": r.revoked_at.isoformat() if r.revoked_at else None,
                    }
                )
            )
        return
    if not records:
        typer.echo("no API keys (create one with `warden keys create --name NAME --role client`)")
        return
    typer.echo(f"{'ID':>4}  {'NAME':<24} {'PREFIX':<14} {'ROLE':<9} {'CREATED':<20} {'LAST USED':<20} STATUS")

    def fmt(dt):
        return dt.strftime("%Y-%m-%d %H:%M:%S") if dt else "-"

    for r in records:
        status = f"revoked {fmt(r.revoked_at)}" if r.revoked_at else "active"
        typer.echo(
            f"{r.id:>4}  {r.name[:24]:<24} wdn_{r.prefix:<10} {r.role:<9} {fmt(r.created_at):<20} "
            f"{fmt(r.last_used_at):<20} {status}"
        )


@keys_app.command("revoke")
def revoke(
    key_id: int = typer.Argument(..., help="The key's ID (see `warden keys list`)."),
    database_url: str | None = typer.Option(None, "--database-url", help=DATABASE_URL_HELP),
) -> None:
    """Revoke a key: it stops working immediately. Revocation is permanent."""
    store = open_store(database_url)
    try:
        record = store.revoke_api_key(key_id)
        if record is None:
            typer.secho(f"no API key with id {key_id}", err=True, fg=typer.colors.RED)
            raise typer.Exit(1)
        store.append_audit(cli_actor(), "api_key.revoke", f"api_key:{record.id}", {"name": record.name})
    finally:
        store.close()
    typer.echo(f"revoked key {record.id} {record.name!r} (wdn_{record.prefix}_...)")
