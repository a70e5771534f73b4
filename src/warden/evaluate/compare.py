"""Champion vs challenger on the same labeled items, with the verdict stated plainly.

Why paired: both models score the same items, so most of the sampling noise is shared.
Comparing two separate intervals throws that away and calls real improvements "overlapping".
The paired bootstrap resamples items ONCE and scores both models on the same resample, so
the interval is on the difference itself. McNemar's test asks the operational question at
the policy thresholds: on the items where exactly one model is right, is one right more often?

Verdict per category (alpha = 0.05 by default):

* "challenger better": at least one test favours the challenger significantly and none
  favours the champion;
* "challenger worse": the reverse;
* "no significant difference": neither test is significant;
* "mixed": the tests disagree significantly (e.g. better ranking, worse at the threshold),
  which usually means the challenger's threshold needs re-selecting.

Each category is tested separately with no multiple-comparison correction; with many
categories expect some "significant" results by chance and read them with the intervals.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

import numpy as np
from scipy import stats

from warden.evaluate.metrics import (
    DEFAULT_CONFIDENCE,
    DEFAULT_N_BOOTSTRAP,
    ArrayLike,
    Estimate,
    RankedScores,
    _jsonable,
    percentile_interval,
    stratified_bootstrap_counts,
)

#: Below this many discordant pairs McNemar uses the exact binomial test.
EXACT_MCNEMAR_BELOW = 25


class Verdict(StrEnum):
    BETTER = "challenger better"
    NO_DIFFERENCE = "no significant difference"
    WORSE = "challenger worse"
    MIXED = "mixed"
    UNMEASURED = "unmeasured"


@dataclass(frozen=True, slots=True)
class McNemarResult:
    """Discordant pairs at each model's threshold: `champion_only` = items only the champion
    gets right, `challenger_only` = items only the challenger gets right."""

    champion_only: int
    challenger_only: int
    statistic: float  # chi-square with continuity correction; NaN for the exact test
    p_value: float
    exact: bool


@dataclass(frozen=True, slots=True)
class PairedBootstrapResult:
    """PR-AUC of each model and challenger - champion, with a paired-bootstrap interval and a
    two-sided p-value (how often the resampled difference falls on the other side of 0)."""

    champion: float
    challenger: float
    difference: Estimate
    p_value: float
    n_bootstrap: int


@dataclass(frozen=True, slots=True)
class CategoryComparison:
    category: str
    verdict: Verdict
    summary: str
    n: int
    positives: int
    prevalence: float
    champion_threshold: float | None = None
    challenger_threshold: float | None = None
    pr_auc: PairedBootstrapResult | None = None
    mcnemar: McNemarResult | None = None

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(asdict(self))


def mcnemar_test(y_true: ArrayLike, champion_pred: ArrayLike, challenger_pred: ArrayLike) -> McNemarResult:
    """McNemar's test on paired 0/1 predictions: exact two-sided binomial test when there are
    fewer than 25 discordant pairs (the chi-square approximation is poor there), otherwise
    chi-square with continuity correction, (|b - c| - 1)^2 / (b + c), 1 degree of freedom."""
    y = np.asarray(y_true, dtype=float)
    a_ok = np.asarray(champion_pred, dtype=float) == y
    b_ok = np.asarray(challenger_pred, dtype=float) == y
    b = int(np.sum(a_ok & ~b_ok))
    c = int(np.sum(~a_ok & b_ok))
    if b + c == 0:
        return McNemarResult(b, c, statistic=0.0, p_value=1.0, exact=True)
    if b + c < EXACT_MCNEMAR_BELOW:
        p = float(stats.binomtest(min(b, c), b + c, 0.5, alternative="two-sided").pvalue)
        return McNemarResult(b, c, statistic=float("nan"), p_value=min(1.0, p), exact=True)
    chi2 = (abs(b - c) - 1.0) ** 2 / (b + c)
    return McNemarResult(b, c, statistic=float(chi2), p_value=float(stats.chi2.sf(chi2, df=1)), exact=False)


def paired_bootstrap_pr_auc(y_true: ArrayLike, champion_score: ArrayLike, challenger_score: ArrayLike, *,
                            n_bootstrap: int = DEFAULT_N_BOOTSTRAP, confidence: float = DEFAULT_CONFIDENCE,
                            random_state: int | None = 0) -> PairedBootstrapResult:
    """Paired, label-stratified bootstrap of PR-AUC(challenger) - PR-AUC(champion).

    Both models are scored on the same resample counts (vectorized over blocks of
    resamples). p = 2 * min(share of differences <= 0, share >= 0), with the +1 correction
    so it is never 0, capped at 1. Identical models give difference 0 and p = 1.
    Labels must be known (0/1) for every item.
    """
    y = np.asarray(y_true, dtype=float)
    champ = RankedScores(y, champion_score, n_bins=1)
    chall = RankedScores(y, challenger_score, n_bins=1)
    a0 = float(champ.figures(*champ.ones(), threshold=1.0, presorted=True).pr_auc[0])
    b0 = float(chall.figures(*chall.ones(), threshold=1.0, presorted=True).pr_auc[0])
    diffs = []
    for neg, pos in stratified_bootstrap_counts(y, n_bootstrap=n_bootstrap, random_state=random_state):
        fa = champ.figures(pos, neg, threshold=1.0)
        fb = chall.figures(pos, neg, threshold=1.0)
        diffs.append(fb.pr_auc - fa.pr_auc)
    d = np.concatenate(diffs)
    lo, hi = percentile_interval(d, confidence=confidence)
    below, above = np.sum(d <= 0), np.sum(d >= 0)
    p = min(1.0, 2.0 * min((1 + below) / (len(d) + 1), (1 + above) / (len(d) + 1)))
    return PairedBootstrapResult(champion=a0, challenger=b0, difference=Estimate(b0 - a0, lo, hi),
                                 p_value=float(p), n_bootstrap=n_bootstrap)


def _verdict(pr: PairedBootstrapResult, mc: McNemarResult, alpha: float) -> tuple[Verdict, str]:
    favours: list[str] = []
    against: list[str] = []
    if pr.p_value < alpha:
        (favours if pr.difference.value > 0 else against).append(
            f"PR-AUC {pr.difference.value:+.3f} (p={pr.p_value:.3g})")
    if mc.p_value < alpha and mc.challenger_only != mc.champion_only:
        (favours if mc.challenger_only > mc.champion_only else against).append(
            f"at thresholds only-challenger-right {mc.challenger_only} vs only-champion-right "
            f"{mc.champion_only} (McNemar p={mc.p_value:.3g})")
    if favours and against:
        return Verdict.MIXED, "mixed: better on " + "; ".join(favours) + ", worse on " + "; ".join(against)
    if favours:
        return Verdict.BETTER, "challenger better: " + "; ".join(favours)
    if against:
        return Verdict.WORSE, "challenger worse: " + "; ".join(against)
    return Verdict.NO_DIFFERENCE, (f"no significant difference: PR-AUC {pr.difference.value:+.3f} "
                                   f"(p={pr.p_value:.3g}), McNemar p={mc.p_value:.3g}")


def compare_category(y_true: ArrayLike, champion_score: ArrayLike, challenger_score: ArrayLike, *,
                     champion_threshold: float, challenger_threshold: float, category: str = "",
                     alpha: float = 0.05, n_bootstrap: int = DEFAULT_N_BOOTSTRAP,
                     confidence: float = DEFAULT_CONFIDENCE, random_state: int | None = 0) -> CategoryComparison:
    """Compare two models on one category. Items with an unknown label (NaN/None) or a
    missing score from either model are excluded, so both are judged on the same items."""
    y = np.asarray(y_true, dtype=float)
    a = np.asarray(champion_score, dtype=float)
    b = np.asarray(challenger_score, dtype=float)
    if not (y.shape == a.shape == b.shape) or y.ndim != 1:
        raise ValueError(f"labels and both score arrays must be 1-D of equal length: {y.shape}, {a.shape}, {b.shape}")
    keep = ~np.isnan(y) & np.isfinite(a) & np.isfinite(b)
    y, a, b = y[keep], a[keep], b[keep]
    n, positives = len(y), int(y.sum())
    prevalence = positives / n if n else float("nan")
    if positives == 0 or positives == n:
        why = "no labeled items" if n == 0 else "no positive labels" if positives == 0 else "no negative labels"
        return CategoryComparison(category, Verdict.UNMEASURED, f"unmeasured: {why}", n, positives, prevalence)
    pr = paired_bootstrap_pr_auc(y, a, b, n_bootstrap=n_bootstrap, confidence=confidence, random_state=random_state)
    mc = mcnemar_test(y, a >= champion_threshold, b >= challenger_threshold)
    verdict, summary = _verdict(pr, mc, alpha)
    return CategoryComparison(category, verdict, summary, n, positives, prevalence,
                              champion_threshold=champion_threshold, challenger_threshold=challenger_threshold,
                              pr_auc=pr, mcnemar=mc)


def _threshold(value: Mapping[str, float] | float, category: str) -> float | None:
    return float(value) if isinstance(value, int | float) else value.get(category)


def compare(labels: Mapping[str, ArrayLike], champion: Mapping[str, ArrayLike], challenger: Mapping[str, ArrayLike],
            *, champion_thresholds: Mapping[str, float] | float, challenger_thresholds: Mapping[str, float] | float,
            alpha: float = 0.05, n_bootstrap: int = DEFAULT_N_BOOTSTRAP, confidence: float = DEFAULT_CONFIDENCE,
            random_state: int | None = 0) -> dict[str, CategoryComparison]:
    """`compare_category` for every labeled category; a category either model does not score,
    or without a threshold, is reported UNMEASURED with the reason."""
    out: dict[str, CategoryComparison] = {}
    for cat, y in labels.items():
        y_arr = np.asarray(y, dtype=float)
        known = y_arr[~np.isnan(y_arr)]
        n, pos = len(known), int(known.sum())
        prev = pos / n if n else float("nan")
        ta, tb = _threshold(champion_thresholds, cat), _threshold(challenger_thresholds, cat)
        missing = [who for who, m in (("champion", champion), ("challenger", challenger)) if cat not in m]
        if missing or ta is None or tb is None:
            why = f"no scores from {' and '.join(missing)}" if missing else "no threshold"
            out[cat] = CategoryComparison(cat, Verdict.UNMEASURED, f"unmeasured: {why}", n, pos, prev)
            continue
        out[cat] = compare_category(y_arr, champion[cat], challenger[cat], champion_threshold=ta,
                                    challenger_threshold=tb, category=cat, alpha=alpha, n_bootstrap=n_bootstrap,
                                    confidence=confidence, random_state=random_state)
    return out

