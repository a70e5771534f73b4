"""The policy's fallback chain: provider A down -> provider B -> a local model, visibly."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from provider_servers import PerspectiveServer
from provider_wire import Fault

from warden.core import Action, Content
from warden.moderator import Moderator
from warden.policy import PolicyError, parse_policy

KEY_ENV = "WARDEN_TEST_FALLBACK_KEY"


def _dead_url() -> str:
    """A local port nobody listens on: connecting is refused, like a provider that is down."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def _policy_yaml(primary_url: str, secondary_url: str, cascade: str | None = None) -> str:
    fast = "max_retries: 1, backoff_base_s: 0.01, backoff_max_s: 0.02, timeout_s: 2, cache_ttl_s: 0"
    return f"""
schema_version: 1
name: fallback-test
version: "1"
surfaces: [comment]
categories:
  harassment:
    definition: Insults aimed at a person.
    severity: medium
    action: hold_for_review
    thresholds: {{default: {{flag: 0.8, review: 0.5}}}}
  harassment/threatening:
    definition: Threats aimed at a person.
    severity: high
    action: remove
    thresholds: {{default: {{flag: 0.8, review: 0.5}}}}
  violence:
    definition: Threats or glorification of violence.
    severity: high
    action: remove
    thresholds: {{default: {{flag: 0.8, review: 0.5}}}}
detectors:
  primary:
    type: openai_moderation
    params: {{base_url: "{primary_url}/v1", api_key_env: {KEY_ENV}, {fast}}}
  secondary:
    type: perspective
    params: {{base_url: "{secondary_url}", api_key_env: {KEY_ENV}, {fast}}}
  local:
    type: keyword_bank
    params:
      banks: [{{name: threats, category: violence, terms: [kill]}}]
cascade:
{cascade or '''  - name: providers
    detectors: [primary]
    fallback:
      primary: [secondary, local]'''}
"""


@pytest.fixture
def perspective(monkeypatch: pytest.MonkeyPatch) -> Iterator[PerspectiveServer]:
    monkeypatch.setenv(KEY_ENV, "sk-fallback-test-key-0123456789")
    server = PerspectiveServer("sk-fallback-test-key-0123456789").start()
    yield server
    server.stop()


def test_provider_down_falls_back_and_the_decision_says_so(perspective: PerspectiveServer) -> None:
    mod = Moderator(parse_policy(_policy_yaml(_dead_url(), perspective.url)))
    (r,) = mod.moderate_with_signals([Content(id="c1", text="you are an idiot")])
    assert [s.detector for s in r.signals] == ["primary", "secondary"]
    assert not r.signals[0].ok and "connection" in r.signals[0].error
    d = r.decision
    assert d.missing_signals == ("primary",)
    assert d.errors[0].startswith("primary: openai_moderation: connection")
    assert d.scores["harassment"] > 0.8 and d.reasons[0].detector == "secondary"
    assert d.action is Action.HOLD_FOR_REVIEW  # harassment's action, decided on the fallback's signal


def test_both_providers_down_reaches_the_local_model(perspective: PerspectiveServer) -> None:
    mod = Moderator(parse_policy(_policy_yaml(_dead_url(), perspective.url)))
    perspective.fail_next(*[Fault(status=503)] * 4)  # 2 items x (1 try + 1 retry)
    results = mod.moderate_with_signals([Content(id="a", text="I will kill you"), Content(id="b", text="hello")])
    assert [s.detector for s in results[0].signals] == ["primary", "secondary", "local"]
    assert results[0].decision.missing_signals == ("primary", "secondary")
    assert results[0].decision.flagged == ("violence",) and results[0].decision.action is Action.REMOVE
    assert results[1].decision.missing_signals == ("primary", "secondary")


def test_fallbacks_run_only_for_the_items_that_failed(perspective: PerspectiveServer) -> None:
    # Both detectors point at the working server: the primary never fails, the fallback never runs.
    yaml = (_policy_yaml(perspective.url, perspective.url).replace("type: openai_moderation", "type: perspective")
            .replace(f'"{perspective.url}/v1"', f'"{perspective.url}"'))
    mod = Moderator(parse_policy(yaml))
    (r,) = mod.moderate_with_signals([Content(id="c1", text="you are an idiot")])
    assert [s.detector for s in r.signals] == ["primary"] and r.decision.missing_signals == ()
    assert len(perspective.requests) == 1


@pytest.mark.parametrize(("cascade", "message"), [
    ("  - name: t\n    detectors: [primary]\n    fallback:\n      secondary: [local]",
     "cascade[0].fallback: 'secondary' is not a detector of this tier (its detectors: primary)"),
    ("  - name: t\n    detectors: [primary]\n    fallback:\n      primary: [nope]",
     "cascade[0].fallback.primary: 'nope' is not declared under detectors (declared: local, primary, secondary)"),
    ("  - name: t\n    detectors: [primary, local]\n    fallback:\n      primary: [local]",
     "cascade[0].fallback.primary: 'local' already runs in a cascade tier"),
    ("  - name: t\n    detectors: [primary, secondary]\n    fallback:\n      primary: [local]\n"
     "      secondary: [local]",
     "cascade[0].fallback.secondary: 'local' is already the fallback of 'primary'"),
    ("  - name: t\n    detectors: [primary]\n    fallback:\n      primary: []",
     "cascade[0].fallback.primary: list at least one detector to fall back to"),
])
def test_fallback_mistakes_fail_at_load_with_exact_messages(cascade: str, message: str) -> None:
    with pytest.raises(PolicyError) as info:
        parse_policy(_policy_yaml("http://127.0.0.1:1", "http://127.0.0.1:1", cascade), check_detectors=False)
    assert message in str(info.value)
