"""The report's figures equal an independent scikit-learn computation; rendering works."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import (
    average_precision_score,
    confusion_matrix,
    precision_recall_curve,
    precision_score,
    recall_score,
    roc_auc_score,
)

from warden.evaluate.render import render_html, render_markdown, write_report
from warden.evaluate.report import LabeledExample, ReportMeta, build_report, recall_at_precision


def _data(n: int = 700, seed: int = 0):
    rng = np.random.default_rng(seed)
    y_hate = (rng.random(n) < 0.2).astype(int)
    y_spam = (rng.random(n) < 0.1).astype(int)
    s_hate = np.clip(rng.normal(0.35 + 0.35 * y_hate, 0.2), 0, 1).round(3)  # ties on purpose
    s_spam = np.clip(rng.normal(0.2 + 0.6 * y_spam, 0.15), 0, 1)
    groups = ["muslim", "jewish", "christian", ("gay", "muslim")]
    examples = []
    for i in range(n):
        labels = {"hate": int(y_hate[i]), "sexual": 0}
        if i % 3:  # spam unknown on a third of the items
            labels["spam"] = int(y_spam[i])
        examples.append(LabeledExample(f"i{i}", f"<script>alert({i})</script> text & more {i}", labels,
                                       {"identity": groups[i % 4], "source": "synthetic"}))
    return examples, {"hate": s_hate, "spam": s_spam, "sexual": np.full(n, 0.1)}, y_hate, y_spam


THRESHOLDS = {"hate": 0.6, "spam": 0.5, "sexual": 0.8, "violence": 0.7}


@pytest.fixture(scope="module")
def report():
    examples, scores, _, _ = _data()
    return build_report(examples, scores, thresholds=THRESHOLDS, meta=ReportMeta("test report", "synthetic"),
                        n_bootstrap=200, top_k=5, missing_sections={"fairness": "module absent"})


def test_figures_match_scikit_learn(report) -> None:
    examples, scores, y_hate, y_spam = _data()
    known = np.array([i % 3 != 0 for i in range(len(examples))])
    for cat, y, s in (("hate", y_hate, scores["hate"]), ("spam", y_spam[known], scores["spam"][known])):
        r = report.categories[cat]
        thr = THRESHOLDS[cat]
        pred = (s >= thr).astype(int)
        assert r.n == len(y) and r.positives == int(y.sum())
        assert r.pr_auc.value == pytest.approx(average_precision_score(y, s), abs=1e-12)
        assert r.roc_auc.value == pytest.approx(roc_auc_score(y, s), abs=1e-12)
        at = r.at_threshold
        assert at.precision.value == pytest.approx(precision_score(y, pred), abs=1e-12)
        assert at.recall.value == pytest.approx(recall_score(y, pred), abs=1e-12)
        tn, fp, fn, tp = confusion_matrix(y, pred).ravel()
        assert (at.confusion.tn, at.confusion.fp, at.confusion.fn, at.confusion.tp) == (tn, fp, fn, tp)
        assert at.fpr.value == pytest.approx(fp / (fp + tn), abs=1e-12)
        assert at.precision.ci_low <= at.precision.value <= at.precision.ci_high
        # the curve behind the plots and the gate is scikit-learn's PR curve
        p_sk, r_sk, t_sk = precision_recall_curve(y, s)
        curve = report.curves[cat]
        ours = dict(zip(curve.thresholds.tolist(), zip(curve.precision.tolist(), curve.recall.tolist(), strict=True),
                        strict=True))
        for p, rr, t in zip(p_sk[:-1], r_sk[:-1], t_sk, strict=True):
            assert ours[float(t)] == pytest.approx((p, rr), abs=1e-12)
        # recall at a precision = the best recall among sklearn's points with that precision
        best = max((rr for p, rr in zip(p_sk[:-1], r_sk[:-1], strict=True) if p >= 0.7), default=0.0)
        assert recall_at_precision(curve, 0.7)[0] == pytest.approx(best, abs=1e-12)


def test_unmeasured_categories_are_listed_not_scored(report) -> None:
    assert report.categories["sexual"].status.value == "unmeasured"
    assert report.categories["sexual"].reason == "no positive labels"
    assert report.categories["violence"].reason == "no scores for category"
    assert set(report.unmeasured) == {"sexual", "violence"}
    assert "sexual" not in report.curves and "sexual" not in report.errors


def test_worst_errors_are_the_extreme_scores(report) -> None:
    _examples, scores, y, _ = _data()
    s = scores["hate"]
    e = report.errors["hate"]
    fp_scores = sorted((s[i] for i in range(len(y)) if y[i] == 0 and s[i] >= 0.6), reverse=True)[:5]
    fn_scores = sorted(s[i] for i in range(len(y)) if y[i] == 1 and s[i] < 0.6)[:5]
    assert [x.score for x in e.false_positives] == pytest.approx(fp_scores)
    assert [x.score for x in e.false_negatives] == pytest.approx(fn_scores)
    assert all(x.label == 0 for x in e.false_positives) and all(x.label == 1 for x in e.false_negatives)


def test_group_rates_count_multi_valued_groups(report) -> None:
    _examples, scores, y, _ = _data()
    rates = {g.group: g for g in report.groups["hate"]["identity"]}
    assert set(rates) == {"muslim", "jewish", "christian", "gay"}
    members = [i for i in range(len(y)) if i % 4 in (0, 3)]  # "muslim" alone or with "gay"
    neg = [i for i in members if y[i] == 0]
    assert rates["muslim"].n == len(members)
    assert rates["muslim"].fpr == pytest.approx(np.mean([scores["hate"][i] >= 0.6 for i in neg]))


def test_json_markdown_and_html(report, tmp_path: Path) -> None:
    paths = write_report(report, tmp_path / "out")
    data = json.loads(paths["json"].read_text())
    assert data["categories"]["hate"]["pr_auc"]["value"] == pytest.approx(report.categories["hate"].pr_auc.value)
    assert data["categories"]["sexual"]["status"] == "unmeasured"
    assert data["fairness"] is None and data["missing_sections"]["fairness"] == "module absent"
    md = render_markdown(report)
    assert "| hate | measured |" in md and "**sexual**: no positive labels" in md
    html = render_html(report)
    assert "<script>" not in html and "&lt;script&gt;alert(" in html  # item text is escaped
    assert html.count('src="data:image/png;base64,') >= 1 + 2 + 2  # overview, 2 categories, group bars
    assert 'data-placeholder="fairness"' in html and 'data-placeholder="robustness"' in html
    assert "http://" not in html and "https://" not in html  # self-contained


def test_other_sections_render_through_to_dict() -> None:
    examples, scores, _, _ = _data(200)

    class Fake:
        def to_dict(self):
            return {"hate": [{"group": "muslim", "subgroup_auc": 0.81, "bpsn_auc": math.nan}]}

    rep = build_report(examples, scores, thresholds=THRESHOLDS, meta=ReportMeta("t", "d"), n_bootstrap=0,
                       fairness=Fake())
    html = render_html(rep)
    assert "subgroup_auc" in html and "0.8100" in html and 'data-placeholder="fairness"' not in html
    assert rep.to_dict()["fairness"]["hate"][0]["bpsn_auc"] is None


def test_scores_must_align() -> None:
    examples, _scores, _, _ = _data(50)
    with pytest.raises(ValueError, match="has 3 values for 50 examples"):
        build_report(examples, {"hate": [0.1, 0.2, 0.3]}, thresholds=THRESHOLDS, meta=ReportMeta("t", "d"))
