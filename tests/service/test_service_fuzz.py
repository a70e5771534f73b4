"""Property-based fuzzing of POST /v1/moderate: no input gives a 500, every error is our JSON shape."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from svc_helpers import FakeModerator, auth

from warden.service import ServiceSettings, create_app
from warden.store import Store

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=25,
)
item_like = st.fixed_dictionaries(
    {},
    optional={
        "id": json_values,
        "text": st.text(max_size=300) | json_values,
        "surface": st.sampled_from(["comment", "chat", "nope", ""]) | json_values,
        "actor_id": json_values,
        "metadata": json_values,
        "language": json_values,
    },
)
bodies = json_values | item_like | st.fixed_dictionaries({"items": st.lists(item_like | json_values, max_size=12)})

_state: dict = {}


def _client(tmp_path_factory) -> tuple[TestClient, str]:
    if "client" not in _state:
        store = Store.from_url(f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'fuzz.db'}")
        store.upgrade()
        _, key = store.create_api_key("fuzz", "client")
        app = create_app(
            moderator=FakeModerator(),
            store=store,
            settings=ServiceSettings(max_body_bytes=16 * 1024, max_batch_items=10, max_text_chars=200),
        )
        _state["client"] = TestClient(app, raise_server_exceptions=False)
        _state["key"] = key
    return _state["client"], _state["key"]


def _check(resp) -> None:
    assert resp.status_code < 500, resp.text
    body = resp.json()
    if resp.status_code >= 400:
        assert set(body) == {"error"} and {"code", "message", "details"} == set(body["error"])
    else:
        assert "decision_id" in body or "decisions" in body


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=bodies)
def test_fuzz_json_values(tmp_path_factory, value) -> None:
    client, key = _client(tmp_path_factory)
    _check(client.post("/v1/moderate", content=json.dumps(value).encode(), headers=auth(key)))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=2048) | st.text(max_size=512).map(lambda s: s.encode("utf-8", "surrogatepass")))
def test_fuzz_raw_bytes(tmp_path_factory, raw: bytes) -> None:
    client, key = _client(tmp_path_factory)
    _check(client.post("/v1/moderate", content=raw, headers=auth(key)))
