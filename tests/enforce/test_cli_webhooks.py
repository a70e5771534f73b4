"""`warden webhooks dispatch|status|dead-letters|replay` and `warden strikes show` through
typer's CliRunner (mounted on a local app with the same `register` that cli/main.py calls)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from enforce_helpers import SECRET, Receiver, make_decision
from typer.testing import CliRunner

from warden.cli.webhooks import register
from warden.core import Action, Policy
from warden.enforce.dispatcher import WebhookDispatcher
from warden.enforce.outbox import EnforcementOutbox
from warden.store import Store

app = typer.Typer()
register(app)
runner = CliRunner()


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Store, Receiver]]:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    secret_file = tmp_path / "webhook-secret"
    secret_file.write_text(SECRET + "\n")
    receiver = Receiver().start()
    monkeypatch.setenv("WARDEN_DATABASE_URL", url)
    monkeypatch.setenv("WARDEN_WEBHOOK_URL", receiver.url)
    monkeypatch.setenv("WARDEN_WEBHOOK_SECRET_FILE", str(secret_file))
    monkeypatch.delenv("WARDEN_WEBHOOK_SECRET", raising=False)
    store = Store.from_url(url)
    store.upgrade()
    yield store, receiver
    store.close()
    receiver.stop()


def _seed(store: Store, policy: Policy) -> None:
    outbox = EnforcementOutbox(store, policy)
    outbox.record_decision(make_decision("c1"), actor_id="user-7")  # remove + warn
    outbox.record_decision(make_decision("c2", action=Action.LIMIT, flagged=("spam",)), actor_id="user-7")


def test_dispatch_once_status_and_idempotent_rerun(env: tuple[Store, Receiver], policy: Policy) -> None:
    store, receiver = env
    _seed(store, policy)
    r = runner.invoke(app, ["webhooks", "dispatch", "--once"])
    assert r.exit_code == 0, r.output
    assert "claimed 3: delivered 3, retrying 0, dead 0" in r.stdout
    assert len(receiver.delivered) == 3 and all(x.signature_ok for x in receiver.requests)
    assert SECRET not in r.output
    r = runner.invoke(app, ["webhooks", "status"])
    assert r.exit_code == 0 and "pending 0  delivered 3  dead 0  dead_letters 0" in r.stdout
    assert "claimed 0" in runner.invoke(app, ["webhooks", "dispatch", "--once"]).stdout


def test_dead_letters_and_replay(env: tuple[Store, Receiver], policy: Policy) -> None:
    store, receiver = env
    _seed(store, policy)
    receiver.plan("400", "400", "400")
    r = runner.invoke(app, ["webhooks", "dispatch", "--once"])
    assert "dead 3" in r.stdout and "HTTP 400" in r.stdout
    r = runner.invoke(app, ["webhooks", "dead-letters"])
    assert r.exit_code == 0 and r.stdout.count("HTTP 400") == 3
    out = runner.invoke(app, ["webhooks", "dead-letters", "--json"]).stdout
    letters = [json.loads(line) for line in out.splitlines()]
    assert [x["kind"] for x in letters] == ["content_action", "account_action", "content_action"]
    r = runner.invoke(app, ["webhooks", "replay", str(letters[0]["id"])])
    assert r.exit_code == 0 and f"replayed 1 dead letter(s): {letters[0]['id']}" in r.stdout
    assert runner.invoke(app, ["webhooks", "replay", str(letters[0]["id"])]).exit_code == 1  # already replayed
    r = runner.invoke(app, ["webhooks", "replay", "--all"])
    assert r.exit_code == 0 and "replayed 2 dead letter(s)" in r.stdout
    assert "delivered 3" in runner.invoke(app, ["webhooks", "dispatch", "--once"]).stdout
    assert runner.invoke(app, ["webhooks", "dead-letters"]).stdout.strip() == "no dead letters"
    assert "replayed" in runner.invoke(app, ["webhooks", "dead-letters", "--include-replayed"]).stdout
    assert [e.event for e in store.audit_events(event="webhook.replay")] == ["webhook.replay"] * 2


def test_replay_needs_exactly_one_target(env: tuple[Store, Receiver]) -> None:
    assert runner.invoke(app, ["webhooks", "replay"]).exit_code == 2
    assert runner.invoke(app, ["webhooks", "replay", "1", "--all"]).exit_code == 2
    r = runner.invoke(app, ["webhooks", "replay", "--all"])
    assert r.exit_code == 0 and "no dead letters to replay" in r.stdout


def test_dispatch_without_url_or_secret_fails_clearly(env: tuple[Store, Receiver],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WARDEN_WEBHOOK_SECRET_FILE")
    r = runner.invoke(app, ["webhooks", "dispatch", "--once"])
    assert r.exit_code == 2 and "no secret" in r.output
    monkeypatch.delenv("WARDEN_WEBHOOK_URL")
    r = runner.invoke(app, ["webhooks", "dispatch", "--once"])
    assert r.exit_code == 2 and "WARDEN_WEBHOOK_URL" in r.output


def test_strikes_show(env: tuple[Store, Receiver], policy: Policy) -> None:
    store, _ = env
    _seed(store, policy)
    r = runner.invoke(app, ["strikes", "show", "user-7"])
    assert r.exit_code == 0, r.output
    assert "decayed total 2.000, step warn (at 1); next: restrict at 3" in r.stdout
    assert "hate" in r.stdout
    data = json.loads(runner.invoke(app, ["strikes", "show", "user-7", "--json"]).stdout)
    assert data["account_action"] == "warn" and data["total"] == pytest.approx(2.0, rel=1e-4)
    assert [s["category"] for s in data["strikes"]] == ["hate"]
    r = runner.invoke(app, ["strikes", "show", "nobody"])
    assert r.exit_code == 0 and "decayed total 0.000, step none" in r.stdout


def test_help_texts() -> None:
    for args in (["webhooks", "--help"], ["webhooks", "dispatch", "--help"], ["webhooks", "replay", "--help"],
                 ["strikes", "show", "--help"]):
        r = runner.invoke(app, args)
        assert r.exit_code == 0 and "Usage" in r.stdout


def test_serve_runs_a_dispatcher_only_when_a_webhook_url_is_set(env: tuple[Store, Receiver], policy: Policy,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    from warden.cli.serve import serve

    serve_app = typer.Typer()
    serve_app.command("serve")(serve)
    serve_app.command("noop")(lambda: None)  # two commands: `serve` stays a subcommand
    import warden.service

    made: list[dict[str, object]] = []
    real_create_app = warden.service.create_app
    monkeypatch.setattr(warden.service, "create_app", lambda **kw: made.append(kw) or real_create_app(**kw))
    monkeypatch.setattr("uvicorn.run", lambda app, **kw: None)
    monkeypatch.setattr("warden.moderator.Moderator.from_file",
                        classmethod(lambda cls, path, **kw: SimpleNamespace(policy=policy)))
    r = runner.invoke(serve_app, ["serve"])
    assert r.exit_code == 0, r.output
    assert "enforcement webhooks: delivering to http://127.0.0.1:" in r.stderr and SECRET not in r.output
    dispatcher = made[-1]["dispatcher"]
    assert isinstance(dispatcher, WebhookDispatcher) and dispatcher.url == env[1].url
    monkeypatch.setenv("WARDEN_WEBHOOK_SECRET_FILE", "/nonexistent/secret")
    r = runner.invoke(serve_app, ["serve"])
    assert r.exit_code == 1 and "cannot read WARDEN_WEBHOOK_SECRET_FILE" in r.stderr
    monkeypatch.delenv("WARDEN_WEBHOOK_URL")
    r = runner.invoke(serve_app, ["serve"])
    assert r.exit_code == 0 and "enforcement webhooks" not in r.stderr and made[-1]["dispatcher"] is None
