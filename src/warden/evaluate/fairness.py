"""Fairness: the Jigsaw unintended-bias metrics, per-group error-rate gaps, counterfactual swaps.

Bias metrics (Borkan et al. 2019, "Nuanced Metrics for Measuring Unintended Bias with Real
Data for Text Classification"), for a subgroup s (items that mention / target s) and the
background b (every other item):

* Subgroup AUC: ROC-AUC on the subgroup's items only (can the model tell toxic from non-toxic
  *within* texts about s?);
* BPSN AUC (background positive, subgroup negative): ROC-AUC on the subgroup's negatives and
  the background's positives. Low = non-toxic texts about s score higher than toxic texts
  elsewhere: false positives driven by the identity term;
* BNSP AUC (background negative, subgroup positive): the subgroup's positives and the
  background's negatives. Low = toxic texts about s score lower: missed abuse against s;
* generalized power mean over subgroups, ``M_p = (mean_s m_s**p) ** (1/p)`` with p = -5,
  which leans towards the worst subgroups;
* the final score ``w0 * overall AUC + (1 - w0) * mean(M_p(subgroup), M_p(BPSN), M_p(BNSP))``,
  w0 = 0.25 (the Kaggle competition's weights).

Every figure has a stratified bootstrap 95% interval (strata: label x group membership, so
each resample keeps every subgroup's size and class balance); the power means and the final
score are computed per resample too. AUCs are computed from weights per distinct score level
(the Mann-Whitney statistic with ties one half: scikit-learn's trapezoidal ROC-AUC).

Per-group FPR and FNR at a threshold, with intervals, and the gap to the overall rate with its
own interval (paired: the same resample gives both). A gap whose interval excludes 0 is a
measured disparity.

Counterfactual consistency: swap identity terms (`IDENTITY_LEXICON`; word-boundary aware and
case-preserving) inside texts and score both versions with any callable; per ordered pair of
terms, how often the flagged set (or, with `decision_fn`, the action) flips and the mean
absolute score change. A fair model gives 0 flips on template-like texts.

Groups are tuples of strings per item (multi-valued: a text can target several groups), as in
`warden.evaluate.manifests.LabeledExample.groups[column]`. Plain numpy; no fairlearn needed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from warden.evaluate.metrics import (
    DEFAULT_CONFIDENCE,
    DEFAULT_N_BOOTSTRAP,
    Estimate,
    _jsonable,
    percentile_interval,
    stratified_bootstrap_weights,
)

POWER = -5.0
OVERALL_WEIGHT = 0.25


def power_mean(values: Sequence[float] | np.ndarray, p: float = POWER, *, axis: int = -1) -> np.ndarray | float:
    """Generalized mean ``(mean(v**p))**(1/p)`` over `axis`, ignoring NaN; NaN when all are NaN.
    A zero value with p < 0 gives 0 (the limit)."""
    v = np.asarray(values, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if p == 0:
            out = np.exp(np.nanmean(np.log(v), axis=axis))
        else:
            out = np.power(np.nanmean(np.power(v, p), axis=axis), 1.0 / p)
    return float(out) if np.ndim(out) == 0 else out


@dataclass(frozen=True, slots=True)
class SubgroupBias:
    subgroup: str
    n: int
    positives: int
    negatives: int
    subgroup_auc: Estimate
    bpsn_auc: Estimate
    bnsp_auc: Estimate


@dataclass(frozen=True, slots=True)
class GroupRates:
    """FPR / FNR of one group at the threshold and the gap to the overall rate (group - overall)."""

    group: str
    n: int
    positives: int
    negatives: int
    fpr: Estimate
    fnr: Estimate
    fpr_gap: Estimate
    fnr_gap: Estimate


@dataclass(frozen=True, slots=True)
class BiasReport:
    n: int
    threshold: float
    overall_auc: Estimate
    overall_fpr: Estimate
    overall_fnr: Estimate
    subgroups: tuple[SubgroupBias, ...]
    rates: tuple[GroupRates, ...]
    power_mean_subgroup_auc: Estimate
    power_mean_bpsn_auc: Estimate
    power_mean_bnsp_auc: Estimate
    final_score: Estimate
    power: float = POWER
    overall_weight: float = OVERALL_WEIGHT
    n_bootstrap: int = 0
    confidence: float = DEFAULT_CONFIDENCE
    skipped_groups: tuple[str, ...] = ()  # below min_group_size

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(asdict(self))

    def worst(self, metric: str = "bpsn_auc", k: int = 5) -> list[SubgroupBias]:
        key = lambda s: (math.inf if math.isnan(getattr(s, metric).value) else getattr(s, metric).value)  # noqa: E731
        return sorted(self.subgroups, key=key)[:k]

    def max_gap(self, rate: str = "fpr") -> GroupRates | None:
        """The group with the largest absolute gap (`rate` is 'fpr' or 'fnr')."""
        defined = [r for r in self.rates if getattr(r, f"{rate}_gap").defined]
        return max(defined, key=lambda r: abs(getattr(r, f"{rate}_gap").value), default=None)


def _auc_levels(p: np.ndarray, n: np.ndarray) -> np.ndarray:
    """ROC-AUC per row from weights of positives `p` and negatives `n` per distinct score level
    (columns in ascending score order): the Mann-Whitney statistic with ties counted one half,
    which is scikit-learn's trapezoidal ROC-AUC. NaN when a class has no weight."""
    below = np.cumsum(n, axis=1) - n
    wp, wn = p.sum(axis=1), n.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where((wp > 0) & (wn > 0), (p * (below + 0.5 * n)).sum(axis=1) / (wp * wn), np.nan)


