"""Active learning: which unlabeled items should humans label next.

Why: reviewer time is the scarcest resource of a Trust & Safety team. Labels on items the
model already scores confidently teach it little; labels on items near a decision threshold
move the boundary. But the most uncertain items tend to be near-duplicates of each other (one
spam campaign, one meme), so a batch of pure uncertainty picks wastes labels on redundant
examples. `select_batch` therefore offers three strategies:

* ``random``: the baseline every claim is measured against;
* ``uncertainty``: the `n` items closest to a decision threshold in any category;
* ``uncertainty_diversity``: the `candidate_factor * n` most uncertain items, clustered into
  `n` groups with k-means on their sentence embeddings, keeping the most uncertain item per
  cluster, so one batch covers `n` different regions of the uncertain zone.

Everything here is pure numpy / scikit-learn and deterministic for a given seed (no I/O, no
encoder). `pick_for_learning` is the product's learning-lane entry point: it shortlists by
uncertainty first and asks its caller-supplied `embed` callable for embeddings of the
shortlist only, so the encoder (the expensive part) runs on at most `candidate_factor * limit`
texts. `benchmarks/active_learning.py` measures whether this beats random labeling.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np

Strategy = Literal["random", "uncertainty", "uncertainty_diversity"]
STRATEGIES: tuple[str, ...] = get_args(Strategy)
DEFAULT_THRESHOLD = 0.5
#: Shortlist size for the diversity step, as a multiple of the batch size.
DEFAULT_CANDIDATE_FACTOR = 10
_EPS = 1e-12


@dataclass(frozen=True, slots=True)
class Selection:
    """The items chosen for labeling, most uncertain first (random picks: in draw order).

    `indices` point into the arrays given to `select_batch`; `uncertainty[i]` is the score of
    `indices[i]` (1 = on a threshold, 0 = certain); `clusters[i]` is its k-means cluster for
    ``uncertainty_diversity`` (else None). Arrays are read-only.
    """

    indices: np.ndarray
    uncertainty: np.ndarray
    strategy: str
    seed: int
    clusters: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.indices)


def _readonly(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a)
    a.setflags(write=False)
    return a


def _check_probabilities(probabilities: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
    p = np.asarray(probabilities, dtype=np.float64)
    if p.ndim == 1:
        raise ValueError(f"probabilities must be 2-D (n_items, n_categories); got shape {p.shape}: "
                         "for one category pass p.reshape(-1, 1)")
    if p.ndim != 2:
        raise ValueError(f"probabilities must be 2-D (n_items, n_categories); got shape {p.shape}")
    if p.shape[1] == 0 and p.shape[0] > 0:
        raise ValueError("probabilities has no category column")
    bad = ~np.isfinite(p)
    if bad.any():
        rows = np.flatnonzero(bad.any(axis=1))[:5].tolist()
        raise ValueError(f"probabilities contain NaN or infinite values (rows {rows}); score or drop those items "
                         "first, an unscored item has no uncertainty")
    if ((p < 0) | (p > 1)).any():
        raise ValueError("probabilities must lie in [0, 1]")
    return p


def _check_thresholds(thresholds: float | Sequence[float] | np.ndarray, k: int) -> np.ndarray:
    t = np.broadcast_to(np.asarray(thresholds, dtype=np.float64), (k,)).copy() if np.ndim(thresholds) == 0 else \
        np.asarray(thresholds, dtype=np.float64)
    if t.shape != (k,):
        raise ValueError(f"thresholds must be a scalar or have one value per category ({k}); got shape {t.shape}")
    if not np.all((t > 0) & (t < 1)):
        raise ValueError("thresholds must lie strictly between 0 and 1")
    return t


def uncertainty_scores(probabilities: np.ndarray | Sequence[Sequence[float]], *,
                       thresholds: float | Sequence[float] | np.ndarray = DEFAULT_THRESHOLD) -> np.ndarray:
    """Per item, how close its scores are to a decision threshold: in [0, 1], 1 = on it.

    ``u = max over categories of min(odds(p) / odds(t), odds(t) / odds(p))``, i.e.
    ``exp(-|logit(p) - logit(t)|)``: the distance to the threshold in log-odds, the unit in
    which a logistic head (and Platt calibration) moves scores, so "one unit of evidence
    away" means the same in every category and at every threshold. For ``t = 0.5`` this
    orders items exactly like margin sampling and binary entropy. Why the maximum over
    categories (not the mean or a sum of entropies): a reviewer labels all categories of an
    item at once, so an item is worth a label if ANY category is undecided; averaging would
    hide a borderline hate score behind eleven confident zeros. Why thresholds and not 0.5:
    the decisions Warden takes happen at the policy's thresholds, and that is where a wrong
    score costs something.
    """
    p = _check_probabilities(probabilities)
    if p.shape[0] == 0:
        return np.zeros(0)
    return _closeness(p, _check_thresholds(thresholds, p.shape[1])).max(axis=1)


def _closeness(p: np.ndarray, t: np.ndarray) -> np.ndarray:
    """(n, k) ``exp(-|logit(p) - logit(t)|)`` for validated inputs."""
    pc = np.clip(p, _EPS, 1 - _EPS)
    return np.exp(-np.abs(np.log(pc / (1 - pc)) - np.log(t / (1 - t))))


def _available(n_items: int, exclude: Iterable[int] | np.ndarray | None) -> np.ndarray:
    mask = np.ones(n_items, dtype=bool)
    if exclude is None:
        return mask
    ex = np.asarray(list(exclude) if not isinstance(exclude, np.ndarray) else exclude)
    if ex.dtype == bool:
        if ex.shape != (n_items,):
            raise ValueError(f"a boolean exclude mask must have shape ({n_items},), got {ex.shape}")
        return ~ex
    if ex.size:
        ex = ex.astype(np.int64)
        if ex.min() < 0 or ex.max() >= n_items:
            raise ValueError(f"exclude holds indices outside [0, {n_items})")
        mask[ex] = False
    return mask


def _by_uncertainty(idx: np.ndarray, u: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """`idx` sorted by decreasing uncertainty; ties broken by a seeded permutation rather than
    by index, so equal scores (e.g. a cold-start model that outputs a constant) do not always
    favour the first rows of the pool."""
    tiebreak = rng.permutation(len(idx))
    return idx[np.lexsort((tiebreak, -u[idx]))]


def _diverse(top: np.ndarray, u: np.ndarray, emb: np.ndarray, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """k-means the shortlist `top` into `n` clusters; keep the most uncertain item per cluster.
    Returns (picks, cluster of each pick). `top` is already sorted by decreasing uncertainty,
    so the first member of each cluster in `top` order is its most uncertain one."""
    from sklearn.cluster import KMeans
    from sklearn.exceptions import ConvergenceWarning

    x = emb[top]
    with warnings.catch_warnings():
        # fewer distinct points than clusters: k-means warns and leaves clusters empty; handled below
        warnings.simplefilter("ignore", ConvergenceWarning)
        labels = KMeans(n_clusters=n, n_init=1, random_state=seed).fit_predict(x)
    _, first = np.unique(labels, return_index=True)
    first = np.sort(first)  # positions in `top`, i.e. in decreasing-uncertainty order
    picks, clusters = top[first], labels[first]
    if len(picks) < n:  # duplicate embeddings collapsed some clusters: fill with the next most uncertain
        rest = np.setdiff1d(np.arange(len(top)), first, assume_unique=True)[: n - len(picks)]
        picks = np.concatenate([picks, top[rest]])
        clusters = np.concatenate([clusters, labels[rest]])
    order = np.argsort(-u[picks], kind="stable")
    return picks[order], clusters[order]


def select_batch(*, probabilities: np.ndarray | Sequence[Sequence[float]], n: int, strategy: Strategy, seed: int,
                 embeddings: np.ndarray | None = None, exclude: Iterable[int] | np.ndarray | None = None,
                 thresholds: float | Sequence[float] | np.ndarray = DEFAULT_THRESHOLD,
                 candidate_factor: int = DEFAULT_CANDIDATE_FACTOR) -> Selection:
    """Choose up to `n` items of a pool to label next.

    Args:
        probabilities: (n_items, n_categories) current model scores in [0, 1]; NaN is rejected.
        n: batch size; when fewer items are available, all of them are returned.
        strategy: ``random``, ``uncertainty`` or ``uncertainty_diversity`` (see module doc).
        seed: makes every strategy deterministic (random draws, tie-breaks, k-means init).
        embeddings: (n_items, d) vectors, required for ``uncertainty_diversity``; any metric
            space where Euclidean distance means "similar content" (L2-normalized MiniLM).
        exclude: indices (or a boolean mask) of items that must not be picked, e.g. the
            already-labeled ones.
        thresholds: the decision threshold per category (scalar = same for all).
        candidate_factor: the diversity shortlist is ``candidate_factor * n`` items. Small
            (1-2) degenerates to pure uncertainty; large (100) to diverse but barely uncertain
            picks; 5-10 keeps every pick in the uncertain zone while leaving room to spread.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; expected one of {STRATEGIES}")
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
    if candidate_factor < 1:
        raise ValueError("candidate_factor must be >= 1")
    u = uncertainty_scores(probabilities, thresholds=thresholds)
    n_items = len(u)
    emb = None
    if strategy == "uncertainty_diversity":
        if embeddings is None:
            raise ValueError("strategy 'uncertainty_diversity' needs embeddings")
        emb = np.asarray(embeddings, dtype=np.float64)
        if emb.ndim != 2 or emb.shape[0] != n_items:
            raise ValueError(f"embeddings must have shape ({n_items}, d), got {emb.shape}")
        if not np.isfinite(emb).all():
            raise ValueError("embeddings contain NaN or infinite values")
    idx = np.flatnonzero(_available(n_items, exclude))
    n_eff = min(int(n), len(idx))
    rng = np.random.default_rng(seed)
    clusters = None
    if n_eff == 0:
        picks = np.zeros(0, dtype=np.int64)
    elif strategy == "random":
        picks = rng.choice(idx, size=n_eff, replace=False)
    else:
        ranked = _by_uncertainty(idx, u, rng)
        if strategy == "uncertainty" or n_eff == 1 or n_eff == len(idx):
            picks = ranked[:n_eff]
        else:
            top = ranked[: min(len(ranked), candidate_factor * n_eff)]
            picks = top if len(top) == n_eff else None
            if picks is None:
                picks, clusters = _diverse(top, u, emb, n_eff, seed)  # type: ignore[arg-type]
    picks = np.asarray(picks, dtype=np.int64)
    return Selection(indices=_readonly(picks), uncertainty=_readonly(u[picks]), strategy=strategy, seed=seed,
                     clusters=None if clusters is None else _readonly(np.asarray(clusters, dtype=np.int64)))


