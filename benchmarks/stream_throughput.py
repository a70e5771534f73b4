"""Stream worker throughput (1 and 2 `warden worker` processes) and publish-to-decision latency
at a fixed event rate, on the real Redis and PostgreSQL, with the default policy.

**Throughput** (`--events N`, default 20,000 short real texts): for 1 worker, then 2, on a
fresh PostgreSQL database each (migrated with `warden db upgrade` first) and new streams:

1. the same N events are staged in the input stream while the consumer group points past
   them, so nothing is deliverable yet;
2. the workers are started and the script waits until every one is reading (its Redis
   connection's last command is `XREADGROUP`, from CLIENT LIST: models loaded, blocked);
3. the events are released at once (`XGROUP SETID ... 0`, then the last event is added,
   which wakes the blocked readers);
4. events/s = N / (last decision stored - first event consumed). "First event consumed" is
   polled from the group (pending > 0) every 2 ms; "last decision stored" is the later of
   the last `decisions.created_at` and the last decision event's Redis time (decision
   events are published only after the decision's transaction committed).

Also reported: start-up (launch to all workers reading), the wall time including start-up,
whole-machine busy cores during the run (/proc/stat: workers, PostgreSQL, Redis and this
script) and each worker's CPU seconds. Consistency is checked: one decision per event,
nothing pending, nothing dead-lettered. The scaling ratio is events/s(2) / events/s(1).

**Latency** (`--rate R --duration D`, open loop): 200 warm-up events, then event i is
published at t0 + i / R (pipelined in ticks of <= 5 ms) with `published_at` = the time of its
`XADD`, whether or not the workers keep up. Latency per event = its stored decision's
`created_at` - `published_at` (primary; set in the worker just before the INSERT of the
batch's transaction), and decision-event time - `published_at` (after the commit, ms
resolution). Events still unstored at the deadline count as infinitely late in the
percentiles. The workers' `warden_worker_publish_to_decision_seconds` histograms (scraped
via `--metrics-port`) give the exact share within 200 ms as a cross-check. The group's lag
is sampled every second (a growing lag = the rate is not sustainable). When a worker count's
measured throughput is below R, a second run at 80% of that throughput shows the latency at
a sustainable rate.

Bounded: `--events` <= 200,000, `--rate x --duration` <= 200,000 events, deadlines on every
wait. Writes benchmarks/results/stream_throughput.json.

    .venv/bin/python benchmarks/stream_throughput.py                 # 20,000 events; 1000/s for 30 s
    .venv/bin/python benchmarks/stream_throughput.py --quick         # smoke run, ~1 min
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C
import _services as S
from api_latency import free_port

TARGET_EVENTS_PER_S = 1000.0
TARGET_P99_MS = 200.0
WARMUP_EVENTS = 200
HIST = "warden_worker_publish_to_decision_seconds"


def _fields(rows: list[dict[str, Any]], prefix: str, n: int, *, published_at: float | None = None) -> list[dict]:
    from warden.pipelines.stream import encode_event

    return [encode_event({"id": f"{prefix}{i}", "text": rows[i % len(rows)]["text"]}, published_at=published_at)
            for i in range(n)]


def _publish(client: Any, stream: str, fields: list[dict], chunk: int = 2000) -> None:
    for i in range(0, len(fields), chunk):
        pipe = client.pipeline(transaction=False)
        for f in fields[i:i + chunk]:
            pipe.xadd(stream, f)
        pipe.execute()


def _percentiles_ms(lat: list[float], missing: int) -> dict[str, float | None]:
    """p50/p90/p99/max in ms; `missing` events count as infinitely late (None if a percentile lands there)."""
    xs = sorted(lat) + [math.inf] * missing
    if not xs:
        return {"p50": None, "p90": None, "p99": None, "max": None, "mean": None}

    def q(p: float) -> float | None:
        v = C.percentile(xs, p)
        return None if math.isinf(v) or math.isnan(v) else round(v * 1000, 1)

    return {"p50": q(50), "p90": q(90), "p99": q(99), "max": None if missing else round(xs[-1] * 1000, 1),
            "mean": round(statistics.fmean(lat) * 1000, 1) if lat and not missing else None}


class _Run:
    """One set of workers on a fresh database and new streams (a context manager)."""

    def __init__(self, *, workers: int, policy: Path, admin_url: str, redis_url: str, td: Path, kind: str,
                 metrics: bool, batch_size: int = 256, worker_args: tuple[str, ...] = ()) -> None:
        self.n_workers, self.policy, self.admin_url, self.redis_url = workers, policy, admin_url, redis_url
        self.td, self.kind, self.metrics = td, kind, metrics
        self.batch_size, self.worker_args = batch_size, worker_args
        self.client = S.redis_client(redis_url)
        self.names = S.stream_names(kind)
        self.env = S.service_env()
        self.procs: list[Any] = []
        self.logs: list[Path] = []
        self.ports: list[int | None] = []
        self._db = None

    def __enter__(self) -> _Run:
        from sqlalchemy import create_engine

        self._db = S.fresh_database(self.admin_url, prefix=f"warden_bench_{self.kind}")
        self.db_url = self._db.__enter__()
        try:
            S.migrate(self.db_url, self.env)
        except BaseException:
            self._db.__exit__(None, None, None)
            raise
        self.engine = create_engine(self.db_url)
        return self

    def start(self) -> float:
        self.t_launch = time.time()
        consumers = [f"worker-{i + 1}" for i in range(self.n_workers)]
        for c in consumers:
            log = self.td / f"{self.kind}-{self.n_workers}-{c}.log"
            port = free_port() if self.metrics else None
            self.procs.append(S.start_worker(db_url=self.db_url, redis_url=self.redis_url, names=self.names,
                                             consumer=c, policy=self.policy, log_path=log, env=self.env,
                                             metrics_port=port, batch_size=self.batch_size,
                                             extra_args=self.worker_args))
            self.logs.append(log)
            self.ports.append(port)
        self.startup_s = S.wait_reading(self.client, self.procs, self.logs, timeout=180)
        time.sleep(0.5)  # let every worker reach its blocking XREADGROUP
        return self.startup_s

    def stored(self) -> int:
        return int(S.scalar(self.engine, "SELECT COUNT(*) FROM decisions"))

    def wait_stored(self, n: int, deadline: float) -> int:
        while True:
            got = self.stored()
            if got >= n or time.time() >= deadline:
                return got
            for p, log in zip(self.procs, self.logs, strict=True):
                if p.poll() is not None:
                    raise RuntimeError(f"a worker died: {log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.25)

    def wait_acked(self, deadline: float) -> None:
        """Until nothing is undelivered or pending: every decision event is published (the
        worker publishes and acknowledges in one MULTI/EXEC, after the commit)."""
        while time.time() < deadline:
            st = S.group_state(self.client, self.names)
            if st["lag"] == 0 and st["pending"] == 0:
                return
            time.sleep(0.05)

    def stop(self) -> dict[str, Any]:
        cpu = [S.proc_cpu_seconds(p.pid) for p in self.procs]
        codes = [S.stop(p) for p in self.procs]
        totals = [S.worker_totals(log) for log in self.logs]
        errors = [S.count_lines(log, ("batch failed", "QueuePool limit", "Traceback")) for log in self.logs]
        return {"exit_codes": codes, "worker_cpu_s": [None if c is None else round(c, 2) for c in cpu],
                "worker_totals": totals, "worker_log_errors": errors}

    def __exit__(self, *exc: object) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        try:
            self.engine.dispose()
            S.delete_streams(self.client, self.names)
            self.client.close()
        finally:
            self._db.__exit__(None, None, None)


def _worker_args(args: argparse.Namespace) -> tuple[str, ...]:
    return () if args.moderation_threads is None else ("--moderation-threads", str(args.moderation_threads))


def consistency(run: _Run, ids_prefix: str, expected: int) -> dict[str, Any]:
    eng = run.engine
    like = ids_prefix + "%"
    state = S.group_state(run.client, run.names)
    return {
        "decisions": int(S.scalar(eng, "SELECT COUNT(*) FROM decisions WHERE content_id LIKE :p", p=like)),
        "distinct_content_ids": int(S.scalar(eng, "SELECT COUNT(DISTINCT content_id) FROM decisions "
                                                  "WHERE content_id LIKE :p", p=like)),
        "expected": expected,
        "pending": state["pending"],
        "dead_lettered": int(run.client.xlen(run.names.dead)),
        "ok": None,  # filled below
    }


def throughput_run(*, workers: int, rows: list[dict[str, Any]], n: int, policy: Path, args: argparse.Namespace,
                   td: Path) -> dict[str, Any]:
    load_before = [round(x, 2) for x in os.getloadavg()]
    with _Run(workers=workers, policy=policy, admin_url=args.postgres_url, redis_url=args.redis_url, td=td,
              kind="tput", metrics=False, batch_size=args.batch_size, worker_args=_worker_args(args)) as run:
        client, names = run.client, run.names
        fields = _fields(rows, "ev", n)
        _publish(client, names.input, fields[:-1])
        client.xgroup_create(names.input, names.group, id="$", mkstream=True)  # nothing deliverable yet
        startup = run.start()
        cpu0 = S.CpuSnapshot.take()
        t_release = time.time()
        client.xgroup_setid(names.input, names.group, id="0", entries_read=0)
        client.xadd(names.input, fields[-1])  # wakes the blocked readers
        t_first = None
        while time.time() - t_release < 5:
            if S.group_state(client, names)["pending"] > 0 or run.stored() > 0:
                t_first = time.time()
                break
            time.sleep(0.002)
        got = run.wait_stored(n, deadline=t_release + max(120.0, n / 50))
        run.wait_acked(time.time() + 10)
        cpu1 = S.CpuSnapshot.take()
        last_created = S.scalar(run.engine, "SELECT MAX(created_at) FROM decisions")
        first_created = S.scalar(run.engine, "SELECT MIN(created_at) FROM decisions")
        last_event = client.xrevrange(names.output, count=1)
        t_last = max(last_created.timestamp(), S.stream_id_seconds(last_event[0][0]) if last_event else 0.0)
        check = consistency(run, "ev", n)
        stopped = run.stop()
    check["ok"] = (got == n and check["decisions"] == n and check["distinct_content_ids"] == n
                   and check["pending"] == 0 and check["dead_lettered"] == 0)
    t_first = t_first or t_release
    window = t_last - t_first
    return {
        "workers": workers, "events": n, "stored": got,
        "events_per_s": round(n / window, 1) if window > 0 else None,
        "window_s": round(window, 3),
        "release_to_first_consumed_ms": round((t_first - t_release) * 1000, 1),
        "release_to_first_stored_ms": round((first_created.timestamp() - t_release) * 1000, 1),
        "startup_s": round(startup, 2),
        "wall_incl_startup_s": round(startup + (t_last - t_release), 2),
        "events_per_s_incl_startup": round(n / (startup + t_last - t_release), 1),
        "machine_busy_cores": cpu1.cores_busy_since(cpu0),
        **stopped,
        "consistency": check,
        "loadavg_before": load_before, "loadavg_after": [round(x, 2) for x in os.getloadavg()],
    }


def latency_run(*, workers: int, rate: float, duration: float, rows: list[dict[str, Any]], policy: Path,
                args: argparse.Namespace, td: Path) -> dict[str, Any]:
    from warden.pipelines.stream import encode_event

    n = round(rate * duration)
    load_before = [round(x, 2) for x in os.getloadavg()]
    with _Run(workers=workers, policy=policy, admin_url=args.postgres_url, redis_url=args.redis_url, td=td,
              kind="lat", metrics=True, batch_size=args.batch_size, worker_args=_worker_args(args)) as run:
        client, names = run.client, run.names
        client.xgroup_create(names.input, names.group, id="$", mkstream=True)
        run.start()
        _publish(client, names.input, _fields(rows, "warm", WARMUP_EVENTS))  # no published_at: not in histograms
        if run.wait_stored(WARMUP_EVENTS, deadline=time.time() + 60) < WARMUP_EVENTS:
            raise RuntimeError("warm-up events were not stored within 60 s")
        time.sleep(1.0)

        published: dict[str, float] = {}
        lateness: list[float] = []
        lag_samples: list[dict[str, Any]] = []
        texts = [r["text"] for r in rows]
        cpu0 = S.CpuSnapshot.take()
        t0 = time.perf_counter() + 0.05
        wall0 = time.time() + 0.05
        i = 0
        next_lag = t0
        while i < n:
            now = time.perf_counter()
            due = min(n, int((now - t0) * rate) + 1) if now >= t0 else 0
            if due > i:
                pipe = client.pipeline(transaction=False)
                stamp = time.time()
                for j in range(i, due):
                    cid = f"lat{j}"
                    pipe.xadd(names.input, encode_event({"id": cid, "text": texts[j % len(texts)]},
                                                        published_at=stamp))
                    published[cid] = stamp
                    lateness.append(stamp - (wall0 + j / rate))
                pipe.execute()
                i = due
            if now >= next_lag:
                st = S.group_state(client, names)
                lag_samples.append({"t_s": round(now - t0, 1), "lag": st["lag"], "pending": st["pending"]})
                next_lag += 1.0
            sleep = min(0.005, t0 + i / rate - time.perf_counter())
            if sleep > 0:
                time.sleep(sleep)
        t_sent = time.perf_counter() - t0
        got = run.wait_stored(WARMUP_EVENTS + n, deadline=time.time() + args.drain_timeout)
        run.wait_acked(time.time() + 10)
        cpu1 = S.CpuSnapshot.take()
        hists = S.merge_histograms([S.scrape_histogram(p, HIST) for p in run.ports if p is not None])
        from sqlalchemy import text

        with run.engine.connect() as conn:
            created = {cid: ts.timestamp() for cid, ts in conn.execute(text(
                "SELECT content_id, created_at FROM decisions WHERE content_id LIKE 'lat%'"))}
        events = S.read_decision_events(client, names.output)
        check = consistency(run, "lat", n)
        stopped = run.stop()
    lat_stored = [created[c] - published[c] for c in published if c in created]
    lat_event = [events[c] - published[c] for c in published if c in events]
    missing = n - len(lat_stored)
    check["ok"] = (missing == 0 and check["decisions"] == n and check["distinct_content_ids"] == n
                   and check["pending"] == 0 and check["dead_lettered"] == 0)
    within = None
    if hists and hists["count"]:
        within = round(hists["buckets"].get(TARGET_P99_MS / 1000, 0.0) / hists["count"], 4)
    stored_ms = _percentiles_ms(lat_stored, missing)
    max_lag = max((s["lag"] for s in lag_samples), default=0)
    return {
        "workers": workers, "rate_target": rate, "duration_s": duration, "events": n,
        "stored": len(lat_stored), "unstored_at_deadline": missing, "stored_incl_warmup": got,
        "send_window_s": round(t_sent, 2), "rate_achieved_send": round(n / t_sent, 1) if t_sent > 0 else None,
        "publisher_lateness_ms": {"p50": round(C.percentile(lateness, 50) * 1000, 1),
                                  "p99": round(C.percentile(lateness, 99) * 1000, 1),
                                  "max": round(max(lateness) * 1000, 1)},
        "latency_stored_ms": stored_ms,
        "latency_decision_event_ms": _percentiles_ms(lat_event, n - len(lat_event)),
        "histogram_share_within_200ms": within,
        "histogram_count": hists["count"] if hists else None,
        "group_lag_max": max_lag, "group_lag_samples": lag_samples,
        "sustained": missing == 0 and max_lag < rate,  # the backlog never exceeded one second of events
        "p99_target_met": stored_ms["p99"] is not None and stored_ms["p99"] < TARGET_P99_MS,
        "machine_busy_cores": cpu1.cores_busy_since(cpu0),
        **stopped,
        "consistency": check,
        "loadavg_before": load_before, "loadavg_after": [round(x, 2) for x in os.getloadavg()],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=20_000, help="events per throughput run (default 20,000)")
    ap.add_argument("--workers", default="1,2", help="worker counts for the throughput runs (default 1,2)")
    ap.add_argument("--rate", type=float, default=TARGET_EVENTS_PER_S, help="events/s of the latency runs")
    ap.add_argument("--duration", type=float, default=30.0, help="seconds of publishing per latency run")
    ap.add_argument("--latency-workers", default="1,2", help="worker counts for the latency runs ('' = none)")
    ap.add_argument("--no-sustainable", action="store_true",
                    help="do not add a run at 80%% of the measured throughput when it is below --rate")
    ap.add_argument("--drain-timeout", type=float, default=60.0, help="seconds to wait for the backlog after "
                    "publishing stops")
    ap.add_argument("--policy", type=Path, default=None,
                    help="policy file (default policies/default.yaml; --quick without a model: the banks tier)")
    ap.add_argument("--postgres-url", default=S.PG_ADMIN_URL, help="admin URL; a fresh database is created per run")
    ap.add_argument("--redis-url", default=S.REDIS_URL)
    ap.add_argument("--batch-size", type=int, default=256, help="the workers' --batch-size (default 256)")
    ap.add_argument("--moderation-threads", type=int, default=None,
                    help="the workers' --moderation-threads (default: the CLI's default)")
    ap.add_argument("--tag", default=None, help="write results/stream_throughput_<tag>.json (e.g. another rate)")
    ap.add_argument("--quick", action="store_true", help="smoke run: 400 events, 100/s for 3 s")
    args = ap.parse_args(argv)
    if args.quick:
        args.events, args.rate, args.duration, args.drain_timeout = 400, 100.0, 3.0, 30.0
        args.no_sustainable = True
    if not (10 <= args.events <= 200_000 and 0 < args.rate * args.duration <= 200_000 and args.duration <= 600):
        ap.error("--events must be in [10, 200000]; --rate x --duration in (0, 200000] with --duration <= 600")
    worker_counts = [int(x) for x in args.workers.split(",") if x.strip()]
    latency_counts = [int(x) for x in args.latency_workers.split(",") if x.strip()]
    if args.policy is None:
        args.policy = C.DEFAULT_POLICY if (C.model_available() or not args.quick) else C.POLICIES / "banks.yaml"
    policy = args.policy.resolve()
    S.check_postgres(args.postgres_url)
    S.redis_client(args.redis_url).close()

    machine = C.machine_info()
    rows, prov = C.short_text_sample(min(args.events, 20_000), seed=2)
    results: dict[str, Any] = {"throughput": {}, "latency": []}
    with tempfile.TemporaryDirectory(prefix="warden-stream-bench-") as tds:
        td = Path(tds)
        for w in worker_counts:
            r = throughput_run(workers=w, rows=rows, n=args.events, policy=policy, args=args, td=td)
            results["throughput"][str(w)] = r
            print(f"throughput, {w} worker(s): {r['events_per_s']} events/s (consistent: {r['consistency']['ok']}; "
                  f"load {r['loadavg_before'][0]} -> {r['loadavg_after'][0]})", file=sys.stderr)
        for w in latency_counts:
            rates = [args.rate]
            tput = (results["throughput"].get(str(w)) or {}).get("events_per_s")
            if tput and tput < args.rate and not args.no_sustainable:
                rates.append(float(max(50, int(0.8 * tput) // 50 * 50)))
            for rate in rates:
                r = latency_run(workers=w, rate=rate, duration=args.duration, rows=rows, policy=policy, args=args,
                                td=td)
                results["latency"].append(r)
                print(f"latency, {w} worker(s) at {rate:g}/s: stored p50/p99 {r['latency_stored_ms']['p50']}/"
                      f"{r['latency_stored_ms']['p99']} ms, unstored {r['unstored_at_deadline']}", file=sys.stderr)

    one = results["throughput"].get("1", {}).get("events_per_s")
    two = results["throughput"].get("2", {}).get("events_per_s")
    at_target = [r for r in results["latency"] if r["workers"] == 1 and r["rate_target"] == TARGET_EVENTS_PER_S]
    payload = {
        "benchmark": "stream_throughput", "quick": args.quick, "machine": machine, "model": C.model_fingerprint(),
        "policy": C.rel(policy), "texts": prov,
        "worker_command": S.worker_command_line(policy, batch_size=args.batch_size, extra_args=_worker_args(args)),
        "database": "PostgreSQL, a fresh database per run (migrated first)", "broker": "Redis Streams",
        "latency_source": "decisions.created_at - published_at (primary); decision-event Redis time - published_at;"
                          " the workers' warden_worker_publish_to_decision_seconds histograms (share <= 200 ms)",
        **results,
        "scaling_ratio_2_vs_1": round(two / one, 2) if one and two else None,
        "targets": {"events_per_s_one_worker": TARGET_EVENTS_PER_S, "p99_ms_at_that_rate": TARGET_P99_MS,
                    "events_per_s_met": bool(one and one >= TARGET_EVENTS_PER_S),
                    "p99_met": bool(at_target and at_target[0]["p99_target_met"] and at_target[0]["sustained"])},
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
    }
    path = C.write_result("stream_throughput" + (f"_{args.tag}" if args.tag else ""), payload, quick=args.quick)
    print()
    print(render(payload))
    print(f"\nwritten {C.rel(path)}")
    return 0


def render(res: dict[str, Any]) -> str:
    """The markdown tables (also used by benchmarks/report.py)."""
    out = [f"Policy `{res['policy']}`; {res['database']}; {res['broker']}; texts: "
           f"{sum(res['texts'].get('sources', {}).values())} distinct short texts "
           f"(mean {res['texts'].get('mean_chars')} chars). Worker: `{res['worker_command']}`.", ""]
    if res["throughput"]:
        out += ["| workers | events | events/s (first consumed -> last stored) | window s | start-up s "
                "| events/s incl. start-up | machine busy cores | worker CPU s | consistent "
                "| load avg before -> after |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for w, r in res["throughput"].items():
        out.append(f"| {w} | {r['events']:,} | {r['events_per_s']:,} | {r['window_s']} "
                   f"| {r['startup_s']} | {r['events_per_s_incl_startup']:,} | {r['machine_busy_cores']} "
                   f"| {r['worker_cpu_s']} | {r['consistency']['ok']} "
                   f"| {r['loadavg_before'][0]} -> {r['loadavg_after'][0]} |")
    if res["throughput"]:
        out += ["", f"Scaling ratio (2 workers / 1): **{res.get('scaling_ratio_2_vs_1')}**"]
    out.append("")
    if res.get("latency"):
        out += ["Publish -> stored decision, open loop, in ms: `decisions.created_at` (set as the batch's INSERT "
                "starts) minus `published_at`; `-` = an unstored event lands in that percentile. The decision "
                "event column is published after the commit.", "",
                "| workers | rate/s | events | unstored | p50 | p90 | p99 | max | p99 after commit (decision event) "
                "| histogram share <= 200 ms | max group lag | sustained | busy cores | load avg before -> after |",
                "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]

        def f(v: Any) -> str:
            return "-" if v is None else str(v)

        for r in res["latency"]:
            s, e = r["latency_stored_ms"], r["latency_decision_event_ms"]
            share = r["histogram_share_within_200ms"]
            out.append(f"| {r['workers']} | {r['rate_target']:g} | {r['events']:,} | {r['unstored_at_deadline']} "
                       f"| {f(s['p50'])} | {f(s['p90'])} | {f(s['p99'])} | {f(s['max'])} | {f(e['p99'])} "
                       f"| {'-' if share is None else f'{share:.1%}'} | {r['group_lag_max']:,} | {r['sustained']} "
                       f"| {r['machine_busy_cores']} | {r['loadavg_before'][0]} -> {r['loadavg_after'][0]} |")
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main())
