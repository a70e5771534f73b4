"""`warden eval judge`: an LLM provider of the policy labels a dataset; agreement with golden
labels per category (kappa), failures counted as missing labels, never as "clean"."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import pytest
from provider_servers import OpenAIChatServer
from typer.testing import CliRunner

from warden.cli.main import app
from warden.core import Content
from warden.pipelines.judge import judge_policy, run_judge
from warden.policy import parse_policy

ITEMS = [("1", "I will kill you"), ("2", "have a nice day"), ("3", "you idiot"), ("4", "kill the lights please"),
         ("5", "what a lovely idiot-proof design"), ("6", "see you tomorrow")]
# Golden labels: 4 and 5 are benign uses the keyword judge gets wrong.
GOLDEN = {"1": {"violence": 1, "harassment": 0}, "2": {"violence": 0, "harassment": 0},
          "3": {"violence": 0, "harassment": 1}, "4": {"violence": 0, "harassment": 0},
          "5": {"violence": 0, "harassment": 0}, "6": {"violence": 0, "harassment": 0}}


def _policy(url: str) -> str:
    cat = "severity: high\n    action: remove\n    thresholds: {default: {flag: 0.8, review: 0.5}}"
    return f"""
schema_version: 1
name: judge-test
version: "1"
surfaces: [comment]
categories:
  violence:
    definition: Threats of violence against a person.
    {cat}
  harassment:
    definition: Insults aimed at a person.
    {cat}
detectors:
  judge:
    type: openai_chat
    params: {{base_url: "{url}/v1", model: gpt-oss-safeguard-20b, backoff_base_s: 0.01, backoff_max_s: 0.02}}
"""


@pytest.fixture
def server() -> Iterator[OpenAIChatServer]:
    s = OpenAIChatServer(None).start()
    yield s
    s.stop()


def test_run_judge_reports_kappa_per_category(server: OpenAIChatServer) -> None:
    policy = parse_policy(_policy(server.url))
    items = [Content(id=i, text=t) for i, t in ITEMS]
    run = run_judge(policy, "judge", items, {k: {c: float(v) for c, v in d.items()} for k, d in GOLDEN.items()},
                    n_bootstrap=50)
    assert run.n_failed == 0 and run.model_version.startswith("openai_chat@1:gpt-oss-safeguard-20b:prompt-")
    assert run.judge_labels["violence"] == (1.0, 0.0, 0.0, 1.0, 0.0, 0.0)
    violence = run.reports["violence"]
    assert violence.observed_agreement == pytest.approx(5 / 6)
    assert violence.prevalence == {"golden": pytest.approx(1 / 6), "judge": pytest.approx(2 / 6)}
    assert violence.kappa is not None and violence.kappa.value == pytest.approx(0.571, abs=0.001)


def test_failed_items_are_missing_labels_not_clean(server: OpenAIChatServer) -> None:
    policy = parse_policy(_policy(server.url))
    server.judge.mode = "hallucinate"  # every answer fails validation, also after the repair
    items = [Content(id=i, text=t) for i, t in ITEMS[:2]]
    run = run_judge(policy, "judge", items, {"1": {"violence": 1.0}, "2": {"violence": 0.0}}, n_bootstrap=0)
    assert run.n_failed == 2 and "invalid_answer" in run.failures[0]
    assert all(math.isnan(v) for v in run.judge_labels["violence"])
    assert run.reports["violence"].reason == "no item labeled by two sources"


def test_judge_policy_keeps_only_the_judge(server: OpenAIChatServer) -> None:
    policy = parse_policy(_policy(server.url))
    assert set(judge_policy(policy, "judge").detectors) == {"judge"}
    with pytest.raises(ValueError, match="detector 'nope' is not declared in policy 'judge-test'; declared: judge"):
        judge_policy(policy, "nope")


def test_cli(server: OpenAIChatServer, tmp_path: Path) -> None:
    (tmp_path / "policy.yaml").write_text(_policy(server.url))
    (tmp_path / "items.jsonl").write_text("\n".join(json.dumps({"id": i, "text": t}) for i, t in ITEMS))
    (tmp_path / "labels.jsonl").write_text("\n".join(json.dumps({"id": k, **v}) for k, v in GOLDEN.items()))
    out = tmp_path / "judge.json"
    result = CliRunner().invoke(app, ["eval", "judge", str(tmp_path / "items.jsonl"), "--labels",
                                      str(tmp_path / "labels.jsonl"), "--detector", "judge", "--policy",
                                      str(tmp_path / "policy.yaml"), "--out", str(out), "--n-bootstrap", "50"])
    assert result.exit_code == 0, result.output
    assert "6 items, 0 failed" in result.output and "violence" in result.output
    report = json.loads(out.read_text())
    assert report["agreement"]["violence"]["kappa"]["value"] == pytest.approx(0.571, abs=0.001)
    bad = CliRunner().invoke(app, ["eval", "judge", str(tmp_path / "items.jsonl"), "--labels",
                                   str(tmp_path / "labels.jsonl"), "--detector", "claude", "--policy",
                                   str(tmp_path / "policy.yaml")])
    assert bad.exit_code == 2 and "detector 'claude' is not declared" in bad.output
