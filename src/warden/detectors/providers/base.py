"""What every provider adapter shares: parameters, keys, the resilience wrapper, label mapping,
the response cache, cost accounting and metrics.

An adapter implements `_score(items)`: build the provider's request, send it through
`self._send(...)` (which applies the rate limiter, circuit breaker, retries, metrics and
cost accounting), and turn the answer into one `ProviderVerdict` per item, keyed by the
*provider's* labels. The base class maps labels to the policy's categories with the mapping
the policy declares (`params.mapping`, else the adapter's documented default), caches
successful results, and turns every failure into an error result for the items concerned,
never an exception: the Decision then lists the detector under `missing_signals`.

Keys come from an environment variable named in the policy (`api_key_env`) or a secrets
file (`api_key_file`), are held in a `Secret` whose repr is masked, and are scrubbed from
every error message and log line.
"""

from __future__ import annotations

import datetime
import logging
import os
import random
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from pydantic import Field, model_validator

from warden.core import Content, DetectorResult, Evidence
from warden.core.policy import CATEGORY_NAME
from warden.detectors.base import Detector, DetectorContext, DetectorParams
from warden.detectors.providers.metrics import PROVIDER_METRICS, ProviderMetrics
from warden.detectors.providers.resilience import (
    Attempt,
    CacheKey,
    CircuitBreaker,
    CircuitState,
    Clock,
    ErrorKind,
    ProviderError,
    ResilientCaller,
    ResponseCache,
    RetryPolicy,
    SystemClock,
    TokenBucket,
    content_hash,
    kind_for_status,
    parse_retry_after,
)

if TYPE_CHECKING:
    import httpx

T = TypeVar("T")
log = logging.getLogger("warden.providers")

ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: Content metadata keys that carry image references (the same keys the review UI shows).
IMAGE_KEYS = ("image_url", "image_urls")


class ProviderNotConfigured(ValueError):
    """The adapter cannot run as configured here (no key in the environment, no policy text)."""


