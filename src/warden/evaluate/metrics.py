"""Binary quality metrics per category, with stratified bootstrap confidence intervals.

Why this module exists: a precision figure without its uncertainty, its base rate and its
sample size misleads the people who act on it (a 0.92 precision measured on 40 positives is
a range, not a number; a test set with 30% prevalence says little about a platform where 1%
of items violate). So every figure here comes with a 95% interval, the counts it rests on,
and categories that cannot be measured (no positives or no negatives among the labeled
items) say so explicitly instead of showing a 0 or a 1.

Conventions (scikit-learn's): functions named `*_score` are higher-better, `*_error` are
lower-better; all parameters after the data are keyword-only. An item is flagged when
``score >= threshold`` (the policy's `flag` semantics). Definitions match scikit-learn:

* `pr_auc_score` is average precision, ``sum_n (R_n - R_{n-1}) P_n`` over the distinct score
  thresholds, exactly `sklearn.metrics.average_precision_score` (no interpolation);
* `roc_auc_score` is the trapezoidal area under the ROC curve, i.e. the Mann-Whitney
  probability that a positive outscores a negative with ties counted one half;
* undefined figures (precision when nothing is flagged, recall without positives) are NaN,
  never 0: scikit-learn's `zero_division=0` would hide an empty denominator.

The bootstrap is vectorized: each stratum (positives, negatives) gets a matrix of resample
indices drawn at once with numpy, turned into per-item counts with one `bincount`, and every
figure is computed for a whole block of resamples from cumulative sums over the items sorted
once by score. No Python loop runs per resample (only per block of resamples, sized to keep
memory bounded). The point estimate is the same code with every count equal to 1, so point
estimates and intervals can never disagree on a definition.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

import numpy as np

DEFAULT_N_BOOTSTRAP = 1000
DEFAULT_CONFIDENCE = 0.95
DEFAULT_N_BINS = 10
#: Cells of one bootstrap weight block (resamples x items); 4M float64 cells = 32 MB.
_BLOCK_CELLS = 4_000_000

ArrayLike = Sequence[float] | np.ndarray


# -- typed results ------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Estimate:
    """A point estimate on all items and its bootstrap percentile interval.

    `value` is NaN when the figure is undefined on the data (e.g. precision with nothing
    flagged); the interval is NaN when too few resamples define it.
    """

    value: float
    ci_low: float
    ci_high: float

    @property
    def defined(self) -> bool:
        return not math.isnan(self.value)

    def format(self, digits: int = 3) -> str:
        if not self.defined:
            return "undefined"
        if math.isnan(self.ci_low):
            return f"{self.value:.{digits}f}"
        return f"{self.value:.{digits}f} [{self.ci_low:.{digits}f}, {self.ci_high:.{digits}f}]"


@dataclass(frozen=True, slots=True)
class ConfusionMatrix:
    """Counts at one threshold. `as_array()` has scikit-learn's layout [[tn, fp], [fn, tp]]."""

    tn: int
    fp: int
    fn: int
    tp: int

    def as_array(self) -> np.ndarray:
        return np.array([[self.tn, self.fp], [self.fn, self.tp]], dtype=np.int64)


@dataclass(frozen=True, slots=True)
class ReliabilityCurve:
    """Calibration by equal-width score bins on [0, 1]: per bin, how many items, their mean
    score and the fraction that are positive. Empty bins have NaN means. A calibrated model
    has `mean_score` close to `fraction_positive` in every populated bin."""

    bin_edges: tuple[float, ...]
    counts: tuple[int, ...]
    mean_score: tuple[float, ...]
    fraction_positive: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class ThresholdCurve:
    """Precision, recall and FPR at every distinct score, highest threshold first (the data
    behind PR and ROC plots and behind threshold selection). Flagged means score >= threshold."""

    thresholds: np.ndarray
    tp: np.ndarray
    fp: np.ndarray
    positives: int
    negatives: int

    @property
    def precision(self) -> np.ndarray:
        return self.tp / (self.tp + self.fp)

    @property
    def recall(self) -> np.ndarray:
        return self.tp / self.positives if self.positives else np.full(len(self.tp), np.nan)

    @property
    def fpr(self) -> np.ndarray:
        return self.fp / self.negatives if self.negatives else np.full(len(self.fp), np.nan)


