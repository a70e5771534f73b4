"""The HTTP API and two stream workers on one PostgreSQL database at once
(`benchmarks/pg_load.py --quick`), and the stream benchmark's smoke run.

These check correctness under concurrency, never speed (figures live in BENCHMARKS.md): zero
errors (no 5xx, no failed worker batch, no pool exhaustion), migrations applied at start-up
by racing processes, and every accepted request and published event with exactly one stored
decision. Real PostgreSQL and Redis: skipped with a reason locally when absent, a failure
when CI=true.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "benchmarks"
PG_ADMIN_URL = os.environ.get("WARDEN_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("WARDEN_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").strip().lower() == "true":
        pytest.fail(f"PostgreSQL and Redis are required when CI=true: {reason}", pytrace=False)
    pytest.skip(f"{reason}; set WARDEN_TEST_POSTGRES_URL / WARDEN_TEST_REDIS_URL to run this test")


@pytest.fixture
def services() -> None:
    redis = pytest.importorskip("redis")
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    engine = create_engine(make_url(PG_ADMIN_URL), connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        _unavailable(f"PostgreSQL unavailable at {PG_ADMIN_URL}: {type(exc).__name__}")
    finally:
        engine.dispose()
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
    try:
        client.ping()
    except Exception as exc:
        _unavailable(f"Redis unavailable at {REDIS_URL}: {type(exc).__name__}")
    finally:
        client.close()


def _run(script: str, tmp_path: Path, *args: str, timeout: float) -> tuple[dict, subprocess.CompletedProcess]:
    env = {**os.environ, "WARDEN_BENCH_RESULTS": str(tmp_path)}
    out = subprocess.run([sys.executable, str(BENCH / script), "--quick", "--postgres-url", PG_ADMIN_URL,
                          "--redis-url", REDIS_URL, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=timeout)
    result = tmp_path / f"{script.removesuffix('.py')}.quick.json"
    assert result.exists(), f"{script} wrote no results ({out.returncode}):\n{out.stderr[-4000:]}"
    return json.loads(result.read_text()), out


def test_api_and_two_workers_on_postgres_have_no_errors_and_one_decision_each(services, tmp_path: Path) -> None:
    res, out = _run("pg_load.py", tmp_path, timeout=240)
    report = f"{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    assert res["setup"]["stream_workers"] == 2
    assert res["setup"]["alembic_revision"], "migrations were not applied at start-up"
    assert res["api"]["statuses"] == {"200": res["api"]["requests"]}, report
    assert res["events"]["publish_errors"] == {}, report
    assert res["pool_exhaustion_errors"] == 0, report
    assert res["error_count"] == 0, report
    assert all(v.get("Traceback", 0) == 0 for v in res["log_counts"].values()), res["log_counts"]
    c = res["consistency"]
    assert c["ok"], c
    assert c["api_accepted_ids"] > 0 and c["events_distinct_ids"] > 0
    assert c["api_more_than_one"] == c["events_more_than_one"] == 0
    assert res["clean_exits"], (res["exit_codes"], report)
    assert out.returncode == 0, report


@pytest.mark.slow
def test_stream_throughput_quick(services, tmp_path: Path) -> None:
    res, out = _run("stream_throughput.py", tmp_path, timeout=400)
    assert out.returncode == 0, out.stderr[-3000:]
    for w in ("1", "2"):
        r = res["throughput"][w]
        assert r["consistency"]["ok"], r["consistency"]
        assert r["events_per_s"] > 0 and r["exit_codes"] == [0] * int(w)
    assert res["scaling_ratio_2_vs_1"] > 0
    lat = res["latency"]
    assert [r["workers"] for r in lat] == [1, 2]
    assert all(r["consistency"]["ok"] and r["latency_stored_ms"]["p50"] > 0 for r in lat)


def test_stream_cpu_split_quick(services, tmp_path: Path) -> None:
    res, out = _run("stream_cpu_split.py", tmp_path, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert res["events"] == res["stored"] == 500 and res["pipeline"]
    phases = res["phases"]
    assert {"parse", "record.decisions", "record.review", "record.audit", "redis.read", "redis.publish+ack"} <= set(
        phases)
    assert any(k.startswith("tier.") for k in phases) and res["process_cpu_ms_per_event"] > 0
