"""Smoke run of benchmarks/llm_cascade.py --quick: the stand-in LLM server speaks the chat-completions
wire format well enough for the real `openai_chat` adapter (every answer validates, quotes included),
the cascade rules escalate what they should, and cost is accounted. Figures come from the full run
(BENCHMARKS.md, docs/providers.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from support import skip_or_fail

ROOT = Path(__file__).resolve().parents[2]


def test_llm_cascade_quick(tmp_path: Path) -> None:
    data = Path(os.environ.get("WARDEN_DATA", ROOT.parent / "shared" / "datasets"))
    if not data.is_dir():
        skip_or_fail(f"the shared datasets are not at {data} (set WARDEN_DATA)")
    env = {**os.environ, "WARDEN_BENCH_RESULTS": str(tmp_path)}
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "llm_cascade.py"), "--quick"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    res = json.loads((tmp_path / "llm_cascade.quick.json").read_text())
    r = res["results"]
    assert res["test_rows"] == 150 and res["split"].startswith("test")
    assert r["always local"]["llm_requests"] == 0 and r["always local"]["escalated_to_llm"] == 0
    assert r["always LLM"]["escalated_to_llm"] == 1.0 and r["always LLM"]["llm_requests"] == 150
    for name, row in r.items():
        assert row["llm_item_errors"] == 0, name  # every answer passed the adapter's validation
        assert 0.0 <= row["macro_pr_auc"]["ci95"][0] <= row["macro_pr_auc"]["value"] <= row["macro_pr_auc"]["ci95"][1]
    cascades = [row for name, row in r.items() if name not in ("always local", "always LLM")]
    assert all(0 < row["escalated_to_llm"] < 1 for row in cascades)
    # A wider band escalates at least as much as a narrower one; "band or severity" at least the band alone.
    assert r["band [0.3, 0.8]"]["escalated_to_llm"] >= r["band [0.5, 0.8]"]["escalated_to_llm"]
    assert (r["band [0.5, 0.8] or severity >= high at 0.2"]["escalated_to_llm"]
            >= r["band [0.5, 0.8]"]["escalated_to_llm"])
    llm = r["always LLM"]
    # The policy-as-prompt is far longer than any answer; the cost is the adapter's own accounting.
    assert llm["input_tokens_per_call"] > 1000 and llm["output_tokens_per_call"] > 50
    expected = 1000 * (llm["input_tokens_per_call"] * res["prices_usd_per_1k_tokens"]["input"]
                       + llm["output_tokens_per_call"] * res["prices_usd_per_1k_tokens"]["output"]) / 1000
    assert llm["cost_usd_per_1k_items"] == pytest.approx(expected, rel=0.01)
