"""The service with the real `warden.Moderator` (a detector-free policy, and the default policy when it loads)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from svc_helpers import auth

from warden.core import Policy
from warden.service import ServiceSettings, create_app
from warden.store import Store

ROOT = Path(__file__).resolve().parents[2]


def _post(moderator, store: Store) -> None:
    _, key = store.create_api_key("it", "client")
    with TestClient(create_app(moderator=moderator, store=store, settings=ServiceSettings())) as c:
        one = c.post("/v1/moderate", json={"id": "r1", "text": "hello there", "surface": "chat"}, headers=auth(key))
        assert one.status_code == 200, one.text
        assert one.json()["policy_version"] == moderator.policy.version and one.json()["surface"] == "chat"
        batch = c.post("/v1/moderate", json={"items": [{"text": ""}, {"text": "x" * 5000}]}, headers=auth(key))
        assert batch.status_code == 200 and len(batch.json()["decisions"]) == 2
        got = c.get("/v1/decisions/r1", headers=auth(key))
        assert got.status_code == 200 and got.json()["decision_id"] == one.json()["decision_id"]
        bad = c.post("/v1/moderate", json={"text": "a", "surface": "nowhere"}, headers=auth(key))
        assert bad.status_code == 422 and "nowhere" in bad.json()["error"]["message"]


def test_with_detector_free_policy(store: Store) -> None:
    from warden.moderator import Moderator

    policy = Policy.model_validate(
        {
            "name": "mini",
            "version": "1",
            "surfaces": ["comment", "chat"],
            "categories": {
                "spam": {
                    "definition": "spam",
                    "severity": "low",
                    "action": "remove",
                    "thresholds": {"default": {"flag": 0.9, "review": 0.5}},
                }
            },
        }
    )
    _post(Moderator(policy), store)


def test_with_default_policy(store: Store) -> None:
    from warden.moderator import Moderator

    try:
        moderator = Moderator.from_file(ROOT / "policies" / "default.yaml")
    except Exception as exc:  # the default policy and its models are built by other work items
        pytest.skip(f"default policy does not load here: {type(exc).__name__}: {str(exc)[:200]}")
    _post(moderator, store)
