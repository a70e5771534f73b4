"""Issue 4 end to end over the HTTP API: an item held by the policy is decided by a reviewer,
which sends a signed webhook and strikes the actor; the actor appeals, a different reviewer
overturns, which reverses the action and the strike; every human decision became labels."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from enforce_helpers import SECRET, Receiver
from fastapi.testclient import TestClient
from sqlalchemy import text

from warden.core import Content, Decision, DetectorResult, Policy
from warden.decide import decide
from warden.enforce.dispatcher import WebhookDispatcher
from warden.service import ServiceSettings, create_app
from warden.store import Store

POLICY = Policy.model_validate({
    "name": "flow", "version": "flow-1", "surfaces": ["comment"],
    "categories": {"hate": {"definition": "attacks on protected groups", "severity": "high", "action": "remove",
                            "thresholds": {"default": {"flag": 0.8, "review": 0.4}}}},
    "review": {"default_queue": "default", "queues": {"default": {"sla_hours": 24}, "appeals": {"sla_hours": 72}},
               "appeal_queue": "appeals", "qa_sample_rate": 0.0, "double_review_rate": 0.0},
    "enforcement": {"strikes": {"actions": ["remove"], "ladder": [{"at": 1, "action": "warn"}]}},
})


class HeldModerator:
    """Scores every item 0.6 for hate: inside the review band, so the policy holds it."""

    policy = POLICY

    def moderate_batch(self, items: list[Content]) -> list[Decision]:
        return [decide(POLICY, c, [DetectorResult(detector="fake", content_id=c.id, scores={"hate": 0.6})])
                for c in items]


@pytest.fixture
def setup(tmp_path) -> Iterator[tuple[TestClient, Store, Receiver, WebhookDispatcher, dict[str, str]]]:
    store = Store.from_url(f"sqlite:///{tmp_path / 'flow.db'}")
    store.upgrade()
    keys = {name: store.create_api_key(name, role)[1]
            for name, role in (("client", "client"), ("r1", "reviewer"), ("r2", "reviewer"))}
    receiver = Receiver().start()
    dispatcher = WebhookDispatcher(store, url=receiver.url, secret=SECRET)
    app = create_app(moderator=HeldModerator(), store=store, settings=ServiceSettings())
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client, store, receiver, dispatcher, keys
    receiver.stop()
    dispatcher.close()
    store.close()


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_review_then_appeal_overturn_sends_signed_webhooks_and_records_labels(setup) -> None:
    client, store, receiver, dispatcher, keys = setup
    r = client.post("/v1/moderate", json={"id": "post-1", "text": "borderline", "actor_id": "user-9"},
                    headers=_auth(keys["client"]))
    decision = r.json()
    assert decision["action"] == "hold_for_review"

    task = client.post("/v1/review/queues/default/lease", headers=_auth(keys["r1"])).json()["task"]
    r = client.post(f"/v1/review/tasks/{task['id']}/decision", json={"labels": {"hate": True}, "action": "remove",
                                                                      "note": "slur"}, headers=_auth(keys["r1"]))
    assert r.status_code == 200 and r.json()["enforce"] is True

    r = client.post("/v1/appeals", json={"decision_id": decision["decision_id"], "reason": "it was a quote",
                                         "appellant": "user-9"}, headers=_auth(keys["client"]))
    assert r.status_code == 201
    assert client.post("/v1/review/queues/appeals/lease", headers=_auth(keys["r1"])).json() == {"task": None}
    appeal_task = client.post("/v1/review/queues/appeals/lease", headers=_auth(keys["r2"])).json()["task"]
    r = client.post(f"/v1/review/tasks/{appeal_task['id']}/decision",
                    json={"labels": {"hate": False}, "action": "allow"}, headers=_auth(keys["r2"]))
    assert r.json()["overturned"] is True

    stats = dispatcher.run_once()
    assert stats.dead == 0
    events = [(q.payload["type"], q.payload.get("action")) for q in receiver.requests]
    assert all(q.signature_ok for q in receiver.requests)
    assert ("content_action", "hold_for_review") in events  # the automated hold
    assert ("content_action", "remove") in events  # the reviewer's removal
    assert ("account_action", "warn") in events  # the strike reached the first ladder step
    assert any(t == "content_action.reversed" for t, _ in events)  # the overturned appeal
    assert any(t == "account_action.reversed" for t, _ in events)
    assert all("borderline" not in q.body.decode() for q in receiver.requests)  # no content in webhooks

    with store.engine.connect() as conn:
        labels = conn.execute(text("SELECT reviewer, category, violating, policy_version FROM labels "
                                   "ORDER BY id")).all()
        active_strikes = conn.execute(text("SELECT COUNT(*) FROM strikes WHERE reversed_at IS NULL")).scalar_one()
    assert [(c, bool(v), pv) for _, c, v, pv in labels] == [("hate", True, "flow-1"), ("hate", False, "flow-1")]
    assert labels[0][0] != labels[1][0]  # two different reviewers
    assert active_strikes == 0

    # Delivering again sends nothing: every action was delivered once (idempotency keys).
    before = len(receiver.requests)
    assert dispatcher.run_once().claimed == 0 and len(receiver.requests) == before


def test_a_resubmission_with_other_text_queues_no_second_action(tmp_path) -> None:
    from warden.pipelines.record import DecisionRecorder

    store = Store.from_url(f"sqlite:///{tmp_path / 'r.db'}")
    store.upgrade()
    recorder = DecisionRecorder(store, POLICY)

    def decision(score: float) -> tuple[Content, Decision]:
        c = Content(id="same-id", text=f"text {score}", actor_id="u1")
        return c, decide(POLICY, c, [DetectorResult(detector="fake", content_id=c.id, scores={"hate": score})])

    c1, d1 = decision(0.95)  # remove
    c2, d2 = decision(0.6)  # hold_for_review: another action for the same decision id
    assert d1.decision_id == d2.decision_id and d1.action != d2.action
    assert recorder.record([c1], [d1], actor="t", event="e", subject="s").stored == 1
    assert recorder.record([c2], [d2], actor="t", event="e", subject="s").stored == 0
    with store.engine.connect() as conn:
        actions = conn.execute(text("SELECT action FROM enforcement_actions WHERE kind = 'content_action'")).all()
    assert [a for (a,) in actions] == ["remove"]
    store.close()
