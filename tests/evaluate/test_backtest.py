"""Backtest on constructed decisions: transitions, volumes, flag rates and label deltas
checked against hand counts and scikit-learn."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import precision_score, recall_score

from warden.core import Action, CategoryVerdict, Decision, Verdict
from warden.evaluate.backtest import DecisionView, backtest, label_delta
from warden.evaluate.online import wilson_interval


def d(cid: str, action: str, flagged=(), version: str = "v1", cats=("hate", "spam")) -> dict:
    return {"id": cid, "action": action, "flagged": list(flagged), "policy_version": version,
            "scores": {c: 0.0 for c in cats}, "surface": "comment"}


OLD = [d("a", "allow"), d("b", "remove", ["hate"]), d("c", "remove", ["hate"]), d("e", "allow"),
       d("f", "hold_for_review"), d("g", "allow"), d("old-only", "allow")]
NEW = [d("a", "allow", version="v2"), d("b", "remove", ["hate"], "v2"), d("c", "allow", version="v2"),
       d("e", "remove", ["spam"], "v2"), d("f", "remove", ["hate", "spam"], "v2"), d("g", "allow", ["spam"], "v2"),
       d("new-only", "allow", version="v2")]


def test_transitions_volumes_and_flag_rates() -> None:
    r = backtest(OLD, NEW, n_bootstrap=0)
    assert r.n_items == 6 and r.only_old == 1 and r.only_new == 1
    assert r.old_policy_versions == ("v1",) and r.new_policy_versions == ("v2",)
    assert r.changed == 3  # c remove->allow, e allow->remove, f hold->remove
    assert r.changed_rate.value == pytest.approx(0.5)
    lo, hi = wilson_interval(3, 6)
    assert (r.changed_rate.ci_low, r.changed_rate.ci_high) == pytest.approx((lo, hi))
    assert r.agreement_rate == pytest.approx(0.5)
    assert r.flags_changed == 4  # c, e, f, g (g keeps its action but gains a spam flag)
    assert r.transitions == {
        "allow": {"allow": 2, "hold_for_review": 0, "remove": 1},
        "hold_for_review": {"allow": 0, "hold_for_review": 0, "remove": 1},
        "remove": {"allow": 1, "hold_for_review": 0, "remove": 1},
    }
    assert sum(sum(row.values()) for row in r.transitions.values()) == r.n_items
    assert [(e.content_id, e.old_action, e.new_action) for e in r.examples] == [
        ("c", "remove", "allow"), ("e", "allow", "remove"), ("f", "hold_for_review", "remove")]
    vol = {v.action: (v.old, v.new, v.delta) for v in r.volumes}
    assert vol == {"allow": (3, 3, 0), "hold_for_review": (1, 0, -1), "remove": (2, 3, 1)}
    cats = {c.category: c for c in r.categories}
    assert (cats["hate"].old_flagged, cats["hate"].new_flagged) == (2, 2)
    assert (cats["hate"].newly_flagged, cats["hate"].unflagged) == (1, 1)  # f gained, c lost
    assert (cats["spam"].old_flagged, cats["spam"].new_flagged, cats["spam"].newly_flagged) == (0, 3, 3)
    assert cats["spam"].rate_delta == pytest.approx(0.5)
    assert r.label_deltas == [] and r.n_bootstrap == 0
    out = r.to_dict()
    assert out["changed"] == 3 and out["volumes"][1]["delta"] == -1 and out["agreement_rate"] == 0.5


def test_max_examples_and_identical_runs() -> None:
    r = backtest(OLD, NEW, n_bootstrap=0, max_examples=1)
    assert len(r.examples) == 1
    same = backtest(OLD, OLD, n_bootstrap=0)
    assert same.changed == 0 and same.flags_changed == 0 and same.agreement_rate == 1.0


def test_accepts_decision_objects() -> None:
    dec = Decision(content_id="x", policy_name="p", policy_version="v9", surface="chat", action=Action.REMOVE,
                   automated=True, verdicts=(CategoryVerdict("hate", Verdict.VIOLATING, 0.9, 0.8, 0.5, "m"),),
                   reasons=(), scores={"hate": 0.9})
    v = DecisionView.of(dec)
    assert v == DecisionView("x", "remove", frozenset({"hate"}), "chat", "v9", frozenset({"hate"}))
    assert DecisionView.of(dec.to_dict()) == v
    r = backtest([d("x", "allow")], [dec], n_bootstrap=0)
    assert r.changed == 1 and r.transitions == {"allow": {"allow": 0, "remove": 1}}


def test_duplicate_ids_rejected() -> None:
    with pytest.raises(ValueError, match="appears twice"):
        backtest([d("a", "allow"), d("a", "remove")], [d("a", "allow")])


def test_label_deltas_match_sklearn() -> None:
    rng = np.random.default_rng(1)
    n = 300
    y = (rng.random(n) < 0.3).astype(int)
    old_pred = ((y == 1) & (rng.random(n) < 0.6)) | ((y == 0) & (rng.random(n) < 0.1))
    # the candidate catches half of the missed positives and drops half of the false positives
    new_pred = (old_pred | ((y == 1) & (rng.random(n) < 0.5))) & ~((y == 0) & (rng.random(n) < 0.5))
    old = [d(f"i{i}", "remove" if old_pred[i] else "allow", ["hate"] if old_pred[i] else []) for i in range(n)]
    new = [d(f"i{i}", "remove" if new_pred[i] else "allow", ["hate"] if new_pred[i] else []) for i in range(n)]
    # labels: hate for every item, spam for some (unknown elsewhere), one unlabeled item
    labels = {f"i{i}": {"hate": int(y[i]), "spam": (0 if i % 3 == 0 else None)} for i in range(n - 1)}
    r = backtest(old, new, labels=labels, n_bootstrap=400, random_state=3)
    assert r.n_labeled_items == n - 1 and r.n_bootstrap == 400
    hate = next(x for x in r.label_deltas if x.category == "hate")
    yy, a, b = y[: n - 1], old_pred[: n - 1].astype(int), new_pred[: n - 1].astype(int)
    assert hate.n_labeled == n - 1 and hate.positives == int(yy.sum())
    assert hate.old_precision.value == pytest.approx(precision_score(yy, a))
    assert hate.new_precision.value == pytest.approx(precision_score(yy, b))
    assert hate.old_recall.value == pytest.approx(recall_score(yy, a))
    assert hate.new_recall.value == pytest.approx(recall_score(yy, b))
    assert hate.recall_delta.value == pytest.approx(recall_score(yy, b) - recall_score(yy, a))
    assert hate.precision_delta.value == pytest.approx(precision_score(yy, b) - precision_score(yy, a))
    for est in (hate.old_precision, hate.new_recall, hate.recall_delta, hate.precision_delta):
        assert est.ci_low <= est.value <= est.ci_high
    assert hate.recall_delta.ci_low > 0  # the candidate clearly recalls more
    assert hate.old_confusion == {"tp": int(((yy == 1) & (a == 1)).sum()), "fp": int(((yy == 0) & (a == 1)).sum()),
                                  "fn": int(((yy == 1) & (a == 0)).sum()), "tn": int(((yy == 0) & (a == 0)).sum())}
    spam = next(x for x in r.label_deltas if x.category == "spam")
    assert spam.n_labeled == len([i for i in range(n - 1) if i % 3 == 0]) and spam.positives == 0
    assert math.isnan(spam.old_recall.value) and spam.reason and "recall undefined" in spam.reason
    assert math.isnan(spam.old_precision.value)  # nothing flagged spam: undefined, not 0
    assert r.to_dict()["label_deltas"][1]["old_recall"]["value"] is None


def test_label_delta_small_hand_case() -> None:
    y = np.array([1, 1, 1, 0, 0])
    old = np.array([1, 0, 0, 1, 0])  # P 1/2, R 1/3
    new = np.array([1, 1, 0, 0, 0])  # P 1, R 2/3
    r = label_delta("x", y, old, new, n_bootstrap=0)
    assert (r.old_precision.value, r.new_precision.value) == pytest.approx((0.5, 1.0))
    assert (r.old_recall.value, r.new_recall.value, r.recall_delta.value) == pytest.approx((1 / 3, 2 / 3, 1 / 3))
    assert math.isnan(r.recall_delta.ci_low)
