"""`/v1/moderate` records enforcement in the decision's transaction; the app's lifespan runs
the webhook dispatcher (delivering to a real local receiver) when one is configured."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import pytest
from enforce_helpers import SECRET, Receiver, make_decision
from fastapi.testclient import TestClient

from warden.core import Action, Content, Decision, Policy
from warden.enforce.dispatcher import WebhookDispatcher
from warden.service import ServiceSettings, create_app
from warden.store import Store
from warden.store.enforce_repo import EnforcementRepository


class PolicyModerator:
    """Removes items containing 'vermin' as hate; allows the rest. Carries the real policy."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy

    def moderate_batch(self, items: Sequence[Content]) -> list[Decision]:
        out = []
        for c in items:
            hit = "vermin" in (c.text or "")
            d = make_decision(c.id, action=Action.REMOVE if hit else Action.ALLOW, flagged=("hate",) if hit else (),
                              policy_version=self.policy.version, text=c.text or "")
            out.append(d)
        return out


@pytest.fixture
def sqlite_store(tmp_path: Path):
    s = Store.from_url(f"sqlite:///{tmp_path / 'svc.db'}")
    s.upgrade()
    yield s
    s.close()


def _client_key(store: Store) -> dict[str, str]:
    _, plaintext = store.create_api_key("enforce-test", "client")
    return {"Authorization": f"Bearer {plaintext}"}


def test_moderate_records_outbox_rows_and_strikes_without_a_dispatcher(sqlite_store: Store, policy: Policy) -> None:
    app = create_app(moderator=PolicyModerator(policy), store=sqlite_store, settings=ServiceSettings())
    headers = _client_key(sqlite_store)
    with TestClient(app) as client:
        r = client.post("/v1/moderate", json={"items": [
            {"id": "a", "text": "you are vermin", "actor_id": "user-9"},
            {"id": "b", "text": "nice day", "actor_id": "user-9"}]}, headers=headers)
        assert r.status_code == 200, r.text
        again = client.post("/v1/moderate", json={"id": "a", "text": "you are vermin", "actor_id": "user-9"},
                            headers=headers)
        assert again.status_code == 200
    repo = EnforcementRepository(sqlite_store)
    rows = repo.actions()
    assert [(a.kind, a.action, a.content_id, a.status) for a in rows] == [
        ("content_action", "remove", "a", "pending"), ("account_action", "warn", "a", "pending")]
    assert [s.decision_id for s in repo.strikes(actor_id="user-9")] == [rows[0].decision_id]


def test_lifespan_runs_the_dispatcher_thread(sqlite_store: Store, policy: Policy) -> None:
    receiver = Receiver().start()
    dispatcher = WebhookDispatcher(sqlite_store, url=receiver.url, secret=SECRET, poll_interval=0.05, timeout=2.0)
    app = create_app(moderator=PolicyModerator(policy), store=sqlite_store, settings=ServiceSettings(),
                     dispatcher=dispatcher)
    headers = _client_key(sqlite_store)
    try:
        with TestClient(app) as client:
            assert dispatcher.running
            r = client.post("/v1/moderate", json={"id": "x", "text": "vermin", "actor_id": "u1"}, headers=headers)
            assert r.status_code == 200
            deadline = time.monotonic() + 10
            while len(receiver.delivered) < 2 and time.monotonic() < deadline:
                time.sleep(0.02)
        assert not dispatcher.running  # stopped with the app
    finally:
        receiver.stop()
    assert sorted(r.event for r in receiver.requests) == ["account_action", "content_action"]
    assert all(r.signature_ok and b"vermin" not in r.body for r in receiver.requests)
    assert EnforcementRepository(sqlite_store).count_by_status()["delivered"] == 2
