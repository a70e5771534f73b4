"""Champion vs challenger: paired bootstrap and McNemar on constructed cases."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import average_precision_score

from warden.evaluate import compare as cmp


def _models(n: int = 3000, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.2).astype(int)
    weak = np.clip(rng.normal(0.4 + 0.1 * y, 0.2), 0, 1)
    strong = np.clip(rng.normal(0.3 + 0.5 * y, 0.15), 0, 1)
    return y, weak, strong


def test_identical_models_show_no_difference() -> None:
    y, weak, _ = _models()
    r = cmp.compare_category(y, weak, weak.copy(), champion_threshold=0.5, challenger_threshold=0.5,
                             n_bootstrap=200)
    assert r.verdict is cmp.Verdict.NO_DIFFERENCE
    assert r.pr_auc.difference.value == 0 and r.pr_auc.p_value == 1.0
    assert r.mcnemar.p_value == 1.0 and r.mcnemar.champion_only == r.mcnemar.challenger_only == 0
    assert r.summary.startswith("no significant difference")


def test_clearly_better_challenger_is_significant_and_worse_the_other_way() -> None:
    y, weak, strong = _models()
    better = cmp.compare_category(y, weak, strong, champion_threshold=0.5, challenger_threshold=0.5,
                                  n_bootstrap=300, category="hate")
    assert better.verdict is cmp.Verdict.BETTER, better.summary
    pr = better.pr_auc
    assert pr.champion == pytest.approx(average_precision_score(y, weak))
    assert pr.challenger == pytest.approx(average_precision_score(y, strong))
    assert pr.difference.ci_low > 0 and pr.p_value < 0.05
    assert better.mcnemar.challenger_only > better.mcnemar.champion_only and better.mcnemar.p_value < 0.05
    worse = cmp.compare_category(y, strong, weak, champion_threshold=0.5, challenger_threshold=0.5,
                                 n_bootstrap=300)
    assert worse.verdict is cmp.Verdict.WORSE
    assert worse.pr_auc.difference.ci_high < 0


def test_paired_bootstrap_uses_the_same_resamples() -> None:
    """A challenger = champion + tiny constant has the same ranking: difference exactly 0 in every
    resample, which only holds when both are scored on the same resample."""
    y, weak, _ = _models(500)
    r = cmp.paired_bootstrap_pr_auc(y, weak, weak * 0.5 + 0.1, n_bootstrap=100)
    assert r.difference.ci_low == r.difference.ci_high == 0.0


def test_mcnemar_exact_and_chi_square() -> None:
    y = np.ones(40, dtype=int)
    a = np.r_[np.ones(30), np.zeros(10)]  # champion wrong on 10
    b = np.r_[np.ones(28), np.zeros(2), np.ones(10)]  # challenger wrong on 2 of the champion's right ones
    r = cmp.mcnemar_test(y, a, b)
    assert (r.champion_only, r.challenger_only) == (2, 10) and r.exact
    assert r.p_value == pytest.approx(stats.binomtest(2, 12, 0.5).pvalue)
    y = np.ones(200, dtype=int)
    a = np.r_[np.ones(100), np.zeros(100)]
    b = np.r_[np.ones(80), np.zeros(20), np.ones(60), np.zeros(40)]  # b=20, c=60
    r = cmp.mcnemar_test(y, a, b)
    assert not r.exact and r.statistic == pytest.approx((abs(20 - 60) - 1) ** 2 / 80)
    assert r.p_value == pytest.approx(stats.chi2.sf(r.statistic, 1))


def test_compare_many_categories_reports_unmeasured() -> None:
    y, weak, strong = _models(400)
    out = cmp.compare({"hate": y, "spam": np.zeros(400), "scam": y}, {"hate": weak, "spam": weak},
                      {"hate": strong, "spam": strong}, champion_thresholds={"hate": 0.5, "spam": 0.5},
                      challenger_thresholds=0.5, n_bootstrap=100)
    assert out["hate"].verdict is cmp.Verdict.BETTER
    assert out["spam"].verdict is cmp.Verdict.UNMEASURED and "no positive labels" in out["spam"].summary
    assert out["scam"].verdict is cmp.Verdict.UNMEASURED and "champion and challenger" in out["scam"].summary
    assert out["hate"].to_dict()["verdict"] == "challenger better"
