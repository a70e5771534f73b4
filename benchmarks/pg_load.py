"""PostgreSQL under load: the HTTP API and two stream workers on one PostgreSQL database at once.

Creates a fresh PostgreSQL database, then starts together (so their migrations race, which
the advisory lock must serialize):

* `warden serve` on a free loopback port (`--api-workers` uvicorn processes), which applies
  the migrations at start-up;
* `--stream-workers` `warden worker` processes (default 2) on new Redis streams.

Every process uses Warden's PostgreSQL connection pool (`WARDEN_DB_POOL_SIZE` /
`WARDEN_DB_MAX_OVERFLOW`, set with `--pool-size` / `--max-overflow`). Then, for `--duration`
seconds, open loop on both paths at once:

* `POST /v1/moderate` single items at `--api-rate` requests/s (asyncio + httpx, keep-alive;
  latency from the scheduled send time), each with an explicit id; every 20th request is a
  retry of the previous one (same id and text, often still in flight: a concurrent duplicate);
* content events at `--event-rate` events/s with `published_at`; every 20th event repeats the
  previous event (same id and text).

(Duplicates are exact retries. A resubmission of an id with *different* text under the same
policy version stores nothing new but, as of this writing, queues a second content-action
webhook with the new action for the same decision id; that is a finding for the recorder,
not something this load measures.)

A sampler records, every second, PostgreSQL's connections to the database
(`pg_stat_activity`, by application name) and the consumer group's lag. After the load the
workers drain the stream (bounded by `--drain-timeout`). Recorded: API responses by status
and client-side errors, the workers' failed batches, pool exhaustion (`QueuePool limit` in
any log), throughput of both paths, latencies, and a **consistency check**: every accepted
request (200) and every published event has exactly one stored decision, the decision id
the API returned is the stored one, nothing is pending or dead-lettered, no decision has two
content actions and no review task is doubled.

Bounded: --duration <= 600 s, rates <= 2,000/s, deadlines on every wait.

    .venv/bin/python benchmarks/pg_load.py                  # 60 s: 40 req/s + 200 events/s
    .venv/bin/python benchmarks/pg_load.py --quick          # ~40 s smoke run (the pytest runs this)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C
import _services as S
from api_latency import create_key, free_port, wait_healthy

DUPLICATE_EVERY = 20
POOL_EXHAUSTION = "QueuePool limit"


class Sampler(threading.Thread):
    """Every second: PostgreSQL connections to the database and the group's lag."""

    def __init__(self, *, admin_url: str, database: str, client: Any, names: S.StreamNames) -> None:
        super().__init__(daemon=True)
        self.admin_url, self.database, self.client, self.names = admin_url, database, client, names
        self.samples: list[dict[str, Any]] = []
        self._halt = threading.Event()

    def run(self) -> None:
        engine = S._admin_engine(self.admin_url)
        t0 = time.monotonic()
        try:
            while not self._halt.is_set():
                try:
                    conns = S.pg_connections(engine, self.database)
                    st = S.group_state(self.client, self.names)
                    self.samples.append({"t_s": round(time.monotonic() - t0, 1), "connections": conns,
                                         "lag": st["lag"], "pending": st["pending"]})
                except Exception as exc:  # a sample lost is not a failed run
                    self.samples.append({"t_s": round(time.monotonic() - t0, 1), "error": type(exc).__name__})
                self._halt.wait(1.0)
        finally:
            engine.dispose()

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=10)


