"""Real services for the stream and PostgreSQL benchmarks (stream_throughput.py, pg_load.py).

A fresh PostgreSQL database per run (created from an admin URL, dropped afterwards), unique
Redis stream names, `warden worker` / `warden serve` as child processes with their logs in
files, whole-machine CPU accounting from /proc/stat and Prometheus scraping of the workers.

Not part of the `warden` package: scripts in benchmarks/ import it as a sibling module.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import _common as C

PG_ADMIN_URL = (os.environ.get("WARDEN_BENCH_POSTGRES_URL") or os.environ.get("WARDEN_TEST_POSTGRES_URL")
                or "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = (os.environ.get("WARDEN_BENCH_REDIS_URL") or os.environ.get("WARDEN_TEST_REDIS_URL")
             or "redis://127.0.0.1:6379/0")
WARDEN = str(C.VENV_BIN / "warden")


class ServiceUnavailable(RuntimeError):
    """PostgreSQL or Redis cannot be reached (the message says which and how to point at another)."""


# --------------------------------------------------------------------------------------
# PostgreSQL
# --------------------------------------------------------------------------------------
def _admin_engine(admin_url: str):
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    url = make_url(admin_url)
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    return create_engine(url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})


def check_postgres(admin_url: str = PG_ADMIN_URL) -> None:
    from sqlalchemy import text

    engine = _admin_engine(admin_url)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        raise ServiceUnavailable(f"PostgreSQL unavailable at {admin_url}: {type(exc).__name__}: {str(exc)[:200]}; "
                                 "set WARDEN_BENCH_POSTGRES_URL (an account that may CREATE DATABASE)") from None
    finally:
        engine.dispose()


@contextmanager
def fresh_database(admin_url: str = PG_ADMIN_URL, *, prefix: str = "warden_bench") -> Iterator[str]:
    """A new empty database (unique name) for one run; dropped, with its connections, afterwards."""
    from sqlalchemy import text

    engine = _admin_engine(admin_url)
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield engine.url.set(database=name).render_as_string(hide_password=False)
    finally:
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()


def migrate(db_url: str, env: dict[str, str]) -> None:
    """`warden db upgrade` (the same command the Kubernetes migration Job runs)."""
    out = subprocess.run([WARDEN, "db", "upgrade", "--database-url", db_url], capture_output=True, text=True,
                         env=env, timeout=180)
    if out.returncode != 0:
        raise RuntimeError(f"warden db upgrade failed ({out.returncode}): {out.stderr[-1500:]}")


def scalar(engine: Any, sql: str, **params: Any) -> Any:
    from sqlalchemy import text

    with engine.connect() as conn:
        return conn.execute(text(sql), params).scalar_one()


def pg_connections(engine: Any, database: str) -> dict[str, int]:
    """Server-side connections to `database` by application_name (Warden's pools say 'warden')."""
    from sqlalchemy import text

    with engine.connect() as conn:
        rows = conn.execute(text("SELECT COALESCE(application_name, ''), COUNT(*) FROM pg_stat_activity "
                                 "WHERE datname = :d GROUP BY 1"), {"d": database}).all()
    return {str(a): int(n) for a, n in rows}


# --------------------------------------------------------------------------------------
# Redis
# --------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class StreamNames:
    input: str
    output: str
    dead: str
    group: str


def redis_client(url: str = REDIS_URL) -> Any:
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=30)
    try:
        client.ping()
    except redis.RedisError as exc:
        raise ServiceUnavailable(f"Redis unavailable at {url}: {exc}; set WARDEN_BENCH_REDIS_URL") from None
    return client


def stream_names(kind: str) -> StreamNames:
    tag = f"bench:{kind}:{uuid.uuid4().hex[:8]}"
    return StreamNames(f"{tag}:content", f"{tag}:decisions", f"{tag}:dead", "warden-bench")


def delete_streams(client: Any, names: StreamNames) -> None:
    client.delete(names.input, names.output, names.dead)


