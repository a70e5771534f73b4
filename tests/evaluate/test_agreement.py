"""Agreement (kappa, alpha) and the rationale hallucination check."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score as sk_kappa

from warden.evaluate import agreement as ag

N = None


def test_krippendorff_four_coder_textbook_example() -> None:
    """Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", section C: 4 observers,
    12 units, missing values, nominal alpha = 0.743.

    By hand: unit 12 has one value (not pairable), so n = 40 pairable values with
    n_c = (9, 13, 10, 5, 3) for values 1..5. Off-diagonal coincidences: unit 2 (2,2,2,3) adds
    3*1/3 twice = 2; unit 6 (1,2,3,4) adds 12 ordered pairs of 1/3 = 4; unit 8 (1,1,2,1) adds 2;
    all other units agree: D_o = 8. Expected: n^2 - sum n_c^2 = 1600 - 384 = 1216.
    alpha = 1 - (n - 1) * 8 / 1216 = 1 - 312/1216 = 0.74342.
    """
    data = [[1, 2, 3, 3, 2, 1, 4, 1, 2, N, N, N],
            [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, N, 3],
            [N, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, N],
            [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, N]]
    assert ag.krippendorff_alpha_nominal(data) == pytest.approx(1 - 39 * 8 / 1216, abs=1e-12)
    assert round(ag.krippendorff_alpha_nominal(data), 3) == 0.743


def test_krippendorff_binary_two_coder_example() -> None:
    """Krippendorff (2011) section A: two observers, 10 units, binary: alpha = 0.095.

    By hand: n = 20 values, n_0 = 14, n_1 = 6; 4 discordant units each add 1 to o_01 and o_10.
    alpha = 1 - (n - 1) * (o_01 + o_10) / (2 * n_0 * n_1) = 1 - 19 * 8 / 168.
    """
    a = [0, 1, 0, 0, 0, 0, 0, 0, 1, 0]
    b = [1, 1, 1, 0, 0, 1, 0, 0, 0, 0]
    assert ag.krippendorff_alpha_nominal([a, b]) == pytest.approx(1 - 19 * 8 / (2 * 14 * 6), abs=1e-12)
    assert round(ag.krippendorff_alpha_nominal([a, b]), 3) == 0.095


@pytest.mark.parametrize("seed", range(5))
def test_kappa_matches_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 3, 300)
    b = np.where(rng.random(300) < 0.5, a, rng.integers(0, 3, 300))
    assert ag.cohen_kappa_score(a, b) == pytest.approx(sk_kappa(a, b), abs=1e-12)
    assert ag.cohen_kappa_score(list(map(str, a)), list(map(str, b))) == pytest.approx(sk_kappa(a, b), abs=1e-12)


def test_kappa_ignores_items_not_labeled_by_both() -> None:
    a = [1, 0, 1, None, 0, 1, float("nan")]
    b = [1, 0, 0, 1, 0, 1, 0]
    assert ag.cohen_kappa_score(a, b) == pytest.approx(sk_kappa([1, 0, 1, 0, 1], [1, 0, 0, 0, 1]))


def test_agreement_per_category_with_prevalence_and_cis() -> None:
    rng = np.random.default_rng(1)
    gold = (rng.random(800) < 0.2).astype(float)
    judge = np.where(rng.random(800) < 0.85, gold, 1 - gold)
    judge_l = list(judge)
    judge_l[0] = None
    out = ag.agreement({"judge": {"hate": judge_l, "spam": [0] * 800},
                        "golden": {"hate": list(gold), "spam": [0] * 800, "scam": list(gold)}}, n_bootstrap=300)
    hate = out["hate"]
    assert hate.status is ag.Status.MEASURED and hate.n_items == 799
    assert hate.kappa.value == pytest.approx(sk_kappa(judge[1:], gold[1:]))
    assert hate.kappa.ci_low <= hate.kappa.value <= hate.kappa.ci_high
    assert hate.alpha.ci_low <= hate.alpha.value <= hate.alpha.ci_high
    assert hate.prevalence["golden"] == pytest.approx(gold.mean())
    assert out["spam"].status is ag.Status.UNMEASURED and "one label value" in out["spam"].reason
    assert out["scam"].status is ag.Status.UNMEASURED
    assert out["hate"].to_dict()["kappa"]["value"] == pytest.approx(hate.kappa.value)


def test_alpha_with_three_sources_has_no_kappa() -> None:
    x = [0, 1, 1, 0, 1, 0, 0, 1]
    out = ag.agreement({"a": {"c": x}, "b": {"c": x}, "d": {"c": [*x[:-1], None]}}, n_bootstrap=50)
    assert out["c"].kappa is None and out["c"].alpha.value == pytest.approx(1.0)


def test_rationale_hallucination_rate() -> None:
    contents = ["You are a total idiot and everyone hates you",
                "Buy cheap   watches at example.com",
                "Nothing to see here"]
    quotes = [["total idiot", "everyone hates you"],  # both verbatim
              ["buy cheap watches"],  # only after whitespace + case normalization
              ["I will find you", ""]]  # invented; empty quote skipped
    r = ag.rationale_hallucination_rate(quotes, contents)
    assert r.n_quotes == 4 and r.n_empty_skipped == 1
    assert r.exact_missing == 2 and r.exact_rate == pytest.approx(0.5)
    assert r.normalized_missing == 1 and r.normalized_rate == pytest.approx(0.25)
    assert r.items_with_hallucination == 1
    assert [(q.item, q.found_normalized) for q in r.misses] == [(1, True), (2, False)]
    empty = ag.rationale_hallucination_rate([None, "x"], ["a", "x y"])
    assert empty.n_quotes == 1 and empty.exact_rate == 0.0
    assert math.isnan(ag.rationale_hallucination_rate([None], ["a"]).exact_rate)
    with pytest.raises(ValueError, match="align"):
        ag.rationale_hallucination_rate([["a"]], [])
