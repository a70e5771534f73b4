"""Where one stream worker's CPU goes, per event: parse, each cascade tier, decide, recording
(decisions, review routing, enforcement outbox, audit, commit) and Redis (read, publish + ack).

Runs the real `StreamWorker` in this process (the same objects `warden worker` builds) on the
real Redis and a fresh PostgreSQL database, over `--events` short real texts staged in a new
stream. Each phase is timed by wrapping the method that does it, in CPU seconds of the calling
thread (`time.thread_time`) and wall seconds; the process's CPU seconds (`time.process_time`,
every thread) give the total. `--serial` runs the worker in one thread (`moderation_threads=0`:
the cleanest split); by default it runs as `warden worker` does (moderation and recording
threads). With `--cprofile FILE` the run is also profiled (pstats; the calling thread only).

    .venv/bin/python benchmarks/stream_cpu_split.py --events 10000
    .venv/bin/python benchmarks/stream_cpu_split.py --quick          # smoke run, banks policy

Writes benchmarks/results/stream_cpu_split[_<tag>].json.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C
import _services as S


class _Timers:
    """Accumulates (thread CPU s, wall s, calls) per phase; nested phases are subtracted from
    their parent so the phases add up."""

    def __init__(self) -> None:
        self.cpu: dict[str, float] = defaultdict(float)
        self.wall: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self.items: dict[str, int] = defaultdict(int)  # items per detector
        self._local = threading.local()

    def wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            stack = getattr(self._local, "stack", None)
            if stack is None:
                stack = self._local.stack = []
            stack.append([0.0, 0.0])  # children's cpu, wall
            c0, w0 = time.thread_time(), time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                dc, dw = time.thread_time() - c0, time.perf_counter() - w0
                child_c, child_w = stack.pop()
                self.cpu[name] += dc - child_c
                self.wall[name] += dw - child_w
                self.calls[name] += 1
                if stack:
                    stack[-1][0] += dc
                    stack[-1][1] += dw

        return timed

    def observe(self, name: str, wall: float) -> None:
        self.wall[name] += wall


def _counting(t: _Timers, inst: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    def detect(batch: Any) -> Any:
        t.items[inst] += len(batch)
        return fn(batch)

    return detect


def _instrument(worker: Any, recorder: Any, moderator: Any, timers: _Timers) -> None:
    import warden.pipelines.stream as stream_mod

    t = timers
    stream_mod.parse_event = t.wrap("parse", stream_mod.parse_event)
    worker.redis.xreadgroup = t.wrap("redis.read", worker.redis.xreadgroup)
    worker._publish_and_ack = t.wrap("redis.publish+ack", worker._publish_and_ack)
    for name in ("_prepare", "_finish", "_handle"):  # _handle: the worker before the recording thread
        if hasattr(worker, name):
            setattr(worker, name, t.wrap("other (batch bookkeeping, metrics)", getattr(worker, name)))
    moderator.moderate_batch = t.wrap("decide + cascade glue", moderator.moderate_batch)
    for inst, det in moderator.detectors.items():
        det.detect = t.wrap(f"tier.{inst}", _counting(t, inst, det.detect))
    recorder.record = t.wrap("record.transaction (begin, commit, glue)", recorder.record)
    store = recorder.store
    store.save_new_decisions = t.wrap("record.decisions", store.save_new_decisions)
    if recorder.review is not None:
        recorder.review.enqueue_decisions = t.wrap("record.review", recorder.review.enqueue_decisions)
    if recorder.enforcement is not None:
        recorder.enforcement.record_decision = t.wrap("record.outbox+strikes", recorder.enforcement.record_decision)
        if hasattr(recorder.enforcement, "record_decisions"):
            recorder.enforcement.record_decisions = t.wrap("record.outbox+strikes",
                                                           recorder.enforcement.record_decisions)
    store.append_audit = t.wrap("record.audit", store.append_audit)


def run(args: argparse.Namespace) -> dict[str, Any]:
    from warden.cli.worker import DEFAULT_REDIS_URL  # noqa: F401  (same defaults as the CLI)
    from warden.moderator import Moderator
    from warden.pipelines.record import DecisionRecorder
    from warden.pipelines.stream import StreamConfig, StreamWorker, WorkerTotals, encode_event
    from warden.store import Store

    rows, prov = C.short_text_sample(min(args.events, 20_000), seed=args.seed)
    client = S.redis_client(args.redis_url)
    names = S.stream_names("split")
    load_before = [round(x, 2) for x in os.getloadavg()]
    with S.fresh_database(args.postgres_url, prefix="warden_bench_split") as db_url:
        S.migrate(db_url, S.service_env())
        moderator = Moderator.from_file(args.policy)
        store = Store.from_url(db_url)
        recorder = DecisionRecorder(store, moderator.policy)
        extra: dict[str, Any] = {"moderation_threads": 0} if args.serial else {}
        if args.moderation_threads is not None:
            extra["moderation_threads"] = args.moderation_threads
        config = StreamConfig(input_stream=names.input, group=names.group, output_stream=names.output,
                              dead_letter_stream=names.dead, batch_size=args.batch_size, block_ms=200,
                              consumer="split-1", **extra)
        worker = StreamWorker(redis=client, moderator=moderator, recorder=recorder, config=config)
        # Warm-up (first-call costs: SQL compilation caches, ORT arenas), not counted.
        S.check_postgres(args.postgres_url)
        worker.ensure_group()
        warm = [encode_event({"id": f"warm{i}", "text": rows[i % len(rows)]["text"]}) for i in range(300)]
        S.delete_streams(client, names)
        client.xgroup_create(names.input, names.group, id="$", mkstream=True)
        pipe = client.pipeline(transaction=False)
        for f in warm:
            pipe.xadd(names.input, f)
        pipe.execute()
        stop = threading.Event()
        worker.run(stop, max_events=len(warm), idle_exit_s=2.0)
        worker.totals = WorkerTotals()

        timers = _Timers()
        _instrument(worker, recorder, moderator, timers)
        fields = [encode_event({"id": f"ev{i}", "text": rows[i % len(rows)]["text"]}) for i in range(args.events)]
        for i in range(0, len(fields), 2000):
            pipe = client.pipeline(transaction=False)
            for f in fields[i:i + 2000]:
                pipe.xadd(names.input, f)
            pipe.execute()
        profiler = None
        if args.cprofile:
            import cProfile

            profiler = cProfile.Profile()
            profiler.enable()
        cpu0, wall0 = time.process_time(), time.perf_counter()
        totals = worker.run(stop, max_events=args.events, idle_exit_s=2.0)
        wall = time.perf_counter() - wall0 - 0.0
        cpu = time.process_time() - cpu0
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(args.cprofile)
        stored = int(S.scalar(store.engine, "SELECT COUNT(*) FROM decisions WHERE content_id LIKE 'ev%'"))
        outbox = int(S.scalar(store.engine, "SELECT COUNT(*) FROM enforcement_actions"))
        tasks = int(S.scalar(store.engine, "SELECT COUNT(*) FROM review_tasks"))
        store.close()
    S.delete_streams(client, names)
    client.close()
    n = totals.read
    phases = {k: {"cpu_ms_per_event": round(timers.cpu[k] / n * 1000, 4),
                  "wall_ms_per_event": round(timers.wall[k] / n * 1000, 4), "calls": timers.calls[k]}
              for k in sorted(timers.cpu, key=lambda k: -timers.cpu[k])}
    accounted = sum(timers.cpu.values())
    return {
        "events": n, "stored": stored, "outbox_rows": outbox, "review_tasks": tasks,
        "batches": totals.batches, "batch_size": args.batch_size, "items_per_detector": dict(timers.items),
        "wall_s": round(wall, 3), "events_per_s_wall": round(n / wall, 1),
        "process_cpu_s": round(cpu, 3), "process_cpu_ms_per_event": round(cpu / n * 1000, 4),
        "pipeline": getattr(config, "moderation_threads", 0) > 0,
        "moderation_threads": getattr(config, "moderation_threads", 0),
        "switch_interval_s": sys.getswitchinterval(),
        "unaccounted_cpu_ms_per_event": round((cpu - accounted) / n * 1000, 4),
        "phases": phases, "texts": prov,
        "loadavg_before": load_before, "loadavg_after": [round(x, 2) for x in os.getloadavg()],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=10_000)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--seed", type=int, default=2)
    ap.add_argument("--policy", type=Path, default=None)
    ap.add_argument("--postgres-url", default=S.PG_ADMIN_URL)
    ap.add_argument("--redis-url", default=S.REDIS_URL)
    ap.add_argument("--cprofile", default=None, help="also write a cProfile dump here")
    ap.add_argument("--serial", action="store_true",
                    help="StreamConfig(moderation_threads=0): read, moderate and record in one thread")
    ap.add_argument("--moderation-threads", type=int, default=None, help="StreamConfig.moderation_threads")
    ap.add_argument("--switch-interval", type=float, default=None, help="sys.setswitchinterval (s) for the run")
    ap.add_argument("--tag", default=None)
    ap.add_argument("--quick", action="store_true", help="smoke run: 500 events")
    args = ap.parse_args(argv)
    if args.quick:
        args.events = 500
    if not 100 <= args.events <= 200_000:
        ap.error("--events must be in [100, 200000]")
    if args.policy is None:
        args.policy = C.DEFAULT_POLICY if (C.model_available() or not args.quick) else C.POLICIES / "banks.yaml"
    args.policy = args.policy.resolve()
    S.check_postgres(args.postgres_url)
    if args.switch_interval is not None:
        sys.setswitchinterval(args.switch_interval)
    res = run(args)
    payload = {"benchmark": "stream_cpu_split", "quick": args.quick, "machine": C.machine_info(),
               "model": C.model_fingerprint(), "policy": C.rel(args.policy), **res}
    path = C.write_result("stream_cpu_split" + (f"_{args.tag}" if args.tag else ""), payload, quick=args.quick)
    print(render(payload))
    print(f"\nwritten {C.rel(path)}")
    return 0


def render(res: dict[str, Any]) -> str:
    mode = f"pipelined, {res['moderation_threads']} moderation threads" if res["pipeline"] else "one thread"
    out = [f"{res['events']:,} events in batches of {res['batch_size']} ({res['batches']} batches), policy "
           f"`{res['policy']}`, {mode}: "
           f"{res['events_per_s_wall']:,} events/s; process CPU {res['process_cpu_ms_per_event']} ms/event; "
           f"items per detector {res['items_per_detector']}; {res['outbox_rows']:,} outbox rows, "
           f"{res['review_tasks']:,} review tasks; load "
           f"{res['loadavg_before'][0]} -> {res['loadavg_after'][0]}.", "",
           "| phase | CPU ms/event (its thread) | wall ms/event | calls |", "| --- | --- | --- | --- |"]
    for k, v in res["phases"].items():
        out.append(f"| {k} | {v['cpu_ms_per_event']} | {v['wall_ms_per_event']} | {v['calls']:,} |")
    out.append(f"| not in any phase (process CPU minus the above) | {res['unaccounted_cpu_ms_per_event']} | | |")
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main())
