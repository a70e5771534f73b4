"""A typed evaluation report: one policy or model, one labeled set, every figure behind it.

Pure: `build_report` takes labeled items and their scores (already computed by whoever ran the
model) and returns an `EvaluationReport`; nothing here reads files, runs models or draws.
`warden.evaluate.render` turns the report into JSON, Markdown and self-contained HTML, and
`warden.evaluate.gates` checks it against release limits. Keeping the three apart means the
HTML, the JSON and the gate can never disagree on a figure: they all read the same object.

What the report holds, per category:

* the `CategoryReport` of `warden.evaluate.metrics.evaluate` (figures at the policy threshold
  and across thresholds, with stratified bootstrap 95% intervals; UNMEASURED with a reason
  when the labeled items lack positives or negatives);
* the full threshold curve (precision / recall / FPR at every distinct score), the data behind
  the PR, ROC and threshold plots and behind "recall at a precision" gate rules;
* per-group rates at the threshold (FPR, FNR, flag rate) for every group column the items
  carry, the data behind per-group bars and fairness-gap rules;
* the worst errors at the threshold: false positives with the highest scores and false
  negatives with the lowest, text truncated (escaping is the renderer's job).

Optional sections from other modules (fairness, robustness, champion/challenger comparison)
are carried as given; the renderer shows them through their `to_dict()`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from warden.evaluate.metrics import (
    DEFAULT_N_BOOTSTRAP,
    CategoryReport,
    ThresholdCurve,
    _jsonable,
    evaluate,
    threshold_curve,
)

#: Error examples kept per category and kind (false positives, false negatives).
DEFAULT_TOP_K = 10
#: Characters of text kept per error example.
MAX_EXAMPLE_CHARS = 300
#: Curve points written to JSON per category (the in-memory curve keeps every threshold).
MAX_CURVE_POINTS = 400


class LabeledItem(Protocol):
    """What the report needs of a labeled item (matches `manifests.LabeledExample`)."""

    id: str
    text: str
    labels: Mapping[str, int]
    groups: Mapping[str, str | Sequence[str]]


@dataclass(frozen=True, slots=True)
class LabeledExample:
    """A labeled item: `labels` maps category -> 0/1 (an absent category is UNKNOWN, never
    negative); `groups` maps a group column (identity, target, language, source) -> one value
    or several (an item can target several groups; it then counts in each)."""

    id: str
    text: str
    labels: Mapping[str, int]
    groups: Mapping[str, str | Sequence[str]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ReportMeta:
    title: str
    dataset: str
    split: str | None = None
    policy_name: str | None = None
    policy_version: str | None = None
    surface: str | None = None
    created: str | None = None  # ISO timestamp, supplied by the caller (this module reads no clock)
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ErrorExample:
    id: str
    text: str  # raw (unescaped) text, truncated to MAX_EXAMPLE_CHARS
    score: float
    label: int
    groups: Mapping[str, str] = field(default_factory=dict)  # multi-valued groups joined with ", "


@dataclass(frozen=True, slots=True)
class WorstErrors:
    """False positives with the highest scores and false negatives with the lowest, at the
    threshold (score >= threshold = flagged)."""

    threshold: float
    false_positives: tuple[ErrorExample, ...]
    false_negatives: tuple[ErrorExample, ...]


@dataclass(frozen=True, slots=True)
class GroupRate:
    """Rates at the threshold for the items of one group (NaN when undefined)."""

    group: str
    n: int
    positives: int
    negatives: int
    fpr: float
    fnr: float
    flag_rate: float


@dataclass(frozen=True, slots=True)
class EvaluationReport:
    meta: ReportMeta
    n_items: int
    thresholds: Mapping[str, float]
    categories: Mapping[str, CategoryReport]
    curves: Mapping[str, ThresholdCurve]  # measured categories only, every distinct threshold
    errors: Mapping[str, WorstErrors]  # measured categories only
    groups: Mapping[str, Mapping[str, tuple[GroupRate, ...]]]  # category -> group column -> rates
    fairness: Any = None  # results of warden.evaluate.fairness (anything with to_dict), or None
    robustness: Any = None  # results of warden.evaluate.robustness, or None
    comparison: Mapping[str, Any] | None = None  # category -> compare.CategoryComparison
    missing_sections: Mapping[str, str] = field(default_factory=dict)  # section -> why it is absent

    @property
    def measured(self) -> list[str]:
        return [c for c, r in self.categories.items() if r.measured]

    @property
    def unmeasured(self) -> list[str]:
        return [c for c, r in self.categories.items() if not r.measured]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (NaN becomes None; curves thinned to MAX_CURVE_POINTS)."""
        return _jsonable({
            "meta": _asdict_plain(self.meta),
            "n_items": self.n_items,
            "thresholds": dict(self.thresholds),
            "categories": {c: r.to_dict() for c, r in self.categories.items()},
            "curves": {c: curve_points(cv, max_points=MAX_CURVE_POINTS) for c, cv in self.curves.items()},
            "errors": {c: _asdict_plain(e) for c, e in self.errors.items()},
            "groups": {c: {col: [_asdict_plain(g) for g in rates] for col, rates in cols.items()}
                       for c, cols in self.groups.items()},
            "fairness": section_dict(self.fairness),
            "robustness": section_dict(self.robustness),
            "comparison": None if self.comparison is None else {c: section_dict(r) for c, r in self.comparison.items()},
            "missing_sections": dict(self.missing_sections),
        })


