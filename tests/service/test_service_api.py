from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from svc_helpers import FakeModerator, Keys, auth

from warden.store import Store


def assert_error(resp, status: int, code: str) -> dict:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    body = resp.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert isinstance(body["error"]["details"], dict)
    return body["error"]


# -- moderation --------------------------------------------------------------------------
def test_moderate_single_item(client: TestClient, keys: Keys, store: Store) -> None:
    resp = client.post("/v1/moderate", json={"id": "c1", "text": "BUY NOW cheap pills"}, headers=auth(keys.client))
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["id"] == "c1" and body["action"] == "remove" and body["flagged"] == ["spam"]
    assert body["policy_version"] == "2024.1" and body["surface"] == "comment"
    assert set(body) >= {"decision_id", "scores", "reasons", "automated", "uncertain", "policy"}
    stored = store.get_decision(body["decision_id"])
    assert stored is not None and stored.content_id == "c1"
    assert "BUY NOW" not in json.dumps(stored.payload)  # no content text at rest
    events = store.audit_events(event="moderate")
    assert events[-1].subject == body["decision_id"] and events[-1].details["items"] == 1
    assert events[-1].actor.startswith("api_key:")


def test_moderate_generates_uuid_ids_and_accepts_x_api_key(client: TestClient, keys: Keys) -> None:
    resp = client.post("/v1/moderate", json={"text": "hello"}, headers={"X-API-Key": keys.admin})
    assert resp.status_code == 200, resp.text
    import uuid

    assert uuid.UUID(resp.json()["id"]).version == 4


def test_empty_text_is_valid(client: TestClient, keys: Keys) -> None:
    resp = client.post("/v1/moderate", json={"text": ""}, headers=auth(keys.client))
    assert resp.status_code == 200 and resp.json()["action"] == "allow"


def test_moderate_batch(client: TestClient, keys: Keys, store: Store) -> None:
    items = [{"id": f"b{i}", "text": "buy now" if i % 2 else "fine", "surface": "chat"} for i in range(5)]
    resp = client.post("/v1/moderate", json={"items": items}, headers=auth(keys.client))
    assert resp.status_code == 200, resp.text
    decisions = resp.json()["decisions"]
    assert [d["id"] for d in decisions] == [f"b{i}" for i in range(5)]
    assert [d["action"] for d in decisions] == ["allow", "remove", "allow", "remove", "allow"]
    assert store.count_decisions() == 5
    assert store.audit_events(event="moderate")[-1].details["stored"] == 5


def test_resubmission_is_idempotent(client: TestClient, keys: Keys, store: Store) -> None:
    item = {"id": "same", "text": "buy now"}
    first = client.post("/v1/moderate", json=item, headers=auth(keys.client)).json()
    second = client.post("/v1/moderate", json=item, headers=auth(keys.client)).json()
    assert first == second
    batch = client.post("/v1/moderate", json={"items": [item, {"id": "new", "text": "x"}]}, headers=auth(keys.client))
    assert batch.status_code == 200
    assert store.count_decisions() == 2
    assert [e.details["stored"] for e in store.audit_events(event="moderate")] == [1, 0, 1]


def test_get_decision(client: TestClient, keys: Keys) -> None:
    made = client.post("/v1/moderate", json={"id": "g1", "text": "buy now"}, headers=auth(keys.client)).json()
    for ident in (made["decision_id"], "g1"):
        for key in (keys.client, keys.reviewer, keys.admin):
            resp = client.get(f"/v1/decisions/{ident}", headers=auth(key))
            assert resp.status_code == 200, resp.text
            body = resp.json()
            assert body["decision_id"] == made["decision_id"] and body["action"] == "remove"
            assert "created_at" in body
            assert body["reasons"][0]["evidence"][0]["spans"] == [{"start": 0, "end": 7}]
    assert_error(client.get("/v1/decisions/nope", headers=auth(keys.client)), 404, "not_found")
    assert_error(client.get("/v1/decisions/" + "x" * 600, headers=auth(keys.client)), 422, "invalid_request")


# -- auth ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer "},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"X-API-Key": ""},
        {"Authorization": "Bearer wdn_000000000000_" + "0" * 64},
        {"X-API-Key": "not-a-key"},
    ],
)
def test_missing_or_invalid_key_is_401(client: TestClient, headers: dict[str, str]) -> None:
    for resp in (
        client.post("/v1/moderate", json={"text": "x"}, headers=headers),
        client.get("/v1/decisions/abc", headers=headers),
    ):
        assert_error(resp, 401, "unauthorized")
        assert resp.headers["www-authenticate"].startswith("Bearer")


