"""Gates: config validation messages, pass/fail on constructed reports, CLI exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from warden.cli.eval import eval_app
from warden.evaluate.compare import compare
from warden.evaluate.gates import GateConfigError, RuleStatus, check_gates, parse_gates
from warden.evaluate.report import LabeledExample, ReportMeta, build_report

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


def _examples(n: int = 600, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.25).astype(int)
    good = np.clip(rng.normal(0.2 + 0.6 * y, 0.1), 0, 1)
    weak = np.clip(rng.normal(0.4 + 0.15 * y, 0.2), 0, 1)
    # group "b" gets many more false positives from `good` than group "a"
    grp = np.where(np.arange(n) % 2 == 0, "a", "b")
    good = np.where((grp == "b") & (y == 0) & (rng.random(n) < 0.2), 0.55, good)
    ex = [LabeledExample(f"i{i}", f"text {i}", {"hate": int(y[i]), "spam": 0}, {"identity": str(grp[i])})
          for i in range(n)]
    return ex, y, good, weak


def _config(rules: dict, **kw) -> object:
    return parse_gates({"version": 1, "data": [{"source": "x"}], "rules": rules, **kw})


def _report(scores: np.ndarray, ex, *, comparison=None):
    return build_report(ex, {"hate": scores, "spam": np.full(len(ex), 0.1)}, thresholds={"hate": 0.5, "spam": 0.5},
                        meta=ReportMeta("t", "d"), n_bootstrap=200, comparison=comparison)


def test_config_errors_are_exact() -> None:
    with pytest.raises(GateConfigError) as exc:
        parse_gates({"version": 1, "data": [{"source": "a", "manifest": "b"}],
                     "rules": {"hate": {"max_fpr": 2, "min_recall": 0.5},
                               "spam": {}, "*": {"min_recall_at_precision": {"precision": 0}}}}, source="g.yaml")
    assert str(exc.value).splitlines() == [
        "g.yaml: data[0]: give exactly one of 'manifest' or 'source'",
        "g.yaml: rules.hate.max_fpr.value: Input should be less than or equal to 1",
        "g.yaml: rules.hate.min_recall: unknown field",
        "g.yaml: rules.spam: no rule given (expected one of: min_pr_auc, max_fpr, min_recall_at_precision, "
        "max_fairness_gap, max_regression)",
        "g.yaml: rules['*'].min_recall_at_precision.precision: Input should be greater than 0",
        "g.yaml: rules['*'].min_recall_at_precision.recall: Field required",
    ]
    with pytest.raises(GateConfigError, match=r"^g: version: Input should be 1$"):
        parse_gates({"version": 2, "data": [{"source": "a"}], "rules": {"*": {"max_fpr": 0.1}}}, source="g")


def test_good_model_passes_weak_model_fails_with_reasons() -> None:
    ex, _, good, weak = _examples()
    cfg = _config({"hate": {"min_pr_auc": {"value": 0.8, "bound": "ci_low"}, "max_fpr": 0.2,
                            "min_recall_at_precision": {"precision": 0.8, "recall": 0.8}}})
    res = check_gates(_report(good, ex), cfg)
    assert res.passed, [r.line() for r in res.results]
    res = check_gates(_report(weak, ex), cfg)
    assert not res.passed
    by_rule = {r.rule: r for r in res.failures}
    assert set(by_rule) == {"min_pr_auc", "max_fpr", "min_recall_at_precision"}
    assert by_rule["min_pr_auc"].message.startswith("PR-AUC lower 95% bound 0.")
    assert "< limit 0.800" in by_rule["min_pr_auc"].message
    assert by_rule["max_fpr"].message.startswith("FPR 0.") and "> limit 0.200 (at threshold 0.5:" in \
        by_rule["max_fpr"].message
    assert "best recall at precision >= 0.80 is" in by_rule["min_recall_at_precision"].message
    assert by_rule["max_fpr"].measured > 0.2 and by_rule["max_fpr"].limit == 0.2


def test_unmeasured_is_never_a_silent_pass() -> None:
    ex, _, good, _ = _examples()
    rep = _report(good, ex)
    # spam has no positives: inherited from "*" -> warning; named explicitly -> blocking
    res = check_gates(rep, _config({"*": {"max_fpr": 0.5}}))
    spam = next(r for r in res.results if r.category == "spam")
    assert spam.status is RuleStatus.UNMEASURED and not spam.blocking and res.passed
    assert spam.message == "UNMEASURED on this data: no positive labels (n=600, 0 positives)"
    assert spam in res.warnings
    res = check_gates(rep, _config({"*": {"max_fpr": 0.5}}, unmeasured="fail"))
    assert not res.passed
    res = check_gates(rep, _config({"spam": {"max_fpr": 0.5}, "violence": {"min_pr_auc": 0.5}}))
    assert {(r.category, r.status) for r in res.failures} == {("spam", RuleStatus.UNMEASURED),
                                                             ("violence", RuleStatus.UNMEASURED)}


def test_fairness_gap() -> None:
    ex, _, good, _ = _examples()
    rep = _report(good, ex)
    rule = {"metric": "fpr", "max_gap": 0.1, "column": "identity", "min_group_size": 20}
    res = check_gates(rep, _config({"hate": {"max_fairness_gap": rule}}))
    (r,) = res.failures
    rates = {g.group: g.fpr for g in rep.groups["hate"]["identity"]}
    assert r.measured == pytest.approx(rates["b"] - rates["a"])
    assert r.message.startswith(f"FPR gap across 'identity' groups {rates['b'] - rates['a']:.3f} > limit 0.100 "
                                f"(highest 'b' {rates['b']:.3f}")
    res = check_gates(rep, _config({"hate": {"max_fairness_gap": {**rule, "column": "language"}}}))
    assert res.failures[0].status is RuleStatus.UNMEASURED
    assert "no item carries group column 'language'" in res.failures[0].message


def test_regression_against_champion() -> None:
    ex, y, good, weak = _examples()
    labels = {"hate": y.astype(float)}
    cfg = _config({"hate": {"max_regression": {"max_pr_auc_drop": 0.02}}})
    worse = compare(labels, {"hate": good}, {"hate": weak}, champion_thresholds={"hate": 0.5},
                    challenger_thresholds={"hate": 0.5}, n_bootstrap=200)
    res = check_gates(_report(weak, ex, comparison=worse), cfg)
    (r,) = res.failures
    assert r.message.startswith("PR-AUC dropped 0.") and "> limit 0.020" in r.message and "p=" in r.message
    same = compare(labels, {"hate": good}, {"hate": good}, champion_thresholds={"hate": 0.5},
                   challenger_thresholds={"hate": 0.5}, n_bootstrap=200)
    assert check_gates(_report(good, ex, comparison=same), cfg).passed
    # without a champion the rule is skipped, visibly
    res = check_gates(_report(good, ex), cfg)
    assert res.passed and res.results[0].status is RuleStatus.SKIPPED


# -- CLI ----------------------------------------------------------------------------------

def _cli_files(tmp_path: Path, monkeypatch) -> tuple[Path, Path, Path]:
    """A manifest-free setup: the gate's data is a text_data source served from a fake loader."""
    from warden.evaluate import runner as runner_mod

    ex, _, good, weak = _examples(400)

    def fake_load(spec, *, split="test", limit=None, base=None):
        if spec != "fake":
            raise runner_mod.DataError(f"unknown data {spec!r}")
        return runner_mod.LoadedData(ex, "fake source", split)

    monkeypatch.setattr(runner_mod, "load_data", fake_load)
    good_f, weak_f = tmp_path / "good.jsonl", tmp_path / "weak.jsonl"
    for path, s in ((good_f, good), (weak_f, weak)):
        path.write_text("".join(json.dumps({"id": e.id, "scores": {"hate": float(v), "spam": 0.1}}) + "\n"
                                for e, v in zip(ex, s, strict=True)))
    gates = tmp_path / "gates.yaml"
    gates.write_text(yaml.safe_dump({"version": 1, "name": "t", "data": [{"source": "fake"}], "n_bootstrap": 100,
                                     "rules": {"*": {"max_fpr": 0.5}, "hate": {"min_pr_auc": 0.8}}}))
    return gates, good_f, weak_f


