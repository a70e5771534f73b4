"""Every provider adapter against its local wire-format server: success, the documented error
bodies, 429 + Retry-After, 5xx, slow answers, malformed JSON, the breaker, the cache, metrics,
and the conformance kit. The adapters use their real HTTP clients (SDKs or httpx)."""

from __future__ import annotations

import logging

import pytest
from provider_cases import Provider
from provider_wire import Fault

from warden.core import Content
from warden.detectors.providers.metrics import PROVIDER_METRICS
from warden.detectors.providers.resilience import CircuitState, FakeClock
from warden.testing import check_detector


def _one(det, text: str, cid: str = "c1"):
    (res,) = det.detect([Content(id=cid, text=text)])
    return res


def _metric(name: str, **labels: str) -> float:
    return PROVIDER_METRICS.registry.get_sample_value(name, labels) or 0.0


def test_violating_text_maps_to_the_policy_category(provider: Provider) -> None:
    det = provider.build()
    res = _one(det, provider.case.violating)
    assert res.ok, res.error
    assert res.scores[provider.case.category] >= 0.5
    assert set(res.scores) <= set(det.context.categories)
    assert any(e.category == provider.case.category for e in res.evidence)
    assert res.model_version.startswith(f"{provider.case.name}@")
    assert len(provider.server.requests) == 1


def test_benign_text_scores_low(provider: Provider) -> None:
    res = _one(provider.build(), "Thanks for sharing, this was really helpful!")
    assert res.ok, res.error
    assert res.scores and max(res.scores.values()) < 0.5


def test_blank_text_is_not_sent(provider: Provider) -> None:
    res = _one(provider.build(), "  \n ")
    assert res.ok and dict(res.scores) == {}
    assert provider.server.requests == []


def test_400_error_body_is_reported_and_not_retried(provider: Provider) -> None:
    det = provider.build(max_retries=3)
    provider.server.fail_next(Fault(status=400))
    res = _one(det, provider.case.violating)
    assert not res.ok and "bad_request (HTTP 400)" in res.error
    assert "injected HTTP 400" in res.error  # the provider's own message, read from its error body
    assert len(provider.server.requests) == 1


def test_wrong_key_is_an_auth_error_that_never_shows_the_key(provider: Provider, monkeypatch, caplog) -> None:
    wrong = "sk-wrong-" + "x" * 30
    monkeypatch.setenv(provider.env, wrong)
    det = provider.build(max_retries=3)
    with caplog.at_level(logging.DEBUG):
        res = _one(det, provider.case.violating)
    assert not res.ok
    assert "auth (HTTP 401)" in res.error or "bad_request (HTTP 400)" in res.error  # Perspective says 400
    for secret in (wrong, provider.key):
        assert secret not in res.error
        assert secret not in caplog.text
        assert secret not in repr(det) and secret not in repr(det.params)
    assert len(provider.server.requests) == 1  # not retryable


def test_429_waits_for_retry_after_then_succeeds(provider: Provider) -> None:
    det = provider.build()
    clock = FakeClock()
    det.set_clock(clock)
    provider.server.fail_next(Fault(status=429, retry_after="7"))
    res = _one(det, provider.case.violating)
    assert res.ok, res.error
    assert clock.sleeps == [7.0]
    assert len(provider.server.requests) == 2


def test_429_with_a_too_long_retry_after_fails_now(provider: Provider) -> None:
    det = provider.build(max_retry_after_s=30)
    provider.server.fail_next(Fault(status=429, retry_after="120"))
    res = _one(det, provider.case.violating)
    assert not res.ok and "rate_limited (HTTP 429)" in res.error
    assert len(provider.server.requests) == 1


def test_5xx_is_retried_with_jittered_backoff(provider: Provider) -> None:
    det = provider.build(max_retries=2, backoff_base_s=1.0, backoff_max_s=4.0)
    clock = FakeClock()
    det.set_clock(clock)
    provider.server.fail_next(Fault(status=500), Fault(status=503))
    res = _one(det, provider.case.violating)
    assert res.ok, res.error
    assert len(provider.server.requests) == 3
    assert len(clock.sleeps) == 2 and 0 <= clock.sleeps[0] <= 1.0 and 0 <= clock.sleeps[1] <= 2.0


def test_5xx_until_retries_run_out_is_an_error_result(provider: Provider) -> None:
    det = provider.build(max_retries=2)
    det.set_clock(FakeClock())
    provider.server.fail_next(*[Fault(status=503)] * 3)
    res = _one(det, provider.case.violating)
    assert not res.ok and "server (HTTP 503) after 3 attempts" in res.error
    assert len(provider.server.requests) == 3