def test_revoked_key_is_401(client: TestClient, keys: Keys) -> None:
    assert_error(client.post("/v1/moderate", json={"text": "x"}, headers=auth(keys.revoked)), 401, "unauthorized")


def test_role_checks(client: TestClient, keys: Keys) -> None:
    err = assert_error(client.post("/v1/moderate", json={"text": "x"}, headers=auth(keys.reviewer)), 403, "forbidden")
    assert err["details"] == {"role": "reviewer", "allowed_roles": ["client", "admin"]}
    for key in (keys.client, keys.admin):
        assert client.post("/v1/moderate", json={"text": "x"}, headers=auth(key)).status_code == 200


def test_auth_checked_before_body(client: TestClient, keys: Keys) -> None:
    assert_error(client.post("/v1/moderate", content=b"{not json"), 401, "unauthorized")
    assert_error(client.post("/v1/moderate", content=b"{not json", headers=auth(keys.reviewer)), 403, "forbidden")


# -- bad input -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"", 400, "malformed_json"),
        (b"{not json", 400, "malformed_json"),
        (b'{"text": "a"} trailing', 400, "malformed_json"),
        (b'{"text": NaN}', 400, "malformed_json"),
        (b"[" * 100_00 + b"]" * 100_00, 400, "malformed_json"),
        (b'{"text": "\xff\xfe broken"}', 400, "invalid_encoding"),
        (b"\xef\xbb\xbf" + b"\x80", 400, "invalid_encoding"),
        (b'"just a string"', 422, "invalid_request"),
        (b"[1, 2]", 422, "invalid_request"),
        (b"null", 422, "invalid_request"),
        (b"{}", 422, "invalid_item"),
        (b'{"id": "x"}', 422, "invalid_item"),
        (b'{"text": 5}', 422, "invalid_item"),
        (b'{"text": null}', 422, "invalid_item"),
        (b'{"text": ["a"]}', 422, "invalid_item"),
        (b'{"text": "a", "id": {"x": 1}}', 422, "invalid_item"),
        (b'{"text": "a", "id": true}', 422, "invalid_item"),
        (b'{"text": "a", "surface": 3}', 422, "invalid_item"),
        (b'{"text": "a", "surface": "nope"}', 422, "invalid_item"),
        (b'{"text": "a", "metadata": [1]}', 422, "invalid_item"),
        (b'{"text": "a", "actor_id": 1.5}', 422, "invalid_item"),
        (b'{"text": "\\ud800"}', 422, "invalid_item"),
        (b'{"items": {}}', 422, "invalid_request"),
        (b'{"items": []}', 422, "empty_batch"),
        (b'{"items": [{"text": "a"}], "text": "b"}', 422, "invalid_request"),
        (b'{"items": [1, {"text": 2}]}', 422, "invalid_item"),
        (b'{"items": [{"id": "a", "text": "x"}, {"id": "a", "text": "y"}]}', 422, "duplicate_id"),
    ],
)
def test_bad_input(client: TestClient, keys: Keys, body: bytes, status: int, code: str) -> None:
    assert_error(client.post("/v1/moderate", content=body, headers=auth(keys.client)), status, code)


def test_batch_item_errors_list_every_index(client: TestClient, keys: Keys) -> None:
    body = {"items": [{"text": "ok"}, {"text": 1}, {"nope": True}]}
    err = assert_error(client.post("/v1/moderate", json=body, headers=auth(keys.client)), 422, "invalid_item")
    assert [e["index"] for e in err["details"]["errors"]] == [1, 2]
    assert err["message"].startswith("2 invalid item(s); items[1]:")


def test_text_too_long_says_the_limit(client: TestClient, keys: Keys) -> None:
    err = assert_error(
        client.post("/v1/moderate", json={"text": "a" * 1001}, headers=auth(keys.client)), 422, "text_too_long"
    )
    assert "1,000" in err["message"] and err["details"]["limit"] == 1000 and err["details"]["length"] == 1001
    err = assert_error(
        client.post("/v1/moderate", json={"items": [{"text": "a" * 1001}]}, headers=auth(keys.client)),
        422,
        "text_too_long",
    )
    assert "1,000" in err["message"] and err["details"]["errors"][0]["limit"] == 1000
    assert client.post("/v1/moderate", json={"text": "a" * 1000}, headers=auth(keys.client)).status_code == 200


def test_batch_too_large(client: TestClient, keys: Keys) -> None:
    err = assert_error(
        client.post("/v1/moderate", json={"items": [{"text": "a"}] * 11}, headers=auth(keys.client)),
        422,
        "batch_too_large",
    )
    assert "limit is 10" in err["message"]


def test_body_too_large_declared(client: TestClient, keys: Keys) -> None:
    body = json.dumps({"text": "a" * (70 * 1024)}).encode()
    err = assert_error(client.post("/v1/moderate", content=body, headers=auth(keys.client)), 413, "body_too_large")
    assert "65,536 bytes" in err["message"]