class Status(StrEnum):
    MEASURED = "measured"
    UNMEASURED = "unmeasured"


@dataclass(frozen=True, slots=True)
class ThresholdMetrics:
    """Figures at one threshold. `precision_at_base_rate` re-weights precision to the stated
    deployment prevalence (`base_rate`); None when no base rate was given."""

    threshold: float
    confusion: ConfusionMatrix
    precision: Estimate
    recall: Estimate
    f1: Estimate
    fpr: Estimate
    fnr: Estimate
    base_rate: float | None = None
    precision_at_base_rate: Estimate | None = None


@dataclass(frozen=True, slots=True)
class CategoryReport:
    """Everything measured for one category on one labeled set.

    When `status` is UNMEASURED, `reason` says why (no positives, no negatives, no labeled
    items) and every figure is None: readers must not see a 0 or 1 that was never measured.
    """

    category: str
    status: Status
    n: int
    positives: int
    negatives: int
    prevalence: float
    reason: str | None = None
    n_unscored: int = 0
    pr_auc: Estimate | None = None
    roc_auc: Estimate | None = None
    ece: Estimate | None = None
    at_threshold: ThresholdMetrics | None = None
    reliability: ReliabilityCurve | None = None
    n_bootstrap: int = 0
    confidence: float = DEFAULT_CONFIDENCE

    @property
    def measured(self) -> bool:
        return self.status is Status.MEASURED

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (NaN becomes None)."""
        return _jsonable(asdict(self))


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, StrEnum):
        return value.value
    if isinstance(value, float | np.floating):
        return None if math.isnan(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    return value


# -- input handling -----------------------------------------------------------------------

def _binary(y_true: ArrayLike) -> np.ndarray:
    y = np.asarray(y_true, dtype=float)
    if y.ndim != 1:
        raise ValueError(f"y_true must be one-dimensional, got shape {y.shape}")
    if not np.all((y == 0) | (y == 1)):
        bad = np.unique(y[~((y == 0) | (y == 1))])[:5]
        raise ValueError(f"y_true must hold 0/1 labels (drop unknown labels first), got {bad.tolist()}")
    return y


def _scores(y_score: ArrayLike, n: int) -> np.ndarray:
    s = np.asarray(y_score, dtype=float)
    if s.shape != (n,):
        raise ValueError(f"y_score must have shape ({n},) like y_true, got {s.shape}")
    if not np.all(np.isfinite(s)):
        raise ValueError("y_score holds NaN or infinite values (drop unscored items first)")
    return s


def _check_bins(n_bins: int) -> None:
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")


def _bin_index(scores: np.ndarray, n_bins: int) -> np.ndarray:
    """Equal-width bins on [0, 1]: bin i holds [i/B, (i+1)/B), the last bin also holds 1.0.
    Scores outside [0, 1] are clipped into the end bins."""
    return np.clip((np.clip(scores, 0.0, 1.0) * n_bins).astype(np.int64), 0, n_bins - 1)


# -- the vectorized engine ----------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class _Figures:
    """Figures for a block of weightings (one value per row of the weight matrix)."""

    pr_auc: np.ndarray
    roc_auc: np.ndarray
    ece: np.ndarray
    tp: np.ndarray
    fp: np.ndarray
    fn: np.ndarray
    tn: np.ndarray


class RankedScores:
    """One model's scores on one labeled set, sorted once, ready to compute every figure for
    any weighting of the items (all ones = the data; bootstrap counts = a resample).

    Positives and negatives are kept apart, each sorted by descending score, because the
    bootstrap resamples them as separate strata: true positives at a threshold are then a
    cumulative sum of the positives' counts read at "how many positives score >= t" (and
    false positives likewise), with no scatter of counts into a full item matrix.

    `figures(pos_counts, neg_counts, presorted=...)` takes count matrices whose columns are
    the stratum's items either in original order (`presorted=False`, as drawn by
    `stratified_bootstrap_counts`, so two models can share the very same resamples) or
    already in this model's descending-score order (`presorted=True`, which skips a gather;
    valid for one model because resampling draws are exchangeable).
    """

    def __init__(self, y_true: ArrayLike, y_score: ArrayLike, *, n_bins: int = DEFAULT_N_BINS) -> None:
        _check_bins(n_bins)
        y = _binary(y_true)
        s = _scores(y_score, len(y))
        self.n = len(y)
        self.n_bins = n_bins
        self.pos_index = np.flatnonzero(y == 1)
        self.neg_index = np.flatnonzero(y == 0)
        self.positives, self.negatives = len(self.pos_index), len(self.neg_index)
        sp, sn = s[self.pos_index], s[self.neg_index]
        self.pos_perm = np.argsort(-sp, kind="mergesort")
        self.neg_perm = np.argsort(-sn, kind="mergesort")
        self.pos_sorted, self.neg_sorted = sp[self.pos_perm], sn[self.neg_perm]
        #: distinct scores, highest first: one threshold each (flag = score >= threshold)
        self.thresholds = np.unique(s)[::-1]
        self._a = self._n_at_least(self.pos_sorted, self.thresholds)
        self._b = self._n_at_least(self.neg_sorted, self.thresholds)
        # equal-width bins are contiguous runs in descending order: c[j] = items in bins >= j
        self._pos_bin_cut = self._bin_prefix(self.pos_sorted, n_bins)
        self._neg_bin_cut = self._bin_prefix(self.neg_sorted, n_bins)
        self._pos_bin_score = self._bin_score_matrix(self.pos_sorted, n_bins)
        self._neg_bin_score = self._bin_score_matrix(self.neg_sorted, n_bins)

    @staticmethod
    def _n_at_least(sorted_desc: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
        return np.searchsorted(-sorted_desc, -np.asarray(thresholds, dtype=float), side="right")

    @staticmethod
    def _bin_prefix(sorted_desc: np.ndarray, n_bins: int) -> np.ndarray:
        idx = _bin_index(sorted_desc, n_bins)  # non-increasing along the array
        return np.array([int(np.sum(idx >= j)) for j in range(n_bins + 1)], dtype=np.int64)

    @staticmethod
    def _bin_score_matrix(sorted_desc: np.ndarray, n_bins: int) -> np.ndarray:
        m = np.zeros((len(sorted_desc), n_bins))
        m[np.arange(len(sorted_desc)), _bin_index(sorted_desc, n_bins)] = sorted_desc
        return m

    def cut(self, threshold: float) -> tuple[int, int]:
        """(positives, negatives) flagged at `threshold` (score >= threshold)."""
        return int(self._n_at_least(self.pos_sorted, np.array([threshold]))[0]), \
            int(self._n_at_least(self.neg_sorted, np.array([threshold]))[0])

    def ones(self) -> tuple[np.ndarray, np.ndarray]:
        """The weighting that is the data itself (every item once)."""
        return np.ones((1, self.positives)), np.ones((1, self.negatives))

    def figures(self, pos_counts: np.ndarray, neg_counts: np.ndarray, *, threshold: float,
                presorted: bool = False) -> _Figures:
        cp = pos_counts if presorted else pos_counts[:, self.pos_perm]
        cn = neg_counts if presorted else neg_counts[:, self.neg_perm]
        b = cp.shape[0]
        # cumulative counts with a leading zero column: ctp[:, k] = weight of the top-k positives
        ctp = np.zeros((b, self.positives + 1), dtype=cp.dtype)
        np.cumsum(cp, axis=1, out=ctp[:, 1:])
        cfp = np.zeros((b, self.negatives + 1), dtype=cn.dtype)
        np.cumsum(cn, axis=1, out=cfp[:, 1:])
        tp_k = ctp[:, self._a]
        fp_k = cfp[:, self._b]
        pos = ctp[:, -1].astype(float)
        neg = cfp[:, -1].astype(float)
        with np.errstate(divide="ignore", invalid="ignore"):
            dtp = np.diff(tp_k, axis=1, prepend=0)
            dfp = np.diff(fp_k, axis=1, prepend=0)
            flagged = tp_k + fp_k
            prec_k = tp_k / np.where(flagged > 0, flagged, 1)
            pr_auc = np.where(pos > 0, (dtp * prec_k).sum(axis=1, dtype=float) / pos, np.nan)
            area2 = (dfp * (2 * tp_k - dtp)).sum(axis=1, dtype=float)
            roc_auc = np.where((pos > 0) & (neg > 0), area2 / (2.0 * pos * neg), np.nan)
            # ECE: per bin |positives - sum of scores|, from the contiguous bin runs
            pos_in = ctp[:, self._pos_bin_cut[:-1]] - ctp[:, self._pos_bin_cut[1:]]
            sum_score = cp @ self._pos_bin_score.astype(cp.dtype) + cn @ self._neg_bin_score.astype(cn.dtype)
            ece = np.abs(pos_in - sum_score).sum(axis=1, dtype=float) / (pos + neg)
        a, bneg = self.cut(threshold)
        tp = ctp[:, a].astype(float)
        fp = cfp[:, bneg].astype(float)
        return _Figures(pr_auc=pr_auc, roc_auc=roc_auc, ece=ece, tp=tp, fp=fp, fn=pos - tp, tn=neg - fp)


def stratified_bootstrap_counts(strata: ArrayLike, *, n_bootstrap: int, random_state: int | None = 0,
                                block_cells: int = _BLOCK_CELLS,
                                dtype: type = np.float32) -> Iterator[list[np.ndarray]]:
    """Yield, per block of resamples, one count matrix per stratum (in `np.unique(strata)`
    order; for 0/1 labels: negatives, then positives).

    Matrix g has shape (resamples in block, items of stratum g); entry (r, i) is how many
    times the stratum's i-th item (original order) is drawn in resample r. Each stratum is
    resampled with replacement to its own size, so every resample keeps the observed
    prevalence and has both classes: plain resampling would leave rare categories' AUCs
    undefined in some resamples. Draws are one index matrix per stratum and block, counted
    with a single `bincount`; float32 holds counts exactly below 2**24 items per stratum.
    """
    if n_bootstrap < 1:
        raise ValueError(f"n_bootstrap must be >= 1, got {n_bootstrap}")
    labels = np.asarray(strata)
    n = len(labels)
    rng = np.random.default_rng(random_state)
    sizes = [int(np.sum(labels == g)) for g in np.unique(labels)]
    block = max(1, min(n_bootstrap, block_cells // max(n, 1)))
    done = 0
    while done < n_bootstrap:
        b = min(block, n_bootstrap - done)
        out = []
        for m in sizes:
            draws = rng.integers(0, m, size=(b, m))
            draws += (np.arange(b, dtype=np.int64) * m)[:, None]
            out.append(np.bincount(draws.ravel(), minlength=b * m).reshape(b, m).astype(dtype))
        yield out
        done += b


def stratified_bootstrap_weights(strata: ArrayLike, *, n_bootstrap: int, random_state: int | None = 0,
                                 block_cells: int = _BLOCK_CELLS) -> Iterator[np.ndarray]:
    """Like `stratified_bootstrap_counts`, assembled into full (resamples, items) matrices in
    the original item order: the convenient form for small data (agreement, per-group)."""
    labels = np.asarray(strata)
    groups = [np.flatnonzero(labels == g) for g in np.unique(labels)]
    for counts in stratified_bootstrap_counts(labels, n_bootstrap=n_bootstrap, random_state=random_state,
                                              block_cells=block_cells, dtype=np.float64):
        w = np.zeros((counts[0].shape[0], len(labels)))
        for idx, c in zip(groups, counts, strict=True):
            w[:, idx] = c
        yield w


def percentile_interval(samples: np.ndarray, *, confidence: float = DEFAULT_CONFIDENCE) -> tuple[float, float]:
    """Percentile bootstrap interval over the resamples where the figure is defined.

    NaN when fewer than half the resamples define it: an interval from a minority of
    resamples would describe a different population than the point estimate.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    x = np.asarray(samples, dtype=float)
    x = x[~np.isnan(x)]
    if len(x) == 0 or len(x) < 0.5 * len(samples):
        return float("nan"), float("nan")
    tail = (1.0 - confidence) / 2.0 * 100.0
    lo, hi = np.percentile(x, [tail, 100.0 - tail])
    return float(lo), float(hi)