async def api_load(base: str, key: str, texts: list[str], rate: float, duration: float,
                   timeout: float) -> dict[str, Any]:
    import httpx

    n = round(rate * duration)
    loop = asyncio.get_running_loop()
    statuses: Counter[str] = Counter()
    accepted: dict[str, set[str]] = {}  # content id -> decision ids returned
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=timeout,
                                 limits=limits) as client:

        async def one(i: int, scheduled: float) -> None:
            k = i - 1 if i % DUPLICATE_EVERY == DUPLICATE_EVERY - 1 else i  # a retry: same id, same text
            cid = f"api{k}"
            try:
                r = await client.post("/v1/moderate", json={"id": cid, "text": texts[k % len(texts)],
                                                            "surface": "comment"})
            except httpx.HTTPError as exc:
                statuses[type(exc).__name__] += 1
                return
            statuses[str(r.status_code)] += 1
            if r.status_code == 200:
                latencies.append(loop.time() - scheduled)
                accepted.setdefault(cid, set()).add(r.json()["decision_id"])

        tasks = []
        t0 = loop.time() + 0.05
        for i in range(n):
            scheduled = t0 + i / rate
            delay = scheduled - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i, scheduled)))
        _done, pending = await asyncio.wait(tasks, timeout=timeout + 5)
        for t in pending:
            t.cancel()
            statuses["unfinished"] += 1
        elapsed = loop.time() - t0
    ok = statuses.get("200", 0)
    return {"requests": n, "statuses": dict(statuses), "ok": ok, "errors": n - ok,
            "rate_target": rate, "ok_per_s": round(ok / elapsed, 1) if elapsed > 0 else None,
            "latency_ms": {"p50": round(C.percentile(latencies, 50) * 1000, 1),
                           "p99": round(C.percentile(latencies, 99) * 1000, 1),
                           "max": round(max(latencies) * 1000, 1) if latencies else None,
                           "mean": round(statistics.fmean(latencies) * 1000, 1) if latencies else None},
            "_accepted": accepted}


def publish_events(client: Any, stream: str, texts: list[str], rate: float, duration: float,
                   out: dict[str, Any]) -> None:
    """Open loop in ticks of <= 5 ms; `out` gets the published ids with their published_at."""
    from warden.pipelines.stream import encode_event

    n = round(rate * duration)
    published: dict[str, float] = {}
    errors: Counter[str] = Counter()
    t0 = time.perf_counter()
    i = 0
    while i < n:
        due = min(n, int((time.perf_counter() - t0) * rate) + 1)
        if due > i:
            stamp = time.time()
            pipe = client.pipeline(transaction=False)
            for j in range(i, due):
                k = j - 1 if j % DUPLICATE_EVERY == DUPLICATE_EVERY - 1 else j  # a redelivery: same id and text
                cid = f"ev{k}"
                pipe.xadd(stream, encode_event({"id": cid, "text": texts[k % len(texts)]}, published_at=stamp))
                published.setdefault(cid, stamp)
            try:
                pipe.execute()
            except Exception as exc:
                errors[type(exc).__name__] += due - i
            i = due
        sleep = min(0.005, t0 + i / rate - time.perf_counter())
        if sleep > 0:
            time.sleep(sleep)
    out.update({"events": n, "distinct_ids": len(published), "publish_errors": dict(errors),
                "elapsed_s": round(time.perf_counter() - t0, 2), "_published": published})


