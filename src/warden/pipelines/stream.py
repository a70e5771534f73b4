"""The stream worker: content events from a Redis Stream in, decisions out.

Delivery is at-least-once and the effects are exactly-once:

1. `XREADGROUP` takes up to `batch_size` new events for this consumer (pull: a worker holds
   at most `moderation_threads + 1` batches, which is its backpressure);
2. events that cannot be parsed go to the dead-letter stream at once (retrying cannot fix
   them);
3. the rest are moderated as one batch and recorded in ONE database transaction
   (`DecisionRecorder`: decisions, review tasks, enforcement outbox, audit), idempotent per
   (content id, policy version);
4. only then are the decision events published and the input events acknowledged, together
   in one Redis MULTI/EXEC.

`run()` overlaps batches (`StreamConfig.moderation_threads` >= 1): the reading thread hands
each batch to one of `moderation_threads` threads, and one recording thread does steps 3 and 4
for each batch in read order. Model inference and database waits release the GIL, so one worker uses both
cores. Batches are still recorded and acknowledged one at a time, each after its own commit.

A crash between 3 and 4 leaves the events pending; they are re-read by `XAUTOCLAIM` (from
any worker of the group) after `claim_idle_ms`, moderated again (same decision ids) and
recorded again, which stores nothing new (a worker never claims its own batch in flight:
it lets it finish first). An event delivered `max_deliveries` times without
success goes to the dead-letter stream with its last error. On SIGTERM the worker finishes
its batches in flight, acknowledges and exits.

The event schema is versioned and documented in `docs/events.md`.
"""

from __future__ import annotations

import json
import logging
import queue
import socket
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

from warden.core import Content, Decision
from warden.ingest import InvalidItem

log = logging.getLogger("warden.worker")

CONTENT_SCHEMA = "warden.content.v1"
DECISION_SCHEMA = "warden.decision.v1"
DEAD_LETTER_SCHEMA = "warden.dead_letter.v1"


class ModeratorLike(Protocol):
    policy: Any

    def parse(self, obj: object, *, default_surface: str = "comment") -> Content: ...

    def moderate_batch(self, items: Sequence[Content]) -> list[Decision]: ...


class RecorderLike(Protocol):
    def record(self, contents: Sequence[Content], decisions: Sequence[Decision], *, actor: str, event: str,
               subject: str, details: dict | None = None) -> Any: ...


@dataclass(frozen=True, slots=True)
class StreamConfig:
    """Names and limits of one worker. Streams and the group are created when missing."""

    input_stream: str = "warden:content"
    group: str = "warden"
    consumer: str = field(default_factory=lambda: f"{socket.gethostname()}-{_pid()}")
    output_stream: str = "warden:decisions"
    dead_letter_stream: str = "warden:content:dead"
    batch_size: int = 256
    block_ms: int = 1000
    claim_idle_ms: int = 30_000  # a pending event idle this long belongs to a dead or stuck worker
    claim_every_s: float = 5.0
    max_deliveries: int = 5
    output_maxlen: int = 1_000_000  # approximate cap of the decision stream (XADD MAXLEN ~)
    default_surface: str = "comment"
    retry_backoff_s: float = 1.0  # pause after a failed batch (the database or Redis is down)
    # `run()` moderates batches in `moderation_threads` threads and records them in one more,
    # so model inference (which releases the GIL), Python work and database/Redis waits of
    # consecutive batches overlap on two cores. 0: read, moderate and record in one thread
    # (best on one core: the threads only add switching there).
    moderation_threads: int = 2

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.max_deliveries < 1 or self.block_ms < 0 or self.claim_idle_ms < 0:
            raise ValueError("batch_size and max_deliveries must be >= 1; block_ms and claim_idle_ms >= 0")
        if not 0 <= self.moderation_threads <= 8:
            raise ValueError(f"moderation_threads must be in 0..8, got {self.moderation_threads}")


def _pid() -> int:
    import os

    return os.getpid()


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    read: int = 0
    decided: int = 0
    stored: int = 0
    dead_lettered: int = 0
    failed: int = 0  # left pending for a retry
    claimed: int = 0


@dataclass(slots=True)
class WorkerTotals:
    batches: int = 0
    read: int = 0
    decided: int = 0
    stored: int = 0
    dead_lettered: int = 0
    failed: int = 0
    claimed: int = 0

    def add(self, o: BatchOutcome) -> None:
        self.batches += 1
        self.read += o.read
        self.decided += o.decided
        self.stored += o.stored
        self.dead_lettered += o.dead_lettered
        self.failed += o.failed
        self.claimed += o.claimed