# --------------------------------------------------------------------------------------
# the product's learning lane
# --------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class LearningCandidate:
    """An item the platform already decided on: its key (content id), its text and the
    per-category probabilities of its decision (`Decision.scores`). Categories missing from
    `scores` were not scored and do not count as uncertain."""

    key: str
    text: str
    scores: Mapping[str, float]
    #: this item's own thresholds (e.g. for its surface); categories missing here use the call's
    thresholds: Mapping[str, float] | None = None


@dataclass(frozen=True, slots=True)
class LearningPick:
    """A candidate chosen for the learning queue, with why: the category whose score is
    closest to its threshold, that score, and the item's uncertainty (1 = on the threshold)."""

    key: str
    uncertainty: float
    category: str
    score: float


def _candidate_matrix(candidates: Sequence[LearningCandidate], categories: Sequence[str]) -> np.ndarray:
    p = np.full((len(candidates), len(categories)), np.nan)
    col = {c: j for j, c in enumerate(categories)}
    for i, cand in enumerate(candidates):
        for c, v in cand.scores.items():
            j = col.get(c)
            if j is not None and v is not None and math.isfinite(float(v)):
                p[i, j] = min(1.0, max(0.0, float(v)))
    return p


def pick_for_learning(candidates: Sequence[LearningCandidate], *, limit: int,
                      embed: Callable[[list[str]], np.ndarray], thresholds: Mapping[str, float],
                      seed: int = 0, strategy: Strategy = "uncertainty_diversity",
                      candidate_factor: int = DEFAULT_CANDIDATE_FACTOR,
                      min_uncertainty: float = 0.0) -> list[LearningPick]:
    """Which candidates to send to the learning queue, most uncertain first.

    `thresholds` maps each category to its decision threshold (the policy's `flag` threshold);
    only those categories count; a candidate's own `thresholds` (its surface's) override them.
    Candidates without any scored category, and those below `min_uncertainty`, are never
    picked: labeling them would teach nothing measurable.
    `embed(texts) -> (len(texts), d)` is called once, on the uncertainty shortlist only
    (``candidate_factor * limit`` texts), and only for ``uncertainty_diversity``. Pass
    `embed_with_minilm` in production; tests pass a stub.
    """
    if limit <= 0 or not candidates:
        return []
    cats = sorted(thresholds)
    if not cats:
        raise ValueError("thresholds is empty: no category to measure uncertainty on")
    t = np.array([[float((cand.thresholds or {}).get(c, thresholds[c])) for c in cats] for cand in candidates])
    if not np.all((t > 0) & (t < 1)):
        raise ValueError("thresholds must lie strictly between 0 and 1")
    p = _candidate_matrix(candidates, cats)
    scored = ~np.isnan(p)
    # shift every score so that its own threshold sits at 0.5 (same log-odds distance, hence the
    # same uncertainty): items with different thresholds (surfaces) become comparable in one pool
    pc = np.clip(np.where(scored, p, 0.0), _EPS, 1 - _EPS)
    centered = 1.0 / (1.0 + np.exp(-(np.log(pc / (1 - pc)) - np.log(t / (1 - t)))))
    centered = np.where(scored, centered, 0.0)  # unscored: certain (zero uncertainty)
    u_cat = np.where(scored, _closeness(centered, np.full(len(cats), 0.5)), 0.0)
    u_full = u_cat.max(axis=1)
    eligible = np.flatnonzero(scored.any(axis=1) & (u_full >= min_uncertainty) & (u_full > 0))
    if not len(eligible):
        return []
    # shortlist first, so the encoder only sees candidate_factor * limit texts
    rng = np.random.default_rng(seed)
    short = _by_uncertainty(eligible, u_full, rng)
    if strategy != "random":  # random stays random over every eligible candidate (a baseline lane)
        short = short[: candidate_factor * limit]
    emb = None
    if strategy == "uncertainty_diversity":
        if len(short) <= limit:  # nothing to spread: every shortlisted item is picked anyway
            strategy = "uncertainty"
        else:
            emb = np.asarray(embed([candidates[i].text for i in short]))
    sel = select_batch(probabilities=centered[short], n=limit, strategy=strategy, seed=seed, embeddings=emb,
                       thresholds=0.5, candidate_factor=candidate_factor)
    out: list[LearningPick] = []
    for j in sel.indices.tolist():
        i = int(short[j])
        c = int(np.argmax(u_cat[i]))
        out.append(LearningPick(key=candidates[i].key, uncertainty=float(u_full[i]), category=cats[c],
                                score=float(p[i, c])))
    return out


def embed_with_minilm(texts: list[str]) -> np.ndarray:
    """The production `embed` for `pick_for_learning`: the shared MiniLM encoder (lazy import,
    so this module stays importable and testable without the ONNX model)."""
    from warden.detectors.text.encoder import get_encoder

    return get_encoder().encode(texts)
