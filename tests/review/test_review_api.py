"""The review JSON routes: reports and appeals (client keys), the reviewer queue (reviewer
keys), exact 4xx errors for bad input, role checks, and /v1/moderate queueing held items."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient
from review_helpers import PolicyModerator

from warden.service import ServiceSettings, create_app
from warden.store import Store


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def store(tmp_path) -> Iterator[Store]:
    s = Store.from_url(f"sqlite:///{tmp_path / 'api.db'}")
    s.upgrade()
    yield s
    s.close()


@pytest.fixture
def keys(store: Store) -> SimpleNamespace:
    return SimpleNamespace(**{
        role: store.create_api_key(f"test-{role}", role)[1] for role in ("client", "reviewer", "admin")},
        reviewer2=store.create_api_key("test-reviewer-2", "reviewer")[1])


@pytest.fixture
def client(store: Store) -> Iterator[TestClient]:
    app = create_app(moderator=PolicyModerator(qa_sample_rate=0.0), store=store,
                     settings=ServiceSettings(max_text_chars=1000, max_body_bytes=64 * 1024))
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def moderate(client: TestClient, keys: SimpleNamespace, **item: object) -> dict:
    r = client.post("/v1/moderate", json=item, headers=auth(keys.client))
    assert r.status_code == 200, r.text
    return r.json()


def error(r) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    return r.status_code, r.json()["error"]["code"]


# -- /v1/moderate queues held items ------------------------------------------------------------
def test_moderate_queues_held_items_with_reach_and_text(client: TestClient, keys: SimpleNamespace,
                                                        store: Store) -> None:
    held = moderate(client, keys, id="m1", text="maybe an ad", actor_id="u1", reach=5000)
    assert held["action"] == "hold_for_review" and held["review_queue"] == "default"
    moderate(client, keys, id="m2", text="hello")  # allowed: not queued, not archived
    moderate(client, keys, id="m1", text="maybe an ad", reach=5000)  # a retry: no second task
    r = client.get("/v1/review/queues", headers=auth(keys.reviewer))
    assert r.status_code == 200
    stats = {q["queue"]: q for q in r.json()["queues"]}
    assert stats["default"]["open"] == 1 and stats["default"]["sla_hours"] == 24.0
    assert [a.content_id for a in store.archived_content()] == ["m1"]

    r = client.post("/v1/review/queues/default/lease", headers=auth(keys.reviewer))
    assert r.status_code == 200
    view = r.json()
    assert view["text"] == "maybe an ad" and view["task"]["reach"] == 5000
    assert view["task"]["lease_owner"].startswith("api_key:") and view["task"]["source"] == "uncertainty"
    assert view["decision"]["scores"]["spam"] == 0.7 and view["actor_history"]["actor_id"] == "u1"


def test_moderate_rejects_bad_reach(client: TestClient, keys: SimpleNamespace) -> None:
    r = client.post("/v1/moderate", json={"text": "x", "reach": -3}, headers=auth(keys.client))
    assert error(r) == (422, "invalid_item")
    assert r.json()["error"]["details"]["field"] == "reach"
    assert r.json()["error"]["message"] == "'reach' must be an integer from 0 to 1,000,000,000,000, got -3"


# -- the reviewer flow --------------------------------------------------------------------------
def test_lease_decide_release(client: TestClient, keys: SimpleNamespace) -> None:
    moderate(client, keys, id="d1", text="maybe an ad")
    assert client.post("/v1/review/queues/reports/lease", headers=auth(keys.reviewer)).json() == {"task": None}
    assert error(client.post("/v1/review/queues/nope/lease", headers=auth(keys.reviewer))) == (404, "unknown_queue")
    tid = client.post("/v1/review/queues/default/lease", headers=auth(keys.reviewer)).json()["task"]["id"]
    url = f"/v1/review/tasks/{tid}"

    assert error(client.post(f"{url}/release", headers=auth(keys.reviewer2))) == (409, "lease_conflict")
    assert error(client.post(f"{url}/decision", json={"labels": {"spam": True}, "action": "remove"},
                             headers=auth(keys.reviewer2))) == (409, "lease_conflict")
    released = client.post(f"{url}/release", headers=auth(keys.reviewer))
    assert released.status_code == 200 and released.json()["task"]["status"] == "open"
    assert client.post("/v1/review/queues/default/lease", headers=auth(keys.reviewer)).json()["task"]["id"] == tid

    r = client.post(f"{url}/decision", json={"labels": {"spam": True, "hate": False}, "action": "remove",
                                             "note": "ad"}, headers=auth(keys.reviewer))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["action"] == "remove" and body["enforce"] is True and body["overturned"] is False
    assert body["original_action"] == "hold_for_review" and body["violating"] == ["spam"]
    again = client.post(f"{url}/decision", json={"labels": {"spam": True}, "action": "remove"},
                        headers=auth(keys.reviewer))
    assert error(again) == (409, "task_closed")
    got = client.get(url, headers=auth(keys.reviewer)).json()
    assert got["task"]["status"] == "done" and got["review_decisions"][0]["labels"] == {"hate": False, "spam": True}
    assert error(client.get("/v1/review/tasks/424242", headers=auth(keys.reviewer))) == (404, "task_not_found")


@pytest.mark.parametrize(("body", "status", "code"), [
    (b"", 400, "malformed_json"),
    (b"{nope", 400, "malformed_json"),
    (b"\xff\xfe", 400, "invalid_encoding"),
    (b'{"labels": {"spam": NaN}, "action": "remove"}', 400, "malformed_json"),
    (b"[1, 2]", 422, "invalid_request"),
    (b'{"action": "remove"}', 422, "invalid_request"),
    (b'{"labels": {}, "action": "remove"}', 422, "invalid_request"),
    (b'{"labels": {"spam": "yes"}, "action": "remove"}', 422, "invalid_request"),
    (b'{"labels": {"spam": 1}, "action": "remove"}', 422, "invalid_request"),
    (b'{"labels": {"spam": true}, "action": "hold_for_review"}', 422, "invalid_request"),
    (b'{"labels": {"spam": true}, "action": "remove", "extra": 1}', 422, "invalid_request"),
    (b'{"labels": {"spam": true}, "action": "remove", "note": "a\\u0000b"}', 422, "invalid_request"),
    (b'{"labels": {"spam": true}, "action": "remove", "note": "\\ud800"}', 422, "invalid_request"),
    (b'{"labels": {"\\ud800": true}, "action": "remove"}', 422, "invalid_request"),
    (b'{"labels": {"nudity": true}, "action": "remove"}', 422, "invalid_review"),
])
def test_decision_bad_input_is_an_exact_4xx(client: TestClient, keys: SimpleNamespace, body: bytes, status: int,
                                            code: str) -> None:
    moderate(client, keys, id="b1", text="maybe")
    tid = client.post("/v1/review/queues/default/lease", headers=auth(keys.reviewer)).json()["task"]["id"]
    r = client.post(f"/v1/review/tasks/{tid}/decision", content=body,
                    headers={**auth(keys.reviewer), "Content-Type": "application/json"})
    assert error(r) == (status, code), r.text
    assert "\\ud800" not in r.text and "nudity" not in r.json()["error"]["details"].get("errors", "")


@pytest.mark.parametrize("task_id", ["0", "-1", "abc", "99999999999999999999999"])
def test_bad_task_ids(client: TestClient, keys: SimpleNamespace, task_id: str) -> None:
    r = client.post(f"/v1/review/tasks/{task_id}/release", headers=auth(keys.reviewer))
    assert error(r) == (422, "invalid_request")


# -- roles ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("method", "path", "allowed"), [
    ("post", "/v1/reports", ("client", "admin")),
    ("post", "/v1/appeals", ("client", "admin")),
    ("get", "/v1/review/queues", ("reviewer", "admin")),
    ("post", "/v1/review/queues/default/lease", ("reviewer", "admin")),
    ("post", "/v1/review/tasks/1/decision", ("reviewer", "admin")),
    ("post", "/v1/review/tasks/1/release", ("reviewer", "admin")),
    ("get", "/v1/review/tasks/1", ("reviewer", "admin")),
])
def test_roles(client: TestClient, keys: SimpleNamespace, method: str, path: str, allowed: tuple[str, ...]) -> None:
    assert error(getattr(client, method)(path)) == (401, "unauthorized")
    for role in ("client", "reviewer", "admin"):
        r = getattr(client, method)(path, headers=auth(getattr(keys, role)))
        if role in allowed:
            assert r.status_code not in (401, 403), (role, r.text)
        else:
            assert error(r) == (403, "forbidden"), role


# -- reports and appeals ----------------------------------------------------------------------------
def test_reports(client: TestClient, keys: SimpleNamespace) -> None:
    r = client.post("/v1/reports", json={"content_id": "x1", "reason": "scam"}, headers=auth(keys.client))
    assert error(r) == (422, "content_text_required")
    r = client.post("/v1/reports", json={"content_id": "x1", "reason": "scam", "text": "send btc", "reporter": "u5",
                                         "category": "spam", "reach": 40}, headers=auth(keys.client))
    assert r.status_code == 201 and r.json()["queue"] == "reports" and r.json()["created"] is True
    r2 = client.post("/v1/reports", json={"content_id": "x1", "reason": "again"}, headers=auth(keys.client))
    assert r2.status_code == 200 and r2.json()["report_count"] == 2 and r2.json()["task_id"] == r.json()["task_id"]
    for bad, code in [({"content_id": "x1"}, "invalid_request"),
                      ({"content_id": "x1", "reason": "r", "reach": -1}, "invalid_request"),
                      ({"content_id": "x1", "reason": "r", "reach": "9"}, "invalid_request"),
                      ({"content_id": "", "reason": "r"}, "invalid_request"),
                      ({"content_id": "x2", "reason": "r", "text": "y" * 1001}, "text_too_long"),
                      ({"content_id": "x1", "reason": "r", "category": "nudity"}, "invalid_review"),
                      ({"content_id": "x1", "reason": "r", "surface": "forum"}, "invalid_review")]:
        assert error(client.post("/v1/reports", json=bad, headers=auth(keys.client))) == (422, code), bad


def test_appeal_goes_to_another_reviewer(client: TestClient, keys: SimpleNamespace) -> None:
    decision = moderate(client, keys, id="a1", text="hate maybe")
    lease = client.post("/v1/review/queues/default/lease", headers=auth(keys.reviewer)).json()
    r = client.post(f"/v1/review/tasks/{lease['task']['id']}/decision",
                    json={"labels": {"hate": True}, "action": "remove"}, headers=auth(keys.reviewer))
    assert r.status_code == 200

    assert error(client.post("/v1/appeals", json={"decision_id": "nope", "reason": "x"},
                             headers=auth(keys.client))) == (404, "decision_not_found")
    assert error(client.post("/v1/appeals", json={"decision_id": decision["decision_id"]},
                             headers=auth(keys.client))) == (422, "invalid_request")
    r = client.post("/v1/appeals", json={"decision_id": decision["decision_id"], "reason": "satire",
                                         "appellant": "u1"}, headers=auth(keys.client))
    assert r.status_code == 201, r.text
    appeal = r.json()["appeal"]
    assert appeal["status"] == "open" and appeal["original_reviewer"].startswith("api_key:")
    again = client.post("/v1/appeals", json={"decision_id": decision["decision_id"], "reason": "again"},
                        headers=auth(keys.client))
    assert again.status_code == 200 and again.json()["created"] is False

    # The original reviewer never gets it; another reviewer does, and overturns.
    assert client.post("/v1/review/queues/appeals/lease", headers=auth(keys.reviewer)).json() == {"task": None}
    task = client.post("/v1/review/queues/appeals/lease", headers=auth(keys.reviewer2)).json()["task"]
    assert task["id"] == appeal["task_id"]
    r = client.post(f"/v1/review/tasks/{task['id']}/decision", json={"labels": {"hate": False}, "action": "allow"},
                    headers=auth(keys.reviewer2))
    body = r.json()
    assert body["overturned"] is True and body["enforce"] is True and body["original_action"] == "remove"
    assert body["appeal"]["status"] == "overturned"


def test_review_routes_without_a_review_policy(store: Store, keys: SimpleNamespace) -> None:
    moderator = PolicyModerator()
    moderator.policy = SimpleNamespace(name="t", version="1", surfaces=("comment",))  # type: ignore[assignment]
    moderator.moderate_batch = lambda items: PolicyModerator().moderate_batch(items)  # type: ignore[method-assign]
    with TestClient(create_app(moderator=moderator, store=store), raise_server_exceptions=False) as c:
        assert c.post("/v1/moderate", json={"text": "maybe"}, headers=auth(keys.client)).status_code == 200
        r = c.get("/v1/review/queues", headers=auth(keys.reviewer))
        assert error(r) == (503, "review_unavailable")


def test_openapi_documents_the_review_bodies(store: Store) -> None:
    app = create_app(moderator=PolicyModerator(), store=store, settings=ServiceSettings(docs=True))
    with TestClient(app) as c:
        paths = c.get("/openapi.json").json()["paths"]
    body = paths["/v1/review/tasks/{task_id}/decision"]["post"]["requestBody"]["content"]["application/json"]
    assert set(body["schema"]["properties"]) == {"labels", "action", "note"}
    assert "reach" in paths["/v1/reports"]["post"]["requestBody"]["content"]["application/json"]["schema"]["properties"]
