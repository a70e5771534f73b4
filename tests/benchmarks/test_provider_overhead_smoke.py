"""Smoke run of benchmarks/provider_overhead.py --quick: the script runs against the current code and
writes its JSON. Figures come from full runs (BENCHMARKS.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_provider_overhead_quick(tmp_path: Path) -> None:
    env = {**os.environ, "WARDEN_BENCH_RESULTS": str(tmp_path)}
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "provider_overhead.py"), "--quick"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads((tmp_path / "provider_overhead.quick.json").read_text())
    assert set(result["results"]) == {"openai_moderation", "hive"} and result["calls"] == 20
    assert all(r["cache_hit"]["median_ms"] > 0 for r in result["results"].values())