# -- point metrics (scikit-learn-style functions) -----------------------------------------

def _point(y_true: ArrayLike, y_score: ArrayLike, *, threshold: float = 0.5, n_bins: int = DEFAULT_N_BINS) -> _Figures:
    ranked = RankedScores(y_true, y_score, n_bins=n_bins)
    return ranked.figures(*ranked.ones(), threshold=threshold, presorted=True)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def _precision(f: _Figures) -> np.ndarray:
    return _ratio(f.tp, f.tp + f.fp)


def _recall(f: _Figures) -> np.ndarray:
    return _ratio(f.tp, f.tp + f.fn)


def _f1(f: _Figures) -> np.ndarray:
    # 2TP / (2TP + FP + FN): defined whenever anything is positive or flagged
    return _ratio(2.0 * f.tp, 2.0 * f.tp + f.fp + f.fn)


def _fpr(f: _Figures) -> np.ndarray:
    return _ratio(f.fp, f.fp + f.tn)


def _fnr(f: _Figures) -> np.ndarray:
    return _ratio(f.fn, f.fn + f.tp)


def confusion_matrix(y_true: ArrayLike, y_score: ArrayLike, *, threshold: float) -> ConfusionMatrix:
    f = _point(y_true, y_score, threshold=threshold)
    return ConfusionMatrix(tn=int(f.tn[0]), fp=int(f.fp[0]), fn=int(f.fn[0]), tp=int(f.tp[0]))


