"""Shared definitions of the provider adapter tests (imported by name: a module called `conftest`
would collide with other test folders' conftest modules).

Each adapter runs against a local server that speaks its wire format.

`CASES` describes each provider once; the `provider` fixture starts its server on 127.0.0.1,
sets a unique key in the environment, and builds adapters through the registry (the same
path a policy takes), with their real HTTP clients (the SDKs' `base_url` pointed at the server).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from provider_servers import (
    AnthropicServer,
    AzureServer,
    HiveServer,
    OpenAIChatServer,
    OpenAIServer,
    PerspectiveServer,
)
from provider_wire import WireServer

from warden.detectors import registry
from warden.detectors.base import DetectorContext
from warden.detectors.providers.base import ProviderDetector
from warden.policy import load_policy

ROOT = Path(__file__).resolve().parents[2]
POLICY = load_policy(ROOT / "policies" / "default.yaml", check_detectors=False)
CONTEXT = DetectorContext(base_dir=ROOT / "policies", categories=POLICY.category_names, policy=POLICY)

# Fast backoff so retry tests take milliseconds; the cache is off unless a test turns it on.
FAST = {"backoff_base_s": 0.01, "backoff_max_s": 0.02, "timeout_s": 5.0, "cache_ttl_s": 0}


@dataclass(frozen=True)
class Case:
    name: str  # registry name
    server: Callable[[str], WireServer]
    params: Callable[[str], dict[str, Any]]  # server url -> params
    violating: str
    category: str  # the policy category `violating` must score high on
    llm: bool = False

    def __str__(self) -> str:
        return self.name


CASES = (
    Case("openai_moderation", OpenAIServer, lambda url: {"base_url": f"{url}/v1"}, "I will kill you", "violence"),
    Case("anthropic_claude", AnthropicServer, lambda url: {"base_url": url, "model": "claude-test"},
         "I will kill you", "violence", llm=True),
    Case("openai_chat", OpenAIChatServer, lambda url: {"base_url": f"{url}/v1", "model": "gpt-oss-safeguard-20b"},
         "I will kill you", "violence", llm=True),
    Case("hive", HiveServer, lambda url: {"base_url": url}, "I will kill you", "violence"),
    Case("perspective", PerspectiveServer, lambda url: {"base_url": url}, "you are an idiot", "harassment"),
    Case("azure_content_safety", AzureServer, lambda url: {"base_url": url}, "I will kill you", "violence"),
)


@dataclass
class Provider:
    case: Case
    server: WireServer
    key: str
    env: str

    def build(self, **overrides: Any) -> ProviderDetector:
        params = {**self.case.params(self.server.url), "api_key_env": self.env, **FAST, **overrides}
        det = registry.get(self.case.name).from_config(params, instance=f"{self.case.name}_t", context=CONTEXT)
        assert isinstance(det, ProviderDetector)
        return det


def serve_case(case: Case, monkeypatch: pytest.MonkeyPatch) -> Iterator[Provider]:
    key = f"sk-warden-test-{secrets.token_hex(16)}"
    env = f"WARDEN_TEST_{case.name.upper()}_KEY"
    monkeypatch.setenv(env, key)
    server = case.server(key).start()
    try:
        yield Provider(case, server, key, env)
    finally:
        server.stop()