def _asdict_plain(obj: Any) -> Any:
    if hasattr(obj, "__dataclass_fields__"):
        return {f: _asdict_plain(getattr(obj, f)) for f in obj.__dataclass_fields__}
    if isinstance(obj, Mapping):
        return {str(k): _asdict_plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_asdict_plain(v) for v in obj]
    return obj


def section_dict(section: Any) -> Any:
    """A result from another module as plain data: its `to_dict()`, a mapping/list of such, or
    a dataclass; None stays None."""
    if section is None:
        return None
    if hasattr(section, "to_dict"):
        return _jsonable(section.to_dict())
    if isinstance(section, Mapping):
        return {str(k): section_dict(v) for k, v in section.items()}
    if isinstance(section, list | tuple):
        return [section_dict(v) for v in section]
    return _jsonable(_asdict_plain(section))


# -- curves ---------------------------------------------------------------------------------

def curve_points(curve: ThresholdCurve, *, max_points: int | None = None) -> dict[str, list[float]]:
    """Threshold, precision, recall, FPR per point (highest threshold first), thinned to at
    most `max_points` evenly spaced points (the first and last always kept)."""
    idx = np.arange(len(curve.thresholds))
    if max_points is not None and len(idx) > max_points:
        idx = np.unique(np.linspace(0, len(idx) - 1, max_points).round().astype(int))
    return {"threshold": curve.thresholds[idx].tolist(), "precision": curve.precision[idx].tolist(),
            "recall": curve.recall[idx].tolist(), "fpr": curve.fpr[idx].tolist()}


def recall_at_precision(curve: ThresholdCurve, precision: float) -> tuple[float, float | None]:
    """The highest recall over thresholds whose precision is >= `precision`, and the highest
    such threshold that achieves it; (0.0, None) when no threshold reaches the precision."""
    with np.errstate(divide="ignore", invalid="ignore"):
        p = curve.precision
        r = curve.recall
    ok = np.flatnonzero(p >= precision - 1e-12)
    if len(ok) == 0:
        return 0.0, None
    best = ok[np.argmax(r[ok])]  # argmax returns the first = highest threshold among ties
    return float(r[best]), float(curve.thresholds[best])


# -- building -------------------------------------------------------------------------------

def _label_matrix(examples: Sequence[LabeledItem], categories: Sequence[str]) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for c in categories:
        # anything but 0/1 (None, -1 for "unknown") is unknown for that category
        out[c] = np.array([float(e.labels[c]) if e.labels.get(c) in (0, 1) else math.nan for e in examples],
                          dtype=float)
    return out


