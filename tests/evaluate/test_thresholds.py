"""Threshold selection under constraints, and the new policy version it writes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn import metrics as skm

from warden.evaluate import thresholds as th
from warden.policy import diff_policies, load_policy

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_POLICY = ROOT / "policies" / "default.yaml"


def _data(n: int = 2000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.2).astype(int)
    s = np.clip(rng.normal(0.3 + 0.35 * y, 0.15), 0, 1).round(3)
    return y, s


@pytest.mark.parametrize("text,expected", [("precision>=0.9", ("precision", ">=", 0.9)),
                                           (" recall >= 0.8 ", ("recall", ">=", 0.8)),
                                           ("FPR<=0.01", ("fpr", "<=", 0.01))])
def test_parse_constraint(text: str, expected: tuple) -> None:
    c = th.parse_constraint(text)
    assert (c.metric, c.op, c.value) == expected


@pytest.mark.parametrize("text,match", [("precision>0.9x", "cannot parse"), ("accuracy>=0.9", "unknown metric"),
                                        ("precision<=0.9", "takes >="), ("fpr>=0.1", "takes <="),
                                        ("recall>=1.5", r"\[0, 1\]"), ("nonsense", "cannot parse")])
def test_parse_errors_are_clear(text: str, match: str) -> None:
    with pytest.raises(th.ConstraintError, match=match):
        th.parse_constraint(text)


def test_parse_target_with_category() -> None:
    expected = ("hate/threatening", th.Constraint("precision", ">=", 0.95))
    assert th.parse_target("hate/threatening:precision>=0.95") == expected
    assert th.parse_target("recall>=0.5")[0] is None


@pytest.mark.parametrize("target", ["precision>=0.9", "recall>=0.8", "fpr<=0.01", "precision>=0.75"])
def test_selected_threshold_meets_constraint_on_selection_data(target: str) -> None:
    y, s = _data()
    choice = th.select_threshold(y, s, constraints=[target], n_bootstrap=100, category="hate")
    assert choice.status is th.SelectionStatus.SELECTED
    pred = s >= choice.threshold
    c = th.parse_constraint(target)
    value = {"precision": skm.precision_score(y, pred), "recall": skm.recall_score(y, pred),
             "fpr": (pred & (y == 0)).sum() / (y == 0).sum()}[c.metric]
    assert value >= c.value if c.op == ">=" else value <= c.value
    assert choice.precision.value == pytest.approx(skm.precision_score(y, pred))
    assert choice.recall.value == pytest.approx(skm.recall_score(y, pred))
    assert choice.precision.ci_low <= choice.precision.value <= choice.precision.ci_high
    # optimal: the next lower distinct score would break a precision floor / the next higher a recall floor
    lower = s[s < choice.threshold]
    higher = s[s > choice.threshold]
    if c.metric == "precision" and len(lower):
        assert skm.precision_score(y, s >= lower.max()) < c.value
    if c.metric == "recall" and len(higher):
        assert skm.recall_score(y, s >= higher.min()) < c.value


def test_cost_selection_minimizes_cost() -> None:
    y, s = _data(seed=2)
    choice = th.select_threshold(y, s, cost=th.Cost(fp=1.0, fn=5.0), n_bootstrap=50)
    costs = {t: ((s >= t) & (y == 0)).sum() * 1.0 + ((s < t) & (y == 1)).sum() * 5.0 for t in np.unique(s)}
    assert choice.expected_cost == pytest.approx(min(costs.values()))
    assert costs[choice.threshold] == pytest.approx(choice.expected_cost)


def test_infeasible_and_unmeasured() -> None:
    y = np.array([0, 1, 0, 1, 0, 1])
    s = np.array([0.9, 0.9, 0.8, 0.8, 0.1, 0.2])
    choice = th.select_threshold(y, s, constraints=["precision>=0.9"], n_bootstrap=10)
    assert choice.status is th.SelectionStatus.INFEASIBLE and choice.threshold is None
    assert "best precision reachable is 0.6000" in choice.reason
    un = th.select_threshold([0, 0, None], [0.1, 0.2, 0.3], constraints=["recall>=0.5"])
    assert un.status is th.SelectionStatus.UNMEASURED and un.reason == "no positive labels"
    with pytest.raises(ValueError, match="constraint or a cost"):
        th.select_threshold(y, s)


def test_new_policy_version_loads_and_changes_only_thresholds(tmp_path: Path) -> None:
    policy = load_policy(DEFAULT_POLICY)
    y, s = _data(seed=3)
    choices = th.select_thresholds({"hate": y, "spam": y, "scam": np.zeros(len(y))},
                                   {"hate": s, "spam": s, "scam": s},
                                   constraints={"hate": ["precision>=0.9"], "spam": ["recall>=0.99"],
                                                "scam": ["recall>=0.5"]}, n_bootstrap=50)
    update = th.apply_thresholds(policy, choices, surface="chat", version="test-2")
    out = th.write_policy(update.policy, tmp_path / "new.yaml", header="test header")
    text = out.read_text()
    assert text.startswith("# test header") and "comments of the source policy are not" in text
    new = load_policy(out)  # validates schema and detector params
    assert new.version == "test-2"
    hate = new.categories["hate"].thresholds["chat"]
    assert hate.flag == pytest.approx(choices["hate"].threshold)
    assert hate.review is None or hate.review <= hate.flag
    spam = new.categories["spam"].thresholds["chat"]
    assert spam.flag == pytest.approx(choices["spam"].threshold) and spam.review <= spam.flag
    assert any("scam" in line for line in update.skipped)
    allowed = ("version", "categories.hate.thresholds.chat", "categories.spam.thresholds.chat")
    changes = diff_policies(policy, new)
    assert changes and all(c.path.startswith(allowed) for c in changes), [c.format() for c in changes]
    # the thresholds on other surfaces are untouched
    assert new.categories["hate"].thresholds["default"] == policy.categories["hate"].thresholds["default"]


def test_apply_thresholds_rejects_same_version_and_unknown_surface() -> None:
    policy = load_policy(DEFAULT_POLICY)
    with pytest.raises(ValueError, match="must differ"):
        th.apply_thresholds(policy, {}, version=policy.version)
    with pytest.raises(ValueError, match="unknown surface"):
        th.apply_thresholds(policy, {}, surface="nowhere", version="x")


def test_policy_thresholds() -> None:
    policy = load_policy(DEFAULT_POLICY)
    t = th.policy_thresholds(policy, surface="profile")
    assert t["sexual"] == policy.categories["sexual"].thresholds["profile"].flag
    assert t["hate"] == policy.categories["hate"].threshold_for("profile").flag