def group_state(client: Any, names: StreamNames) -> dict[str, int]:
    """lag (not yet delivered) and pending (delivered, not acknowledged) of the benchmark's group."""
    for g in client.xinfo_groups(names.input):
        name = g["name"].decode() if isinstance(g["name"], bytes) else g["name"]
        if name == names.group:
            return {"lag": int(g.get("lag") or 0), "pending": int(g.get("pending") or 0),
                    "delivered": int(g.get("entries-read") or 0)}
    return {"lag": -1, "pending": -1, "delivered": 0}


def stream_id_seconds(message_id: bytes | str) -> float:
    """The Redis server time (Unix seconds, ms resolution) at which an entry was added."""
    s = message_id.decode() if isinstance(message_id, bytes) else message_id
    return int(s.split("-", 1)[0]) / 1000.0


def read_decision_events(client: Any, stream: str) -> dict[str, float]:
    """content_id -> the time its decision event was published (after the decision was committed)."""
    out: dict[str, float] = {}
    start = "-"
    while True:
        batch = client.xrange(stream, min=start, max="+", count=5000)
        if not batch:
            return out
        for mid, fields in batch:
            out.setdefault(fields[b"content_id"].decode(), stream_id_seconds(mid))
        last = batch[-1][0].decode()
        start = "(" + last


# --------------------------------------------------------------------------------------
# processes
# --------------------------------------------------------------------------------------
def service_env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "WARDEN_WEBHOOK_URL": "", "WARDEN_LOG_LEVEL": "WARNING", "PYTHONUNBUFFERED": "1"}
    env.update(extra)
    return env


def start_worker(*, db_url: str, redis_url: str, names: StreamNames, consumer: str, policy: Path, log_path: Path,
                 env: dict[str, str], metrics_port: int | None = None, batch_size: int = 256,
                 block_ms: int = 200, extra_args: Sequence[str] = ()) -> subprocess.Popen:
    cmd = [WARDEN, "worker", "--policy", str(policy), "--database-url", db_url, "--redis-url", redis_url,
           "--input-stream", names.input, "--output-stream", names.output, "--dead-letter-stream", names.dead,
           "--group", names.group, "--consumer", consumer, "--batch-size", str(batch_size), "--block-ms",
           str(block_ms), *extra_args]
    if metrics_port is not None:
        cmd += ["--metrics-port", str(metrics_port)]
    with log_path.open("wb") as log:
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=C.ROOT)


def worker_command_line(policy: Path, *, batch_size: int = 256, extra_args: Sequence[str] = ()) -> str:
    return (f"warden worker --policy {C.rel(policy)} --database-url $FRESH_PG_DB --redis-url $REDIS "
            f"--input-stream ... --group ... --consumer worker-N --batch-size {batch_size} --block-ms 200"
            + "".join(f" {a}" for a in extra_args))


def _socket_ports(pid: int) -> set[int]:
    """Local TCP ports of a process's sockets (/proc/<pid>/fd and /proc/net/tcp{,6})."""
    inodes = set()
    try:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    except OSError:
        return set()
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if len(f) > 9 and f[9] in inodes:
                ports.add(int(f[1].rsplit(":", 1)[1], 16))
    return ports


def reading_workers(client: Any, procs: Sequence[subprocess.Popen]) -> int:
    """How many of `procs` have a Redis connection whose last command was XREADGROUP.

    XINFO CONSUMERS cannot tell: Redis 7.0 creates a consumer only when it first receives an
    entry, and the benchmarks want workers ready *before* any entry is deliverable.
    """
    last_cmd = {}
    for c in client.client_list():
        addr = str(c.get("addr", ""))
        if addr.rsplit(":", 1)[-1].isdigit():
            last_cmd[int(addr.rsplit(":", 1)[1])] = str(c.get("cmd", ""))
    return sum(any(last_cmd.get(port) == "xreadgroup" for port in _socket_ports(p.pid)) for p in procs)