def precision_score(y_true: ArrayLike, y_score: ArrayLike, *, threshold: float) -> float:
    """Share of flagged items (score >= threshold) that are positive; NaN if nothing is flagged."""
    return float(_precision(_point(y_true, y_score, threshold=threshold))[0])


def recall_score(y_true: ArrayLike, y_score: ArrayLike, *, threshold: float) -> float:
    """Share of positives flagged (true positive rate); NaN without positives."""
    return float(_recall(_point(y_true, y_score, threshold=threshold))[0])


def f1_score(y_true: ArrayLike, y_score: ArrayLike, *, threshold: float) -> float:
    return float(_f1(_point(y_true, y_score, threshold=threshold))[0])


def fpr_error(y_true: ArrayLike, y_score: ArrayLike, *, threshold: float) -> float:
    """False positive rate (lower is better): share of negatives flagged; NaN without negatives."""
    return float(_fpr(_point(y_true, y_score, threshold=threshold))[0])


def fnr_error(y_true: ArrayLike, y_score: ArrayLike, *, threshold: float) -> float:
    """False negative rate (lower is better) = 1 - recall; NaN without positives."""
    return float(_fnr(_point(y_true, y_score, threshold=threshold))[0])


def pr_auc_score(y_true: ArrayLike, y_score: ArrayLike) -> float:
    """Average precision (= sklearn.metrics.average_precision_score); NaN without positives."""
    return float(_point(y_true, y_score).pr_auc[0])


