"""Backtest: what changes when a candidate policy (or model) replaces the live one.

Given the decisions of a baseline ("old": the live policy, as stored or re-run) and of a
candidate ("new") on the same past items, and optionally labels for some of them, this
reports:

* changed decisions: how many items get a different action (count, rate with a Wilson
  interval), the full transition matrix old action -> new action, and example ids;
* items whose flagged categories changed even if the action did not;
* volumes by action, old vs new (what the review queue and enforcement will see);
* per category: flag rate old vs new, newly flagged and no longer flagged items;
* against labels, where labels exist: precision and recall of the flag per category for old
  and new, and the new - old difference, each with a paired stratified bootstrap interval
  (the same resamples for both policies, so the interval of the difference is honest).

Shadow mode reports (`warden eval shadow`) are the same computation with the live decisions
as "old" and the shadow decisions as "new".

Decisions are accepted as `warden.core.Decision` objects, as their wire dicts
(`Decision.to_dict()`, which is also the stored payload) or as any object with
`content_id`/`action`/`flagged` attributes. This module is pure: no store, no I/O.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
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
from warden.evaluate.online import proportion

DEFAULT_MAX_EXAMPLES = 20


@dataclass(frozen=True, slots=True)
class DecisionView:
    """The parts of a decision a backtest compares."""

    content_id: str
    action: str
    flagged: frozenset[str]
    surface: str = ""
    policy_version: str = ""
    categories: frozenset[str] = frozenset()  # categories the decision scored

    @classmethod
    def of(cls, obj: Any) -> DecisionView:
        if isinstance(obj, DecisionView):
            return obj
        if isinstance(obj, Mapping):
            cid = obj.get("id", obj.get("content_id"))
            if cid is None:
                raise ValueError("a decision dict needs 'id' or 'content_id'")
            return cls(str(cid), str(obj["action"]), frozenset(obj.get("flagged") or ()),
                       str(obj.get("surface") or ""), str(obj.get("policy_version") or ""),
                       frozenset((obj.get("scores") or {}).keys()))
        action = obj.action
        return cls(str(obj.content_id), str(getattr(action, "value", action)), frozenset(obj.flagged),
                   str(getattr(obj, "surface", "") or ""), str(getattr(obj, "policy_version", "") or ""),
                   frozenset((getattr(obj, "scores", None) or {}).keys()))


@dataclass(frozen=True, slots=True)
class ChangedExample:
    content_id: str
    old_action: str
    new_action: str
    old_flagged: tuple[str, ...]
    new_flagged: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ActionVolume:
    action: str
    old: int
    new: int

    @property
    def delta(self) -> int:
        return self.new - self.old


@dataclass(frozen=True, slots=True)
class CategoryFlagChange:
    category: str
    old_flagged: int
    new_flagged: int
    old_rate: float
    new_rate: float
    newly_flagged: int  # flagged by new, not by old
    unflagged: int  # flagged by old, not by new

    @property
    def rate_delta(self) -> float:
        return self.new_rate - self.old_rate


@dataclass(frozen=True, slots=True)
class LabelDelta:
    """Precision/recall of the flag for one category on the labeled items, old vs new.

    Figures that are undefined on the data (precision with nothing flagged, recall without
    positives) are NaN, never 0; `reason` says when the category could not be measured.
    """

    category: str
    n_labeled: int
    positives: int
    old_precision: Estimate
    new_precision: Estimate
    precision_delta: Estimate
    old_recall: Estimate
    new_recall: Estimate
    recall_delta: Estimate
    old_confusion: dict[str, int]
    new_confusion: dict[str, int]
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class BacktestReport:
    n_items: int
    old_policy_versions: tuple[str, ...]
    new_policy_versions: tuple[str, ...]
    only_old: int  # items with an old decision only (not compared)
    only_new: int
    changed: int
    changed_rate: Estimate
    flags_changed: int  # flagged categories differ (whatever the action)
    transitions: dict[str, dict[str, int]]  # old action -> new action -> count (all pairs seen)
    examples: list[ChangedExample]
    volumes: list[ActionVolume]
    categories: list[CategoryFlagChange]
    label_deltas: list[LabelDelta] = field(default_factory=list)
    n_labeled_items: int = 0
    n_bootstrap: int = 0
    confidence: float = DEFAULT_CONFIDENCE

    @property
    def agreement_rate(self) -> float:
        return 1.0 - self.changed_rate.value if self.n_items else float("nan")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["agreement_rate"] = self.agreement_rate
        for v, src in zip(d["volumes"], self.volumes, strict=True):
            v["delta"] = src.delta
        for c, src in zip(d["categories"], self.categories, strict=True):
            c["rate_delta"] = src.rate_delta
        return _jsonable(d)


def _views(decisions: Iterable[Any], which: str) -> dict[str, DecisionView]:
    out: dict[str, DecisionView] = {}
    for d in decisions:
        v = DecisionView.of(d)
        if v.content_id in out:
            raise ValueError(f"{which} decisions: content id {v.content_id!r} appears twice")
        out[v.content_id] = v
    return out


def _nan() -> Estimate:
    return Estimate(float("nan"), float("nan"), float("nan"))


def _confusion(y: np.ndarray, p: np.ndarray) -> dict[str, int]:
    return {"tp": int(np.sum((y == 1) & (p == 1))), "fp": int(np.sum((y == 0) & (p == 1))),
            "fn": int(np.sum((y == 1) & (p == 0))), "tn": int(np.sum((y == 0) & (p == 0)))}


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def label_delta(category: str, y: np.ndarray, old_pred: np.ndarray, new_pred: np.ndarray, *,
                n_bootstrap: int = DEFAULT_N_BOOTSTRAP, confidence: float = DEFAULT_CONFIDENCE,
                random_state: int | None = 0) -> LabelDelta:
    """Precision and recall of two 0/1 predictions on the same labeled items, and their
    difference, with paired stratified bootstrap percentile intervals (the resamples keep
    the positive/negative counts, as `warden.evaluate.metrics` does)."""
    y = np.asarray(y, dtype=float)
    a = np.asarray(old_pred, dtype=float)
    b = np.asarray(new_pred, dtype=float)
    n, pos = len(y), int(y.sum())
    if n == 0:
        return LabelDelta(category, 0, 0, _nan(), _nan(), _nan(), _nan(), _nan(), _nan(),
                          _confusion(y, a), _confusion(y, b), reason="no labeled items")
    # Per resample (row 0 = the data itself): weighted tp / flagged / positives for both
    # predictions. Blocks of resamples are reduced at once, never held all in memory.
    vecs = np.stack([y * a, a, y * b, b, y], axis=1)  # items x 5
    sums = [np.ones((1, n)) @ vecs]
    if n_bootstrap > 0:
        sums.extend(w @ vecs for w in stratified_bootstrap_weights(y, n_bootstrap=n_bootstrap,
                                                                   random_state=random_state))
    t = np.vstack(sums)
    prec_a, rec_a = _ratio(t[:, 0], t[:, 1]), _ratio(t[:, 0], t[:, 4])
    prec_b, rec_b = _ratio(t[:, 2], t[:, 3]), _ratio(t[:, 2], t[:, 4])

    def est(x: np.ndarray) -> Estimate:
        if math.isnan(x[0]) or n_bootstrap == 0:
            return Estimate(float(x[0]), float("nan"), float("nan"))
        lo, hi = percentile_interval(x[1:], confidence=confidence)
        return Estimate(float(x[0]), lo, hi)

    reason = None
    if pos == 0:
        reason = "no positive labels: recall undefined"
    return LabelDelta(category, n, pos, est(prec_a), est(prec_b), est(prec_b - prec_a), est(rec_a), est(rec_b),
                      est(rec_b - rec_a), _confusion(y, a), _confusion(y, b), reason)


def backtest(old: Iterable[Any], new: Iterable[Any], *,
             labels: Mapping[str, Mapping[str, float | None]] | None = None,
             n_bootstrap: int = DEFAULT_N_BOOTSTRAP, confidence: float = DEFAULT_CONFIDENCE,
             random_state: int | None = 0, max_examples: int = DEFAULT_MAX_EXAMPLES) -> BacktestReport:
    """Compare baseline (`old`) and candidate (`new`) decisions, paired by content id.

    `labels` maps content id -> category -> 1 / 0 / None-or-NaN (unknown); items without
    labels count in every figure except the label deltas. Examples of changed items are the
    first `max_examples` in content-id order (deterministic).
    """
    olds, news = _views(old, "old"), _views(new, "new")
    ids = sorted(set(olds) & set(news))
    n = len(ids)
    transitions: dict[str, Counter[str]] = {}
    old_vol: Counter[str] = Counter()
    new_vol: Counter[str] = Counter()
    changed_ids: list[str] = []
    flags_changed = 0
    cats: set[str] = set()
    for cid in ids:
        o, w = olds[cid], news[cid]
        transitions.setdefault(o.action, Counter())[w.action] += 1
        old_vol[o.action] += 1
        new_vol[w.action] += 1
        if o.action != w.action:
            changed_ids.append(cid)
        if o.flagged != w.flagged:
            flags_changed += 1
        cats |= o.flagged | w.flagged | o.categories | w.categories
    actions = sorted(set(old_vol) | set(new_vol))
    matrix = {a: {b: int(transitions.get(a, Counter()).get(b, 0)) for b in actions} for a in actions
              if a in transitions}
    examples = [ChangedExample(cid, olds[cid].action, news[cid].action, tuple(sorted(olds[cid].flagged)),
                               tuple(sorted(news[cid].flagged))) for cid in changed_ids[:max_examples]]
    volumes = [ActionVolume(a, old_vol[a], new_vol[a]) for a in actions]

    label_rows = {cid: labels[cid] for cid in ids if labels and cid in labels}
    for row in label_rows.values():
        cats |= set(row)
    categories: list[CategoryFlagChange] = []
    for c in sorted(cats):
        of = sum(1 for cid in ids if c in olds[cid].flagged)
        nf = sum(1 for cid in ids if c in news[cid].flagged)
        newly = sum(1 for cid in ids if c in news[cid].flagged and c not in olds[cid].flagged)
        gone = sum(1 for cid in ids if c in olds[cid].flagged and c not in news[cid].flagged)
        categories.append(CategoryFlagChange(c, of, nf, of / n if n else float("nan"), nf / n if n else float("nan"),
                                             newly, gone))

    deltas: list[LabelDelta] = []
    if label_rows:
        label_cats = sorted({c for row in label_rows.values() for c in row})
        for c in label_cats:
            known = [(cid, float(v)) for cid, row in label_rows.items()
                     if (v := row.get(c)) is not None and not math.isnan(float(v))]
            y = np.array([v for _, v in known], dtype=float)
            if len(y) and not np.all((y == 0) | (y == 1)):
                raise ValueError(f"labels for {c!r} must be 0/1 (None/NaN = unknown)")
            a = np.array([1.0 if c in olds[cid].flagged else 0.0 for cid, _ in known])
            b = np.array([1.0 if c in news[cid].flagged else 0.0 for cid, _ in known])
            deltas.append(label_delta(c, y, a, b, n_bootstrap=n_bootstrap, confidence=confidence,
                                      random_state=random_state))

    return BacktestReport(
        n_items=n,
        old_policy_versions=tuple(sorted({olds[c].policy_version for c in ids} - {""})),
        new_policy_versions=tuple(sorted({news[c].policy_version for c in ids} - {""})),
        only_old=len(set(olds) - set(news)),
        only_new=len(set(news) - set(olds)),
        changed=len(changed_ids),
        changed_rate=proportion(len(changed_ids), n, confidence=confidence),
        flags_changed=flags_changed,
        transitions=matrix,
        examples=examples,
        volumes=volumes,
        categories=categories,
        label_deltas=deltas,
        n_labeled_items=len(label_rows),
        n_bootstrap=n_bootstrap if label_rows else 0,
        confidence=confidence,
    )


__all__ = [
    "ActionVolume",
    "BacktestReport",
    "CategoryFlagChange",
    "ChangedExample",
    "DecisionView",
    "LabelDelta",
    "backtest",
    "label_delta",
]
