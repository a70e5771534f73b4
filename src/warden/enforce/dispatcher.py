"""Deliver the enforcement outbox as signed webhooks, with retries and dead letters.

`WebhookDispatcher.run_once()` leases a batch of due `pending` rows (see
`warden.store.enforce_repo`: PostgreSQL `FOR UPDATE SKIP LOCKED`, a conditional UPDATE on
SQLite, so two dispatchers never send the same row at the same time) and POSTs each payload
to the platform's URL with the headers

    Content-Type: application/json
    Warden-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">   (warden.enforce.signing)
    Idempotency-Key: whk_...   (the same on every attempt: deduplicate on it)
    Warden-Event: content_action | account_action | content_action.reversed | account_action.reversed

Outcomes: 2xx is delivered. 408, 429, 5xx, timeouts and connection errors are retried with
exponential backoff and full jitter (`uniform(0, min(cap, base * 2**(attempt-1)))`), never
sooner than a `Retry-After` on 429/503. Any other status (4xx, or a 3xx: redirects are not
followed) is permanent: the row goes dead at once, since resending the same request cannot
succeed. After `max_attempts` the row goes dead too; every dead row gets a
`webhook_dead_letters` entry that an operator can `replay` once the receiver is fixed.

Delivery is at-least-once: a dispatcher that dies after the platform applied an action but
before recording it leaves the row to be retried when its lease expires.

Logs carry ids, idempotency keys, attempts and status codes: never the secret, payload bodies
or response bodies.
"""

from __future__ import annotations

import json
import logging
import os
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Literal

import httpx

import warden
from warden.enforce.signing import SIGNATURE_HEADER, sign
from warden.store.enforce_repo import ActionRecord, DeadLetterRecord, EnforcementRepository
from warden.store.repository import Store
from warden.store.sqltypes import utcnow

log = logging.getLogger("warden.enforce.dispatcher")

RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
RETRY_AFTER_STATUSES = frozenset({429, 503})


class WebhookConfigError(ValueError):
    """The webhook settings are incomplete or unreadable (the message never contains the secret)."""


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    """Where and how to deliver webhooks. `from_env` reads:

    WARDEN_WEBHOOK_URL (delivery is off when unset), WARDEN_WEBHOOK_SECRET or
    WARDEN_WEBHOOK_SECRET_FILE (a file holding the secret; preferred, keeps it out of the
    process environment), WARDEN_WEBHOOK_MAX_ATTEMPTS, WARDEN_WEBHOOK_TIMEOUT,
    WARDEN_WEBHOOK_BACKOFF_BASE, WARDEN_WEBHOOK_BACKOFF_CAP, WARDEN_WEBHOOK_POLL_INTERVAL
    (seconds), WARDEN_WEBHOOK_BATCH_SIZE.
    """

    url: str
    secret: str = field(repr=False)
    max_attempts: int = 8
    timeout: float = 10.0
    backoff_base: float = 2.0
    backoff_cap: float = 600.0
    poll_interval: float = 1.0
    batch_size: int = 50

    @property
    def display_url(self) -> str:
        """The URL without credentials or query string (tokens hide there): safe to print."""
        u = httpx.URL(self.url)
        return str(u.copy_with(username=None, password=None, query=None, fragment=None))

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: object) -> WebhookSettings | None:
        """Settings from the environment, or None when WARDEN_WEBHOOK_URL is not set (and no
        `url` override). Raises `WebhookConfigError` when a URL is set without a secret."""
        env = dict(os.environ if environ is None else environ)
        url = str(overrides.pop("url", None) or env.get("WARDEN_WEBHOOK_URL") or "").strip()
        if not url:
            return None
        if not url.startswith(("http://", "https://")):
            raise WebhookConfigError("WARDEN_WEBHOOK_URL must be an http:// or https:// URL")
        secret = env.get("WARDEN_WEBHOOK_SECRET") or ""
        secret_file = env.get("WARDEN_WEBHOOK_SECRET_FILE")
        if secret_file:
            try:
                secret = Path(secret_file).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise WebhookConfigError(f"cannot read WARDEN_WEBHOOK_SECRET_FILE {secret_file}: "
                                         f"{type(exc).__name__}") from None
        if not secret:
            raise WebhookConfigError("a webhook URL is set but no secret: set WARDEN_WEBHOOK_SECRET_FILE "
                                     "(or WARDEN_WEBHOOK_SECRET); Warden never sends unsigned webhooks")
        numbers: dict[str, object] = {}
        for name, conv in (("max_attempts", int), ("timeout", float), ("backoff_base", float),
                           ("backoff_cap", float), ("poll_interval", float), ("batch_size", int)):
            raw = env.get(f"WARDEN_WEBHOOK_{name.upper()}")
            if raw:
                try:
                    numbers[name] = conv(raw)
                except ValueError:
                    raise WebhookConfigError(f"WARDEN_WEBHOOK_{name.upper()} must be a number, got {raw!r}") from None
        numbers.update({k: v for k, v in overrides.items() if v is not None})
        return cls(url=url, secret=secret, **numbers)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class DeliveryOutcome:
    """One delivery attempt of one outbox row."""

    action_id: int
    idempotency_key: str
    attempt: int
    result: Literal["delivered", "retry", "dead", "lost"]  # lost: the lease expired and another dispatcher took over
    http_status: int | None
    error: str | None
    next_attempt_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class DispatchStats:
    """What one `run_once` did."""

    claimed: int
    delivered: int
    retried: int
    dead: int
    lost: int
    outcomes: tuple[DeliveryOutcome, ...] = ()