@dataclass(frozen=True, slots=True)
class _Event:
    message_id: bytes
    fields: dict[bytes, bytes]
    deliveries: int


@dataclass(frozen=True, slots=True)
class _Parsed:
    event: _Event
    content: Content
    published_at: float | None


@dataclass(slots=True)
class _Batch:
    """One read batch, moderated, waiting to be recorded, published and acknowledged."""

    events: list[_Event]
    claimed: int
    started: float  # perf_counter when its handling began
    parsed: list[_Parsed]
    dead: list[tuple[_Event, str]]
    moderated: list[tuple[_Parsed, Decision]]  # unique content ids, in read order
    failed: list[_Parsed]  # moderation raised for these: left pending for a retry


class InvalidEvent(ValueError):
    """An event that can never be moderated as sent (wrong schema, not JSON, invalid item)."""


def encode_event(item: dict[str, Any], *, published_at: float | None = None) -> dict[str, str]:
    """The Redis fields of a content event (what a publisher XADDs)."""
    fields = {"schema": CONTENT_SCHEMA, "data": json.dumps(item, ensure_ascii=False)}
    if published_at is not None:
        fields["published_at"] = repr(published_at)
    return fields


def parse_event(fields: dict[bytes, bytes], moderator: ModeratorLike, *,
                default_surface: str) -> tuple[Content, float | None]:
    """(content, published_at) of one event; raises InvalidEvent with what is wrong."""
    schema = fields.get(b"schema")
    if schema != CONTENT_SCHEMA.encode():
        got = schema.decode("utf-8", "replace") if schema is not None else "none"
        raise InvalidEvent(f"field 'schema' must be {CONTENT_SCHEMA!r}; got {got!r}")
    raw = fields.get(b"data")
    if raw is None:
        raise InvalidEvent("missing field 'data' (the item as a JSON object)")
    try:
        obj = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise InvalidEvent(f"field 'data' is not valid UTF-8 (byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise InvalidEvent(f"field 'data' is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    if isinstance(obj, dict) and obj.get("id") in (None, ""):
        raise InvalidEvent("the item needs an 'id': decisions are deduplicated by content id and policy version")
    try:
        content = moderator.parse(obj, default_surface=default_surface)
    except InvalidItem as exc:
        raise InvalidEvent(str(exc)) from None
    published_at = None
    if (p := fields.get(b"published_at")) is not None:
        try:
            published_at = float(p)
        except ValueError:
            published_at = None
    return content, published_at


class WorkerMetrics:
    """Prometheus metrics of a worker (its own registry; served by `serve_metrics`)."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        self.events = Counter("warden_worker_events_total", "Events handled, by outcome", ["outcome"],
                              registry=self.registry)
        self.batches = Counter("warden_worker_batches_total", "Batches processed", registry=self.registry)
        self.batch_seconds = Histogram("warden_worker_batch_seconds", "Time to moderate and record one batch",
                                       registry=self.registry,
                                       buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
        self.decision_latency = Histogram(
            "warden_worker_publish_to_decision_seconds",
            "From the event's published_at to its decision being stored", registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 2.5, 5, 10, 30, 60))
        self.lag = Gauge("warden_worker_group_lag", "Events in the stream not yet delivered to the group",
                         registry=self.registry)
        self.pending = Gauge("warden_worker_group_pending", "Events delivered but not acknowledged",
                             registry=self.registry)


class StreamWorker:
    """One consumer of a consumer group. `run()` until `stop` is set (SIGTERM sets it)."""

    def __init__(self, *, redis: Any, moderator: ModeratorLike, recorder: RecorderLike,
                 config: StreamConfig | None = None, metrics: WorkerMetrics | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.redis = redis
        self.moderator = moderator
        self.recorder = recorder
        self.config = config or StreamConfig()
        self.metrics = metrics or WorkerMetrics()
        self.clock = clock
        self.totals = WorkerTotals()
        self._last_claim = 0.0
        self._claim_cursor = b"0-0"

    # -- setup -------------------------------------------------------------------------
    def ensure_group(self) -> None:
        """Create the consumer group (and the stream) if missing; start from the beginning so
        events published before the first worker started are not skipped."""
        from redis.exceptions import ResponseError

        try:
            self.redis.xgroup_create(self.config.input_stream, self.config.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    # -- main loop ---------------------------------------------------------------------
    def run(self, stop: threading.Event, *, max_events: int | None = None,
            idle_exit_s: float | None = None) -> WorkerTotals:
        """Process until `stop` is set; `max_events`/`idle_exit_s` bound test and benchmark runs.

        With `config.moderation_threads` >= 1, batches are moderated by that many threads and
        recorded, published and acknowledged by one more, in read order, each only after its
        own commit; this thread only reads. With 0, everything happens in this thread."""
        self.ensure_group()
        threads = self.config.moderation_threads
        pipeline = _Pipeline(self, threads) if threads > 0 else None
        idle_since = time.monotonic()
        read = 0
        try:
            while not stop.is_set():
                if pipeline is not None and pipeline.take_failure():
                    stop.wait(self.config.retry_backoff_s)
                    continue
                try:
                    n = self._step(pipeline)
                except Exception as exc:  # Redis or the database is down: wait, then retry; never die
                    log.error("batch failed: %s: %s", type(exc).__name__, str(exc)[:300])
                    self.metrics.events.labels("batch_error").inc()
                    stop.wait(self.config.retry_backoff_s)
                    continue
                read += n
                if n:
                    idle_since = time.monotonic()
                elif idle_exit_s is not None and time.monotonic() - idle_since >= idle_exit_s:
                    break
                if max_events is not None and read >= max_events:
                    break
        finally:
            if pipeline is not None:
                pipeline.close()  # finish and acknowledge the batches in flight
        return self.totals

    def _step(self, pipeline: _Pipeline | None) -> int:
        """Read one batch and handle it here, or hand it to `pipeline`."""
        if pipeline is None:
            return self.process_once().read
        claim = self._claim_due()
        if claim:
            # Our own batches in flight are pending too: let them finish so we never claim them.
            pipeline.drain()
        pipeline.reserve()  # blocks while the pipeline is full: events stay in Redis for other workers
        try:
            events, claimed = self._read(claim=claim)
        except BaseException:
            pipeline.unreserve()
            raise
        if not events:
            pipeline.unreserve()
            return 0
        pipeline.submit(events, claimed)
        return len(events)

    def process_once(self) -> BatchOutcome:
        """Claim stale events of dead workers (every `claim_every_s`), else read new ones; then
        moderate, record, publish and acknowledge them in this thread."""
        events, claimed = self._read(claim=self._claim_due())
        if not events:
            return BatchOutcome()
        outcome = self._finish(self._prepare(events, claimed))
        self.totals.add(outcome)
        return outcome

    def _claim_due(self) -> bool:
        return time.monotonic() - self._last_claim >= self.config.claim_every_s

    def _read(self, *, claim: bool) -> tuple[list[_Event], int]:
        """Stale events of dead workers when `claim` (and some are idle long enough), else new ones."""
        cfg = self.config
        events: list[_Event] = []
        claimed = 0
        if claim:
            self._last_claim = time.monotonic()
            events = self._claim_stale()
            claimed = len(events)
            self._update_gauges()
        if not events:
            resp = self.redis.xreadgroup(cfg.group, cfg.consumer, {cfg.input_stream: ">"}, count=cfg.batch_size,
                                         block=cfg.block_ms or None)
            for _stream, messages in resp or []:
                events.extend(_Event(mid, dict(f or {}), 1) for mid, f in messages)
        return events, claimed

    def _claim_stale(self) -> list[_Event]:
        cfg = self.config
        resp = self.redis.xautoclaim(cfg.input_stream, cfg.group, cfg.consumer, min_idle_time=cfg.claim_idle_ms,
                                     start_id=self._claim_cursor, count=cfg.batch_size)
        # redis-py: [next_cursor, [(id, fields), ...], deleted_ids]
        self._claim_cursor = resp[0] if resp and resp[0] else b"0-0"
        messages = [(mid, f) for mid, f in (resp[1] if resp else []) if f is not None]
        if not messages:
            return []
        deliveries = {p["message_id"]: int(p["times_delivered"]) for p in self.redis.xpending_range(
            cfg.input_stream, cfg.group, min=messages[0][0], max=messages[-1][0], count=len(messages) * 2,
            consumername=cfg.consumer)}
        return [_Event(mid, dict(f), deliveries.get(mid, cfg.max_deliveries)) for mid, f in messages]

    def _update_gauges(self) -> None:
        try:
            for g in self.redis.xinfo_groups(self.config.input_stream):
                if g.get("name") in (self.config.group, self.config.group.encode()):
                    if g.get("lag") is not None:
                        self.metrics.lag.set(int(g["lag"]))
                    self.metrics.pending.set(int(g.get("pending", 0)))
        except Exception as exc:  # metrics must never stop the worker
            log.debug("xinfo groups failed: %s", exc)

    # -- one batch ---------------------------------------------------------------------
    def _prepare(self, events: list[_Event], claimed: int) -> _Batch:
        """Parse (invalid events are dead letters) and moderate; nothing is written yet."""
        cfg = self.config
        started = time.perf_counter()
        parsed: list[_Parsed] = []
        dead: list[tuple[_Event, str]] = []
        for ev in events:
            if ev.deliveries > cfg.max_deliveries:
                dead.append((ev, f"delivered {ev.deliveries} times without success (max_deliveries "
                                 f"{cfg.max_deliveries}); last attempt by {cfg.consumer}"))
                continue
            try:
                content, published_at = parse_event(ev.fields, self.moderator, default_surface=cfg.default_surface)
            except InvalidEvent as exc:
                dead.append((ev, f"invalid event: {exc}"))
                continue
            parsed.append(_Parsed(ev, content, published_at))
        # Items with a duplicate id in one batch: keep the first, acknowledge the rest with it.
        seen: set[str] = set()
        unique = [p for p in parsed if not (p.content.id in seen or seen.add(p.content.id))]
        moderated, failed = self._moderate(unique)
        return _Batch(events, claimed, started, parsed, dead, moderated, failed)

    def _moderate(self, items: list[_Parsed]) -> tuple[list[tuple[_Parsed, Decision]], list[_Parsed]]:
        """The batch at once; when that fails, item by item, so one poisonous item cannot hold
        back the others (it stays pending and is retried, then dead-lettered)."""
        if not items:
            return [], []
        try:
            return list(zip(items, self.moderator.moderate_batch([p.content for p in items]), strict=True)), []
        except Exception as exc:
            if len(items) == 1:
                self._item_failed(items[0], exc)
                return [], items
            log.warning("moderating a batch of %d failed (%s); retrying item by item", len(items), type(exc).__name__)
        done: list[tuple[_Parsed, Decision]] = []
        failed: list[_Parsed] = []
        for p in items:
            try:
                done.extend(zip([p], self.moderator.moderate_batch([p.content]), strict=True))
            except Exception as exc:
                self._item_failed(p, exc)
                failed.append(p)
        return done, failed

    def _finish(self, batch: _Batch) -> BatchOutcome:
        """Record (one transaction), then publish the decisions and acknowledge, then metrics."""
        done, failed, stored = self._record_all(batch.moderated)
        failed = [*batch.failed, *failed]
        done_ids = {p.content.id for p, _ in done}
        ack = [p.event.message_id for p in batch.parsed if p.content.id in done_ids]
        self._publish_and_ack(done, ack, batch.dead)
        elapsed = time.perf_counter() - batch.started
        now = self.clock()
        for p, _ in done:
            if p.published_at is not None:
                self.metrics.decision_latency.observe(max(0.0, now - p.published_at))
        self.metrics.batches.inc()
        self.metrics.batch_seconds.observe(elapsed)
        self.metrics.events.labels("decided").inc(len(done))
        self.metrics.events.labels("dead_lettered").inc(len(batch.dead))
        self.metrics.events.labels("failed").inc(len(failed))
        return BatchOutcome(read=len(batch.events), decided=len(done), stored=stored, dead_lettered=len(batch.dead),
                            failed=len(failed), claimed=batch.claimed)

    def _record_all(self, items: list[tuple[_Parsed, Decision]]
                    ) -> tuple[list[tuple[_Parsed, Decision]], list[_Parsed], int]:
        """Record the batch; when that fails, item by item (as `_moderate`)."""
        if not items:
            return [], [], 0
        try:
            return items, [], self._record(items)
        except Exception as exc:
            if len(items) == 1:
                self._item_failed(items[0][0], exc)
                return [], [items[0][0]], 0
            log.warning("recording a batch of %d failed (%s); retrying item by item", len(items),
                        type(exc).__name__)
        done: list[tuple[_Parsed, Decision]] = []
        failed: list[_Parsed] = []
        stored = 0
        for item in items:
            try:
                stored += self._record([item])
                done.append(item)
            except Exception as exc:
                self._item_failed(item[0], exc)
                failed.append(item[0])
        return done, failed, stored

    def _record(self, items: list[tuple[_Parsed, Decision]]) -> int:
        result = self.recorder.record([p.content for p, _ in items], [d for _, d in items],
                                      actor=f"worker:{self.config.consumer}", event="moderate.stream",
                                      subject=self.config.input_stream,
                                      details={"first_message": items[0][0].event.message_id.decode()})
        return int(getattr(result, "stored", 0))

    @staticmethod
    def _item_failed(p: _Parsed, exc: Exception) -> None:
        log.warning("event %s failed: %s: %s", p.event.message_id.decode(), type(exc).__name__, str(exc)[:300])

    def _publish_and_ack(self, done: list[tuple[_Parsed, Decision]], ack: list[bytes],
                         dead: list[tuple[_Event, str]]) -> None:
        cfg = self.config
        if not (done or ack or dead):
            return
        pipe = self.redis.pipeline(transaction=True)
        for p, d in done:
            pipe.xadd(cfg.output_stream, {
                "schema": DECISION_SCHEMA, "decision_id": d.decision_id, "content_id": d.content_id,
                "action": d.action.value, "policy_version": d.policy_version, "source_message_id": p.event.message_id,
                "data": json.dumps(d.to_dict(), ensure_ascii=False)}, maxlen=cfg.output_maxlen, approximate=True)
        for ev, error in dead:
            pipe.xadd(cfg.dead_letter_stream, {
                **ev.fields, "dead_letter_schema": DEAD_LETTER_SCHEMA, "error": error[:2000],
                "source_stream": cfg.input_stream, "source_message_id": ev.message_id,
                "deliveries": str(ev.deliveries)})
        to_ack = [*ack, *(ev.message_id for ev, _ in dead)]
        if to_ack:
            pipe.xack(cfg.input_stream, cfg.group, *to_ack)
        pipe.execute()
        for ev, error in dead:
            log.warning("dead-lettered event %s: %s", ev.message_id.decode(), error[:200])


class _Pipeline:
    """Moderates batches in `moderation_threads` threads (1: in the caller's thread) and
    records, publishes and acknowledges them in one more thread, in the order they were read.

    A slot is reserved before each read and freed when that batch is acknowledged, so a worker
    holds at most `moderation_threads + 1` batches: the backpressure. Moderating two batches at
    once lets one batch's model inference (ONNX Runtime releases the GIL) overlap the other's
    Python work; the service already calls the moderator from concurrent threads."""

    def __init__(self, worker: StreamWorker, moderation_threads: int) -> None:
        self.worker = worker
        self._capacity = max(1, moderation_threads) + 1
        self._slots = threading.Semaphore(self._capacity)
        self._pool = (ThreadPoolExecutor(moderation_threads, thread_name_prefix="warden-moderate")
                      if moderation_threads > 1 else None)
        self._queue: queue.SimpleQueue[Future[_Batch] | None] = queue.SimpleQueue()
        self._failed = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="warden-record", daemon=True)
        self._thread.start()

    def reserve(self) -> None:
        self._slots.acquire()

    def unreserve(self) -> None:
        self._slots.release()

    def submit(self, events: list[_Event], claimed: int) -> None:
        """Hand over a batch read with a reserved slot."""
        if self._pool is not None:
            future = self._pool.submit(self.worker._prepare, events, claimed)
        else:
            future = Future()
            try:
                future.set_result(self.worker._prepare(events, claimed))
            except Exception as exc:
                future.set_exception(exc)
        self._queue.put(future)

    def drain(self) -> None:
        """Wait until every batch handed over is acknowledged (or failed)."""
        for _ in range(self._capacity):
            self._slots.acquire()
        for _ in range(self._capacity):
            self._slots.release()

    def take_failure(self) -> bool:
        """Whether a batch failed since the last call (the caller backs off)."""
        if self._failed.is_set():
            self._failed.clear()
            return True
        return False

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def _loop(self) -> None:
        w = self.worker
        while (future := self._queue.get()) is not None:
            try:
                w.totals.add(w._finish(future.result()))
            except Exception as exc:  # Redis or the database is down: the events stay pending
                log.error("batch failed: %s: %s", type(exc).__name__, str(exc)[:300])
                w.metrics.events.labels("batch_error").inc()
                self._failed.set()
            finally:
                self._slots.release()


def serve_metrics(metrics: WorkerMetrics, *, host: str, port: int) -> Any:
    """Serve the worker's metrics on http://host:port/metrics (a daemon thread)."""
    from prometheus_client import start_http_server

    server, _thread = start_http_server(port, addr=host, registry=metrics.registry)
    return server