def roc_auc_score(y_true: ArrayLike, y_score: ArrayLike) -> float:
    """Area under the ROC curve (= sklearn.metrics.roc_auc_score); NaN unless both classes occur."""
    return float(_point(y_true, y_score).roc_auc[0])


def expected_calibration_error(y_true: ArrayLike, y_prob: ArrayLike, *, n_bins: int = DEFAULT_N_BINS) -> float:
    """ECE with `n_bins` equal-width bins on [0, 1] (bin i = [i/B, (i+1)/B), last bin closed):
    sum over bins of (items in bin / all items) * |fraction positive - mean score|.

    Equal-width rather than equal-mass bins because policy thresholds live on the score
    scale: a reader wants to know whether "0.9" means 90% where the thresholds are.
    """
    return float(_point(y_true, y_prob, n_bins=n_bins).ece[0])


def reliability_curve(y_true: ArrayLike, y_prob: ArrayLike, *, n_bins: int = DEFAULT_N_BINS) -> ReliabilityCurve:
    _check_bins(n_bins)
    y = _binary(y_true)
    s = _scores(y_prob, len(y))
    idx = _bin_index(s, n_bins)
    counts = np.bincount(idx, minlength=n_bins)
    sum_s = np.bincount(idx, weights=s, minlength=n_bins)
    sum_y = np.bincount(idx, weights=y, minlength=n_bins)
    mean_s = _ratio(sum_s, counts.astype(float))
    frac = _ratio(sum_y, counts.astype(float))
    return ReliabilityCurve(
        bin_edges=tuple(float(e) for e in np.linspace(0.0, 1.0, n_bins + 1)),
        counts=tuple(int(c) for c in counts),
        mean_score=tuple(float(v) for v in mean_s),
        fraction_positive=tuple(float(v) for v in frac),
    )