@dataclass(frozen=True, slots=True)
class _Attempt:
    ok: bool
    retryable: bool
    http_status: int | None
    error: str | None
    retry_after: float | None


class WebhookDispatcher:
    """Delivers pending outbox rows to one URL. Thread-safe; run several for throughput or HA.

    `clock` (UTC datetimes) drives scheduling and `rng` the jitter: inject both in tests.
    `lease_seconds` is how long a claimed row is reserved for this dispatcher (default: long
    enough for one request to time out several times over).
    """

    def __init__(
        self,
        store: Store,
        *,
        url: str,
        secret: str,
        max_attempts: int = 8,
        timeout: float = 10.0,
        backoff_base: float = 2.0,
        backoff_cap: float = 600.0,
        clock: Callable[[], datetime] = utcnow,
        rng: random.Random | None = None,
        batch_size: int = 50,
        poll_interval: float = 1.0,
        lease_seconds: float | None = None,
        retry_after_cap: float = 3600.0,
        client: httpx.Client | None = None,
    ) -> None:
        if not secret:
            raise WebhookConfigError("empty webhook secret")
        if max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        if backoff_base <= 0 or backoff_cap < backoff_base:
            raise ValueError("need 0 < backoff_base <= backoff_cap")
        self.repo = EnforcementRepository(store)
        self.url = url
        self._secret = secret
        self.max_attempts = max_attempts
        self.timeout = timeout
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.clock = clock
        self.rng = rng or random.Random()
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.lease_seconds = lease_seconds if lease_seconds is not None else max(60.0, 3 * timeout + 5)
        self.retry_after_cap = retry_after_cap
        self._client = client or httpx.Client(timeout=timeout, follow_redirects=False,
                                              headers={"User-Agent": f"warden-webhooks/{warden.__version__}"})
        self._owns_client = client is None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def from_settings(cls, store: Store, settings: WebhookSettings, **kwargs: object) -> WebhookDispatcher:
        return cls(store, url=settings.url, secret=settings.secret, max_attempts=settings.max_attempts,
                   timeout=settings.timeout, backoff_base=settings.backoff_base, backoff_cap=settings.backoff_cap,
                   batch_size=settings.batch_size, poll_interval=settings.poll_interval, **kwargs)  # type: ignore[arg-type]

    def __repr__(self) -> str:  # never the secret
        return f"WebhookDispatcher(url={self.url!r}, max_attempts={self.max_attempts})"

    # -- one pass --------------------------------------------------------------------------
    def run_once(self) -> DispatchStats:
        """Deliver up to `batch_size` due rows once; returns what happened."""
        now = self.clock()
        claimed = self.repo.claim_due(now=now, lease_until=now + timedelta(seconds=self.lease_seconds),
                                      limit=self.batch_size)
        outcomes = [self._deliver(row) for row in claimed]
        count = {r: sum(1 for o in outcomes if o.result == r) for r in ("delivered", "retry", "dead", "lost")}
        return DispatchStats(claimed=len(claimed), delivered=count["delivered"], retried=count["retry"],
                             dead=count["dead"], lost=count["lost"], outcomes=tuple(outcomes))

    def backoff_delay(self, attempt: int, *, retry_after: float | None = None) -> float:
        """Seconds before retrying after failed `attempt` (1-based): full jitter, floored by a
        (capped) Retry-After."""
        ceiling = min(self.backoff_cap, self.backoff_base * (2 ** max(0, attempt - 1)))
        delay = self.rng.uniform(0.0, ceiling)
        if retry_after is not None:
            delay = max(delay, min(max(0.0, retry_after), self.retry_after_cap))
        return delay

    def _deliver(self, row: ActionRecord) -> DeliveryOutcome:
        attempt = self._send(row)
        now = self.clock()
        if attempt.ok:
            if not self.repo.mark_delivered(row.id, attempt=row.attempts, at=now):
                return DeliveryOutcome(row.id, row.idempotency_key, row.attempts, "lost", attempt.http_status, None)
            log.info("webhook delivered id=%d key=%s status=%s attempt=%d", row.id, row.idempotency_key,
                     attempt.http_status, row.attempts)
            return DeliveryOutcome(row.id, row.idempotency_key, row.attempts, "delivered", attempt.http_status, None)
        error = attempt.error or "failed"
        if not attempt.retryable or row.attempts >= self.max_attempts:
            reason = error if not attempt.retryable else f"{error} (gave up after {row.attempts} attempts)"
            dead = self.repo.mark_dead(row.id, attempt=row.attempts, error=reason, at=now)
            if dead is None:
                return DeliveryOutcome(row.id, row.idempotency_key, row.attempts, "lost", attempt.http_status, error)
            log.warning("webhook dead id=%d key=%s status=%s attempt=%d dead_letter=%d", row.id, row.idempotency_key,
                        attempt.http_status, row.attempts, dead.id)
            return DeliveryOutcome(row.id, row.idempotency_key, row.attempts, "dead", attempt.http_status, reason)
        next_at = now + timedelta(seconds=self.backoff_delay(row.attempts, retry_after=attempt.retry_after))
        if not self.repo.mark_retry(row.id, attempt=row.attempts, next_attempt_at=next_at, error=error):
            return DeliveryOutcome(row.id, row.idempotency_key, row.attempts, "lost", attempt.http_status, error)
        log.info("webhook retry id=%d key=%s status=%s attempt=%d next_in=%.1fs", row.id, row.idempotency_key,
                 attempt.http_status, row.attempts, (next_at - now).total_seconds())
        return DeliveryOutcome(row.id, row.idempotency_key, row.attempts, "retry", attempt.http_status, error, next_at)

    def _send(self, row: ActionRecord) -> _Attempt:
        body = json.dumps(row.payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(body, secret=self._secret),
            "Idempotency-Key": row.idempotency_key,
            "Warden-Event": str(row.payload.get("type", row.kind)),
            "Warden-Delivery-Attempt": str(row.attempts),
        }
        try:
            response = self._client.post(self.url, content=body, headers=headers, timeout=self.timeout)
        except httpx.TimeoutException as exc:
            return _Attempt(False, True, None, f"timeout: {type(exc).__name__}", None)
        except httpx.TransportError as exc:
            return _Attempt(False, True, None, f"connection error: {type(exc).__name__}", None)
        except httpx.HTTPError as exc:  # e.g. an invalid URL: keep retrying, an operator can fix the setting
            return _Attempt(False, True, None, f"http error: {type(exc).__name__}", None)
        status = response.status_code
        response.close()
        if 200 <= status < 300:
            return _Attempt(True, False, status, None, None)
        retry_after = self._retry_after(response.headers.get("Retry-After")) if status in RETRY_AFTER_STATUSES else None
        retryable = status in RETRYABLE_STATUSES or status >= 500
        return _Attempt(False, retryable, status, f"HTTP {status}", retry_after)

    def _retry_after(self, value: str | None) -> float | None:
        """Retry-After as delta-seconds or an HTTP date; None when absent or unparsable."""
        if not value:
            return None
        value = value.strip()
        if value.isdigit():
            return float(value)
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            return None
        return max(0.0, (when - self.clock()).total_seconds())

    # -- dead letters ----------------------------------------------------------------------
    def dead_letters(self, *, include_replayed: bool = False) -> list[DeadLetterRecord]:
        return self.repo.dead_letters(include_replayed=include_replayed)

    def replay(self, target: int | Literal["all"]) -> list[DeadLetterRecord]:
        """Make dead rows pending again (attempts reset, due now) and mark their dead letters
        replayed: one dead letter by id, or `"all"` unreplayed ones. Returns those replayed."""
        if target != "all" and not isinstance(target, int):
            raise ValueError("replay target must be a dead letter id or 'all'")
        replayed = self.repo.replay(None if target == "all" else int(target), at=self.clock())
        for dl in replayed:
            log.info("webhook replay dead_letter=%d id=%d key=%s", dl.id, dl.action_id, dl.idempotency_key)
        return replayed

    # -- background thread -------------------------------------------------------------------
    def run_forever(self, stop: threading.Event | None = None) -> None:
        """Deliver until `stop` is set: back-to-back while there is a backlog, else every
        `poll_interval` seconds. A database or network outage is logged and waited out."""
        stop = stop or self._stop
        failures = 0
        while not stop.is_set():
            try:
                stats = self.run_once()
                failures = 0
            except Exception as exc:  # the database is down: wait, never die
                failures += 1
                log.error("webhook dispatch pass failed: %s", type(exc).__name__)
                stop.wait(min(60.0, self.poll_interval * 2 ** min(failures, 6)))
                continue
            if stats.claimed < self.batch_size:
                stop.wait(self.poll_interval)

    def start(self) -> None:
        """Run `run_forever` in a daemon thread (idempotent)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self.run_forever, name="warden-webhooks", daemon=True)
        self._thread.start()
        log.info("webhook dispatcher started url_host=%s", httpx.URL(self.url).host)

    def stop(self, timeout: float | None = None) -> None:
        """Stop the thread after its current delivery (waits up to `timeout`, default the
        request timeout plus a margin) and close the HTTP client."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout if timeout is not None else self.timeout + 5)
            self._thread = None
        self.close()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def close(self) -> None:
        if self._owns_client:
            self._client.close()


__all__ = [
    "DeliveryOutcome",
    "DispatchStats",
    "WebhookConfigError",
    "WebhookDispatcher",
    "WebhookSettings",
]