def test_gate_cli_exit_codes(tmp_path: Path, monkeypatch) -> None:
    gates, good_f, weak_f = _cli_files(tmp_path, monkeypatch)
    policy = str(ROOT / "policies" / "default.yaml")
    res = runner.invoke(eval_app, ["gate", str(gates), "--candidate", str(good_f), "--policy", policy],
                        terminal_width=200)
    assert res.exit_code == 0, res.output
    assert "gate t: PASSED" in res.output and "WARNING spam: max_fpr: unmeasured" in res.output
    out_json = tmp_path / "g.json"
    res = runner.invoke(eval_app, ["gate", str(gates), "--candidate", str(weak_f), "--champion", str(good_f),
                                   "--policy", policy, "--json", str(out_json)], terminal_width=200)
    assert res.exit_code == 1, res.output
    assert "FAILED hate: min_pr_auc: PR-AUC 0." in res.output and "< limit 0.800" in res.output
    assert "gate t: FAILED" in res.output
    assert json.loads(out_json.read_text())["passed"] is False
    # unusable inputs: exit 2 with the reason
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\ndata: []\nrules: {}\n")
    res = runner.invoke(eval_app, ["gate", str(bad), "--candidate", str(good_f)])
    assert res.exit_code == 2
    assert "data: List should have at least 1 item" in res.output
    partial = tmp_path / "partial.jsonl"
    partial.write_text(good_f.read_text().splitlines()[0] + "\n")
    res = runner.invoke(eval_app, ["gate", str(gates), "--candidate", str(partial), "--policy", policy])
    assert res.exit_code == 2 and "399 of 400 items have no scores" in res.output


