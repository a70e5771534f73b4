"""End to end: the HTTP API moderates through a provider adapter (against its local server),
and `/metrics` exports the adapter's calls and cache without content or keys."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from provider_servers import OpenAIServer

from warden.moderator import Moderator
from warden.policy import parse_policy
from warden.service import ServiceSettings, create_app
from warden.store import Store

POLICY = """
schema_version: 1
name: provider-api
version: "1"
surfaces: [comment]
categories:
  violence:
    definition: Threats of violence.
    severity: high
    action: remove
    thresholds: {{default: {{flag: 0.8, review: 0.5}}}}
detectors:
  openai:
    type: openai_moderation
    params: {{base_url: "{url}/v1", api_key_env: WARDEN_TEST_SVC_KEY, cache_ttl_s: 60}}
"""


def test_api_decides_with_a_provider_and_exports_its_metrics(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = "sk-svc-test-0123456789abcdef"
    monkeypatch.setenv("WARDEN_TEST_SVC_KEY", key)
    server = OpenAIServer(key).start()
    store = Store.from_url(f"sqlite:///{tmp_path / 'svc.db'}")
    store.upgrade()
    try:
        _, api_key = store.create_api_key("t", "client")
        app = create_app(moderator=Moderator(parse_policy(POLICY.format(url=server.url))), store=store,
                         settings=ServiceSettings())
        with TestClient(app) as client:
            headers = {"Authorization": f"Bearer {api_key}"}
            for cid in ("a", "b"):
                resp = client.post("/v1/moderate", json={"id": cid, "text": "I will kill you SECRETWORD"},
                                   headers=headers)
                assert resp.status_code == 200, resp.text
                assert resp.json()["action"] == "remove" and resp.json()["missing_signals"] == []
            text = client.get("/metrics").text
        calls = [line for line in text.splitlines() if line.startswith("warden_provider_calls_total{")]
        assert any('detector="openai"' in line and 'outcome="ok"' in line and line.endswith(" 1.0") for line in calls)
        assert 'warden_provider_cache_total{detector="openai",result="hit"} 1.0' in text
        assert "warden_http_requests_total" in text  # the service's own metrics are still there
        assert "SECRETWORD" not in text and key not in text
        assert len(server.requests) == 1  # the second item was a cache hit
    finally:
        store.close()
        server.stop()