def precision_at_base_rate(*, tpr: float | np.ndarray, fpr: float | np.ndarray,
                           base_rate: float) -> float | np.ndarray:
    """Precision expected where a share `base_rate` (pi) of items are positive:
    pi*TPR / (pi*TPR + (1-pi)*FPR).

    Why: precision depends on prevalence, recall and FPR do not. A labeled set enriched to
    30% positives reports a precision that collapses at a 1% real-world base rate; this is
    the figure to quote for deployment. NaN when nothing would be flagged.
    """
    if not 0.0 < base_rate < 1.0:
        raise ValueError(f"base_rate must be in (0, 1), got {base_rate}")
    tpr_a = np.asarray(tpr, dtype=float)
    fpr_a = np.asarray(fpr, dtype=float)
    out = _ratio(base_rate * tpr_a, base_rate * tpr_a + (1.0 - base_rate) * fpr_a)
    return float(out) if out.ndim == 0 else out


def adjusted_precision_score(y_true: ArrayLike, y_score: ArrayLike, *, threshold: float, base_rate: float) -> float:
    """Precision at `threshold` re-weighted to the deployment prevalence `base_rate`."""
    f = _point(y_true, y_score, threshold=threshold)
    return float(precision_at_base_rate(tpr=_recall(f)[0], fpr=_fpr(f)[0], base_rate=base_rate))


def threshold_curve(y_true: ArrayLike, y_score: ArrayLike) -> ThresholdCurve:
    ranked = RankedScores(y_true, y_score, n_bins=1)
    return ThresholdCurve(thresholds=ranked.thresholds.copy(), tp=ranked._a.astype(float), fp=ranked._b.astype(float),
                          positives=ranked.positives, negatives=ranked.negatives)


# -- full evaluation with intervals -------------------------------------------------------

def _labeled(y_true: ArrayLike, y_score: ArrayLike) -> tuple[np.ndarray, np.ndarray, int]:
    """Drop items whose label is unknown (NaN/None); drop unscored items and count them."""
    y = np.asarray(y_true, dtype=float)
    s = np.asarray(y_score, dtype=float)
    if y.shape != s.shape or y.ndim != 1:
        raise ValueError(f"y_true and y_score must be 1-D of equal length, got {y.shape} and {s.shape}")
    known = ~np.isnan(y)
    unscored = known & ~np.isfinite(s)
    keep = known & ~unscored
    return y[keep], s[keep], int(unscored.sum())


def unmeasured_report(category: str, *, n: int, positives: int, n_unscored: int = 0,
                      reason: str | None = None) -> CategoryReport:
    negatives = n - positives
    if reason is None:
        reason = ("no labeled items" if n == 0 else
                  "no positive labels" if positives == 0 else "no negative labels")
    return CategoryReport(category=category, status=Status.UNMEASURED, n=n, positives=positives,
                          negatives=negatives, prevalence=positives / n if n else float("nan"),
                          reason=reason, n_unscored=n_unscored)