def test_default_gates_file_is_valid() -> None:
    from warden.evaluate.gates import load_gates

    cfg = load_gates(ROOT / "gates" / "default.yaml")
    assert cfg.unmeasured == "warn" and len(cfg.data) >= 20
    assert cfg.rules_for("hate")["max_fpr"].value == 0.03


def test_gate_refuses_a_changed_golden_set(tmp_path: Path, monkeypatch) -> None:
    """A golden manifest whose file (or selected rows) changed stops the gate before scoring."""
    from warden.evaluate.manifests import dump_manifest, file_sha256, freeze, parse_manifest
    from warden.evaluate.runner import DataError, load_data

    (tmp_path / "d").mkdir()
    csv = tmp_path / "d" / "x.csv"
    csv.write_text("text,lab\n" + "".join(f"item number {i},{i % 2}\n" for i in range(40)))
    monkeypatch.setenv("WARDEN_DATA", str(tmp_path))
    m = parse_manifest("name: x\nversion: 1\ndescription: d\nlicense: MIT\npath: d/x.csv\nformat: {type: csv}\n"
                       "text_field: text\nlabels: {spam: {column: lab, positive: [1], negative: [0]}}\n"
                       "split: {scheme: all}\n")
    golden = tmp_path / "x_golden.yaml"
    golden.write_text(dump_manifest(freeze(m, name="x_golden")))
    assert len(load_data(str(golden)).examples) == 40
    csv.write_text(csv.read_text().replace("item number 3,1", "item number 3,0"))
    with pytest.raises(DataError, match=r"golden set x_golden changed: d/x\.csv has sha256:"):
        load_data(str(golden))
    # same file, a different selection (the pinned rows no longer match): also refused
    text = golden.read_text()
    pinned = next(ln for ln in text.splitlines() if ln.startswith("checksum:"))

    golden.write_text(text.replace(pinned, f"checksum: {file_sha256(csv)}").replace("positive:\n    - 1",
                                                                                    "positive:\n    - 7"))
    with pytest.raises(DataError, match="golden set x_golden changed: row count 21, the manifest pins 40"):
        load_data(str(golden))
