"""Resilience for calls to remote classifiers: retries, a circuit breaker, a rate limiter, a cache.

Each part is a small typed object with an injectable clock, so the behaviour is tested with a
fake clock instead of sleeping. Nothing here knows about HTTP: adapters translate their
transport's failures into `ProviderError` (with `retryable` and `retry_after_s` set) and
`ResilientCaller` decides what to do with them.

Why each part exists:
- retries with *full jitter* (AWS architecture blog, "Exponential Backoff And Jitter") spread
  the retries of many workers instead of synchronising them; a server's `Retry-After` wins
  over our own backoff because the server knows when it will accept us again;
- the circuit breaker stops paying a timeout per item while a provider is down, and probes it
  again after `reset_s` (half-open: one trial call);
- the token bucket keeps us under the provider's rate limit instead of discovering it by 429s;
- the cache saves money and latency on re-moderation (edits, retries upstream, backtests): the
  same text under the same policy version and model gives the same answer.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Generic, Protocol, TypeVar

T = TypeVar("T")
V = TypeVar("V")


# -- clocks -----------------------------------------------------------------------------------


class Clock(Protocol):
    def monotonic(self) -> float: ...
    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real clock."""

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class FakeClock:
    """A clock for tests: `sleep` advances time instantly and records the requested sleeps."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self.now += max(0.0, seconds)

    def advance(self, seconds: float) -> None:
        self.now += seconds


# -- errors ----------------------------------------------------------------------------------


class ErrorKind(StrEnum):
    """Why a provider call failed; also a bounded metrics label."""

    TIMEOUT = "timeout"  # no answer within timeout_s
    CONNECTION = "connection"  # refused, reset, DNS
    RATE_LIMITED = "rate_limited"  # the provider answered 429
    SERVER = "server"  # 5xx (and Anthropic's 529 overloaded)
    AUTH = "auth"  # 401/403: the key is wrong or lacks permission
    BAD_REQUEST = "bad_request"  # 400/404/413/422: this request will never succeed as sent
    MALFORMED = "malformed"  # the provider's answer is not the documented format
    INVALID_ANSWER = "invalid_answer"  # an LLM's answer failed validation after the repair retry
    CIRCUIT_OPEN = "circuit_open"  # we did not call: the provider failed repeatedly just now
    THROTTLED = "throttled"  # we did not call: our own rate limit would have waited too long
    OVER_BUDGET = "over_budget"  # we did not call: the policy's daily spend limit is reached


RETRYABLE_KINDS = frozenset({ErrorKind.TIMEOUT, ErrorKind.CONNECTION, ErrorKind.RATE_LIMITED, ErrorKind.SERVER})
# Failures that say "the provider is unavailable" (open the breaker), as opposed to "this item
# or this answer is bad" (bad_request, invalid_answer), which say nothing about the provider.
BREAKER_KINDS = frozenset({*RETRYABLE_KINDS, ErrorKind.AUTH, ErrorKind.MALFORMED})


class ProviderError(Exception):
    """A failed provider call, classified. Messages never contain API keys or content."""

    def __init__(self, kind: ErrorKind, message: str, *, status: int | None = None,
                 retry_after_s: float | None = None, attempts: int = 1) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.status = status
        self.retry_after_s = retry_after_s
        self.attempts = attempts

    @property
    def retryable(self) -> bool:
        return self.kind in RETRYABLE_KINDS

    def __str__(self) -> str:
        status = f" (HTTP {self.status})" if self.status is not None else ""
        tries = f" after {self.attempts} attempts" if self.attempts > 1 else ""
        return f"{self.kind.value}{status}{tries}: {self.message}"


def kind_for_status(status: int) -> ErrorKind:
    """The error kind of an HTTP status (providers document these meanings alike)."""
    if status == 429:
        return ErrorKind.RATE_LIMITED
    if status in (401, 403):
        return ErrorKind.AUTH
    if status == 408:
        return ErrorKind.TIMEOUT
    if status >= 500:
        return ErrorKind.SERVER
    return ErrorKind.BAD_REQUEST


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date); None if absent or bad."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        import datetime as _dt

        now = _dt.datetime.now(tz=when.tzinfo or _dt.UTC)
        seconds = (when - now).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return max(0.0, seconds)


# -- retries ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with full jitter: the n-th retry waits uniform(0, min(cap, base * 2**n)).

    A server's Retry-After replaces the jittered delay; one longer than `max_retry_after_s`
    ends the retries at once (better to fail this item over to a fallback than to hold a
    request for minutes).
    """

    max_retries: int = 2
    base_s: float = 0.5
    cap_s: float = 8.0
    max_retry_after_s: float = 30.0

    def delay(self, retry: int, *, retry_after_s: float | None, rng: random.Random) -> float | None:
        """Seconds to wait before retry number `retry` (0-based), or None to give up."""
        if retry >= self.max_retries:
            return None
        if retry_after_s is not None:
            return retry_after_s if retry_after_s <= self.max_retry_after_s else None
        return rng.uniform(0.0, min(self.cap_s, self.base_s * (2 ** retry)))