def check_consistency(engine: Any, client: Any, names: S.StreamNames, accepted: dict[str, set[str]],
                      published: dict[str, float]) -> dict[str, Any]:
    from sqlalchemy import text

    with engine.connect() as conn:
        rows = conn.execute(text("SELECT content_id, decision_id, created_at FROM decisions")).all()
        doubled_actions = int(conn.execute(text(
            "SELECT COUNT(*) FROM (SELECT decision_id FROM enforcement_actions WHERE kind = 'content_action' "
            "GROUP BY decision_id HAVING COUNT(*) > 1) x")).scalar_one())
        doubled_tasks = int(conn.execute(text(
            "SELECT COUNT(*) FROM (SELECT dedupe_key FROM review_tasks GROUP BY dedupe_key HAVING COUNT(*) > 1) x"
        )).scalar_one())
    per_id: Counter[str] = Counter(r[0] for r in rows)
    stored_ids = {r[0]: r[1] for r in rows}
    created = {r[0]: r[2].timestamp() for r in rows}
    api_missing = [c for c in accepted if per_id[c] == 0]
    api_multi = [c for c in accepted if per_id[c] > 1]
    api_mismatch = [c for c, ids in accepted.items() if per_id[c] and ids != {stored_ids[c]}]
    ev_missing = [c for c in published if per_id[c] == 0]
    ev_multi = [c for c in published if per_id[c] > 1]
    state = S.group_state(client, names)
    dead = int(client.xlen(names.dead))
    api_extra = sorted(c for c in per_id if c.startswith("api") and c not in accepted)
    out = {
        "decisions_stored": len(rows),
        "api_accepted_ids": len(accepted), "api_missing": len(api_missing), "api_more_than_one": len(api_multi),
        "api_decision_id_mismatch": len(api_mismatch),
        "api_stored_without_accepted_response": len(api_extra),
        "events_distinct_ids": len(published), "events_missing": len(ev_missing),
        "events_more_than_one": len(ev_multi),
        "pending": state["pending"], "lag": state["lag"], "dead_lettered": dead,
        "doubled_content_actions": doubled_actions, "doubled_review_tasks": doubled_tasks,
        "examples": {"api_missing": api_missing[:5], "events_missing": ev_missing[:5],
                     "api_mismatch": api_mismatch[:5]},
    }
    out["ok"] = not (api_missing or api_multi or api_mismatch or ev_missing or ev_multi or state["pending"]
                     or state["lag"] or dead or doubled_actions or doubled_tasks)
    out["_created"] = created
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=60.0, help="seconds of load (default 60)")
    ap.add_argument("--api-rate", type=float, default=40.0, help="POST /v1/moderate per second (default 40)")
    ap.add_argument("--event-rate", type=float, default=200.0, help="content events per second (default 200)")
    ap.add_argument("--api-workers", type=int, default=1, help="uvicorn processes of `warden serve` (default 1)")
    ap.add_argument("--stream-workers", type=int, default=2, help="`warden worker` processes (default 2)")
    ap.add_argument("--pool-size", type=int, default=None, help="WARDEN_DB_POOL_SIZE of every process "
                    "(default: the environment's, else Warden's 5)")
    ap.add_argument("--max-overflow", type=int, default=None, help="WARDEN_DB_MAX_OVERFLOW (default: env, else 10)")
    ap.add_argument("--timeout", type=float, default=40.0, help="per-request timeout (longer than the pool's 30 s "
                    "checkout timeout, so pool exhaustion shows as 503 rather than a client timeout)")
    ap.add_argument("--drain-timeout", type=float, default=120.0)
    ap.add_argument("--policy", type=Path, default=None,
                    help="policy file (default policies/default.yaml; --quick without a model: the banks tier)")
    ap.add_argument("--postgres-url", default=S.PG_ADMIN_URL, help="admin URL; a fresh database is created")
    ap.add_argument("--redis-url", default=S.REDIS_URL)
    ap.add_argument("--quick", action="store_true", help="smoke run: 10 s at 20 req/s + 100 events/s")
    args = ap.parse_args(argv)
    if args.quick:
        args.duration, args.api_rate, args.event_rate, args.drain_timeout = 10.0, 20.0, 100.0, 60.0
    if not (0 < args.duration <= 600 and 0 < args.api_rate <= 2000 and 0 <= args.event_rate <= 2000):
        ap.error("--duration must be in (0, 600] and the rates in (0, 2000]")
    S.check_postgres(args.postgres_url)
    client = S.redis_client(args.redis_url)
    if args.policy is None:
        args.policy = C.DEFAULT_POLICY if (C.model_available() or not args.quick) else C.POLICIES / "banks.yaml"
    policy = args.policy.resolve()
    machine = C.machine_info()
    rows, prov = C.short_text_sample(2000 if not args.quick else 400, seed=3)
    texts = [r["text"] for r in rows]
    extra = {}
    if args.pool_size is not None:
        extra["WARDEN_DB_POOL_SIZE"] = str(args.pool_size)
    if args.max_overflow is not None:
        extra["WARDEN_DB_MAX_OVERFLOW"] = str(args.max_overflow)
    env = S.service_env(**extra)
    names = S.stream_names("pgload")
    procs: list[Any] = []
    with tempfile.TemporaryDirectory(prefix="warden-pg-load-") as tds, \
            S.fresh_database(args.postgres_url, prefix="warden_bench_pgload") as db_url:
        from sqlalchemy import create_engine
        from sqlalchemy.engine import make_url

        td = Path(tds)
        database = make_url(db_url).database
        engine = create_engine(db_url, connect_args={"application_name": "pg_load-checker"})
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        server_log = td / "serve.log"
        logs = [server_log]
        sampler = None
        try:
            t_launch = time.perf_counter()
            with server_log.open("wb") as log:
                server = subprocess_popen([S.WARDEN, "serve", "--host", "127.0.0.1", "--port", str(port), "--policy",
                                           str(policy), "--database-url", db_url, "--workers", str(args.api_workers)],
                                          log, env)
            procs.append(server)
            consumers = [f"worker-{i + 1}" for i in range(args.stream_workers)]
            wlogs = [td / f"{c}.log" for c in consumers]
            workers = [S.start_worker(db_url=db_url, redis_url=args.redis_url, names=names, consumer=c,
                                      policy=policy, log_path=wl, env=env) for c, wl in zip(consumers, wlogs,
                                                                                            strict=True)]
            procs += workers
            logs += wlogs
            wait_healthy(base, server, timeout=180)
            S.wait_reading(client, workers, wlogs, timeout=180)
            startup_s = time.perf_counter() - t_launch
            key = create_key(db_url, env)
            revision = S.scalar(engine, "SELECT version_num FROM alembic_version")

            sampler = Sampler(admin_url=args.postgres_url, database=database, client=client, names=names)
            sampler.start()
            cpu0 = S.CpuSnapshot.take()
            load_before = [round(x, 2) for x in os.getloadavg()]
            ev_out: dict[str, Any] = {}
            pub = threading.Thread(target=publish_events, args=(client, names.input, texts, args.event_rate,
                                                                args.duration, ev_out), daemon=True)
            t_load = time.time()
            if args.event_rate > 0:
                pub.start()
            api = asyncio.run(asyncio.wait_for(api_load(base, key, texts, args.api_rate, args.duration,
                                                        args.timeout), args.duration + args.timeout + 60))
            if args.event_rate > 0:
                pub.join(timeout=args.duration + 60)
            else:
                ev_out.update({"events": 0, "distinct_ids": 0, "publish_errors": {}, "_published": {}})
            published = ev_out["_published"]
            deadline = time.time() + args.drain_timeout
            while time.time() < deadline:
                st = S.group_state(client, names)
                if st["lag"] == 0 and st["pending"] == 0:
                    break
                for w, wl in zip(workers, wlogs, strict=True):
                    if w.poll() is not None:
                        raise RuntimeError(f"a worker died: {wl.read_text(errors='replace')[-2000:]}")
                time.sleep(0.25)
            t_drained = time.time()
            cpu1 = S.CpuSnapshot.take()
            sampler.stop()
            check = check_consistency(engine, client, names, api.pop("_accepted"), published)
            created = check.pop("_created")
            worker_cpu = [S.proc_cpu_seconds(w.pid) for w in workers]
            server_cpu = S.proc_cpu_seconds(server.pid)
            exit_codes = {"serve": S.stop(server)} | {c: S.stop(w) for c, w in zip(consumers, workers, strict=True)}
            totals = {c: S.worker_totals(wl) for c, wl in zip(consumers, wlogs, strict=True)}
        except Exception:
            for log in logs:
                if log.exists():
                    print(f"--- {log.name}\n{log.read_text(errors='replace')[-2000:]}", file=sys.stderr)
            raise
        finally:
            if sampler is not None and sampler.is_alive():
                sampler.stop()
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()
            engine.dispose()
            S.delete_streams(client, names)
            client.close()
        log_counts = {log.stem: S.count_lines(log, (POOL_EXHAUSTION, "batch failed", "storing decisions failed",
                                                   "Traceback")) for log in logs}

    ev_lat = [created[c] - t for c, t in published.items() if c in created]
    conns = [s["connections"] for s in sampler.samples if "connections" in s]
    peak_conns = max((sum(c.values()) for c in conns), default=0)
    pool_exhaustion = sum(v[POOL_EXHAUSTION] for v in log_counts.values())
    worker_failed_batches = sum(v["batch failed"] for k, v in log_counts.items() if k != "serve")
    error_count = api["errors"] + sum(ev_out["publish_errors"].values()) + worker_failed_batches
    payload = {
        "benchmark": "pg_load", "quick": args.quick, "machine": machine, "model": C.model_fingerprint(),
        "policy": C.rel(policy), "texts": prov,
        "setup": {"api_workers": args.api_workers, "stream_workers": args.stream_workers,
                  "pool_size": env.get("WARDEN_DB_POOL_SIZE", "5 (default)"),
                  "max_overflow": env.get("WARDEN_DB_MAX_OVERFLOW", "10 (default)"),
                  "database": "PostgreSQL, fresh database; migrations applied at start-up by warden serve and the "
                              "workers at once", "alembic_revision": revision, "startup_s": round(startup_s, 2)},
        "duration_s": args.duration,
        "api": api,
        "events": {k: v for k, v in ev_out.items() if not k.startswith("_")}
        | {"rate_target": args.event_rate,
           "stored_per_s": round(len(ev_lat) / (t_drained - t_load), 1) if ev_lat else None,
           "publish_to_stored_ms": {"p50": round(C.percentile(ev_lat, 50) * 1000, 1),
                                    "p99": round(C.percentile(ev_lat, 99) * 1000, 1),
                                    "max": round(max(ev_lat) * 1000, 1) if ev_lat else None},
           "drain_after_load_s": round(t_drained - t_load - args.duration, 2)},
        "worker_totals": totals, "exit_codes": exit_codes, "clean_exits": clean_exits(exit_codes),
        "cpu_s": {"serve_main_process": server_cpu, "workers": worker_cpu},
        "machine_busy_cores": cpu1.cores_busy_since(cpu0),
        "pg_connections_peak": peak_conns,
        "pg_connections_by_app_at_peak": max(conns, key=lambda c: sum(c.values()), default={}),
        "lag_max": max((s.get("lag", 0) for s in sampler.samples), default=0),
        "log_counts": log_counts,
        "pool_exhaustion_errors": pool_exhaustion,
        "error_count": error_count,
        "consistency": check,
        "loadavg_before": load_before, "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "samples": sampler.samples,
    }
    path = C.write_result("pg_load", payload, quick=args.quick)
    print()
    print(render(payload))
    print(f"\nwritten {C.rel(path)}")
    return 0 if (check["ok"] and error_count == 0 and clean_exits(exit_codes)) else 1