def _truncate(text: str, limit: int = MAX_EXAMPLE_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "\u2026"


def worst_errors(examples: Sequence[LabeledItem], y: np.ndarray, s: np.ndarray, *, threshold: float,
                 top_k: int = DEFAULT_TOP_K, category: str = "") -> WorstErrors:
    ok = ~np.isnan(y) & np.isfinite(s)
    fp = np.flatnonzero(ok & (y == 0) & (s >= threshold))
    fn = np.flatnonzero(ok & (y == 1) & (s < threshold))
    fp = fp[np.argsort(-s[fp], kind="mergesort")][:top_k]
    fn = fn[np.argsort(s[fn], kind="mergesort")][:top_k]

    def ex(i: int) -> ErrorExample:
        e = examples[int(i)]
        return ErrorExample(id=str(e.id), text=_truncate(e.text or ""), score=float(s[i]), label=int(y[i]),
                            groups={k: ", ".join(_values(v)) for k, v in (e.groups or {}).items() if _values(v)})

    return WorstErrors(threshold=float(threshold), false_positives=tuple(ex(i) for i in fp),
                       false_negatives=tuple(ex(i) for i in fn))


def _values(v: str | Sequence[str] | None) -> tuple[str, ...]:
    if v is None:
        return ()
    if isinstance(v, str):
        return (v,) if v else ()
    return tuple(str(x) for x in v if x is not None and str(x))


def group_rates(y: np.ndarray, s: np.ndarray, groups: Sequence[str | Sequence[str] | None], *,
                threshold: float) -> tuple[GroupRate, ...]:
    """Per-group FPR, FNR and flag rate at `threshold`, over items with a known label and a
    score; an item counts in every group it has, items without a value for the group column
    are left out. Sorted by group name."""
    members: dict[str, list[int]] = {}
    for i, v in enumerate(groups):
        for name in _values(v):
            members.setdefault(name, []).append(i)
    ok = ~np.isnan(y) & np.isfinite(s)
    out = []
    for name in sorted(members):
        m = np.zeros(len(y), dtype=bool)
        m[members[name]] = True
        m &= ok
        if not m.any():
            continue
        yy, flagged = y[m], s[m] >= threshold
        pos, neg = int(yy.sum()), int(len(yy) - yy.sum())
        fp = int(np.sum(flagged & (yy == 0)))
        fn = int(np.sum(~flagged & (yy == 1)))
        out.append(GroupRate(group=name, n=int(m.sum()), positives=pos, negatives=neg,
                             fpr=fp / neg if neg else math.nan, fnr=fn / pos if pos else math.nan,
                             flag_rate=float(flagged.mean()) if len(yy) else math.nan))
    return tuple(out)


def build_report(examples: Sequence[LabeledItem], scores: Mapping[str, Sequence[float] | np.ndarray], *,
                 thresholds: Mapping[str, float], meta: ReportMeta, categories: Sequence[str] | None = None,
                 base_rates: Mapping[str, float] | float | None = None, n_bootstrap: int = DEFAULT_N_BOOTSTRAP,
                 random_state: int | None = 0, top_k: int = DEFAULT_TOP_K,
                 group_columns: Sequence[str] | None = None, fairness: Any = None, robustness: Any = None,
                 comparison: Mapping[str, Any] | None = None,
                 missing_sections: Mapping[str, str] | None = None) -> EvaluationReport:
    """The report for `examples` scored by `scores[category]` (aligned with `examples`; NaN =
    not scored, counted per category as `n_unscored`).

    `categories` defaults to every category with a threshold or a label; categories without
    labels, scores or a threshold are reported UNMEASURED with the reason, never dropped.
    `group_columns` defaults to every group column that any item carries.
    """
    n = len(examples)
    for c, v in scores.items():
        if len(v) != n:
            raise ValueError(f"scores[{c!r}] has {len(v)} values for {n} examples")
    if categories is None:
        labeled = {c for e in examples for c in e.labels}
        categories = [c for c in thresholds] + sorted(labeled - set(thresholds))
    labels = _label_matrix(examples, categories)
    score_arr = {c: np.asarray(v, dtype=float) for c, v in scores.items() if c in labels}
    thr = {c: float(thresholds[c]) for c in categories if c in thresholds}
    reports = evaluate(labels, score_arr, thresholds=thr, base_rates=base_rates, n_bootstrap=n_bootstrap,
                       random_state=random_state)
    if group_columns is None:
        group_columns = sorted({k for e in examples for k in (e.groups or {})})
    curves: dict[str, ThresholdCurve] = {}
    errors: dict[str, WorstErrors] = {}
    groups: dict[str, dict[str, tuple[GroupRate, ...]]] = {}
    for c, rep in reports.items():
        if not rep.measured:
            continue
        y, s = labels[c], score_arr[c]
        ok = ~np.isnan(y) & np.isfinite(s)
        curves[c] = threshold_curve(y[ok], s[ok])
        errors[c] = worst_errors(examples, y, s, threshold=thr[c], top_k=top_k, category=c)
        groups[c] = {col: group_rates(y, s, [(e.groups or {}).get(col) for e in examples], threshold=thr[c])
                     for col in group_columns}
    return EvaluationReport(meta=meta, n_items=n, thresholds=thr, categories=reports, curves=curves, errors=errors,
                            groups=groups, fairness=fairness, robustness=robustness, comparison=comparison,
                            missing_sections=dict(missing_sections or {}))