# -- circuit breaker ---------------------------------------------------------------------------


class CircuitState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Closed -> open after `failure_threshold` consecutive failures; open -> half-open after
    `reset_s`; in half-open one trial call is let through: success closes, failure re-opens."""

    def __init__(self, *, failure_threshold: int = 5, reset_s: float = 30.0, clock: Clock | None = None) -> None:
        if failure_threshold < 1:
            raise ValueError(f"failure_threshold must be >= 1, got {failure_threshold}")
        self.failure_threshold = failure_threshold
        self.reset_s = reset_s
        self.clock: Clock = clock or SystemClock()
        self._lock = threading.Lock()
        self._state = CircuitState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._trial_in_flight = False

    @property
    def state(self) -> CircuitState:
        with self._lock:
            return self._current()

    def _current(self) -> CircuitState:
        if self._state is CircuitState.OPEN and self.clock.monotonic() - self._opened_at >= self.reset_s:
            self._state = CircuitState.HALF_OPEN
            self._trial_in_flight = False
        return self._state

    def allow(self) -> bool:
        """May a call go out now? In half-open, only the first caller gets the trial."""
        with self._lock:
            state = self._current()
            if state is CircuitState.CLOSED:
                return True
            if state is CircuitState.HALF_OPEN and not self._trial_in_flight:
                self._trial_in_flight = True
                return True
            return False

    def retry_in(self) -> float:
        """Seconds until the breaker lets a trial call through (0 when not open)."""
        with self._lock:
            if self._current() is not CircuitState.OPEN:
                return 0.0
            return max(0.0, self.reset_s - (self.clock.monotonic() - self._opened_at))

    def record_success(self) -> None:
        with self._lock:
            self._state = CircuitState.CLOSED
            self._failures = 0
            self._trial_in_flight = False

    def record_failure(self) -> None:
        with self._lock:
            state = self._current()
            self._failures += 1
            if state is CircuitState.HALF_OPEN or self._failures >= self.failure_threshold:
                self._state = CircuitState.OPEN
                self._opened_at = self.clock.monotonic()
                self._trial_in_flight = False


# -- rate limiting -----------------------------------------------------------------------------


class TokenBucket:
    """A token bucket: `rate_per_s` sustained, bursts of `burst`. Callers reserve a token (the
    balance may go negative) and sleep until it is theirs, so waiting callers are served in
    order; a caller that would wait longer than `max_wait_s` is refused instead."""

    def __init__(self, *, rate_per_s: float, burst: int = 1, clock: Clock | None = None) -> None:
        if rate_per_s <= 0:
            raise ValueError(f"rate_per_s must be > 0, got {rate_per_s}")
        if burst < 1:
            raise ValueError(f"burst must be >= 1, got {burst}")
        self.rate_per_s = rate_per_s
        self.burst = burst
        self.clock: Clock = clock or SystemClock()
        self._lock = threading.Lock()
        self._tokens = float(burst)
        self._updated = self.clock.monotonic()

    def reserve(self, *, max_wait_s: float) -> float | None:
        """Take a token; return the seconds to wait before using it, or None if that is > max_wait_s."""
        with self._lock:
            now = self.clock.monotonic()
            self._tokens = min(float(self.burst), self._tokens + (now - self._updated) * self.rate_per_s)
            self._updated = now
            wait = max(0.0, (1.0 - self._tokens) / self.rate_per_s)
            if wait > max_wait_s:
                return None
            self._tokens -= 1.0
            return wait

    def acquire(self, *, max_wait_s: float) -> bool:
        wait = self.reserve(max_wait_s=max_wait_s)
        if wait is None:
            return False
        self.clock.sleep(wait)
        return True


# -- response cache ----------------------------------------------------------------------------


def content_hash(text: str, *attachments: str) -> str:
    """sha256 of the text and any attachment references (image URLs), unambiguously joined."""
    h = hashlib.sha256()
    for part in (text, *attachments):
        data = part.encode("utf-8", "surrogatepass")
        h.update(len(data).to_bytes(8, "big"))
        h.update(data)
    return h.hexdigest()


@dataclass(frozen=True, slots=True)
class CacheKey:
    """What makes two answers interchangeable: same content, policy version, model and detector
    configuration (the instance's mapping and prompt are fixed for a policy version)."""

    content_sha256: str
    policy_version: str
    model: str
    detector: str


@dataclass(slots=True)
class _Entry(Generic[V]):
    value: V
    expires_at: float


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    evictions: int = 0


class ResponseCache(Generic[V]):
    """A thread-safe LRU with a time-to-live. `max_entries == 0` or `ttl_s == 0` disables it."""

    def __init__(self, *, max_entries: int, ttl_s: float, clock: Clock | None = None) -> None:
        self.max_entries = max_entries
        self.ttl_s = ttl_s
        self.clock: Clock = clock or SystemClock()
        self.stats = CacheStats()
        self._data: OrderedDict[CacheKey, _Entry[V]] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.max_entries > 0 and self.ttl_s > 0

    def get(self, key: CacheKey) -> V | None:
        if not self.enabled:
            return None
        with self._lock:
            entry = self._data.get(key)
            if entry is None or entry.expires_at <= self.clock.monotonic():
                if entry is not None:
                    del self._data[key]
                self.stats.misses += 1
                return None
            self._data.move_to_end(key)
            self.stats.hits += 1
            return entry.value

    def put(self, key: CacheKey, value: V) -> None:
        if not self.enabled:
            return
        with self._lock:
            self._data[key] = _Entry(value, self.clock.monotonic() + self.ttl_s)
            self._data.move_to_end(key)
            while len(self._data) > self.max_entries:
                self._data.popitem(last=False)
                self.stats.evictions += 1

    def __len__(self) -> int:
        with self._lock:
            return len(self._data)


# -- the caller --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Attempt:
    """One attempt's outcome, reported to the observer (metrics, logs)."""

    number: int  # 1-based
    seconds: float
    error: ProviderError | None
    wait_s: float | None = None  # the backoff before the next attempt, if any


@dataclass
class ResilientCaller:
    """Runs one provider request with rate limiting, the circuit breaker and retries.

    `observer` is told about every attempt (for metrics and logs); `rng` drives the jitter
    (seeded in tests). The request function must raise `ProviderError` for failures it has
    classified; anything else is a bug in the adapter and propagates unchanged.
    """

    retry: RetryPolicy = field(default_factory=RetryPolicy)
    breaker: CircuitBreaker = field(default_factory=CircuitBreaker)
    bucket: TokenBucket | None = None
    max_wait_s: float = 5.0
    clock: Clock = field(default_factory=SystemClock)
    rng: random.Random = field(default_factory=random.Random)
    observer: Callable[[Attempt], None] | None = None

    def call(self, request: Callable[[], T]) -> T:
        retry = 0
        last: ProviderError | None = None
        while True:
            if not self.breaker.allow():
                if last is not None:  # the breaker opened during our retries: report the real cause
                    raise last
                raise ProviderError(ErrorKind.CIRCUIT_OPEN,
                                    f"circuit open after repeated failures; next trial in "
                                    f"{self.breaker.retry_in():.1f}s")
            if self.bucket is not None and not self.bucket.acquire(max_wait_s=self.max_wait_s):
                self._release_trial()
                raise ProviderError(ErrorKind.THROTTLED,
                                    f"client-side rate limit ({self.bucket.rate_per_s}/s) would wait more than "
                                    f"{self.max_wait_s}s; raise rate_limit_per_s or rate_limit_max_wait_s")
            started = self.clock.monotonic()
            try:
                value = request()
            except ProviderError as exc:
                exc.attempts = retry + 1
                wait = self.retry.delay(retry, retry_after_s=exc.retry_after_s, rng=self.rng) \
                    if exc.retryable else None
                if exc.kind in BREAKER_KINDS:
                    self.breaker.record_failure()
                else:
                    self._release_trial()
                self._observe(Attempt(retry + 1, self.clock.monotonic() - started, exc, wait))
                if wait is None:
                    raise
                last = exc
                self.clock.sleep(wait)
                retry += 1
                continue
            self.breaker.record_success()
            self._observe(Attempt(retry + 1, self.clock.monotonic() - started, None))
            return value

    def _release_trial(self) -> None:
        # A call that did not test the provider (throttled, or a bad item) must not leave a
        # half-open breaker waiting for a trial result forever.
        if self.breaker.state is CircuitState.HALF_OPEN:
            with self.breaker._lock:
                self.breaker._trial_in_flight = False

    def _observe(self, attempt: Attempt) -> None:
        if self.observer is not None:
            self.observer(attempt)
