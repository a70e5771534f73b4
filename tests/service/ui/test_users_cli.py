"""`warden users ...`: passwords from stdin or a prompt (never argv), roles, disable, passwd."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from warden.cli.main import app
from warden.store import Store
from warden.store.users_repo import UserRepository

runner = CliRunner()


def _db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'cli.db'}"


def test_users_lifecycle(tmp_path: Path) -> None:
    db = _db(tmp_path)
    r = runner.invoke(app, ["users", "create", "Root", "--role", "admin", "--password-stdin", "--database-url", db],
                      input="root-password-123\n")
    assert r.exit_code == 0, r.output
    assert "created user 'root' role=admin" in r.output and "root-password-123" not in r.output
    r = runner.invoke(app, ["users", "create", "rev", "--role", "reviewer", "--database-url", db],
                      input="rev-password-1234\nrev-password-1234\n")  # prompt + confirmation, no echo
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["users", "set-role", "rev", "senior_reviewer", "--database-url", db])
    assert r.exit_code == 0 and "role=senior_reviewer" in r.output
    r = runner.invoke(app, ["users", "disable", "rev", "--database-url", db])
    assert r.exit_code == 0
    r = runner.invoke(app, ["users", "list", "--json", "--database-url", db])
    rows = {row["username"]: row for row in map(json.loads, r.output.strip().splitlines())}
    assert rows["rev"]["role"] == "senior_reviewer" and rows["rev"]["disabled_at"] and rows["root"]["role"] == "admin"
    assert "password" not in r.output
    r = runner.invoke(app, ["users", "list", "--database-url", db])
    assert "disabled" in r.output and "root" in r.output
    r = runner.invoke(app, ["users", "enable", "rev", "--database-url", db])
    assert r.exit_code == 0
    r = runner.invoke(app, ["users", "passwd", "rev", "--password-stdin", "--database-url", db],
                      input="brand-new-password\n")
    assert r.exit_code == 0, r.output

    store = Store.from_url(db)
    try:
        users = UserRepository(store)
        assert users.authenticate(username="rev", password="brand-new-password") is not None
        assert users.authenticate(username="rev", password="rev-password-1234") is None
        actors = {e.actor for e in store.audit_events(event="user.create")}
        assert all(a.startswith("cli:") for a in actors)
    finally:
        store.close()


def test_users_errors(tmp_path: Path) -> None:
    db = _db(tmp_path)
    r = runner.invoke(app, ["users", "create", "x", "--role", "admin", "--password-stdin", "--database-url", db],
                      input="short\n")
    assert r.exit_code == 2 and "at least 12" in r.output
    r = runner.invoke(app, ["users", "create", "x", "--role", "client", "--password-stdin", "--database-url", db],
                      input="long-enough-pass\n")
    assert r.exit_code == 2
    r = runner.invoke(app, ["users", "disable", "ghost", "--database-url", db])
    assert r.exit_code == 2 and "no user named 'ghost'" in r.output
    r = runner.invoke(app, ["users", "create", "x", "--role", "admin", "--password", "p", "--database-url", db])
    assert r.exit_code == 2  # there is no --password option: passwords never go through argv
