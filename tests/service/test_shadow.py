"""Shadow mode end to end through the FastAPI TestClient: a candidate policy runs beside the
live one, its decisions are stored (never returned), and a failing candidate never touches
the live response. Also the opt-in content archive."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from fastapi.testclient import TestClient
from svc_helpers import Keys, auth

from support import SMALL_POLICY
from warden.core import Content, Decision
from warden.moderator import Moderator
from warden.policy import parse_policy
from warden.service import ServiceSettings, create_app
from warden.store import Store

# the candidate raises the spam flag threshold: "spammy" goes from limit to hold_for_review
CANDIDATE = SMALL_POLICY.replace('version: "t1"', 'version: "t2"').replace(
    "flag: 0.9, review: 0.6", "flag: 0.999, review: 0.6")
TEXTS = {"a1": "hello there", "a2": "spammy deal", "a3": "hateword here", "a4": "maybe not"}


@pytest.fixture
def live(word_detector_cls) -> Moderator:
    return Moderator(parse_policy(SMALL_POLICY))


@pytest.fixture
def candidate(word_detector_cls) -> Moderator:
    return Moderator(parse_policy(CANDIDATE))


class ExplodingModerator:
    def __init__(self, policy) -> None:
        self.policy = policy
        self.calls = 0

    def moderate_batch(self, items: Sequence[Content]) -> list[Decision]:
        self.calls += 1
        raise RuntimeError("candidate model crashed")


def _metric(client: TestClient, outcome: str) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(f'warden_shadow_items_total{{outcome="{outcome}"}}'):
            return float(line.split()[-1])
    return 0.0


def _batch() -> dict:
    return {"items": [{"id": k, "text": v} for k, v in TEXTS.items()]}


def test_shadow_decisions_are_stored_and_never_returned(live: Moderator, candidate: Moderator, store: Store,
                                                        keys: Keys, settings: ServiceSettings) -> None:
    plain = create_app(moderator=live, store=Store.from_url("sqlite://"), settings=settings)
    with TestClient(plain) as c:
        c.app.state.store.upgrade()
        key = c.app.state.store.create_api_key("k", "client")[1]
        expected = c.post("/v1/moderate", json=_batch(), headers=auth(key)).json()

    app = create_app(moderator=live, store=store, settings=settings, shadow_moderator=candidate)
    with TestClient(app) as client:
        r = client.post("/v1/moderate", json=_batch(), headers=auth(keys.client))
        assert r.status_code == 200
        assert r.json() == expected  # the live response is exactly what it is without a shadow
        assert {d["policy_version"] for d in r.json()["decisions"]} == {"t1"}
        single = client.post("/v1/moderate", json={"id": "b1", "text": "spammy again"}, headers=auth(keys.client))
        assert single.json()["action"] == "limit" and single.json()["policy_version"] == "t1"
        assert app.state.shadow.drain(10)
        assert _metric(client, "stored") == 5 and _metric(client, "failed") == 0

        pairs = store.shadow_comparisons()
        assert len(pairs) == 5
        by_id = {sh.content_id: (lv, sh) for lv, sh in pairs}
        lv, sh = by_id["a2"]
        assert (lv.policy_version, lv.action) == ("t1", "limit")
        assert (sh.policy_version, sh.live_policy_version, sh.action) == ("t2", "t1", "hold_for_review")
        assert sh.live_decision_id == lv.decision_id and sh.decision_id != lv.decision_id
        assert sh.payload["policy_version"] == "t2" and "text" not in str(sh.payload.get("reasons"))
        assert all(by_id[k][1].action == by_id[k][0].action for k in ("a1", "a3", "a4"))
        # the live decision store only has live decisions; stored decisions read back as live
        assert store.count_decisions() == 5
        got = client.get("/v1/decisions/a2", headers=auth(keys.client)).json()
        assert got["policy_version"] == "t1" and got["action"] == "limit"

        # resubmitting is idempotent for shadow rows too
        client.post("/v1/moderate", json=_batch(), headers=auth(keys.client))
        assert app.state.shadow.drain(10)
        assert store.count_shadow_decisions() == 5 and _metric(client, "duplicate") == 4


def test_failing_shadow_never_breaks_the_live_request(live: Moderator, store: Store, keys: Keys,
                                                      settings: ServiceSettings) -> None:
    boom = ExplodingModerator(parse_policy(CANDIDATE))
    app = create_app(moderator=live, store=store, settings=settings, shadow_moderator=boom)
    with TestClient(app, raise_server_exceptions=True) as client:
        r = client.post("/v1/moderate", json=_batch(), headers=auth(keys.client))
        assert r.status_code == 200 and len(r.json()["decisions"]) == 4
        assert app.state.shadow.drain(10)
        assert boom.calls == 1
        assert _metric(client, "failed") == 4
        assert store.count_shadow_decisions() == 0 and store.count_decisions() == 4
        # and the next request still works (the worker survived)
        r2 = client.post("/v1/moderate", json={"id": "z", "text": "hello"}, headers=auth(keys.client))
        assert r2.status_code == 200 and r2.json()["action"] == "allow"
        assert app.state.shadow.drain(10) and boom.calls == 2 and _metric(client, "failed") == 5


def test_full_shadow_queue_drops_and_counts(live: Moderator, store: Store, keys: Keys) -> None:
    import threading

    gate = threading.Event()

    class Slow:
        policy = parse_policy(CANDIDATE)

        def moderate_batch(self, items):
            gate.wait(10)
            return candidate_mod.moderate_batch(items)

    candidate_mod = Moderator(parse_policy(CANDIDATE))
    settings = ServiceSettings(max_batch_items=10, shadow_queue_size=1)
    app = create_app(moderator=live, store=store, settings=settings, shadow_moderator=Slow())
    with TestClient(app) as client:
        codes = [client.post("/v1/moderate", json={"id": f"q{i}", "text": "hello"}, headers=auth(keys.client))
                 .status_code for i in range(4)]
        assert codes == [200] * 4  # the live path never waits for the shadow
        gate.set()
        assert app.state.shadow.drain(10)
        stored, dropped = _metric(client, "stored"), _metric(client, "dropped")
        assert dropped >= 1 and stored + dropped == 4
        assert store.count_shadow_decisions() == stored


def test_content_archive_is_opt_in(live: Moderator, store: Store, keys: Keys) -> None:
    off = create_app(moderator=live, store=store, settings=ServiceSettings())
    with TestClient(off) as client:
        client.post("/v1/moderate", json={"id": "n1", "text": "hello"}, headers=auth(keys.client))
    assert store.archived_content() == []
    on = create_app(moderator=live, store=store, settings=ServiceSettings(archive_content=True))
    with TestClient(on) as client:
        client.post("/v1/moderate", json={"id": "y1", "text": "spammy deal", "surface": "chat", "actor_id": "u7"},
                    headers=auth(keys.client))
    [item] = store.archived_content()
    assert (item.content_id, item.text, item.surface, item.actor_id) == ("y1", "spammy deal", "chat", "u7")


def test_settings_from_env(monkeypatch) -> None:
    monkeypatch.setenv("WARDEN_ARCHIVE_CONTENT", "1")
    monkeypatch.setenv("WARDEN_SHADOW_POLICY", "cand.yaml")
    s = ServiceSettings.from_env()
    assert s.archive_content is True and s.shadow_policy == "cand.yaml"