def test_slow_answer_times_out(provider: Provider) -> None:
    det = provider.build(timeout_s=0.3, max_retries=0)
    provider.server.fail_next(Fault.slow(2.0))
    res = _one(det, provider.case.violating)
    assert not res.ok and res.error.endswith("timeout: no answer within 0.3s")


def test_malformed_json_is_an_error_and_not_retried(provider: Provider) -> None:
    det = provider.build(max_retries=3)
    provider.server.fail_next(Fault(malformed=True))
    res = _one(det, provider.case.violating)
    assert not res.ok and "malformed" in res.error
    assert len(provider.server.requests) == 1


def test_circuit_breaker_opens_then_probes_and_closes(provider: Provider) -> None:
    det = provider.build(max_retries=0, circuit_failure_threshold=2, circuit_reset_s=30)
    clock = FakeClock()
    det.set_clock(clock)
    provider.server.fail_next(Fault(status=503), Fault(status=503))
    assert not _one(det, provider.case.violating, "a").ok
    assert not _one(det, provider.case.violating, "b").ok
    assert det.caller.breaker.state is CircuitState.OPEN
    res = _one(det, provider.case.violating, "c")
    assert not res.ok and "circuit_open" in res.error
    assert len(provider.server.requests) == 2  # the open breaker sent nothing
    assert _metric("warden_provider_circuit_open", detector=det.instance) == 1.0
    clock.advance(30)
    assert _one(det, provider.case.violating, "d").ok  # the half-open trial succeeds
    assert det.caller.breaker.state is CircuitState.CLOSED


def test_cache_answers_repeats_without_a_request(provider: Provider) -> None:
    det = provider.build(cache_ttl_s=60)
    hits = _metric("warden_provider_cache_total", detector=det.instance, result="hit")
    first = _one(det, provider.case.violating, "a")
    second = _one(det, provider.case.violating, "b")  # same text, another id
    assert first.ok and second.ok and dict(first.scores) == dict(second.scores)
    assert second.content_id == "b"
    assert len(provider.server.requests) == 1
    assert _metric("warden_provider_cache_total", detector=det.instance, result="hit") == hits + 1


def test_calls_tokens_and_cost_are_exported(provider: Provider) -> None:
    det = provider.build(price_per_call_usd=0.001, price_per_1k_input_tokens_usd=0.003,
                         price_per_1k_output_tokens_usd=0.015)
    labels = {"detector": det.instance, "provider": det.name, "model": det.model}
    calls = _metric("warden_provider_calls_total", **labels, outcome="ok")
    cost = _metric("warden_provider_cost_usd_total", **labels)
    provider.server.fail_next(Fault(status=500))
    det.set_clock(FakeClock())
    assert _one(det, provider.case.violating).ok
    assert _metric("warden_provider_calls_total", **labels, outcome="ok") == calls + 1
    assert _metric("warden_provider_errors_total", **labels, kind="server") >= 1
    if provider.case.llm:  # the local servers report usage like the real APIs
        expected = 0.001 + det.totals.input_tokens / 1000 * 0.003 + det.totals.output_tokens / 1000 * 0.015
        assert det.totals.input_tokens > 0 and det.totals.output_tokens > 0
        assert _metric("warden_provider_tokens_total", **labels, direction="input") >= det.totals.input_tokens
    else:
        expected = 0.001
    assert det.totals.cost_usd == pytest.approx(expected)
    assert _metric("warden_provider_cost_usd_total", **labels) == pytest.approx(cost + expected)
    assert det.totals.requests == 2 and det.totals.failed_requests == 1


def test_conformance_kit(provider: Provider) -> None:
    check_detector(provider.build())


def test_conformance_kit_with_the_cache_on(provider: Provider) -> None:
    check_detector(provider.build(cache_ttl_s=60))


def test_daily_budget_stops_calls_visibly(provider: Provider, monkeypatch) -> None:
    det = provider.build(price_per_call_usd=0.01, max_spend_usd_per_day=0.02)
    monkeypatch.setattr(det, "today", lambda: "2026-11-22")
    assert _one(det, provider.case.violating, "a").ok
    assert _one(det, "you are an idiot, I will kill you", "b").ok
    res = _one(det, "hello again", "c")
    assert not res.ok and "over_budget: the daily budget of $0.02" in res.error
    assert len(provider.server.requests) == 2
    monkeypatch.setattr(det, "today", lambda: "2026-11-23")  # a new UTC day, a new budget
    assert _one(det, "hello again", "d").ok