def bias_report(y_true: Sequence[int] | np.ndarray, y_score: Sequence[float] | np.ndarray,
                groups: Sequence[Sequence[str]], *, threshold: float = 0.5,
                subgroups: Sequence[str] | None = None, min_group_size: int = 10,
                power: float = POWER, overall_weight: float = OVERALL_WEIGHT,
                n_bootstrap: int = DEFAULT_N_BOOTSTRAP, confidence: float = DEFAULT_CONFIDENCE,
                random_state: int | None = 0) -> BiasReport:
    """Jigsaw bias metrics and per-group error rates for one category.

    `groups[i]` is the tuple of subgroups item i belongs to (empty: background only).
    Subgroups with fewer than `min_group_size` items are skipped (listed in `skipped_groups`).
    `n_bootstrap=0` gives point estimates without intervals.

    Vectorized: items are sorted once by score and every weighting (the data, then each block of
    resamples) is reduced to weights per distinct score level; a subgroup costs two masked
    reductions per block, and its three AUCs and two rates come from those level sums
    (background = all - subgroup).
    """
    y = np.asarray(y_true, dtype=float)
    s = np.asarray(y_score, dtype=float)
    if y.shape != s.shape or len(groups) != len(y):
        raise ValueError(f"y_true, y_score and groups must have the same length, got {len(y)}, {len(s)}, {len(groups)}")
    if not np.all((y == 0) | (y == 1)):
        raise ValueError("y_true must hold 0/1 labels (drop unknown labels first)")
    names = sorted({g for gs in groups for g in gs}) if subgroups is None else list(subgroups)
    member = {g: np.array([g in gs for gs in groups], dtype=bool) for g in names}
    kept = [g for g in names if member[g].sum() >= min_group_size]
    skipped = tuple(g for g in names if g not in kept)
    # strata: label x group membership pattern (keeps every subgroup's size and balance)
    keys = ["|".join(sorted(set(gs) & set(kept))) for gs in groups]
    codes = np.unique(np.array([f"{int(yi)}#{k}" for yi, k in zip(y, keys, strict=True)]), return_inverse=True)[1]
    order = np.argsort(s, kind="mergesort")
    ss = s[order]
    starts = np.flatnonzero(np.r_[True, ss[1:] != ss[:-1]])
    level_score = ss[starts]
    flag_level = level_score >= threshold
    pos_sorted = (y[order] == 1).astype(float)
    neg_sorted = 1.0 - pos_sorted
    member_sorted = {g: member[g][order].astype(float) for g in kept}

    def weights():
        yield np.ones((1, len(y)))
        if n_bootstrap > 0:
            yield from stratified_bootstrap_weights(codes, n_bootstrap=n_bootstrap, random_state=random_state)

    acc: dict[str, list[np.ndarray]] = {}

    def add(key: str, arr: np.ndarray) -> None:
        acc.setdefault(key, []).append(np.asarray(arr, dtype=float))

    def rates(p: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with np.errstate(divide="ignore", invalid="ignore"):
            fpr = n[:, flag_level].sum(axis=1) / n.sum(axis=1)
            fnr = p[:, ~flag_level].sum(axis=1) / p.sum(axis=1)
        return fpr, fnr

    for w in weights():
        wsort = w[:, order]
        wp, wn = wsort * pos_sorted, wsort * neg_sorted
        p_all = np.add.reduceat(wp, starts, axis=1)
        n_all = np.add.reduceat(wn, starts, axis=1)
        add("overall_auc", _auc_levels(p_all, n_all))
        o_fpr, o_fnr = rates(p_all, n_all)
        add("overall_fpr", o_fpr)
        add("overall_fnr", o_fnr)
        for g in kept:
            mg = member_sorted[g]
            p_in = np.add.reduceat(wp * mg, starts, axis=1)
            n_in = np.add.reduceat(wn * mg, starts, axis=1)
            p_out, n_out = p_all - p_in, n_all - n_in
            add(f"sub:{g}", _auc_levels(p_in, n_in))
            add(f"bpsn:{g}", _auc_levels(p_out, n_in))
            add(f"bnsp:{g}", _auc_levels(p_in, n_out))
            fpr, fnr = rates(p_in, n_in)
            add(f"fpr:{g}", fpr)
            add(f"fnr:{g}", fnr)
            add(f"fpr_gap:{g}", fpr - o_fpr)
            add(f"fnr_gap:{g}", fnr - o_fnr)

    series = {k: np.concatenate(v) for k, v in acc.items()}  # element 0: the data; then resamples
    for kind in ("sub", "bpsn", "bnsp"):
        mat = (np.stack([series[f"{kind}:{g}"] for g in kept], axis=1) if kept
               else np.full((len(series["overall_auc"]), 1), np.nan))
        series[f"pm_{kind}"] = np.asarray(power_mean(mat, power, axis=1), dtype=float).reshape(-1)
    series["final"] = overall_weight * series["overall_auc"] + (1 - overall_weight) * (
        series["pm_sub"] + series["pm_bpsn"] + series["pm_bnsp"]) / 3.0

    def est(key: str) -> Estimate:
        x = series[key]
        lo, hi = percentile_interval(x[1:], confidence=confidence) if len(x) > 1 else (math.nan, math.nan)
        return Estimate(float(x[0]), lo, hi)

    pos, neg = y == 1, y == 0
    subs, group_rates = [], []
    for g in kept:
        m = member[g]
        npos, nneg = int((m & pos).sum()), int((m & neg).sum())
        subs.append(SubgroupBias(g, int(m.sum()), npos, nneg, est(f"sub:{g}"), est(f"bpsn:{g}"), est(f"bnsp:{g}")))
        group_rates.append(GroupRates(g, int(m.sum()), npos, nneg, est(f"fpr:{g}"), est(f"fnr:{g}"),
                                      est(f"fpr_gap:{g}"), est(f"fnr_gap:{g}")))
    return BiasReport(n=len(y), threshold=threshold, overall_auc=est("overall_auc"), overall_fpr=est("overall_fpr"),
                      overall_fnr=est("overall_fnr"), subgroups=tuple(subs), rates=tuple(group_rates),
                      power_mean_subgroup_auc=est("pm_sub"), power_mean_bpsn_auc=est("pm_bpsn"),
                      power_mean_bnsp_auc=est("pm_bnsp"), final_score=est("final"), power=power,
                      overall_weight=overall_weight, n_bootstrap=n_bootstrap, confidence=confidence,
                      skipped_groups=skipped)


def bias_report_for_examples(examples: Sequence[Any], scores: Sequence[float] | np.ndarray, *, category: str,
                             group_column: str, threshold: float = 0.5, **kwargs: Any) -> BiasReport:
    """`bias_report` on `LabeledExample`s (items whose `category` label is unknown are dropped).
    `scores[i]` is the model's score for `examples[i]` and `category`."""
    keep = [i for i, e in enumerate(examples) if category in e.labels]
    sc = np.asarray(scores, dtype=float)
    return bias_report([examples[i].labels[category] for i in keep], sc[keep],
                       [examples[i].groups.get(group_column, ()) for i in keep], threshold=threshold, **kwargs)


# -- counterfactual consistency ----------------------------------------------------------

#: Axis -> swap sets. Terms in one set are grammatically interchangeable (same part of speech
#: and number), so a swap keeps the sentence well-formed; swaps never cross sets or axes.
IDENTITY_LEXICON: dict[str, tuple[tuple[str, ...], ...]] = {
    "religion": (
        ("muslim", "christian", "jewish", "hindu", "buddhist", "sikh", "atheist", "catholic"),
        ("muslims", "christians", "jews", "hindus", "buddhists", "sikhs", "atheists", "catholics"),
    ),
    "race_ethnicity": (
        ("black", "white", "asian", "latino", "hispanic", "arab", "african", "european"),
        ("blacks", "whites", "asians", "latinos", "hispanics", "arabs", "africans", "europeans"),
    ),
    "gender": (
        ("woman", "man"), ("women", "men"), ("girl", "boy"), ("girls", "boys"), ("female", "male"),
        ("transgender", "cisgender"), ("trans", "cis"),
    ),
    "sexual_orientation": (
        ("gay", "straight", "lesbian", "bisexual", "heterosexual", "homosexual", "queer"),
        ("gays", "lesbians", "bisexuals", "heterosexuals", "homosexuals"),
    ),
    "disability": (
        ("blind", "deaf", "disabled", "autistic", "paralyzed", "able-bodied"),
    ),
    "nationality": (
        ("american", "mexican", "chinese", "indian", "canadian", "nigerian", "german", "french", "russian",
         "iranian"),
        ("americans", "mexicans", "indians", "canadians", "nigerians", "germans", "russians", "iranians"),
    ),
}


def _case_like(template: str, word: str) -> str:
    if template.isupper() and len(template) > 1:
        return word.upper()
    if template[:1].isupper():
        return word[:1].upper() + word[1:]
    return word


def swap_term(text: str, source: str, target: str) -> str:
    """Replace every whole-word occurrence of `source` (case-insensitive) by `target`, keeping
    the case pattern (lower, Capitalized, UPPER) of each occurrence."""
    pat = re.compile(rf"(?<![\w-]){re.escape(source)}(?![\w-])", re.IGNORECASE)
    return pat.sub(lambda mt: _case_like(mt.group(0), target), text)


def find_terms(text: str, lexicon: Mapping[str, Sequence[Sequence[str]]] = IDENTITY_LEXICON
               ) -> list[tuple[str, int, str]]:
    """(axis, set index, term) for each lexicon term that occurs in `text` as a whole word."""
    low = text.lower()
    out = []
    for axis, sets in lexicon.items():
        for k, terms in enumerate(sets):
            for t in terms:
                if t in low and re.search(rf"(?<![\w-]){re.escape(t)}(?![\w-])", low):
                    out.append((axis, k, t))
    return out


@dataclass(frozen=True, slots=True)
class PairFlips:
    axis: str
    source: str
    target: str
    n: int  # texts that contained `source`
    flips: int  # flagged set (or decision) differs
    flip_rate: Estimate
    mean_abs_delta: float  # mean |score change|, max over the categories compared
    mean_delta: float  # signed mean (target - source) of the same figure's category-wise max change


@dataclass(frozen=True, slots=True)
class CounterfactualReport:
    n_texts: int  # texts that contained at least one lexicon term
    n_pairs_scored: int
    flip_rate: Estimate  # over all (text, swap) pairs
    mean_abs_delta: float
    pairs: tuple[PairFlips, ...]
    by_axis: dict[str, float]  # axis -> flip rate
    categories: tuple[str, ...]
    uses_decision: bool

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(asdict(self))

    def worst(self, k: int = 10) -> list[PairFlips]:
        return sorted(self.pairs, key=lambda p: (-p.flip_rate.value, -p.mean_abs_delta))[:k]


ScoreFn = Callable[[Sequence[str]], Sequence[Mapping[str, float]]]


def _flip_ci(flips: np.ndarray, *, n_bootstrap: int, confidence: float, rng: np.random.Generator) -> Estimate:
    n = len(flips)
    if n == 0:
        return Estimate(math.nan, math.nan, math.nan)
    value = float(flips.mean())
    if n_bootstrap <= 0:
        return Estimate(value, math.nan, math.nan)
    draws = rng.integers(0, n, size=(n_bootstrap, n))
    lo, hi = percentile_interval(flips[draws].mean(axis=1), confidence=confidence)
    return Estimate(value, lo, hi)


def counterfactual_report(score_fn: ScoreFn, texts: Sequence[str], *, thresholds: float | Mapping[str, float] = 0.5,
                          categories: Sequence[str] | None = None,
                          decision_fn: Callable[[Sequence[str]], Sequence[Hashable]] | None = None,
                          lexicon: Mapping[str, Sequence[Sequence[str]]] = IDENTITY_LEXICON,
                          max_targets: int | None = None, n_bootstrap: int = DEFAULT_N_BOOTSTRAP,
                          confidence: float = DEFAULT_CONFIDENCE, random_state: int = 0) -> CounterfactualReport:
    """Swap each identity term found in `texts` with the other terms of its swap set and compare.

    `score_fn(texts) -> [ {category: score}, ... ]` (any model; the Moderator adapter is
    ``lambda ts: [d.scores for d in moderator.moderate_batch([...])]``). A flip is a change of
    the flagged set (categories with score >= threshold, restricted to `categories`), or of
    ``decision_fn(text)`` (e.g. the action) when given. `max_targets` caps swaps per term
    (chosen with `random_state`). Texts without a lexicon term are ignored.
    """
    rng = np.random.default_rng(random_state)
    originals: list[str] = []
    jobs: list[tuple[int, str, str, str, str]] = []  # (original index, axis, source, target, swapped text)
    for text in texts:
        found = find_terms(text, lexicon)
        if not found:
            continue
        oi = len(originals)
        originals.append(text)
        for axis, k, term in found:
            targets = [t for t in lexicon[axis][k] if t != term]
            if max_targets is not None and len(targets) > max_targets:
                targets = list(rng.choice(targets, size=max_targets, replace=False))
            for t in targets:
                swapped = swap_term(text, term, t)
                if swapped != text:
                    jobs.append((oi, axis, term, t, swapped))
    all_texts = originals + [j[4] for j in jobs]
    scores = list(score_fn(all_texts)) if all_texts else []
    decisions = list(decision_fn(all_texts)) if decision_fn is not None and all_texts else None
    cats = tuple(categories) if categories is not None else tuple(sorted({c for sc in scores for c in sc}))

    def thr(c: str) -> float:
        return float(thresholds) if isinstance(thresholds, int | float) else float(thresholds.get(c, math.inf))

    def outcome(i: int) -> Hashable:
        if decisions is not None:
            return decisions[i]
        return frozenset(c for c in cats if scores[i].get(c, 0.0) >= thr(c))

    flips = np.zeros(len(jobs))
    absd = np.zeros(len(jobs))
    signed = np.zeros(len(jobs))
    for j, (oi, *_rest) in enumerate(jobs):
        si = len(originals) + j
        flips[j] = outcome(oi) != outcome(si)
        d = np.array([scores[si].get(c, 0.0) - scores[oi].get(c, 0.0) for c in cats]) if cats else np.zeros(1)
        k = int(np.argmax(np.abs(d)))
        absd[j], signed[j] = abs(d[k]), d[k]
    pairs: dict[tuple[str, str, str], list[int]] = {}
    for j, (_, axis, src, tgt, _) in enumerate(jobs):
        pairs.setdefault((axis, src, tgt), []).append(j)
    pair_rows = []
    for (axis, src, tgt), idx in sorted(pairs.items()):
        ix = np.array(idx)
        pair_rows.append(PairFlips(axis, src, tgt, len(ix), int(flips[ix].sum()),
                                   _flip_ci(flips[ix], n_bootstrap=n_bootstrap, confidence=confidence, rng=rng),
                                   float(absd[ix].mean()), float(signed[ix].mean())))
    by_axis = {}
    for axis in lexicon:
        ix = [j for j, job in enumerate(jobs) if job[1] == axis]
        if ix:
            by_axis[axis] = float(flips[ix].mean())
    return CounterfactualReport(n_texts=len(originals), n_pairs_scored=len(jobs),
                                flip_rate=_flip_ci(flips, n_bootstrap=n_bootstrap, confidence=confidence, rng=rng),
                                mean_abs_delta=float(absd.mean()) if len(jobs) else math.nan,
                                pairs=tuple(pair_rows), by_axis=by_axis, categories=cats,
                                uses_decision=decision_fn is not None)
