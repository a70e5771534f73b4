"""Throughput of `warden batch` (1 and 2 worker processes) and of PySpark local[2]
(`warden spark-batch`, and `warden.spark.moderate` in a warm session) on the same rows.

All runs read the same JSONL file of short (< 280 chars) English texts mixed evenly from the
shared datasets (see _common.short_text_sample) and use the same policy (default: the full
cascade of policies/default.yaml).

* **batch, end to end**: `warden batch INPUT -o OUT --workers N --restart --no-progress` as a
  child process; one warm-up run, then `--runs` counted runs. Wall time includes Python
  start-up, imports, model loading in each worker and writing Parquet. rows/s = rows / median.
* **spark-batch, end to end**: `warden spark-batch INPUT -o OUT --master local[2] --overwrite`
  as a child process, the same way; includes JVM start-up and Spark planning.
* **spark, warm session**: `moderate(spark.read.json(INPUT).repartition(2))` written to
  Parquet in this process's local[2] session; one warm-up job (the Python workers load the
  models and keep them), then `--runs` counted jobs. The steady state of a long-lived cluster.

Every run's output is checked: a run with error rows or missing detector signals is not a
speed. The machine's load average is recorded; the script refuses to start above --max-load.

    .venv/bin/python benchmarks/batch_throughput.py            # 10,000 rows, 3 runs each
    .venv/bin/python benchmarks/batch_throughput.py --quick    # smoke run
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C


def check_output(out: Path, rows: int, where: str) -> None:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = pq.read_table(out, columns=["error", "missing_signals"])
    errors = table.num_rows - pc.sum(pc.is_null(table.column("error"))).as_py()
    missing = sum(1 for m in table.column("missing_signals").to_pylist() if m)
    if table.num_rows != rows or errors or missing:
        raise RuntimeError(f"{where}: {table.num_rows} rows (expected {rows}), {errors} error rows, {missing} rows "
                           "with missing detector signals")


def run_process(cmd: list[str]) -> dict[str, float]:
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    err = proc.stderr.read() if proc.stderr else b""
    _, status, ru = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {code}: {err.decode(errors='replace')[-2000:]}")
    # ru is the child's own usage; Spark's JVM and Python workers are its children and count
    # only once reaped, so CPU seconds are reported for `warden batch` alone.
    return {"wall_s": wall, "cpu_s": ru.ru_utime + ru.ru_stime}


def bench_command(name: str, cmd: list[str], out: Path, rows: int, runs: int) -> dict[str, Any]:
    run_process(cmd)  # warm-up: page cache, encoder cache
    check_output(out, rows, name)
    results = []
    for _ in range(runs):
        results.append(run_process(cmd))
        check_output(out, rows, name)
    wall = statistics.median(r["wall_s"] for r in results)
    return {"command": " ".join(cmd).replace(str(C.ROOT) + "/", ""), "rows": rows, "runs": runs,
            "wall_s": [round(r["wall_s"], 3) for r in results], "wall_s_median": round(wall, 3),
            "rows_per_s": round(rows / wall, 1)}


def bench_spark_session(policy: Path, inp: Path, tmp: Path, rows: int, runs: int) -> dict[str, Any]:
    from warden.spark import local_session, moderate

    started = time.perf_counter()
    spark = local_session("local[2]", app_name="warden-bench", conf={"spark.sql.shuffle.partitions": "2"})
    session_s = time.perf_counter() - started
    try:
        walls = []
        for i in range(runs + 1):
            out = tmp / f"spark-session-{i}"
            t = time.perf_counter()
            df = spark.read.json(str(inp)).repartition(2)
            moderate(df, policy=policy).write.mode("overwrite").parquet(str(out))
            wall = time.perf_counter() - t
            check_output(out, rows, "spark session")
            if i > 0:  # run 0 is the warm-up that loads the models in the Python workers
                walls.append(wall)
    finally:
        spark.stop()
    wall = statistics.median(walls)
    return {"master": "local[2]", "session_start_s": round(session_s, 3), "rows": rows, "runs": runs,
            "wall_s": [round(w, 3) for w in walls], "wall_s_median": round(wall, 3),
            "rows_per_s": round(rows / wall, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--policy", type=Path, default=C.DEFAULT_POLICY)
    ap.add_argument("--quick", action="store_true", help="1,000 rows, 1 run: checks the script, not a figure")
    ap.add_argument("--max-load", type=float, default=1.5, help="refuse to start above this 1-minute load average")
    ap.add_argument("--no-spark", action="store_true", help="measure warden batch only")
    args = ap.parse_args()
    if args.quick:
        args.rows, args.runs = 1_000, 1
    load1 = os.getloadavg()[0]
    if load1 > args.max_load:
        raise SystemExit(f"load average {load1:.2f} > --max-load {args.max_load}: the machine is busy, figures would "
                         "be wrong. Wait, or raise --max-load and say so.")
    machine = C.machine_info()
    rows, provenance = C.short_text_sample(args.rows, seed=0)
    warden = str(C.VENV_BIN / "warden")
    policy = args.policy.resolve()
    result: dict[str, Any] = {"benchmark": "batch_throughput", "quick": args.quick, "machine": machine,
                              "policy": C.rel(policy), "model": C.model_fingerprint(), "sample": provenance}
    with tempfile.TemporaryDirectory(prefix="warden-bench-") as tmp_s:
        tmp = Path(tmp_s)
        inp = tmp / "texts.jsonl"
        C.write_jsonl(rows, inp)
        n = len(rows)
        result["batch"] = {}
        for workers in (1, 2):
            out = tmp / f"batch-{workers}"
            cmd = [warden, "batch", str(inp), "-o", str(out), "--policy", str(policy), "--workers", str(workers),
                   "--restart", "--no-progress"]
            result["batch"][f"workers_{workers}"] = r = bench_command(f"batch --workers {workers}", cmd, out, n,
                                                                      args.runs)
            print(f"warden batch --workers {workers}: {r['rows_per_s']:,.0f} rows/s (median of {args.runs}, "
                  f"{r['wall_s_median']:.1f} s end to end)")
        if not args.no_spark:
            out = tmp / "spark-batch"
            cmd = [warden, "spark-batch", str(inp), "-o", str(out), "--policy", str(policy), "--master", "local[2]",
                   "--overwrite"]
            result["spark_batch"] = r = bench_command("spark-batch local[2]", cmd, out, n, args.runs)
            print(f"warden spark-batch --master local[2]: {r['rows_per_s']:,.0f} rows/s (median of {args.runs}, "
                  f"{r['wall_s_median']:.1f} s end to end, JVM start-up included)")
            result["spark_session"] = r = bench_spark_session(policy, inp, tmp, n, args.runs)
            print(f"warden.spark.moderate, warm local[2] session: {r['rows_per_s']:,.0f} rows/s (median of "
                  f"{args.runs}, {r['wall_s_median']:.1f} s per job)")
        shutil.rmtree(tmp / "spark-batch", ignore_errors=True)
    result["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    path = C.write_result("batch_throughput", result, quick=args.quick)
    print(f"load average before {machine['loadavg_1_5_15']}, after {result['loadavg_after']}; wrote {C.rel(path)}")


if __name__ == "__main__":
    main()
