"""The stream worker against the real Redis (127.0.0.1:6379) and a real SQLite store."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from stream_support import REDIS_URL, unique_streams

from warden.moderator import Moderator
from warden.pipelines.record import DecisionRecorder
from warden.pipelines.stream import (
    CONTENT_SCHEMA,
    DECISION_SCHEMA,
    StreamConfig,
    StreamWorker,
    encode_event,
)
from warden.store import Store

ROOT = Path(__file__).resolve().parents[2]
BANKS_POLICY = ROOT / "benchmarks" / "policies" / "banks.yaml"
TEXTS = ["have a nice day", "I will kill you", "buy cheap viagra now", "k i l l yourself", "hello there"]

pytestmark = pytest.mark.redis


@pytest.fixture
def redis_streams():
    yield from unique_streams()


@pytest.fixture(scope="module")
def moderator() -> Moderator:
    return Moderator.from_file(BANKS_POLICY)


@pytest.fixture
def store(tmp_path: Path):
    s = Store.from_url(f"sqlite:///{tmp_path / 'worker.db'}")
    s.upgrade()
    yield s
    s.close()


def _config(streams, **kw) -> StreamConfig:
    return StreamConfig(input_stream=streams.input, output_stream=streams.output, dead_letter_stream=streams.dead,
                        group=streams.group, block_ms=50, **kw)


def _publish(client, streams, n: int, *, start: int = 0, actor: bool = True) -> None:
    pipe = client.pipeline(transaction=False)
    for i in range(start, start + n):
        item = {"id": f"c{i}", "text": TEXTS[i % len(TEXTS)], **({"actor_id": f"user{i % 7}"} if actor else {})}
        pipe.xadd(streams.input, encode_event(item, published_at=time.time()))
    pipe.execute()


def _pending(client, streams) -> int:
    return int(client.xpending(streams.input, streams.group)["pending"])


@pytest.mark.parametrize("threads", [0, 2])  # 0: one thread; 2: moderation threads + a recording thread
def test_events_are_moderated_stored_published_and_acknowledged(redis_streams, moderator, store, threads) -> None:
    client, streams = redis_streams
    _publish(client, streams, 120)
    bad = [
        {"schema": "something.else", "data": "{}"},
        {"schema": CONTENT_SCHEMA, "data": "not json"},
        {"schema": CONTENT_SCHEMA, "data": b"\xff\xfe"},
        {"schema": CONTENT_SCHEMA, "data": json.dumps({"text": "no id"})},
        {"schema": CONTENT_SCHEMA, "data": json.dumps({"id": "x", "text": 5})},
        {"schema": CONTENT_SCHEMA},
    ]
    for fields in bad:
        client.xadd(streams.input, fields)
    worker = StreamWorker(redis=client, moderator=moderator, recorder=DecisionRecorder(store, moderator.policy),
                          config=_config(streams, batch_size=32, moderation_threads=threads))
    totals = worker.run(threading.Event(), idle_exit_s=0.3)

    assert totals.read == 126 and totals.decided == 120 and totals.dead_lettered == 6 and totals.failed == 0
    assert store.count_decisions() == 120
    assert _pending(client, streams) == 0
    out = client.xrange(streams.output)
    assert len(out) == 120 and {f[b"schema"] for _, f in out} == {DECISION_SCHEMA.encode()}
    first = json.loads(out[0][1][b"data"])
    assert first["id"] == "c0" and first["policy_version"] == moderator.policy.version
    dead = client.xrange(streams.dead)
    errors = [f[b"error"].decode() for _, f in dead]
    assert len(dead) == 6
    assert "must be 'warden.content.v1'" in errors[0]
    assert "not JSON" in errors[1] and "not valid UTF-8" in errors[2] and "needs an 'id'" in errors[3]
    assert "'text' must be a string" in errors[4] and "missing field 'data'" in errors[5]
    assert all(f[b"source_stream"] == streams.input.encode() for _, f in dead)
    flagged = [json.loads(f[b"data"]) for _, f in out if json.loads(f[b"data"])["action"] != "allow"]
    assert flagged, "the banks policy removes some of these texts"
    # at most one content action per decision, with an outbox row for each non-allow decision
    with store.engine.connect() as conn:
        from sqlalchemy import text

        rows = conn.execute(text("SELECT decision_id, COUNT(*) FROM enforcement_actions "
                                 "WHERE kind = 'content_action' GROUP BY decision_id")).all()
    assert len(rows) == len(flagged) and all(n == 1 for _, n in rows)


def test_redelivery_after_a_crash_stores_nothing_twice(redis_streams, moderator, store) -> None:
    client, streams = redis_streams
    _publish(client, streams, 40)
    recorder = DecisionRecorder(store, moderator.policy)
    # A worker that records and then dies before acknowledging (the crash window of at-least-once).
    crashing = StreamWorker(redis=client, moderator=moderator, recorder=recorder,
                            config=_config(streams, consumer="doomed", batch_size=40))
    crashing.ensure_group()
    crashing._publish_and_ack = lambda *a, **k: (_ for _ in ()).throw(ConnectionError("killed"))  # type: ignore
    with pytest.raises(ConnectionError):
        crashing.process_once()
    assert store.count_decisions() == 40 and _pending(client, streams) == 40
    # Another worker claims the idle events and processes them again: same decisions, stored once.
    rescuer = StreamWorker(redis=client, moderator=moderator, recorder=recorder,
                           config=_config(streams, consumer="rescuer", claim_idle_ms=0, claim_every_s=0))
    totals = rescuer.run(threading.Event(), idle_exit_s=0.3)
    assert totals.claimed == 40 and totals.decided == 40 and totals.stored == 0
    assert store.count_decisions() == 40 and _pending(client, streams) == 0
    assert len(client.xrange(streams.output)) == 40  # published once: the crash came before publishing


class _PoisonRecorder:
    """Fails every batch that contains content id 'c3' (e.g. a row the database rejects)."""

    def __init__(self, inner: DecisionRecorder) -> None:
        self.inner = inner
        self.calls = 0

    def record(self, contents, decisions, **kw):
        self.calls += 1
        if any(c.id == "c3" for c in contents):
            raise RuntimeError("constraint violation on c3")
        return self.inner.record(contents, decisions, **kw)


def test_a_poison_event_is_retried_then_dead_lettered_without_blocking_others(redis_streams, moderator,
                                                                              store) -> None:
    client, streams = redis_streams
    _publish(client, streams, 10)
    worker = StreamWorker(redis=client, moderator=moderator,
                          recorder=_PoisonRecorder(DecisionRecorder(store, moderator.policy)),
                          config=_config(streams, claim_idle_ms=0, claim_every_s=0, max_deliveries=3))
    totals = worker.run(threading.Event(), idle_exit_s=0.3)
    assert store.count_decisions() == 9
    assert totals.dead_lettered == 1 and _pending(client, streams) == 0
    (_, dead), = client.xrange(streams.dead)
    assert json.loads(dead[b"data"])["id"] == "c3" and b"max_deliveries 3" in dead[b"error"]
    assert int(dead[b"deliveries"]) == 4


def test_warden_worker_exits_cleanly_on_sigterm(redis_streams, tmp_path: Path) -> None:
    client, streams = redis_streams
    _publish(client, streams, 300)
    db = tmp_path / "w.db"
    cmd = [str(Path(sys.executable).parent / "warden"), "worker", "--policy", str(BANKS_POLICY),
           "--database-url", f"sqlite:///{db}", "--redis-url", REDIS_URL, "--input-stream", streams.input,
           "--output-stream", streams.output, "--dead-letter-stream", streams.dead, "--group", streams.group,
           "--batch-size", "50", "--block-ms", "100"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env={**os.environ, "WARDEN_WEBHOOK_URL": ""})
    deadline = time.time() + 60
    while time.time() < deadline and len(client.xrange(streams.output)) < 300:
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "300 events read" in err and "stopped" in err
    assert _pending(client, streams) == 0
    s = Store.from_url(f"sqlite:///{db}")
    assert s.count_decisions() == 300
    s.close()


class _OrderRecorder:
    """Records which content ids each `record` call got, and checks none of them is
    acknowledged before its own commit."""

    def __init__(self, inner: DecisionRecorder, client, streams) -> None:
        self.inner, self.client, self.streams = inner, client, streams
        self.message_of = {json.loads(f[b"data"])["id"]: mid for mid, f in client.xrange(streams.input)}
        self.batches: list[list[str]] = []
        self.acked_early = 0

    def record(self, contents, decisions, **kw):
        result = self.inner.record(contents, decisions, **kw)  # committed here
        pending = {p["message_id"] for p in self.client.xpending_range(
            self.streams.input, self.streams.group, min="-", max="+", count=10_000)}
        self.acked_early += sum(self.message_of[c.id] not in pending for c in contents)
        self.batches.append([c.id for c in contents])
        return result


class _UnevenModerator:
    """Moderates every other batch slowly, so concurrent batches finish out of read order."""

    def __init__(self, inner: Moderator) -> None:
        self.inner, self.policy, self.calls = inner, inner.policy, 0
        self._lock = threading.Lock()

    def parse(self, obj, **kw):
        return self.inner.parse(obj, **kw)

    def moderate_batch(self, items):
        with self._lock:
            self.calls += 1
            slow = self.calls % 2 == 1
        if slow:
            time.sleep(0.05)
        return self.inner.moderate_batch(items)


def test_pipelined_batches_are_recorded_in_read_order(redis_streams, moderator, store) -> None:
    client, streams = redis_streams
    _publish(client, streams, 200)
    recorder = _OrderRecorder(DecisionRecorder(store, moderator.policy), client, streams)
    worker = StreamWorker(redis=client, moderator=_UnevenModerator(moderator), recorder=recorder,
                          config=_config(streams, batch_size=10, moderation_threads=3))
    totals = worker.run(threading.Event(), idle_exit_s=0.3)
    assert totals.decided == 200 and totals.failed == 0 and _pending(client, streams) == 0
    order = [int(cid[1:]) for batch in recorder.batches for cid in batch]
    assert order == list(range(200)), "batches recorded out of read order"
    assert recorder.acked_early == 0
    assert [json.loads(f[b"data"])["id"] for _, f in client.xrange(streams.output)] == [f"c{i}" for i in range(200)]


def test_stop_mid_stream_finishes_and_acknowledges_the_batches_in_flight(redis_streams, moderator, store) -> None:
    client, streams = redis_streams
    _publish(client, streams, 2_000)
    worker = StreamWorker(redis=client, moderator=_UnevenModerator(moderator),
                          recorder=DecisionRecorder(store, moderator.policy),
                          config=_config(streams, batch_size=20, moderation_threads=2))
    stop = threading.Event()
    stopper = threading.Timer(0.3, stop.set)
    stopper.start()
    totals = worker.run(stop)
    stopper.join()
    assert 0 < totals.read < 2_000, "the stop should come mid-stream"
    assert totals.decided == totals.read and _pending(client, streams) == 0
    assert store.count_decisions() == totals.read == len(client.xrange(streams.output))


class _PoisonModerator(_UnevenModerator):
    """Raises for any batch holding content id 'c3' (a detector crashing on one input)."""

    def moderate_batch(self, items):
        if any(c.id == "c3" for c in items):
            raise RuntimeError("detector crashed on c3")
        return self.inner.moderate_batch(items)


def test_an_item_that_crashes_moderation_is_retried_then_dead_lettered(redis_streams, moderator, store) -> None:
    client, streams = redis_streams
    _publish(client, streams, 10)
    worker = StreamWorker(redis=client, moderator=_PoisonModerator(moderator),
                          recorder=DecisionRecorder(store, moderator.policy),
                          config=_config(streams, claim_idle_ms=0, claim_every_s=0, max_deliveries=2))
    totals = worker.run(threading.Event(), idle_exit_s=0.3)
    assert store.count_decisions() == 9 and totals.dead_lettered == 1 and _pending(client, streams) == 0
    (_, dead), = client.xrange(streams.dead)
    assert json.loads(dead[b"data"])["id"] == "c3" and b"max_deliveries 2" in dead[b"error"]
