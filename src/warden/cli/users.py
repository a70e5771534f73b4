"""`warden users ...`: people who log in to the reviewer UI (API clients use `warden keys`).

Passwords never come from argv (it leaks into shell history and `ps`): they are read from
stdin with `--password-stdin`, or prompted for without echo.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from datetime import datetime
from enum import StrEnum

import typer

from warden.cli._common import DATABASE_URL_HELP, cli_actor, open_store
from warden.store.users_repo import MIN_PASSWORD_CHARS, UserError, UserRecord, UserRepository

users_app = typer.Typer(help="Create and manage reviewer UI users.", no_args_is_help=True)


class Role(StrEnum):
    reviewer = "reviewer"
    senior_reviewer = "senior_reviewer"
    admin = "admin"


PasswordStdin = typer.Option(False, "--password-stdin", help="Read the password from the first line of stdin.")
DatabaseUrl = typer.Option(None, "--database-url", help=DATABASE_URL_HELP)


def _password(from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        return line.rstrip("\r\n")
    return typer.prompt(f"Password (at least {MIN_PASSWORD_CHARS} characters)", hide_input=True,
                        confirmation_prompt=True)


def _run(database_url: str | None, action: Callable[[UserRepository], UserRecord]) -> UserRecord:
    store = open_store(database_url)
    try:
        return action(UserRepository(store))
    except UserError as exc:
        typer.secho(str(exc), err=True, fg=typer.colors.RED)
        raise typer.Exit(2) from None
    finally:
        store.close()


@users_app.command("create")
def create(
    username: str = typer.Argument(..., help="Login name (lowercased): letters, digits, '_', '.', '@', '-'."),
    role: Role = typer.Option(..., "--role", help="reviewer: review queues; senior_reviewer: also appeals and "
                              "agreement; admin: also users, queue stats and policy pages."),
    password_stdin: bool = PasswordStdin,
    database_url: str | None = DatabaseUrl,
) -> None:
    """Create a user. The password is prompted for (or read with --password-stdin), never an argument."""
    password = _password(password_stdin)
    user = _run(database_url, lambda users: users.create_user(username=username, password=password,
                                                                role=role.value, actor=cli_actor()))
    typer.echo(f"created user {user.username!r} role={user.role}")


@users_app.command("list")
def list_users(
    as_json: bool = typer.Option(False, "--json", help="JSON lines instead of a table."),
    database_url: str | None = DatabaseUrl,
) -> None:
    """List users with role, status and last login (password hashes are never shown)."""
    store = open_store(database_url)
    try:
        records = UserRepository(store).list_users()
    finally:
        store.close()
    if as_json:
        for u in records:
            typer.echo(json.dumps({"id": u.id, "username": u.username, "role": u.role,
                                   "created_at": u.created_at.isoformat(),
                                   "disabled_at": u.disabled_at.isoformat() if u.disabled_at else None,
                                   "last_login_at": u.last_login_at.isoformat() if u.last_login_at else None}))
        return
    if not records:
        typer.echo("no users (create one with `warden users create NAME --role admin`)")
        return

    def fmt(dt: datetime | None) -> str:
        return dt.strftime("%Y-%m-%d %H:%M:%S") if dt else "-"

    typer.echo(f"{'USERNAME':<32} {'ROLE':<16} {'LAST LOGIN':<20} STATUS")
    for u in records:
        status = f"disabled {fmt(u.disabled_at)}" if u.disabled_at else "active"
        typer.echo(f"{u.username[:32]:<32} {u.role:<16} {fmt(u.last_login_at):<20} {status}")


@users_app.command("set-role")
def set_role(
    username: str = typer.Argument(...),
    role: Role = typer.Argument(..., help="reviewer, senior_reviewer or admin."),
    database_url: str | None = DatabaseUrl,
) -> None:
    """Change a user's role; their open sessions end (they log in again with the new role)."""
    user = _run(database_url, lambda users: users.set_role(username=username, role=role.value, actor=cli_actor()))
    typer.echo(f"user {user.username!r} role={user.role}; sessions ended")


@users_app.command("disable")
def disable(username: str = typer.Argument(...), database_url: str | None = DatabaseUrl) -> None:
    """Disable a user: they cannot log in and their open sessions end at once."""
    user = _run(database_url, lambda users: users.disable(username=username, actor=cli_actor()))
    typer.echo(f"disabled user {user.username!r}; sessions ended")


@users_app.command("enable")
def enable(username: str = typer.Argument(...), database_url: str | None = DatabaseUrl) -> None:
    """Enable a disabled user again."""
    user = _run(database_url, lambda users: users.enable(username=username, actor=cli_actor()))
    typer.echo(f"enabled user {user.username!r}")


@users_app.command("passwd")
def passwd(
    username: str = typer.Argument(...),
    password_stdin: bool = PasswordStdin,
    database_url: str | None = DatabaseUrl,
) -> None:
    """Set a user's password (prompted, or --password-stdin); their open sessions end."""
    password = _password(password_stdin)
    user = _run(database_url, lambda users: users.set_password(username=username, password=password,
                                                                 actor=cli_actor()))
    typer.echo(f"password set for {user.username!r}; sessions ended")