def wait_reading(client: Any, procs: Sequence[subprocess.Popen], logs: Sequence[Path], timeout: float) -> float:
    """Seconds until every worker has loaded its models and is reading the stream (XREADGROUP)."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        for p, log in zip(procs, logs, strict=True):
            if p.poll() is not None:
                raise RuntimeError(f"a worker exited with {p.returncode} during start-up:\n"
                                   f"{log.read_text(errors='replace')[-2000:]}")
        if reading_workers(client, procs) == len(procs):
            return time.perf_counter() - t0
        time.sleep(0.05)
    raise RuntimeError(f"workers not reading after {timeout:.0f} s")


def stop(proc: subprocess.Popen, *, timeout: float = 60) -> int:
    """SIGTERM (the worker finishes its batch and exits 0), SIGKILL after `timeout`."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return int(proc.returncode)


_STOPPED = re.compile(r"(\d+) events read, (\d+) decided \((\d+) newly stored\), (\d+) dead-lettered, (\d+) failed, "
                      r"(\d+) claimed")


def worker_totals(log_path: Path) -> dict[str, int] | None:
    """The totals a worker prints when it stops (None if it never printed them)."""
    m = None
    for line in log_path.read_text(errors="replace").splitlines():
        if " stopped: " in line:
            m = _STOPPED.search(line)
    if m is None:
        return None
    keys = ("read", "decided", "stored", "dead_lettered", "failed", "claimed")
    return dict(zip(keys, map(int, m.groups()), strict=True))


def count_lines(path: Path, needles: Sequence[str]) -> dict[str, int]:
    text = path.read_text(errors="replace") if path.exists() else ""
    return {n: text.count(n) for n in needles}


def proc_cpu_seconds(pid: int) -> float | None:
    try:
        f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


@dataclass(frozen=True, slots=True)
class CpuSnapshot:
    """Whole-machine CPU time from /proc/stat (every process: workers, PostgreSQL, Redis, us)."""

    busy: float
    total: float
    at: float

    @classmethod
    def take(cls) -> CpuSnapshot:
        f = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        idle = f[3] + (f[4] if len(f) > 4 else 0)  # idle + iowait
        tick = os.sysconf("SC_CLK_TCK")
        return cls(busy=(sum(f[:8]) - idle) / tick, total=sum(f[:8]) / tick, at=time.monotonic())

    def cores_busy_since(self, before: CpuSnapshot) -> float:
        """Average number of busy cores between two snapshots."""
        wall = self.at - before.at
        return round((self.busy - before.busy) / wall, 2) if wall > 0 else float("nan")


# --------------------------------------------------------------------------------------
# Prometheus
# --------------------------------------------------------------------------------------
def scrape_histogram(port: int, name: str) -> dict[str, Any] | None:
    """Cumulative buckets, count and sum of one histogram at http://127.0.0.1:port/metrics."""
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    try:
        body = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    except httpx.HTTPError:
        return None
    for fam in text_string_to_metric_families(body):
        if fam.name != name:
            continue
        buckets: dict[float, float] = {}
        count = total = 0.0
        for s in fam.samples:
            if s.name.endswith("_bucket"):
                buckets[float(s.labels["le"])] = s.value
            elif s.name.endswith("_count"):
                count = s.value
            elif s.name.endswith("_sum"):
                total = s.value
        return {"buckets": buckets, "count": count, "sum": total}
    return None


def merge_histograms(hists: Sequence[dict[str, Any] | None]) -> dict[str, Any] | None:
    hs = [h for h in hists if h]
    if not hs:
        return None
    buckets: dict[float, float] = {}
    for h in hs:
        for le, v in h["buckets"].items():
            buckets[le] = buckets.get(le, 0.0) + v
    return {"buckets": dict(sorted(buckets.items())), "count": sum(h["count"] for h in hs),
            "sum": sum(h["sum"] for h in hs)}
