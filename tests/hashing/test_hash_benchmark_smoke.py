"""benchmarks/hash_matching.py still runs (tiny sizes) and writes its JSON; figures come from full runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from hashing_support import need_hashing

ROOT = Path(__file__).resolve().parents[2]


def test_hash_matching_benchmark_smoke(tmp_path: Path) -> None:
    need_hashing()
    env = {**os.environ, "WARDEN_BENCH_RESULTS": str(tmp_path)}
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "hash_matching.py"), "--quick", "--bank-size",
                          "3000", "--distinct", "30", "--recall-images", "4", "--skip-orb"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads((tmp_path / "hash_matching.quick.json").read_text())
    assert result["index"]["exactness_mismatches_vs_brute_force"]["mih"] == 0
    assert result["index"]["exactness_mismatches_vs_brute_force"].get("compiled", 0) == 0
    assert "crop_5" in result["images"]["recall_synthetic_pdq_dihedral"]