def clean_exits(exit_codes: dict[str, int]) -> bool:
    """Workers exit 0 on SIGTERM; uvicorn re-raises SIGTERM after its graceful shutdown (-15)."""
    return all(code == 0 or (name == "serve" and code == -signal.SIGTERM) for name, code in exit_codes.items())


def subprocess_popen(cmd: list[str], log: Any, env: dict[str, str]) -> Any:
    import subprocess

    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=C.ROOT)


def render(res: dict[str, Any]) -> str:
    """The markdown table (also used by benchmarks/report.py)."""
    a, e, c, s = res["api"], res["events"], res["consistency"], res["setup"]
    return "\n".join([
        f"`warden serve` ({s['api_workers']} process(es)) + {s['stream_workers']} `warden worker` on one fresh "
        f"PostgreSQL database, pool {s['pool_size']} + overflow {s['max_overflow']} per process; policy "
        f"`{res['policy']}`; {res['duration_s']:g} s of open-loop load on loopback; start-up {s['startup_s']} s "
        f"(migrations raced and serialized: revision {s['alembic_revision']}).",
        "",
        "| path | target/s | sent | accepted/stored per s | errors | p50 ms | p99 ms | max ms |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
        f"| POST /v1/moderate | {a['rate_target']:g} | {a['requests']:,} | {a['ok_per_s']} | {a['errors']} "
        f"{a['statuses']} | {a['latency_ms']['p50']} | {a['latency_ms']['p99']} | {a['latency_ms']['max']} |",
        f"| stream events (publish -> stored) | {e['rate_target']:g} | {e['events']:,} | {e['stored_per_s']} "
        f"| {sum(e['publish_errors'].values())} | {e['publish_to_stored_ms']['p50']} "
        f"| {e['publish_to_stored_ms']['p99']} | {e['publish_to_stored_ms']['max']} |",
        "",
        f"Errors in total: {res['error_count']} (pool exhaustion: {res['pool_exhaustion_errors']}; failed worker "
        f"batches: {sum(v['batch failed'] for k, v in res['log_counts'].items() if k != 'serve')}). Peak PostgreSQL "
        f"connections to the database: {res['pg_connections_peak']} ({res['pg_connections_by_app_at_peak']}); "
        f"max group lag {res['lag_max']}; machine busy cores {res['machine_busy_cores']}; load average "
        f"{res['loadavg_before'][0]} -> {res['loadavg_after'][0]}.",
        f"Consistency: **{'ok' if c['ok'] else 'FAILED'}**: {c['decisions_stored']:,} decisions; "
        f"{c['api_accepted_ids']:,} accepted request ids (missing {c['api_missing']}, doubled "
        f"{c['api_more_than_one']}, id mismatch {c['api_decision_id_mismatch']}); {c['events_distinct_ids']:,} "
        f"event ids (missing {c['events_missing']}, doubled {c['events_more_than_one']}); pending {c['pending']}, "
        f"dead-lettered {c['dead_lettered']}, doubled actions {c['doubled_content_actions']}, doubled review "
        f"tasks {c['doubled_review_tasks']}.",
    ])


if __name__ == "__main__":
    sys.exit(main())