class Secret:
    """An API key. Its repr and str are masked so it never lands in logs, tracebacks or reprs."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__


def load_secret(*, env: str | None, file: str | None, base_dir: Path) -> Secret | None:
    """The key from `file` (a secrets file; relative to the policy's folder) or else `env`."""
    if file:
        path = Path(file)
        path = path if path.is_absolute() else base_dir / path
        try:
            value = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ProviderNotConfigured(f"api_key_file {str(path)!r} cannot be read ({type(exc).__name__}); "
                                        "create it with the key on one line, or use api_key_env") from None
        if not value:
            raise ProviderNotConfigured(f"api_key_file {str(path)!r} is empty; put the key on its first line")
        return Secret(value)
    if env:
        value = os.environ.get(env, "").strip()
        return Secret(value) if value else None
    return None


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens billed for one request (0 for per-call priced APIs)."""

    input_tokens: int = 0
    output_tokens: int = 0


@dataclass(frozen=True, slots=True)
class Sent(Generic[T]):
    """A request's decoded answer and what it cost."""

    value: T
    usage: Usage = Usage()


@dataclass(frozen=True, slots=True)
class ProviderVerdict:
    """One item's answer in the provider's own labels (scores in [0, 1]); evidence categories
    are provider labels too. The base class maps both to policy categories."""

    scores: Mapping[str, float]
    evidence: tuple[Evidence, ...] = ()


@dataclass
class UsageTotals:
    """Running totals for this detector instance (also exported as Prometheus counters)."""

    requests: int = 0
    failed_requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    day: str = ""  # the UTC day `day_cost_usd` counts (the daily budget)
    day_cost_usd: float = 0.0
    in_flight: int = 0  # chunks admitted under the daily budget and not finished yet
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def spent_on(self, day: str) -> float:
        with self._lock:
            return self.day_cost_usd if self.day == day else 0.0

    def admit(self, day: str, budget: float | None) -> bool:
        """Admit one more chunk under the daily `budget`: what is spent plus what the chunks in
        flight will probably cost (the mean cost per request so far) must stay below it, so
        parallel chunks cannot all pass the check and overshoot together. Pair with `finish`."""
        with self._lock:
            if budget is not None:
                spent = self.day_cost_usd if self.day == day else 0.0
                mean = self.cost_usd / self.requests if self.requests else 0.0
                if spent + self.in_flight * mean >= budget:
                    return False
            self.in_flight += 1
            return True

    def finish(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def add(self, *, ok: bool, usage: Usage, cost: float, day: str = "") -> None:
        with self._lock:
            if day != self.day:
                self.day, self.day_cost_usd = day, 0.0
            self.day_cost_usd += cost
            self.requests += 1
            self.failed_requests += 0 if ok else 1
            self.input_tokens += usage.input_tokens
            self.output_tokens += usage.output_tokens
            self.cost_usd += cost


class ProviderParams(DetectorParams):
    """Parameters every provider adapter accepts (validated when the policy loads).

    `mapping` maps the provider's labels to policy categories (one label may feed several
    categories; several labels feeding one category combine by maximum). When set it
    replaces the adapter's default mapping entirely: the policy says exactly what is used.
    """

    LABELS: ClassVar[frozenset[str]] = frozenset()  # the provider's documented labels (empty: any)

    base_url: str | None = Field(default=None, min_length=1, description="API root; None: the provider's default")
    model: str | None = Field(default=None, min_length=1, description="model name; None: the adapter's default")
    timeout_s: float = Field(default=10.0, gt=0, le=600)
    max_retries: int = Field(default=2, ge=0, le=10)
    backoff_base_s: float = Field(default=0.5, gt=0, le=60)
    backoff_max_s: float = Field(default=8.0, gt=0, le=600)
    max_retry_after_s: float = Field(default=30.0, ge=0, le=3600,
                                     description="a Retry-After longer than this fails the item instead of waiting")
    rate_limit_per_s: float | None = Field(default=None, gt=0, description="client-side request rate limit")
    rate_limit_burst: int = Field(default=1, ge=1, le=10_000)
    rate_limit_max_wait_s: float = Field(default=5.0, ge=0, le=600)
    circuit_failure_threshold: int = Field(default=5, ge=1, le=1000)
    circuit_reset_s: float = Field(default=30.0, gt=0, le=3600)
    cache_ttl_s: float = Field(default=3600.0, ge=0, description="0 disables the response cache")
    cache_max_entries: int = Field(default=10_000, ge=0, le=10_000_000)
    max_concurrency: int = Field(default=4, ge=1, le=64, description="parallel requests within one batch")
    api_key_env: str | None = Field(default=None, description="name of the environment variable holding the key")
    api_key_file: str | None = Field(default=None, min_length=1,
                                     description="secrets file with the key (relative to the policy's folder)")
    mapping: dict[str, str | tuple[str, ...]] | None = None
    price_per_call_usd: float = Field(default=0.0, ge=0)
    price_per_1k_input_tokens_usd: float = Field(default=0.0, ge=0)
    price_per_1k_output_tokens_usd: float = Field(default=0.0, ge=0)
    max_spend_usd_per_day: float | None = Field(
        default=None, gt=0, description="daily budget (UTC, per process) from the prices above; items beyond it get "
                                        "an over_budget error result, which a fallback chain can catch")
    evidence_min_score: float = Field(default=0.5, ge=0, le=1,
                                      description="labels scoring at least this are listed as evidence")

    @model_validator(mode="after")
    def _check(self) -> ProviderParams:
        if self.api_key_env is not None and not ENV_NAME.match(self.api_key_env):
            raise ValueError(f"api_key_env must be the NAME of an environment variable (like OPENAI_API_KEY), "
                             f"not the key itself; got a value of {len(self.api_key_env)} characters")
        if self.base_url is not None and not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://; got {self.base_url!r}")
        if self.backoff_base_s > self.backoff_max_s:
            raise ValueError(f"backoff_base_s ({self.backoff_base_s}) must be <= backoff_max_s ({self.backoff_max_s})")
        for label, targets in (self.mapping or {}).items():
            if self.LABELS and label not in self.LABELS:
                raise ValueError(f"mapping: {label!r} is not a label of this provider; known labels: "
                                 f"{', '.join(sorted(self.LABELS))}")
            for cat in (targets,) if isinstance(targets, str) else targets:
                if not CATEGORY_NAME.match(cat):
                    raise ValueError(f"mapping.{label}: {cat!r} is not a valid category name")
        return self


def normalize_mapping(mapping: Mapping[str, str | Sequence[str]]) -> dict[str, tuple[str, ...]]:
    return {label: (t,) if isinstance(t, str) else tuple(t) for label, t in mapping.items()}


def clean_text(text: str) -> str:
    """Replace unpaired surrogates (not encodable as UTF-8) by U+FFFD, keeping every offset."""
    if not any(0xD800 <= ord(ch) <= 0xDFFF for ch in text):
        return text
    return "".join("\ufffd" if 0xD800 <= ord(ch) <= 0xDFFF else ch for ch in text)


class ProviderDetector(Detector):
    """Base for adapters of remote classifiers (see the module docstring)."""

    Params: ClassVar[type[ProviderParams]] = ProviderParams
    provider_docs: ClassVar[str] = ""  # the API reference version followed (docs/providers.md)
    default_base_url: ClassVar[str] = ""
    default_model: ClassVar[str] = ""
    default_mapping: ClassVar[Mapping[str, str | tuple[str, ...]]] = {}
    requires_key: ClassVar[bool] = True
    auto_evidence: ClassVar[bool] = True  # list labels scoring >= evidence_min_score when the adapter gives none
    max_batch_items: ClassVar[int] = 1  # items per request (moderation endpoints accept lists)
    max_chars: ClassVar[int | None] = None  # the provider's documented input limit
    metrics: ClassVar[ProviderMetrics] = PROVIDER_METRICS

    def __init__(self, params: DetectorParams | None = None, *, instance: str | None = None,
                 context: DetectorContext | None = None) -> None:
        super().__init__(params, instance=instance, context=context)
        p: ProviderParams = self.params  # type: ignore[assignment]
        self._secret = load_secret(env=p.api_key_env, file=p.api_key_file, base_dir=Path(self.context.base_dir))
        if self._secret is None and (self.requires_key or p.api_key_env):
            raise ProviderNotConfigured(
                f"detector {self.instance!r} ({self.name}) has no API key: set the environment variable "
                f"{p.api_key_env or '<api_key_env>'} or params.api_key_file")
        self.mapping = self._build_mapping(p)
        self.base_url = (p.base_url or self.default_base_url).rstrip("/")
        self.model = p.model or self.default_model
        if not self.base_url:
            raise ProviderNotConfigured(f"detector {self.instance!r} ({self.name}) needs params.base_url")
        if not self.model:
            raise ProviderNotConfigured(f"detector {self.instance!r} ({self.name}) needs params.model")
        clock = SystemClock()
        self.caller = ResilientCaller(
            retry=RetryPolicy(max_retries=p.max_retries, base_s=p.backoff_base_s, cap_s=p.backoff_max_s,
                              max_retry_after_s=p.max_retry_after_s),
            breaker=CircuitBreaker(failure_threshold=p.circuit_failure_threshold, reset_s=p.circuit_reset_s,
                                   clock=clock),
            bucket=TokenBucket(rate_per_s=p.rate_limit_per_s, burst=p.rate_limit_burst, clock=clock)
            if p.rate_limit_per_s else None,
            max_wait_s=p.rate_limit_max_wait_s, clock=clock, rng=random.Random(), observer=self._on_attempt)
        self.cache: ResponseCache[DetectorResult] = ResponseCache(max_entries=p.cache_max_entries,
                                                                  ttl_s=p.cache_ttl_s, clock=clock)
        self.totals = UsageTotals()
        self._client: Any = None
        self._client_lock = threading.Lock()
        self._labels = {"detector": self.instance, "provider": self.name, "model": self.model}

    # -- configuration -----------------------------------------------------------------------
    def _build_mapping(self, p: ProviderParams) -> dict[str, tuple[str, ...]]:
        explicit = p.mapping is not None
        mapping = normalize_mapping(p.mapping if explicit else self.default_mapping)  # type: ignore[arg-type]
        cats = set(self.context.categories)
        if cats and explicit:
            unknown = sorted({c for targets in mapping.values() for c in targets} - cats)
            if unknown:
                raise ValueError(f"detector {self.instance!r}: mapping targets {unknown} are not categories of the "
                                 f"policy; defined: {', '.join(self.context.categories)}")
        return mapping

    def set_clock(self, clock: Clock) -> None:
        """Use another clock for retries, the breaker, the rate limiter and the cache (tests)."""
        self.caller.clock = clock
        self.caller.breaker.clock = clock
        if self.caller.bucket is not None:
            self.caller.bucket.clock = clock
            self.caller.bucket._updated = clock.monotonic()
        self.cache.clock = clock

    @property
    def model_version(self) -> str:
        return f"{self.name}@{self.version}:{self.model}"

    @property
    def covered_categories(self) -> tuple[str, ...]:
        cats = {c for targets in self.mapping.values() for c in targets}
        allowed = set(self.context.categories)
        return tuple(sorted(c for c in cats if not allowed or c in allowed))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(instance={self.instance!r}, model={self.model!r}, base_url={self.base_url!r})"

    # -- the detector contract ---------------------------------------------------------------
    def attachments(self, item: Content) -> tuple[str, ...]:
        """Image references the adapter sends along with the text (none by default)."""
        return ()

    def item_problem(self, item: Content) -> str | None:
        """Why this item cannot be sent as it is (None when it can)."""
        text = item.text or ""
        if self.max_chars is not None and len(text) > self.max_chars:
            return (f"text has {len(text):,} characters; {self.name} accepts at most {self.max_chars:,} per request. "
                    "Split long documents and moderate each part.")
        return None

    def _detect(self, batch: Sequence[Content]) -> list[DetectorResult]:
        results: list[DetectorResult | None] = [None] * len(batch)
        pending: list[tuple[int, Content, CacheKey]] = []
        policy_version = str(getattr(self.context.policy, "version", ""))
        for i, item in enumerate(batch):
            text = item.text or ""
            try:
                images = self.attachments(item)
            except ValueError as exc:
                results[i] = DetectorResult.failed(self.instance, item.id, str(exc), self.model_version)
                continue
            if not text.strip() and not images:
                # Nothing this adapter reads: no call, no scores (absent, not zero: it judged nothing).
                results[i] = self.result(item, {})
                continue
            problem = self.item_problem(item)
            if problem is not None:
                results[i] = DetectorResult.failed(self.instance, item.id, problem, self.model_version)
                continue
            key = CacheKey(content_hash(text, *images), policy_version, self.model_version, self.instance)
            hit = self.cache.get(key) if self.cache.enabled else None
            if self.cache.enabled:
                self.metrics.cache.labels(self.instance, "hit" if hit is not None else "miss").inc()
            if hit is not None:
                results[i] = replace(hit, content_id=item.id, latency_ms=0.0)
            else:
                pending.append((i, item, key))
        chunks = [pending[j:j + self.max_batch_items] for j in range(0, len(pending), self.max_batch_items)]
        workers = min(len(chunks), self.params.max_concurrency)  # type: ignore[attr-defined]
        if workers > 1:
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"warden-{self.name}") as pool:
                outcomes = list(pool.map(self._run_chunk, chunks))
        else:
            outcomes = [self._run_chunk(c) for c in chunks]
        for chunk, chunk_results in zip(chunks, outcomes, strict=True):
            for (i, _item, key), res in zip(chunk, chunk_results, strict=True):
                results[i] = res
                if res.ok:
                    self.cache.put(key, res)
        self.metrics.circuit_open.labels(self.instance).set(
            0.0 if self.caller.breaker.state is CircuitState.CLOSED else 1.0)
        return [r for r in results if r is not None]

    def _run_chunk(self, chunk: Sequence[tuple[int, Content, CacheKey]]) -> list[DetectorResult]:
        items = [item for _, item, _ in chunk]
        budget = self.params.max_spend_usd_per_day  # type: ignore[attr-defined]
        admitted = False
        try:
            admitted = self.totals.admit(self.today(), budget)
            if not admitted:
                raise ProviderError(ErrorKind.OVER_BUDGET, f"the daily budget of ${budget:g} "
                                    "(params.max_spend_usd_per_day) is spent or committed to calls in flight; "
                                    "calls resume at 00:00 UTC")
            verdicts = self._score(items)
            if len(verdicts) != len(items):
                raise ProviderError(ErrorKind.MALFORMED, f"{len(verdicts)} results for {len(items)} inputs")
        except ProviderError as exc:
            message = self.redact(str(exc))
            self.metrics.item_errors.labels(**self._labels, kind=exc.kind.value).inc(len(items))
            log.warning("provider %s (%s) failed for %d item(s): %s", self.instance, self.name, len(items), message)
            return [DetectorResult.failed(self.instance, item.id, f"{self.name}: {message}", self.model_version)
                    for item in items]
        finally:
            if admitted:
                self.totals.finish()
        return [self._to_result(item, v) for item, v in zip(items, verdicts, strict=True)]

    def _to_result(self, item: Content, verdict: ProviderVerdict) -> DetectorResult:
        scores: dict[str, float] = {}
        for label, score in verdict.scores.items():
            s = min(1.0, max(0.0, float(score)))
            for cat in self.mapping.get(label, ()):
                scores[cat] = max(scores.get(cat, 0.0), s)
        evidence: list[Evidence] = []
        if verdict.evidence:
            for ev in verdict.evidence:
                evidence += [replace(ev, category=cat) for cat in self.mapping.get(ev.category, ())]
        elif self.auto_evidence:
            min_score = self.params.evidence_min_score  # type: ignore[attr-defined]
            for label, score in sorted(verdict.scores.items()):
                if score >= min_score:
                    evidence += [Evidence(cat, f"{self.name}:{label}", score=float(score))
                                 for cat in self.mapping.get(label, ())]
        return self.result(item, scores, tuple(evidence))

    def _score(self, items: Sequence[Content]) -> list[ProviderVerdict]:
        """Send `items` (at most `max_batch_items`) and return one verdict per item, in order."""
        raise NotImplementedError

    # -- sending -----------------------------------------------------------------------------
    def _send(self, request: Callable[[], Sent[T]]) -> T:
        """Run one provider request through the rate limiter, breaker and retries; account for it."""

        def attempt() -> T:
            started = time.perf_counter()
            try:
                sent = request()
            except ProviderError as exc:
                exc.message = self.redact(exc.message)
                self._account(ok=False, seconds=time.perf_counter() - started, usage=Usage(), kind=exc.kind)
                raise
            self._account(ok=True, seconds=time.perf_counter() - started, usage=sent.usage, kind=None)
            return sent.value

        return self.caller.call(attempt)

    def _account(self, *, ok: bool, seconds: float, usage: Usage, kind: ErrorKind | None) -> None:
        p: ProviderParams = self.params  # type: ignore[assignment]
        # A failed request is still billed per call by some providers; tokens only when reported.
        cost = (p.price_per_call_usd if ok else 0.0) + usage.input_tokens / 1000 * p.price_per_1k_input_tokens_usd \
            + usage.output_tokens / 1000 * p.price_per_1k_output_tokens_usd
        self.totals.add(ok=ok, usage=usage, cost=cost, day=self.today())
        m = self.metrics
        m.calls.labels(**self._labels, outcome="ok" if ok else (kind.value if kind else "error")).inc()
        m.latency.labels(**self._labels).observe(seconds)
        if not ok and kind is not None:
            m.errors.labels(**self._labels, kind=kind.value).inc()
        if usage.input_tokens:
            m.tokens.labels(**self._labels, direction="input").inc(usage.input_tokens)
        if usage.output_tokens:
            m.tokens.labels(**self._labels, direction="output").inc(usage.output_tokens)
        if cost:
            m.cost.labels(**self._labels).inc(cost)

    def today(self) -> str:
        """The UTC day the daily budget counts (a method so tests can move it)."""
        return datetime.datetime.now(tz=datetime.UTC).date().isoformat()

    def _on_attempt(self, attempt: Attempt) -> None:
        if attempt.error is not None and attempt.wait_s is not None:
            log.info("provider %s: attempt %d failed (%s); retrying in %.2fs", self.instance, attempt.number,
                     attempt.error.kind.value, attempt.wait_s)

    def redact(self, message: str) -> str:
        """Remove the key from a message (some providers echo a prefix of a wrong key)."""
        if self._secret is not None:
            key = self._secret.reveal()
            if key:
                message = message.replace(key, "***")
        return message

    # -- HTTP (httpx) for adapters without an official SDK -------------------------------------
    def auth_headers(self) -> dict[str, str]:
        return {}

    def http(self) -> httpx.Client:
        """The adapter's HTTP client, created on first use (one connection pool per detector)."""
        import httpx

        with self._client_lock:
            if self._client is None:
                p: ProviderParams = self.params  # type: ignore[assignment]
                self._client = httpx.Client(base_url=self.base_url, timeout=httpx.Timeout(p.timeout_s),
                                            headers={"user-agent": "warden", **self.auth_headers()})
            return self._client

    def post_json(self, path: str, *, json: Any = None, data: Mapping[str, str] | None = None,
                  query: Mapping[str, str] | None = None) -> Any:
        """POST and decode a JSON answer, classifying every failure as a ProviderError."""
        import httpx

        try:
            response = self.http().post(path, json=json, data=data, params=query)
        except httpx.TimeoutException:
            raise ProviderError(ErrorKind.TIMEOUT,
                                f"no answer within {self.params.timeout_s}s") from None  # type: ignore[attr-defined]
        except httpx.TransportError as exc:
            raise ProviderError(ErrorKind.CONNECTION, f"{type(exc).__name__}: {self.redact(str(exc))}") from None
        if response.status_code >= 400:
            raise ProviderError(kind_for_status(response.status_code), self.error_message(response),
                                status=response.status_code,
                                retry_after_s=parse_retry_after(response.headers.get("retry-after")))
        try:
            return response.json()
        except ValueError:
            raise ProviderError(ErrorKind.MALFORMED,
                                f"the answer is not JSON ({len(response.content)} bytes, content-type "
                                f"{response.headers.get('content-type', 'none')!r})", status=response.status_code,
                                ) from None

    def error_message(self, response: httpx.Response) -> str:
        """The provider's error message from an error response body (documented shapes differ)."""
        try:
            body = response.json()
        except ValueError:
            return f"HTTP {response.status_code} with a non-JSON body"
        return self.redact(error_text(body) or f"HTTP {response.status_code}")

    def close(self) -> None:
        with self._client_lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()


def error_text(body: Any) -> str:
    """`error.message`, `error` (string), `message` or `detail` from an error body; '' if none."""
    if isinstance(body, Mapping):
        err = body.get("error")
        if isinstance(err, Mapping):
            code = err.get("code") or err.get("type") or err.get("status")
            msg = err.get("message") or ""
            return f"{code}: {msg}" if code and msg else str(msg or code or "")
        if isinstance(err, str):
            return err
        for key in ("message", "detail"):
            if isinstance(body.get(key), str):
                return body[key]
    return ""


def sdk_error(exc: Exception, *, timeout_s: float) -> ProviderError:
    """Classify an exception of the official OpenAI / Anthropic SDKs (both generated by Stainless:
    APITimeoutError, APIConnectionError, APIStatusError with `status_code` and `response`)."""
    name = type(exc).__name__
    status = getattr(exc, "status_code", None)
    if isinstance(status, int):
        response = getattr(exc, "response", None)
        headers = getattr(response, "headers", {}) or {}
        body = getattr(exc, "body", None)
        message = error_text({"error": body} if isinstance(body, Mapping) and "message" in body else body) \
            or f"HTTP {status}"
        return ProviderError(kind_for_status(status), message, status=status,
                             retry_after_s=parse_retry_after(headers.get("retry-after")))
    if "Timeout" in name:
        return ProviderError(ErrorKind.TIMEOUT, f"no answer within {timeout_s}s")
    if "Connection" in name:
        return ProviderError(ErrorKind.CONNECTION, f"{name}: could not reach the server")
    if type(exc).__module__.split(".")[0] in ("openai", "anthropic"):
        return ProviderError(ErrorKind.MALFORMED, f"{name}: the answer is not in the documented format")
    raise exc  # not the SDK's: a bug in the adapter, reported as such by Detector.detect


MAX_IMAGE_BYTES = 20 * 1024 * 1024
_IMAGE_MAGIC = ((b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"), (b"GIF8", "image/gif"))


def _image_mime(data: bytes) -> str | None:
    for magic, mime in _IMAGE_MAGIC:
        if data.startswith(magic):
            return mime
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def image_refs(item: Content) -> tuple[str, ...]:
    """The item's images as URLs: image media parts (sent inline as base64 data: URLs, format
    sniffed from the bytes) and metadata `image_url` / `image_urls` (http(s) or data: URLs).
    Raises ValueError (an error result for the item) for an unreadable or unsupported image."""
    import base64

    refs: list[str] = []
    for i, part in enumerate(getattr(item, "media", ())):
        if getattr(part.kind, "value", part.kind) != "image":
            continue
        if part.data is not None:
            data = part.data
        else:
            try:
                size = os.path.getsize(part.path)
                if size > MAX_IMAGE_BYTES:
                    raise ValueError(f"media[{i}] is {size:,} bytes; providers accept at most {MAX_IMAGE_BYTES:,}")
                data = Path(part.path).read_bytes()
            except OSError as exc:
                raise ValueError(f"media[{i}] cannot be read ({type(exc).__name__})") from None
        if len(data) > MAX_IMAGE_BYTES:
            raise ValueError(f"media[{i}] is {len(data):,} bytes; providers accept at most {MAX_IMAGE_BYTES:,}")
        mime = _image_mime(data)
        if mime is None:
            raise ValueError(f"media[{i}] is not a PNG, JPEG, GIF or WebP image")
        refs.append(f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}")
    for key in IMAGE_KEYS:
        value = item.metadata.get(key)
        if value is None:
            continue
        values = [value] if isinstance(value, str) else value
        if not isinstance(values, list | tuple) or not all(isinstance(v, str) for v in values):
            raise ValueError(f"metadata.{key} must be a URL string or a list of URL strings")
        for v in values:
            if not v.startswith(("http://", "https://", "data:image/")):
                raise ValueError(f"metadata.{key}: {v[:40]!r} is not an http(s) or data:image URL")
            refs.append(v)
    return tuple(refs)
