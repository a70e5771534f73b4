"""Jigsaw bias metrics against scikit-learn on hand-picked subsets; counterfactual swaps."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score as sk_auc

from warden.evaluate.fairness import (
    IDENTITY_LEXICON,
    bias_report,
    counterfactual_report,
    find_terms,
    power_mean,
    swap_term,
)


def _data(seed: int = 0, n: int = 600):
    rng = np.random.default_rng(seed)
    names = ["gay", "muslim", "woman", "white"]
    groups = [tuple(rng.choice(names, size=rng.integers(0, 3), replace=False)) for _ in range(n)]
    y = rng.integers(0, 2, size=n)
    s = np.clip(0.5 * y + rng.normal(0.25, 0.2, size=n), 0, 1)
    # bias by construction: items about "gay" score higher regardless of the label
    s = np.where([("gay" in g) for g in groups], np.clip(s + 0.3, 0, 1), s)
    return y, s, groups


def test_bias_metrics_match_sklearn_on_subsets():
    y, s, groups = _data()
    rep = bias_report(y, s, groups, threshold=0.5, n_bootstrap=200)
    assert rep.overall_auc.value == pytest.approx(sk_auc(y, s))
    for sg in rep.subgroups:
        m = np.array([sg.subgroup in g for g in groups])
        assert sg.subgroup_auc.value == pytest.approx(sk_auc(y[m], s[m]))
        bpsn = (m & (y == 0)) | (~m & (y == 1))
        assert sg.bpsn_auc.value == pytest.approx(sk_auc(y[bpsn], s[bpsn]))
        bnsp = (m & (y == 1)) | (~m & (y == 0))
        assert sg.bnsp_auc.value == pytest.approx(sk_auc(y[bnsp], s[bnsp]))
        assert sg.subgroup_auc.ci_low <= sg.subgroup_auc.value <= sg.subgroup_auc.ci_high
    by = {sg.subgroup: sg for sg in rep.subgroups}
    # the biased subgroup: non-toxic items about it outscore toxic background items
    assert by["gay"].bpsn_auc.value < min(by[g].bpsn_auc.value for g in ("muslim", "woman", "white"))
    assert by["gay"].bnsp_auc.value > by["muslim"].bnsp_auc.value
    pms = [rep.power_mean_subgroup_auc.value, rep.power_mean_bpsn_auc.value, rep.power_mean_bnsp_auc.value]
    assert pms[1] == pytest.approx(power_mean([sg.bpsn_auc.value for sg in rep.subgroups], -5))
    assert rep.final_score.value == pytest.approx(0.25 * rep.overall_auc.value + 0.75 * np.mean(pms))
    assert rep.final_score.ci_low <= rep.final_score.value <= rep.final_score.ci_high


def test_group_rates_and_gaps():
    y, s, groups = _data(1)
    rep = bias_report(y, s, groups, threshold=0.5, n_bootstrap=300)
    flagged = s >= 0.5
    o_fpr = flagged[y == 0].mean()
    assert rep.overall_fpr.value == pytest.approx(o_fpr)
    for r in rep.rates:
        m = np.array([r.group in g for g in groups])
        fpr = flagged[m & (y == 0)].mean()
        fnr = (~flagged)[m & (y == 1)].mean()
        assert r.fpr.value == pytest.approx(fpr)
        assert r.fnr.value == pytest.approx(fnr)
        assert r.fpr_gap.value == pytest.approx(fpr - o_fpr)
    gay = next(r for r in rep.rates if r.group == "gay")
    assert gay.fpr_gap.ci_low > 0  # a measured disparity: the interval excludes 0
    assert rep.max_gap("fpr").group == "gay"
    assert rep.to_dict()["rates"][0]["fpr"]["value"] is not None


def test_power_mean():
    assert power_mean([0.8, 0.8, 0.8]) == pytest.approx(0.8)
    v = [0.9, 0.5]
    assert power_mean(v, -5) == pytest.approx(((0.9 ** -5 + 0.5 ** -5) / 2) ** (-1 / 5))
    assert power_mean(v, -5) < np.mean(v)  # leans to the worst subgroup
    assert power_mean([0.9, math.nan], -5) == pytest.approx(0.9)
    assert power_mean([0.0, 0.9], -5) == 0.0


def test_small_groups_skipped_and_point_only():
    y, s, groups = _data(2, n=200)
    groups = [g + (("rare",) if i < 3 else ()) for i, g in enumerate(groups)]
    rep = bias_report(y, s, groups, n_bootstrap=0, min_group_size=10)
    assert "rare" in rep.skipped_groups
    assert math.isnan(rep.final_score.ci_low) and rep.final_score.defined


def test_swap_term_is_word_boundary_aware_and_case_preserving():
    assert swap_term("Muslims and muslim friends, MUSLIM!", "muslim", "christian") == \
        "Muslims and christian friends, CHRISTIAN!"
    assert swap_term("Gay people. gayety", "gay", "straight") == "Straight people. gayety"
    assert ("religion", 1, "jews") in find_terms("I like jews")
    for sets in IDENTITY_LEXICON.values():
        for terms in sets:
            assert len(set(terms)) == len(terms) >= 2


def _biased(texts):
    return [{"hate": 0.9 if "muslim" in t.lower() else 0.1, "harassment": 0.2} for t in texts]


def _fair(texts):
    return [{"hate": 0.9 if "stupid" in t.lower() else 0.1} for t in texts]


TEXTS = ["I am a muslim", "My neighbour is a stupid christian", "Jewish food is great", "The weather is nice",
         "Muslim women are stupid"]


def test_counterfactual_detects_a_biased_scorer():
    rep = counterfactual_report(_biased, TEXTS, thresholds=0.5, n_bootstrap=100)
    assert rep.n_texts == 4  # the weather text has no identity term
    pairs = {(p.source, p.target): p for p in rep.pairs}
    assert pairs[("muslim", "christian")].flips == pairs[("muslim", "christian")].n == 2
    assert pairs[("muslim", "christian")].mean_abs_delta == pytest.approx(0.8)
    assert pairs[("muslim", "christian")].mean_delta == pytest.approx(-0.8)
    assert pairs[("christian", "muslim")].flip_rate.value == 1.0
    assert pairs[("jewish", "hindu")].flips == 0
    assert rep.flip_rate.value > 0 and rep.by_axis["religion"] > 0
    assert rep.by_axis["gender"] == pytest.approx(0.0)
    assert rep.worst(1)[0].flip_rate.value == 1.0


def test_counterfactual_fair_scorer_and_decision_fn():
    rep = counterfactual_report(_fair, TEXTS, thresholds={"hate": 0.5}, n_bootstrap=100)
    assert rep.flip_rate.value == 0.0 and rep.mean_abs_delta == 0.0
    dec = counterfactual_report(_fair, TEXTS, decision_fn=lambda ts: ["block" if "muslim" in t.lower() else "allow"
                                                                       for t in ts], n_bootstrap=0)
    assert dec.uses_decision and dec.flip_rate.value > 0
