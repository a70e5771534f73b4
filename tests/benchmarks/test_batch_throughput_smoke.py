"""Smoke run of benchmarks/batch_throughput.py --quick (batch only, the banks policy): the script
runs against the current code and writes its JSON. Figures come from full runs (BENCHMARKS.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_batch_throughput_quick(tmp_path: Path) -> None:
    env = {**os.environ, "WARDEN_BENCH_RESULTS": str(tmp_path)}
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "batch_throughput.py"), "--quick", "--no-spark",
                          "--max-load", "1000", "--policy", str(ROOT / "benchmarks" / "policies" / "banks.yaml")],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads((tmp_path / "batch_throughput.quick.json").read_text())
    assert set(result["batch"]) == {"workers_1", "workers_2"}
    assert all(r["rows"] == 1000 and r["rows_per_s"] > 0 for r in result["batch"].values())
    assert "loadavg_1_5_15" in result["machine"]
