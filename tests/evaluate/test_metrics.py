"""warden.evaluate.metrics against an independent scikit-learn computation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn import metrics as skm

from warden.evaluate import metrics as m


def _data(n: int, seed: int, *, prevalence: float = 0.3, decimals: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Random labels with informative scores rounded to create many ties."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < prevalence).astype(int)
    y[0], y[1] = 0, 1
    s = np.clip(rng.normal(0.35 + 0.3 * y, 0.2), 0, 1).round(decimals)
    return y, s


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("n,decimals", [(7, 1), (60, 1), (500, 2), (3000, 3)])
def test_point_metrics_match_sklearn(seed: int, n: int, decimals: int) -> None:
    y, s = _data(n, seed, decimals=decimals)
    assert m.pr_auc_score(y, s) == pytest.approx(skm.average_precision_score(y, s), abs=1e-12)
    assert m.roc_auc_score(y, s) == pytest.approx(skm.roc_auc_score(y, s), abs=1e-12)
    for t in (0.3, 0.5, float(np.median(s))):
        pred = (s >= t).astype(int)
        cm = m.confusion_matrix(y, s, threshold=t)
        np.testing.assert_array_equal(cm.as_array(), skm.confusion_matrix(y, pred, labels=[0, 1]))
        if pred.sum():
            assert m.precision_score(y, s, threshold=t) == pytest.approx(skm.precision_score(y, pred))
        else:
            assert math.isnan(m.precision_score(y, s, threshold=t))
        assert m.recall_score(y, s, threshold=t) == pytest.approx(skm.recall_score(y, pred))
        assert m.f1_score(y, s, threshold=t) == pytest.approx(skm.f1_score(y, pred))
        tn, fp, fn, tp = skm.confusion_matrix(y, pred, labels=[0, 1]).ravel()
        assert m.fpr_error(y, s, threshold=t) == pytest.approx(fp / (fp + tn))
        assert m.fnr_error(y, s, threshold=t) == pytest.approx(fn / (fn + tp))


def test_ece_and_reliability_match_direct_computation() -> None:
    y, s = _data(2000, 3, decimals=3)
    s[:3] = [0.0, 1.0, 0.1]  # bin edges: 1.0 goes to the last bin, 0.1 to the second
    bins = np.minimum((s * 10).astype(int), 9)
    ece = sum(abs(y[bins == b].mean() - s[bins == b].mean()) * (bins == b).sum() / len(y)
              for b in range(10) if (bins == b).any())
    assert m.expected_calibration_error(y, s, n_bins=10) == pytest.approx(ece, abs=1e-12)
    curve = m.reliability_curve(y, s, n_bins=10)
    assert sum(curve.counts) == len(y)
    # sklearn's calibration_curve has the same equal-width bins (empty ones dropped) but closes them
    # on the right, so compare on scores that sit on no bin edge
    from sklearn.calibration import calibration_curve

    s = np.clip(s + 1e-6, 0, 0.999)
    curve = m.reliability_curve(y, s, n_bins=10)
    prob_true, prob_pred = calibration_curve(y, s, n_bins=10, strategy="uniform")
    ours_true = [v for v in curve.fraction_positive if not math.isnan(v)]
    ours_pred = [v for v in curve.mean_score if not math.isnan(v)]
    np.testing.assert_allclose(ours_true, prob_true)
    np.testing.assert_allclose(ours_pred, prob_pred)


def test_precision_at_base_rate() -> None:
    y, s = _data(1000, 1)
    t = 0.5
    tpr, fpr = m.recall_score(y, s, threshold=t), m.fpr_error(y, s, threshold=t)
    expected = 0.01 * tpr / (0.01 * tpr + 0.99 * fpr)
    assert m.adjusted_precision_score(y, s, threshold=t, base_rate=0.01) == pytest.approx(expected)
    # at the sample's own prevalence it is the ordinary precision
    prev = y.mean()
    assert m.precision_at_base_rate(tpr=tpr, fpr=fpr, base_rate=prev) == pytest.approx(
        m.precision_score(y, s, threshold=t))
    with pytest.raises(ValueError):
        m.precision_at_base_rate(tpr=0.5, fpr=0.1, base_rate=0.0)


def test_threshold_curve_matches_sklearn_pr_curve() -> None:
    y, s = _data(400, 2, decimals=2)
    curve = m.threshold_curve(y, s)
    p, r, t = skm.precision_recall_curve(y, s)
    order = np.argsort(t)[::-1]
    np.testing.assert_allclose(curve.thresholds, t[order])
    np.testing.assert_allclose(curve.precision, p[:-1][order])
    np.testing.assert_allclose(curve.recall, r[:-1][order])


def test_report_point_estimates_match_sklearn_and_cis_contain_them() -> None:
    y, s = _data(3000, 5, decimals=2)
    rep = m.evaluate_category(y, s, threshold=0.5, category="hate", base_rate=0.02, n_bootstrap=300)
    assert rep.measured and rep.n == 3000 and rep.positives == int(y.sum())
    assert rep.prevalence == pytest.approx(y.mean())
    assert rep.pr_auc.value == pytest.approx(skm.average_precision_score(y, s))
    assert rep.roc_auc.value == pytest.approx(skm.roc_auc_score(y, s))
    at = rep.at_threshold
    assert at.precision.value == pytest.approx(skm.precision_score(y, s >= 0.5))
    assert at.recall.value == pytest.approx(skm.recall_score(y, s >= 0.5))
    assert at.f1.value == pytest.approx(skm.f1_score(y, s >= 0.5))
    for est in (rep.pr_auc, rep.roc_auc, rep.ece, at.precision, at.recall, at.f1, at.fpr, at.fnr,
                at.precision_at_base_rate):
        assert est.ci_low <= est.value <= est.ci_high, est
        assert est.ci_high - est.ci_low > 0
    d = rep.to_dict()
    assert d["status"] == "measured" and d["pr_auc"]["value"] == pytest.approx(rep.pr_auc.value)


def test_bootstrap_matches_loop_over_resamples() -> None:
    """The vectorized engine gives, resample by resample, what sklearn gives on the drawn items."""
    y, s = _data(300, 9, decimals=2)
    ranked = m.RankedScores(y, s)
    neg_idx, pos_idx = np.flatnonzero(y == 0), np.flatnonzero(y == 1)
    (neg, pos), = list(m.stratified_bootstrap_counts(y, n_bootstrap=5, random_state=1))
    f = ranked.figures(pos, neg, threshold=0.5)
    for r in range(5):
        items = np.r_[np.repeat(neg_idx, neg[r].astype(int)), np.repeat(pos_idx, pos[r].astype(int))]
        assert len(items) == len(y)
        assert f.pr_auc[r] == pytest.approx(skm.average_precision_score(y[items], s[items]), abs=1e-6)
        assert f.roc_auc[r] == pytest.approx(skm.roc_auc_score(y[items], s[items]), abs=1e-6)
        assert f.tp[r] == skm.confusion_matrix(y[items], s[items] >= 0.5).ravel()[3]


def test_cis_shrink_with_n() -> None:
    widths = []
    for n in (200, 2000, 20000):
        y, s = _data(n, 11, decimals=3)
        rep = m.evaluate_category(y, s, threshold=0.5, n_bootstrap=200)
        widths.append((rep.pr_auc.ci_high - rep.pr_auc.ci_low, rep.at_threshold.recall.ci_high
                       - rep.at_threshold.recall.ci_low))
    assert widths[0][0] > widths[1][0] > widths[2][0]
    assert widths[0][1] > widths[1][1] > widths[2][1]


def test_bootstrap_is_stratified_and_deterministic() -> None:
    y, s = _data(500, 4)
    a = m.evaluate_category(y, s, threshold=0.5, n_bootstrap=50, random_state=7)
    b = m.evaluate_category(y, s, threshold=0.5, n_bootstrap=50, random_state=7)
    assert a == b
    for neg, pos in m.stratified_bootstrap_counts(y, n_bootstrap=30, random_state=0, block_cells=1000):
        assert np.all(pos.sum(axis=1) == (y == 1).sum()) and np.all(neg.sum(axis=1) == (y == 0).sum())


@pytest.mark.parametrize("labels,reason", [([0, 0, 0, float("nan")], "no positive labels"),
                                           ([1, 1, None, 1], "no negative labels"),
                                           ([None, None, None, None], "no labeled items")])
def test_unmeasured_categories(labels: list, reason: str) -> None:
    rep = m.evaluate_category(labels, [0.1, 0.9, 0.5, 0.3], threshold=0.5, category="spam")
    assert rep.status is m.Status.UNMEASURED and rep.reason == reason
    assert rep.pr_auc is None and rep.at_threshold is None
    assert rep.to_dict()["pr_auc"] is None


def test_evaluate_many_categories_with_missing_labels() -> None:
    y, s = _data(400, 6)
    hate = y.astype(float)
    hate[::4] = np.nan  # unknown for a quarter of the items
    labels = {"hate": hate, "spam": np.zeros(400), "scam": y, "violence": y}
    scores = {"hate": s, "spam": s, "scam": s}
    out = m.evaluate(labels, scores, thresholds={"hate": 0.5, "spam": 0.5}, n_bootstrap=50)
    assert out["hate"].measured and out["hate"].n == 300
    known = ~np.isnan(hate)
    assert out["hate"].pr_auc.value == pytest.approx(skm.average_precision_score(y[known], s[known]))
    assert out["spam"].reason == "no positive labels"
    assert out["scam"].reason == "no threshold given"
    assert out["violence"].reason == "no scores for category"


def test_unscored_items_are_excluded_and_counted() -> None:
    y, s = _data(100, 8)
    s = s.astype(float)
    s[:5] = np.nan
    rep = m.evaluate_category(y, s, threshold=0.5, n_bootstrap=0)
    assert rep.n == 95 and rep.n_unscored == 5 and math.isnan(rep.pr_auc.ci_low)


def test_input_errors() -> None:
    with pytest.raises(ValueError, match="0/1"):
        m.pr_auc_score([0, 2, 1], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="shape"):
        m.roc_auc_score([0, 1], [0.1])