def test_body_too_large_streamed_without_length(client: TestClient, keys: Keys) -> None:
    sent = {"chunks": 0}

    def chunks():
        for _ in range(1000):  # 1000 x 1 KiB, no Content-Length (chunked)
            sent["chunks"] += 1
            yield b" " * 1024

    resp = client.post("/v1/moderate", content=chunks(), headers=auth(keys.client))
    assert_error(resp, 413, "body_too_large")


@pytest.mark.parametrize("value", [b"-5", b"abc", b"1e3"])
def test_invalid_content_length(client: TestClient, value: bytes) -> None:
    import anyio

    from warden.service.middleware import BodySizeLimitMiddleware

    sent: list[dict] = []

    async def receive():
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(message):
        sent.append(message)

    async def inner(scope, receive, send):  # never reached
        raise AssertionError("the app must not run")

    scope = {"type": "http", "method": "POST", "path": "/v1/moderate", "headers": [(b"content-length", value)]}
    anyio.run(BodySizeLimitMiddleware(inner, max_bytes=100), scope, receive, send)
    assert sent[0]["status"] == 400
    assert json.loads(sent[1]["body"])["error"]["code"] == "invalid_content_length"


def test_unknown_route_and_method(client: TestClient, keys: Keys) -> None:
    assert_error(client.get("/v2/nothing"), 404, "not_found")
    assert_error(client.get("/v1/moderate", headers=auth(keys.client)), 405, "method_not_allowed")


def test_moderator_failure_is_json_500_without_leaking(store: Store, keys: Keys, settings, caplog) -> None:
    from warden.service import create_app

    class Broken(FakeModerator):
        def moderate_batch(self, items):
            raise RuntimeError(f"boom on {items[0].text}")

    app = create_app(moderator=Broken(), store=store, settings=settings)
    with TestClient(app, raise_server_exceptions=False) as c:
        resp = c.post("/v1/moderate", json={"text": "CANARY-TEXT-123"}, headers=auth(keys.client))
    assert_error(resp, 500, "internal_error")
    assert "CANARY-TEXT-123" not in caplog.text and "RuntimeError" in caplog.text


def test_storage_failure_is_503(client: TestClient, keys: Keys, store: Store, monkeypatch) -> None:
    from sqlalchemy.exc import OperationalError

    def fail(*_a, **_k):
        raise OperationalError("INSERT", {}, Exception("db down"))

    monkeypatch.setattr(store, "save_new_decisions", fail)
    assert_error(client.post("/v1/moderate", json={"text": "x"}, headers=auth(keys.client)), 503, "storage_unavailable")


# -- operations ----------------------------------------------------------------------------
def test_healthz_no_auth(client: TestClient, store: Store, monkeypatch) -> None:
    resp = client.get("/healthz")
    assert resp.status_code == 200 and resp.json() == {
        "status": "ok",
        "database": "ok",
        "policy": "test",
        "policy_version": "2024.1",
    }
    monkeypatch.setattr(store, "ping", lambda: False)
    resp = client.get("/healthz")
    assert resp.status_code == 503 and resp.json()["database"] == "unreachable"


def test_metrics(client: TestClient, keys: Keys) -> None:
    client.post("/v1/moderate", json={"id": "m1", "text": "buy now SECRETWORD"}, headers=auth(keys.client))
    client.post("/v1/moderate", content=b"{bad", headers=auth(keys.client))
    client.get("/v1/decisions/m1", headers=auth(keys.reviewer))
    resp = client.get("/metrics")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/plain")
    text = resp.text
    assert 'warden_http_requests_total{method="POST",route="/v1/moderate",status="200"} 1.0' in text
    assert 'warden_http_requests_total{method="POST",route="/v1/moderate",status="400"} 1.0' in text
    assert 'route="/v1/decisions/{decision_id}",status="200"' in text
    assert "warden_http_request_duration_seconds_bucket" in text
    assert 'warden_decisions_total{action="remove",surface="comment"} 1.0' in text
    assert "warden_moderation_duration_seconds_count 1.0" in text
    assert "SECRETWORD" not in text and "m1" not in text and keys.client not in text


def test_openapi_docs(client: TestClient) -> None:
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    assert {"ModerateItem", "ModerateBatch", "DecisionOut", "ErrorOut"} <= set(schemas)
    body = spec["paths"]["/v1/moderate"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body["oneOf"][0]["$ref"] == "#/components/schemas/ModerateItem"
    schemes = spec["components"]["securitySchemes"]
    assert {"HTTPBearer", "APIKeyHeader"} <= set(schemes)
