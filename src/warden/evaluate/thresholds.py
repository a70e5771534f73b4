"""Choose per-category thresholds under stated constraints and write them as a new policy.

Why: thresholds are policy, not model internals. A T&S team states what it needs
("precision>=0.9 on hate", "fpr<=0.01 on spam", or what a false positive costs against a
false negative) and gets the threshold that meets it, the precision and recall to expect
(with intervals), and a new policy version they can diff, review and ship.

Select on a VALIDATION split, never on the test split you will report: a threshold chosen
on a set meets its constraint on that set by construction, so figures measured on the same
set are optimistic. The intervals printed here describe the selection set only; measure the
new policy on held-out data before quoting it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml

from warden.core.policy import Policy
from warden.evaluate.metrics import (
    DEFAULT_CONFIDENCE,
    DEFAULT_N_BOOTSTRAP,
    ArrayLike,
    CategoryReport,
    Estimate,
    _labeled,
    evaluate_category,
    threshold_curve,
)
from warden.policy import parse_policy

Metric = Literal["precision", "recall", "fpr"]
_EPS = 1e-12
_CONSTRAINT = re.compile(r"^\s*(?P<metric>[a-zA-Z_]+)\s*(?P<op>>=|<=|=>|=<|>|<|=)\s*(?P<value>[-+0-9.eE]+)\s*$")
_DIRECTION: dict[str, str] = {"precision": ">=", "recall": ">=", "fpr": "<="}


class ConstraintError(ValueError):
    """A target string that cannot be parsed; the message says what is accepted."""


@dataclass(frozen=True, slots=True)
class Constraint:
    """A floor on precision or recall, or a ceiling on the false positive rate."""

    metric: Metric
    op: Literal[">=", "<="]
    value: float

    def __str__(self) -> str:
        return f"{self.metric}{self.op}{self.value:g}"

    def met(self, *, precision: np.ndarray, recall: np.ndarray, fpr: np.ndarray) -> np.ndarray:
        x = {"precision": precision, "recall": recall, "fpr": fpr}[self.metric]
        x = np.nan_to_num(x, nan=-np.inf if self.op == ">=" else np.inf)
        return x >= self.value - _EPS if self.op == ">=" else x <= self.value + _EPS


@dataclass(frozen=True, slots=True)
class Cost:
    """What one false positive and one false negative cost, in any common unit."""

    fp: float
    fn: float

    def __post_init__(self) -> None:
        if self.fp < 0 or self.fn < 0 or (self.fp == 0 and self.fn == 0) or not all(
                math.isfinite(v) for v in (self.fp, self.fn)):
            raise ValueError(f"costs must be finite, >= 0 and not both 0; got fp={self.fp}, fn={self.fn}")


def parse_constraint(text: str) -> Constraint:
    """Parse "precision>=0.9", "recall>=0.8" or "fpr<=0.01" (spaces allowed)."""
    m = _CONSTRAINT.match(text)
    if not m:
        raise ConstraintError(f"cannot parse target {text!r}: expected METRIC>=VALUE or METRIC<=VALUE, e.g. "
                              "'precision>=0.9', 'recall>=0.8', 'fpr<=0.01' (per category: 'hate:precision>=0.95')")
    metric, op, raw = m.group("metric").lower(), m.group("op"), m.group("value")
    if metric not in _DIRECTION:
        raise ConstraintError(f"target {text!r}: unknown metric {metric!r} (allowed: precision, recall, fpr)")
    op = {"=>": ">=", "=<": "<="}.get(op, op)
    if op != _DIRECTION[metric]:
        raise ConstraintError(f"target {text!r}: {metric} takes {_DIRECTION[metric]} (a "
                              f"{'floor' if _DIRECTION[metric] == '>=' else 'ceiling'}), e.g. "
                              f"'{metric}{_DIRECTION[metric]}{raw}'")
    try:
        value = float(raw)
    except ValueError:
        raise ConstraintError(f"target {text!r}: {raw!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise ConstraintError(f"target {text!r}: value must be in [0, 1], got {value}")
    return Constraint(metric=metric, op=op, value=value)  # type: ignore[arg-type]


def parse_target(text: str) -> tuple[str | None, Constraint]:
    """Parse a CLI target: "precision>=0.9" (all categories) or "hate:precision>=0.95"."""
    category, sep, rest = text.rpartition(":")
    if sep:
        category = category.strip()
        if not category:
            raise ConstraintError(f"target {text!r}: empty category before ':'")
        return category, parse_constraint(rest)
    return None, parse_constraint(text)


# -- selection -----------------------------------------------------------------------------

class SelectionStatus(StrEnum):
    SELECTED = "selected"
    INFEASIBLE = "infeasible"  # no threshold meets every constraint on this data
    UNMEASURED = "unmeasured"  # no positives or no negatives labeled


@dataclass(frozen=True, slots=True)
class ThresholdChoice:
    """The threshold chosen for one category, and what to expect from it on the selection set.

    `threshold` is None unless `status` is SELECTED (the policy then keeps its threshold);
    `reason` says why (e.g. the best precision reachable when a precision floor is not).
    """

    category: str
    status: SelectionStatus
    rule: str
    n: int
    positives: int
    threshold: float | None = None
    precision: Estimate | None = None
    recall: Estimate | None = None
    fpr: Estimate | None = None
    expected_cost: float | None = None
    reason: str | None = None
    report: CategoryReport | None = None


def _rule_text(constraints: Sequence[Constraint], cost: Cost | None) -> str:
    parts = [str(c) for c in constraints]
    if cost is not None:
        parts.append(f"min cost (fp={cost.fp:g}, fn={cost.fn:g})")
    return ", ".join(parts)


def select_threshold(y_true: ArrayLike, y_score: ArrayLike, *, constraints: Sequence[Constraint | str] = (),
                     cost: Cost | None = None, category: str = "", n_bootstrap: int = DEFAULT_N_BOOTSTRAP,
                     confidence: float = DEFAULT_CONFIDENCE, random_state: int | None = 0) -> ThresholdChoice:
    """Pick a flag threshold for one category on a labeled VALIDATION set (never the test set).

    Candidates are the distinct scores (flag = score >= threshold), plus 1.0 ("flag nothing")
    when costs are given and every score is below 1. The rule:

    * with `cost`: the lowest expected cost fp*FP + fn*FN among thresholds meeting every
      constraint (highest threshold on ties);
    * with a precision floor or FPR ceiling: the highest recall among thresholds meeting every
      constraint (highest threshold on ties) - catch as much as the quality bar allows;
    * with only recall floors: the highest threshold that still meets them - the fewest flags.

    Labels of NaN/None are unknown and excluded. Returns UNMEASURED without both classes and
    INFEASIBLE (with the best reachable figure) when no threshold meets the constraints.
    """
    cons = tuple(parse_constraint(c) if isinstance(c, str) else c for c in constraints)
    if not cons and cost is None:
        raise ValueError("give at least one constraint or a cost")
    rule = _rule_text(cons, cost)
    y, s, _ = _labeled(y_true, y_score)
    n, positives = len(y), int(y.sum())
    if positives == 0 or positives == n:
        why = "no labeled items" if n == 0 else "no positive labels" if positives == 0 else "no negative labels"
        return ThresholdChoice(category, SelectionStatus.UNMEASURED, rule, n, positives, reason=why)
    curve = threshold_curve(y, s)
    thresholds, tp, fp = curve.thresholds, curve.tp, curve.fp
    if cost is not None and thresholds[0] < 1.0:
        thresholds, tp, fp = np.r_[1.0, thresholds], np.r_[0.0, tp], np.r_[0.0, fp]
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(tp + fp > 0, tp / (tp + fp), np.nan)
    recall, fpr = tp / positives, fp / (n - positives)
    feasible = np.ones(len(thresholds), dtype=bool)
    for c in cons:
        feasible &= c.met(precision=precision, recall=recall, fpr=fpr)
    if not feasible.any():
        best = {"precision": np.nanmax(precision), "recall": 1.0, "fpr": float(np.nanmin(fpr))}
        missed = "; ".join(f"best {c.metric} reachable is {best[c.metric]:.4f}"
                           for c in cons if not c.met(precision=precision, recall=recall, fpr=fpr).any())
        return ThresholdChoice(category, SelectionStatus.INFEASIBLE, rule, n, positives,
                               reason=missed or "the constraints cannot all hold at one threshold")
    candidates = np.flatnonzero(feasible)  # ascending index = descending threshold
    expected_cost = None
    if cost is not None:
        costs = cost.fp * fp + cost.fn * (positives - tp)
        k = int(candidates[np.argmin(costs[candidates])])
        expected_cost = float(costs[k])
    elif all(c.metric == "recall" for c in cons):
        k = int(candidates[0])
    else:
        k = int(candidates[np.argmax(tp[candidates])])
    t = float(thresholds[k])
    report = evaluate_category(y, s, threshold=t, category=category, n_bootstrap=n_bootstrap,
                               confidence=confidence, random_state=random_state)
    at = report.at_threshold
    assert at is not None
    return ThresholdChoice(category, SelectionStatus.SELECTED, rule, n, positives, threshold=t,
                           precision=at.precision, recall=at.recall, fpr=at.fpr, expected_cost=expected_cost,
                           report=report)


def select_thresholds(labels: Mapping[str, ArrayLike], scores: Mapping[str, ArrayLike], *,
                      constraints: Sequence[Constraint | str] | Mapping[str, Sequence[Constraint | str]] = (),
                      costs: Cost | Mapping[str, Cost] | None = None, n_bootstrap: int = DEFAULT_N_BOOTSTRAP,
                      confidence: float = DEFAULT_CONFIDENCE,
                      random_state: int | None = 0) -> dict[str, ThresholdChoice]:
    """`select_threshold` for each labeled and scored category.

    `constraints` is one list for every category or a dict per category; `costs` likewise.
    Categories with neither a constraint nor a cost are skipped (the policy keeps them).
    """
    out: dict[str, ThresholdChoice] = {}
    for cat, y in labels.items():
        cons = constraints.get(cat, ()) if isinstance(constraints, Mapping) else constraints
        cost = costs.get(cat) if isinstance(costs, Mapping) else costs
        if (not cons and cost is None) or cat not in scores:
            continue
        out[cat] = select_threshold(y, scores[cat], constraints=cons, cost=cost, category=cat,
                                    n_bootstrap=n_bootstrap, confidence=confidence, random_state=random_state)
    return out


# -- policy output -------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class PolicyUpdate:
    """A new policy version and the human-readable list of what changed in it."""

    policy: Policy
    changes: tuple[str, ...]
    skipped: tuple[str, ...]


def policy_thresholds(policy: Policy, *, surface: str = "default") -> dict[str, float]:
    """The flag threshold per category on `surface` (falling back to `default`)."""
    return {name: cat.threshold_for(surface).flag for name, cat in policy.categories.items()}


def apply_thresholds(policy: Policy, choices: Mapping[str, ThresholdChoice], *, surface: str = "default",
                     version: str) -> PolicyUpdate:
    """A new policy version: same everything, with `categories.<c>.thresholds.<surface>.flag`
    set from every SELECTED choice. `review` is kept when it is still <= the new flag and
    lowered to the flag otherwise (the review band then is empty; said in `changes`).
    A surface without its own entry gets one, starting from the `default` entry's review.
    """
    if version == policy.version:
        raise ValueError(f"the new version must differ from the current one ({policy.version!r})")
    if surface != "default" and surface not in policy.surfaces:
        raise ValueError(f"unknown surface {surface!r}; allowed: default, {', '.join(policy.surfaces)}")
    data: dict[str, Any] = policy.model_dump(mode="json", exclude_unset=True)
    data["version"] = version
    changes: list[str] = []
    skipped: list[str] = []
    for cat, choice in choices.items():
        if choice.status is not SelectionStatus.SELECTED or choice.threshold is None:
            skipped.append(f"{cat}: {choice.status.value} ({choice.reason}); threshold unchanged")
            continue
        if cat not in policy.categories:
            skipped.append(f"{cat}: not a category of policy {policy.name!r}; ignored")
            continue
        old = policy.categories[cat].threshold_for(surface)
        flag = float(choice.threshold)
        entry: dict[str, float] = {"flag": flag}
        if old.review is not None:
            entry["review"] = min(old.review, flag)
            if old.review > flag:
                changes.append(f"categories.{cat}.thresholds.{surface}.review: {old.review:g} -> {flag:g} "
                               "(lowered to stay <= flag)")
        data["categories"][cat]["thresholds"][surface] = entry
        changes.append(f"categories.{cat}.thresholds.{surface}.flag: {old.flag:g} -> {flag:.6g}")
    new = Policy.model_validate(data)
    return PolicyUpdate(policy=new, changes=tuple(changes), skipped=tuple(skipped))


def policy_to_yaml(policy: Policy, *, header: str = "") -> str:
    """YAML for `policy`, validated by `warden.policy.parse_policy` before it is returned.

    PyYAML does not keep comments, so the output is a clean dump of the policy's explicit
    fields; the header comment says so and names where it came from.
    """
    data = policy.model_dump(mode="json", exclude_unset=True)
    lines = [f"# {line}" if line else "#" for line in header.splitlines()]
    lines.append("# Written by `warden eval thresholds`: a clean YAML dump (comments of the source policy are not")
    lines.append("# kept); compare with `warden policy diff OLD NEW`.")
    text = "\n".join(lines) + "\n" + yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=110)
    parse_policy(text, file="<generated policy>", check_detectors=False)
    return text


def write_policy(policy: Policy, path: str | Path, *, header: str = "") -> Path:
    path = Path(path)
    path.write_text(policy_to_yaml(policy, header=header), encoding="utf-8")
    return path
