"""Smoke runs of the benchmark scripts' --quick modes (no trained model, no network).

They check the scripts still run against the current code and write their JSON; the figures
themselves are measured with the full runs recorded in BENCHMARKS.md.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "benchmarks"


def _run(script: str, tmp_path: Path, *args: str, timeout: float = 240) -> dict:
    env = {**os.environ, "WARDEN_BENCH_RESULTS": str(tmp_path)}
    out = subprocess.run([sys.executable, str(BENCH / script), "--quick", *args], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, out.stderr[-3000:]
    name = script.removesuffix(".py")
    return json.loads((tmp_path / f"{name}.quick.json").read_text())


def _load_common():
    spec = importlib.util.spec_from_file_location("bench_common", BENCH / "_common.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_percentile_and_table() -> None:
    c = _load_common()
    assert c.percentile([1, 2, 3, 4], 50) == 2.5
    assert c.percentile([5.0], 99) == 5.0
    assert "| a | b |" in c.table(["a", "b"], [[1, 2.5]])


def test_tier_policies_are_current_and_valid() -> None:
    """benchmarks/policies/*.yaml are regenerated from policies/default.yaml and load."""
    from warden.policy import load_policy_file

    spec = importlib.util.spec_from_file_location("make_policies", BENCH / "make_policies.py")
    mp = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mp)
    import yaml

    base = yaml.safe_load(mp.SRC.read_text(encoding="utf-8"))
    for name in mp.VARIANTS:
        path = BENCH / "policies" / f"{name}.yaml"
        on_disk = yaml.safe_load(path.read_text(encoding="utf-8"))
        assert on_disk == mp.build(name, base), f"{path} is stale: run benchmarks/make_policies.py"
        policy = load_policy_file(path).policy
        assert set(policy.categories) == set(base["categories"])


def test_classify_throughput_quick_banks(tmp_path: Path) -> None:
    res = _run("classify_throughput.py", tmp_path, "--tiers", "banks")
    banks = res["tiers"]["banks"]
    assert banks["inprocess"]["rows"] == 200 and banks["inprocess"]["texts_per_s"] > 0
    assert banks["process"]["texts_per_s"] > 0


@pytest.mark.slow
def test_peers_quick_speed(tmp_path: Path) -> None:
    pytest.importorskip("profanity_check")
    pytest.importorskip("hatesonar")
    res = _run("peers.py", tmp_path)
    assert set(res["speed"]) == {"warden", "alt-profanity-check", "hatesonar"}
    assert all(v["texts_per_s"] > 0 for v in res["speed"].values())


@pytest.mark.slow
def test_api_latency_quick(tmp_path: Path) -> None:
    res = _run("api_latency.py", tmp_path, "--policy", str(BENCH / "policies" / "banks.yaml"))
    assert res["requests"] == 60 and res["error_count"] == 0
    assert res["latency_ms"]["p50"] > 0 and res["server_peak_rss_mib"] > 0
