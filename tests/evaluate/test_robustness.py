"""Perturbations are seeded and undone by `normalize` where it claims to; the report on toy scorers."""

from __future__ import annotations

import random

import numpy as np
import pytest

from warden.detectors.text.normalize import normalize
from warden.evaluate.robustness import PERTURBATIONS, UNDONE_BY_NORMALIZE, perturb, robustness_report

TEXTS = ["you are a stupid idiot and I will kill you", "Go back to your country", "send nudes now or else",
         "This is the best pizza in town tonight", "I hate all of those people so much",
         "Nobody wants you here, loser"]


@pytest.mark.parametrize("name", sorted(PERTURBATIONS))
def test_perturbations_change_text_and_are_seeded(name):
    fn = PERTURBATIONS[name]
    out = perturb(TEXTS, fn, seed=1)
    assert out == perturb(TEXTS, fn, seed=1)
    assert sum(a != b for a, b in zip(out, TEXTS, strict=True)) >= len(TEXTS) // 2
    assert fn("x", random.Random(0)) is not None


@pytest.mark.parametrize("name", UNDONE_BY_NORMALIZE)
def test_normalize_undoes_what_it_claims(name):
    for seed in range(10):
        for a, b in zip(TEXTS, perturb(TEXTS, PERTURBATIONS[name], seed=seed), strict=True):
            assert normalize(b).text == normalize(a).text, (name, b)


@pytest.mark.parametrize("name", ["typos", "emoji_padding"])
def test_not_undone(name):
    out = perturb(TEXTS, PERTURBATIONS[name], seed=0)
    assert any(normalize(b).text != normalize(a).text for a, b in zip(TEXTS, out, strict=True))


def _keyword(texts):  # sees only the raw text: brittle
    return [0.9 if ("kill" in t or "hate" in t or "idiot" in t) else 0.1 for t in texts]


def _normalized(texts):  # matches on the normalize skeleton: robust to what it undoes
    return _keyword([normalize(t).text for t in texts])


def test_robustness_report_on_toy_scorers():
    texts = ["I will kill you", "I hate you", "you idiot", "nice day", "good food", "hello there"] * 10
    labels = [1, 1, 1, 0, 0, 0] * 10
    brittle = robustness_report(_keyword, texts, labels, threshold=0.5, n_bootstrap=200).by_name()
    robust = robustness_report(_normalized, texts, labels, threshold=0.5, n_bootstrap=200).by_name()
    assert brittle["homoglyphs"].recall_before.value == 1.0
    assert brittle["homoglyphs"].recall_drop.value > 0.5
    lo, hi = brittle["homoglyphs"].recall_drop.ci_low, brittle["homoglyphs"].recall_drop.ci_high
    assert 0 < lo <= brittle["homoglyphs"].recall_drop.value <= hi
    assert brittle["upper_case"].recall_drop.value == 1.0
    for name in UNDONE_BY_NORMALIZE:
        assert robust[name].recall_drop.value == 0.0, name
        assert robust[name].fpr_change.value == 0.0
    assert brittle["emoji_padding"].recall_drop.value == 0.0
    assert brittle["typos"].changed > 0


def test_robustness_report_validates_lengths():
    with pytest.raises(ValueError, match="same length"):
        robustness_report(_keyword, ["a"], [1, 0])
    assert np.isnan(robustness_report(_keyword, ["kill"], [1], n_bootstrap=0).results[0].fpr_before.value)