def evaluate_category(y_true: ArrayLike, y_score: ArrayLike, *, threshold: float, category: str = "",
                      base_rate: float | None = None, n_bootstrap: int = DEFAULT_N_BOOTSTRAP,
                      confidence: float = DEFAULT_CONFIDENCE, n_bins: int = DEFAULT_N_BINS,
                      random_state: int | None = 0) -> CategoryReport:
    """All figures for one category at `threshold` and across thresholds, with intervals.

    `y_true` may hold NaN/None for items whose label for this category is unknown: they are
    excluded (not counted as negatives). Items with a NaN score are excluded and counted in
    `n_unscored`, so a detector that errors on hard items cannot silently look better.
    `n_bootstrap=0` skips the intervals (they are then NaN).
    """
    y, s, n_unscored = _labeled(y_true, y_score)
    n, positives = len(y), int(y.sum())
    if positives == 0 or positives == n:
        return unmeasured_report(category, n=n, positives=positives, n_unscored=n_unscored)
    ranked = RankedScores(y, s, n_bins=n_bins)
    point = ranked.figures(*ranked.ones(), threshold=threshold, presorted=True)
    boots: list[_Figures] = []
    if n_bootstrap > 0:
        boots = [ranked.figures(pos, neg, threshold=threshold, presorted=True)
                 for neg, pos in stratified_bootstrap_counts(y, n_bootstrap=n_bootstrap, random_state=random_state)]

    def est(fn: Any) -> Estimate:
        value = float(fn(point)[0])
        if not boots:
            return Estimate(value, float("nan"), float("nan"))
        lo, hi = percentile_interval(np.concatenate([fn(b) for b in boots]), confidence=confidence)
        return Estimate(value, lo, hi)

    adjusted = None
    if base_rate is not None:
        adjusted = est(lambda f: precision_at_base_rate(tpr=_recall(f), fpr=_fpr(f), base_rate=base_rate))
    at = ThresholdMetrics(
        threshold=float(threshold),
        confusion=ConfusionMatrix(tn=int(point.tn[0]), fp=int(point.fp[0]), fn=int(point.fn[0]), tp=int(point.tp[0])),
        precision=est(_precision), recall=est(_recall), f1=est(_f1), fpr=est(_fpr), fnr=est(_fnr),
        base_rate=base_rate, precision_at_base_rate=adjusted,
    )
    return CategoryReport(
        category=category, status=Status.MEASURED, n=n, positives=positives, negatives=n - positives,
        prevalence=positives / n, n_unscored=n_unscored,
        pr_auc=est(lambda f: f.pr_auc), roc_auc=est(lambda f: f.roc_auc), ece=est(lambda f: f.ece),
        at_threshold=at, reliability=reliability_curve(y, s, n_bins=n_bins),
        n_bootstrap=n_bootstrap, confidence=confidence,
    )


def _per_category(value: Mapping[str, float] | float | None, category: str) -> float | None:
    if value is None or isinstance(value, int | float):
        return value
    return value.get(category)


def evaluate(labels: Mapping[str, ArrayLike], scores: Mapping[str, ArrayLike], *,
             thresholds: Mapping[str, float] | float, base_rates: Mapping[str, float] | float | None = None,
             n_bootstrap: int = DEFAULT_N_BOOTSTRAP, confidence: float = DEFAULT_CONFIDENCE,
             n_bins: int = DEFAULT_N_BINS, random_state: int | None = 0) -> dict[str, CategoryReport]:
    """`evaluate_category` for every labeled category.

    `labels[c]` and `scores[c]` are aligned arrays over the same items; a label of NaN/None
    means "unknown for this category" (multi-source datasets label only some categories).
    Categories labeled but not scored, or without a threshold, are reported UNMEASURED with
    the reason rather than dropped, so a report always lists what it could not measure.
    """
    out: dict[str, CategoryReport] = {}
    for cat, y in labels.items():
        y_arr = np.asarray(y, dtype=float)
        known = y_arr[~np.isnan(y_arr)]
        if cat not in scores:
            out[cat] = unmeasured_report(cat, n=len(known), positives=int(known.sum()), reason="no scores for category")
            continue
        thr = _per_category(thresholds, cat)
        if thr is None:
            out[cat] = unmeasured_report(cat, n=len(known), positives=int(known.sum()), reason="no threshold given")
            continue
        out[cat] = evaluate_category(y_arr, scores[cat], threshold=thr, category=cat,
                                     base_rate=_per_category(base_rates, cat), n_bootstrap=n_bootstrap,
                                     confidence=confidence, n_bins=n_bins, random_state=random_state)
    return out
