"""`eval_app` (warden eval thresholds|compare) end to end on small files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from warden.cli.eval import eval_app
from warden.policy import load_policy

ROOT = Path(__file__).resolve().parents[2]
POLICY = ROOT / "policies" / "default.yaml"
runner = CliRunner()


def _files(tmp_path: Path, n: int = 600) -> tuple[Path, Path, Path]:
    rng = np.random.default_rng(0)
    y = (rng.random(n) < 0.25).astype(int)
    weak = np.clip(rng.normal(0.4 + 0.1 * y, 0.2), 0, 1).round(3)
    strong = np.clip(rng.normal(0.3 + 0.5 * y, 0.15), 0, 1).round(3)
    labels = tmp_path / "labels.csv"
    labels.write_text("id,hate,spam\n" + "".join(f"i{i},{y[i]},{'' if i % 2 else 0}\n" for i in range(n)))
    champ, chall = tmp_path / "champ.jsonl", tmp_path / "chall.jsonl"
    champ.write_text("".join(json.dumps({"id": f"i{i}", "scores": {"hate": weak[i], "spam": 0.1}}) + "\n"
                             for i in range(n)) + json.dumps({"id": "bad", "error": "x"}) + "\n")
    chall.write_text("".join(json.dumps({"id": f"i{i}", "scores": {"hate": strong[i], "spam": 0.1}}) + "\n"
                             for i in range(n)))
    return labels, champ, chall


def test_thresholds_writes_a_valid_policy(tmp_path: Path) -> None:
    labels, _, chall = _files(tmp_path)
    out = tmp_path / "new.yaml"
    res = runner.invoke(eval_app, ["thresholds", "--scores", str(chall), "--labels", str(labels), "--policy",
                                   str(POLICY), "--target", "hate:precision>=0.9", "--surface", "chat",
                                   "--out", str(out), "--version", "tuned-1", "--bootstrap", "100"],
                        terminal_width=200)
    assert res.exit_code == 0, res.output
    assert "hate" in res.output and "spam" in res.output and "wrote" in res.output
    new = load_policy(out)
    assert new.version == "tuned-1"
    assert new.categories["hate"].thresholds["chat"].flag != load_policy(POLICY).categories["hate"].threshold_for(
        "chat").flag


def test_thresholds_errors(tmp_path: Path) -> None:
    labels, _, chall = _files(tmp_path)
    bad = runner.invoke(eval_app, ["thresholds", "--scores", str(chall), "--labels", str(labels), "--policy",
                                   str(POLICY), "--target", "precision=>>0.9"])
    assert bad.exit_code == 2 and "cannot parse target" in bad.output
    other = tmp_path / "other.jsonl"
    other.write_text(json.dumps({"id": "zzz", "scores": {"hate": 0.5}}) + "\n")
    res = runner.invoke(eval_app, ["thresholds", "--scores", str(other), "--labels", str(labels), "--policy",
                                   str(POLICY), "--target", "precision>=0.9"])
    assert res.exit_code == 2 and "ids do not match" in res.output
    res = runner.invoke(eval_app, ["thresholds", "--scores", str(chall), "--labels", str(labels), "--policy",
                                   str(POLICY), "--target", "precision>=0.9", "--out", str(tmp_path / "x.yaml")])
    assert res.exit_code == 2 and "--version" in res.output


def test_compare_prints_verdicts_and_json(tmp_path: Path) -> None:
    labels, champ, chall = _files(tmp_path)
    out = tmp_path / "cmp.json"
    res = runner.invoke(eval_app, ["compare", "--champion", str(champ), "--challenger", str(chall), "--labels",
                                   str(labels), "--policy", str(POLICY), "--bootstrap", "200", "--json", str(out)],
                        terminal_width=250)
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    assert data["hate"]["verdict"] == "challenger better"
    assert data["spam"]["verdict"] == "unmeasured"
    assert "challenger better" in res.output
