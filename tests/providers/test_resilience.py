"""Retries, circuit breaker, token bucket and response cache, with a fake clock (no sleeping)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from warden.detectors.providers.resilience import (
    CacheKey,
    CircuitBreaker,
    CircuitState,
    ErrorKind,
    FakeClock,
    ProviderError,
    ResilientCaller,
    ResponseCache,
    RetryPolicy,
    TokenBucket,
    content_hash,
    kind_for_status,
    parse_retry_after,
)

# -- retry policy --------------------------------------------------------------------------------


@given(retry=st.integers(0, 20), seed=st.integers(0, 2**32))
def test_full_jitter_stays_within_the_exponential_cap(retry: int, seed: int) -> None:
    policy = RetryPolicy(max_retries=25, base_s=0.5, cap_s=8.0)
    delay = policy.delay(retry, retry_after_s=None, rng=random.Random(seed))
    assert delay is not None and 0.0 <= delay <= min(8.0, 0.5 * 2**retry)


def test_retry_after_replaces_the_backoff_unless_too_long() -> None:
    policy = RetryPolicy(max_retries=3, max_retry_after_s=30)
    rng = random.Random(0)
    assert policy.delay(0, retry_after_s=12.0, rng=rng) == 12.0
    assert policy.delay(0, retry_after_s=31.0, rng=rng) is None
    assert policy.delay(3, retry_after_s=1.0, rng=rng) is None  # out of retries


@pytest.mark.parametrize(("value", "expected"), [("7", 7.0), (" 0.5 ", 0.5), ("-3", 0.0), ("soon", None),
                                                 (None, None), ("nan", None)])
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value) == expected


def test_parse_retry_after_http_date() -> None:
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past: retry now


@pytest.mark.parametrize(("status", "kind"), [(429, ErrorKind.RATE_LIMITED), (401, ErrorKind.AUTH),
                                              (403, ErrorKind.AUTH), (500, ErrorKind.SERVER),
                                              (529, ErrorKind.SERVER), (400, ErrorKind.BAD_REQUEST),
                                              (413, ErrorKind.BAD_REQUEST), (408, ErrorKind.TIMEOUT)])
def test_status_kinds(status: int, kind: ErrorKind) -> None:
    assert kind_for_status(status) is kind


# -- circuit breaker -----------------------------------------------------------------------------


def test_breaker_opens_after_consecutive_failures_and_half_opens_after_reset() -> None:
    clock = FakeClock()
    b = CircuitBreaker(failure_threshold=3, reset_s=10, clock=clock)
    for _ in range(2):
        assert b.allow()
        b.record_failure()
    b.record_success()  # a success resets the count
    for _ in range(3):
        assert b.allow()
        b.record_failure()
    assert b.state is CircuitState.OPEN and not b.allow()
    assert b.retry_in() == 10
    clock.advance(9)
    assert not b.allow()
    clock.advance(1)
    assert b.state is CircuitState.HALF_OPEN
    assert b.allow() and not b.allow()  # exactly one trial
    b.record_failure()  # the trial failed: open again, for a full reset period
    assert b.state is CircuitState.OPEN and b.retry_in() == 10
    clock.advance(10)
    assert b.allow()
    b.record_success()
    assert b.state is CircuitState.CLOSED and b.allow() and b.allow()


# -- token bucket --------------------------------------------------------------------------------


def test_token_bucket_paces_callers_and_refuses_long_waits() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate_per_s=2.0, burst=2, clock=clock)
    assert bucket.acquire(max_wait_s=1) and bucket.acquire(max_wait_s=1)  # the burst
    assert clock.sleeps == [0.0, 0.0]
    assert bucket.acquire(max_wait_s=1)  # waits for the next token
    assert clock.sleeps[-1] == pytest.approx(0.5)
    assert bucket.reserve(max_wait_s=0.1) is None  # would wait 0.5 s
    clock.advance(10)
    assert bucket.reserve(max_wait_s=0) == 0.0  # refilled, but never above the burst
    assert bucket.reserve(max_wait_s=0) == 0.0
    assert bucket.reserve(max_wait_s=0) is None


def test_token_bucket_reservations_queue_in_order() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate_per_s=1.0, burst=1, clock=clock)
    waits = [bucket.reserve(max_wait_s=10) for _ in range(4)]
    assert waits == [0.0, 1.0, 2.0, 3.0]


# -- cache ---------------------------------------------------------------------------------------


def _key(text: str, version: str = "v1", model: str = "m") -> CacheKey:
    return CacheKey(content_hash(text), version, model, "det")


def test_cache_is_keyed_by_content_policy_version_and_model() -> None:
    cache: ResponseCache[str] = ResponseCache(max_entries=10, ttl_s=60, clock=FakeClock())
    cache.put(_key("hello"), "A")
    assert cache.get(_key("hello")) == "A"
    assert cache.get(_key("hello", version="v2")) is None
    assert cache.get(_key("hello", model="other")) is None
    assert cache.get(_key("hello!")) is None
    assert (cache.stats.hits, cache.stats.misses) == (1, 3)


def test_cache_expires_and_evicts_least_recently_used() -> None:
    clock = FakeClock()
    cache: ResponseCache[int] = ResponseCache(max_entries=2, ttl_s=5, clock=clock)
    cache.put(_key("a"), 1)
    cache.put(_key("b"), 2)
    assert cache.get(_key("a")) == 1  # a is now the most recent
    cache.put(_key("c"), 3)
    assert cache.get(_key("b")) is None and cache.get(_key("a")) == 1 and cache.stats.evictions == 1
    clock.advance(5)
    assert cache.get(_key("a")) is None and len(cache) == 1


def test_disabled_cache_stores_nothing() -> None:
    cache: ResponseCache[int] = ResponseCache(max_entries=10, ttl_s=0)
    cache.put(_key("a"), 1)
    assert cache.get(_key("a")) is None and len(cache) == 0


def test_content_hash_is_unambiguous() -> None:
    assert content_hash("ab", "c") != content_hash("a", "bc")
    assert content_hash("lone \ud800") == content_hash("lone \ud800")


# -- the caller ----------------------------------------------------------------------------------


def _caller(clock: FakeClock, **kw) -> ResilientCaller:
    return ResilientCaller(retry=RetryPolicy(max_retries=kw.pop("max_retries", 2), base_s=1, cap_s=4),
                           breaker=CircuitBreaker(failure_threshold=kw.pop("threshold", 5), reset_s=30, clock=clock),
                           clock=clock, rng=random.Random(1), **kw)


def _failing(*errors: ProviderError, value: str = "ok"):
    queue = list(errors)

    def request() -> str:
        if queue:
            raise queue.pop(0)
        return value

    return request


def test_caller_retries_only_retryable_errors() -> None:
    clock = FakeClock()
    caller = _caller(clock)
    assert caller.call(_failing(ProviderError(ErrorKind.TIMEOUT, "t"), ProviderError(ErrorKind.SERVER, "s"))) == "ok"
    assert len(clock.sleeps) == 2
    with pytest.raises(ProviderError) as info:
        caller.call(_failing(ProviderError(ErrorKind.BAD_REQUEST, "no")))
    assert info.value.kind is ErrorKind.BAD_REQUEST and len(clock.sleeps) == 2


def test_caller_reports_the_cause_when_the_breaker_opens_mid_retry() -> None:
    clock = FakeClock()
    caller = _caller(clock, threshold=1, max_retries=5)
    with pytest.raises(ProviderError) as info:
        caller.call(_failing(*[ProviderError(ErrorKind.SERVER, "down", status=503)] * 6))
    assert info.value.kind is ErrorKind.SERVER and info.value.status == 503
    with pytest.raises(ProviderError, match="circuit open"):
        caller.call(_failing())


def test_caller_throttles_with_the_bucket() -> None:
    clock = FakeClock()
    caller = _caller(clock, bucket=TokenBucket(rate_per_s=1, burst=1, clock=clock), max_wait_s=0.5)
    assert caller.call(_failing()) == "ok"
    with pytest.raises(ProviderError, match="client-side rate limit") as info:
        caller.call(_failing())
    assert info.value.kind is ErrorKind.THROTTLED
    clock.advance(1)
    assert caller.call(_failing()) == "ok"


def test_bad_items_do_not_open_the_breaker() -> None:
    clock = FakeClock()
    caller = _caller(clock, threshold=1)
    for _ in range(3):
        with pytest.raises(ProviderError):
            caller.call(_failing(ProviderError(ErrorKind.BAD_REQUEST, "too long")))
    assert caller.breaker.state is CircuitState.CLOSED
