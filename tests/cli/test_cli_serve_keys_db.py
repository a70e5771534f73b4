"""`warden serve` start-up, `warden keys ...` and `warden db ...` (mounted on a local Typer app;
cli/main.py wires the same functions)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import typer
from typer.testing import CliRunner

from warden.cli.db import db_app
from warden.cli.keys import keys_app
from warden.cli.serve import serve
from warden.store import Store

app = typer.Typer()
app.command("serve")(serve)
app.add_typer(keys_app, name="keys")
app.add_typer(db_app, name="db")
runner = CliRunner()


@pytest.fixture
def db_url(tmp_path, monkeypatch) -> str:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("WARDEN_DATABASE_URL", url)
    return url


def test_db_upgrade_and_current(db_url: str) -> None:
    r = runner.invoke(app, ["db", "upgrade"])
    assert r.exit_code == 0, r.output
    assert "revision 0004 (was empty)" in r.stdout
    r = runner.invoke(app, ["db", "current", "--database-url", db_url])
    assert r.exit_code == 0 and "current: 0004; head: 0004" in r.stdout


def test_keys_create_list_revoke(db_url: str) -> None:
    r = runner.invoke(app, ["keys", "create", "--name", "web", "--role", "client"])
    assert r.exit_code == 0, r.output
    plaintext = r.stdout.strip()
    store = Store.from_url(db_url)
    assert store.authenticate(plaintext).role == "client"

    r = runner.invoke(app, ["keys", "list", "--json"])
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert [(x["name"], x["role"], x["revoked_at"]) for x in rows] == [("web", "client", None)]
    assert plaintext not in r.stdout and plaintext.split("_")[2] not in r.stdout
    assert "web" in runner.invoke(app, ["keys", "list"]).stdout

    r = runner.invoke(app, ["keys", "revoke", str(rows[0]["id"])])
    assert r.exit_code == 0 and "revoked" in r.stdout
    assert store.authenticate(plaintext) is None
    assert runner.invoke(app, ["keys", "revoke", "999"]).exit_code == 1
    assert [e.event for e in store.audit_events()] == ["api_key.create", "api_key.revoke"]
    store.close()


def test_keys_create_rejects_bad_role(db_url: str) -> None:
    r = runner.invoke(app, ["keys", "create", "--name", "x", "--role", "root"])
    assert r.exit_code == 2


def test_serve_migrates_and_prints_admin_key_once(db_url: str, monkeypatch) -> None:
    runs: list[dict] = []
    monkeypatch.setattr("uvicorn.run", lambda app, **kw: runs.append({"app": app, **kw}))
    fake = SimpleNamespace(policy=SimpleNamespace(name="t", version="1", surfaces=("comment",)))
    monkeypatch.setattr("warden.moderator.Moderator.from_file", classmethod(lambda cls, path, **kw: fake))

    first = runner.invoke(app, ["serve", "--port", "8123"])
    assert first.exit_code == 0, first.output
    keys = [w for w in first.stderr.split() if w.startswith("wdn_")]
    assert len(keys) == 1 and keys[0] not in first.stdout
    store = Store.from_url(db_url)
    assert store.authenticate(keys[0]).role == "admin"
    assert runs[0]["port"] == 8123 and runs[0]["host"] == "127.0.0.1"

    second = runner.invoke(app, ["serve"])
    assert second.exit_code == 0 and "wdn_" not in second.stderr + second.stdout
    # all keys revoked: still no new bootstrap key
    for k in store.list_api_keys():
        store.revoke_api_key(k.id)
    third = runner.invoke(app, ["serve"])
    assert "wdn_" not in third.stderr and len(store.list_api_keys()) == 1
    store.close()


def test_serve_help_explains_the_bootstrap_key() -> None:
    r = runner.invoke(app, ["serve", "--help"])
    assert r.exit_code == 0 and "ONCE" in r.stdout and "--database-url" in r.stdout


def test_serve_bad_policy_is_a_clear_error(db_url: str, tmp_path) -> None:
    r = runner.invoke(app, ["serve", "--policy", str(tmp_path / "missing.yaml")])
    assert r.exit_code == 1 and "cannot load policy" in r.stderr
