"""Online quality figures from production: what human reviewers said about automated decisions.

Two figures, per category and surface (and pooled per category, per surface and overall),
each with a confidence interval and the counts it rests on:

* **QA precision of automated actions.** The policy sends a random share of automated
  decisions (`review.qa_sample_rate`) to reviewers. Among sampled decisions that *acted*
  (any action but `allow`), the share that reviewers upheld estimates the precision of
  automated enforcement. The sample is random, so this is unbiased, unlike appeals. When the
  sampling rate differs between the pooled decisions (a policy version sampled 1%, the next
  5%), each outcome is weighted by 1 / rate (Horvitz-Thompson), so a heavily sampled period
  cannot dominate; the interval is Wilson's at Kish's effective sample size. With one rate
  throughout, the weights cancel and this is the plain proportion with the plain Wilson
  interval. Sampled `allow` decisions give the **QA miss rate** (overturned allows: violations
  the automation let through), measured the same way.
* **Appeal overturn rate.** Among appealed automated decisions, the share reviewers
  overturned. Appeals are not a random sample (users appeal what they think is wrong), so this
  is an error rate *among appeals*, not a precision estimate; report it as such.

User reports (`source == "report"`) are stored but not used here: which items get reported
is driven by the audience, not chance.

Inputs are any objects with the attributes of `warden.store.ReviewOutcome` (`category`,
`surface`, `action`, `verdict`, `source`, `sample_rate`); this module never touches the store.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from statistics import NormalDist
from typing import Any, Protocol

from warden.evaluate.metrics import DEFAULT_CONFIDENCE, Estimate, _jsonable

ALL = "*"  # the pooled row's key (all categories or all surfaces)
NON_ENFORCING_ACTIONS = frozenset({"allow"})


class OutcomeLike(Protocol):
    category: str
    surface: str
    action: str
    verdict: str
    source: str
    sample_rate: float | None


def wilson_interval(successes: float, n: float, *, confidence: float = DEFAULT_CONFIDENCE) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (NaN, NaN when n == 0).

    `n` may be fractional (an effective sample size); `successes / n` is the proportion.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if n <= 0:
        return float("nan"), float("nan")
    z = NormalDist().inv_cdf(0.5 + confidence / 2.0)
    p = successes / n
    z2 = z * z
    denom = 1.0 + z2 / n
    centre = (p + z2 / (2.0 * n)) / denom
    half = z * math.sqrt(p * (1.0 - p) / n + z2 / (4.0 * n * n)) / denom
    lo = 0.0 if successes <= 0 else max(0.0, centre - half)
    hi = 1.0 if successes >= n else min(1.0, centre + half)
    return lo, hi


def proportion(successes: int, n: int, *, confidence: float = DEFAULT_CONFIDENCE) -> Estimate:
    """A proportion with its Wilson interval; NaN (undefined) when n == 0."""
    if n == 0:
        return Estimate(float("nan"), float("nan"), float("nan"))
    lo, hi = wilson_interval(successes, n, confidence=confidence)
    return Estimate(successes / n, lo, hi)


@dataclass(frozen=True, slots=True)
class RateRow:
    """One figure for one (category, surface) cell; `*` means pooled over that key.

    `n` outcomes, of which `hits` count toward the figure (upheld for precision, overturned
    for the rates). `weighted` says the sampling rates differed inside the cell, so `value`
    is the inverse-rate weighted share and the interval uses `n_effective`.
    `estimated_decisions` is the number of decisions the sample stands for (sum of 1 / rate),
    None when some outcome has no recorded rate.
    """

    category: str
    surface: str
    n: int
    hits: int
    estimate: Estimate
    weighted: bool = False
    n_effective: float = 0.0
    estimated_decisions: float | None = None


@dataclass(frozen=True, slots=True)
class OnlineReport:
    qa_precision: list[RateRow] = field(default_factory=list)
    qa_miss_rate: list[RateRow] = field(default_factory=list)
    appeal_overturn_rate: list[RateRow] = field(default_factory=list)
    n_outcomes: int = 0
    n_unrated_qa: int = 0  # QA outcomes without a sample_rate (weighted as rate 1 if others have rates)
    confidence: float = DEFAULT_CONFIDENCE

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(asdict(self))


def _cells(rows: Sequence[OutcomeLike], by_category: bool, by_surface: bool) -> dict[tuple[str, str], list]:
    cells: dict[tuple[str, str], list] = {}
    for r in rows:
        key = (r.category if by_category else ALL, r.surface if by_surface else ALL)
        cells.setdefault(key, []).append(r)
    return cells


def _rate_row(key: tuple[str, str], rows: Sequence[OutcomeLike], hit_verdict: str, *, use_weights: bool,
              confidence: float) -> RateRow:
    hits = sum(1 for r in rows if r.verdict == hit_verdict)
    n = len(rows)
    rates = [r.sample_rate for r in rows]
    estimated = None if any(x is None for x in rates) else sum(1.0 / x for x in rates)  # type: ignore[operator]
    distinct = {x for x in rates if x is not None}
    if not use_weights or (len(distinct) <= 1 and None not in rates) or not distinct:
        est = proportion(hits, n, confidence=confidence)
        return RateRow(key[0], key[1], n, hits, est, False, float(n), estimated)
    weights = [1.0 / r.sample_rate if r.sample_rate else 1.0 for r in rows]
    total = sum(weights)
    p = sum(w for w, r in zip(weights, rows, strict=True) if r.verdict == hit_verdict) / total
    n_eff = total * total / sum(w * w for w in weights)
    lo, hi = wilson_interval(p * n_eff, n_eff, confidence=confidence)
    return RateRow(key[0], key[1], n, hits, Estimate(p, lo, hi), True, n_eff, estimated)


def _table(rows: Sequence[OutcomeLike], hit_verdict: str, *, use_weights: bool, confidence: float) -> list[RateRow]:
    """Rows per (category, surface), then per category (all surfaces), per surface (all
    categories) and overall, each sorted by key."""
    out: list[RateRow] = []
    for by_cat, by_surf in ((True, True), (True, False), (False, True), (False, False)):
        cells = _cells(rows, by_cat, by_surf)
        if not by_cat and not by_surf and not rows:
            cells = {(ALL, ALL): []}
        for key in sorted(cells):
            out.append(_rate_row(key, cells[key], hit_verdict, use_weights=use_weights, confidence=confidence))
    return out


def qa_precision(outcomes: Iterable[OutcomeLike], *, confidence: float = DEFAULT_CONFIDENCE) -> list[RateRow]:
    """Precision of automated enforcement (share upheld) from the random QA sample."""
    rows = [o for o in outcomes if o.source == "qa_sample" and o.action not in NON_ENFORCING_ACTIONS]
    return _table(rows, "upheld", use_weights=True, confidence=confidence)


def qa_miss_rate(outcomes: Iterable[OutcomeLike], *, confidence: float = DEFAULT_CONFIDENCE) -> list[RateRow]:
    """Share of QA-sampled automated `allow` decisions that reviewers overturned."""
    rows = [o for o in outcomes if o.source == "qa_sample" and o.action in NON_ENFORCING_ACTIONS]
    return _table(rows, "overturned", use_weights=True, confidence=confidence)


def appeal_overturn_rate(outcomes: Iterable[OutcomeLike], *, confidence: float = DEFAULT_CONFIDENCE) -> list[RateRow]:
    """Share of appealed decisions that reviewers overturned (not weighted: appeals are not sampled)."""
    rows = [o for o in outcomes if o.source == "appeal"]
    return _table(rows, "overturned", use_weights=False, confidence=confidence)


def online_metrics(outcomes: Iterable[OutcomeLike], *, confidence: float = DEFAULT_CONFIDENCE) -> OnlineReport:
    rows = list(outcomes)
    return OnlineReport(
        qa_precision=qa_precision(rows, confidence=confidence),
        qa_miss_rate=qa_miss_rate(rows, confidence=confidence),
        appeal_overturn_rate=appeal_overturn_rate(rows, confidence=confidence),
        n_outcomes=len(rows),
        n_unrated_qa=sum(1 for r in rows if r.source == "qa_sample" and r.sample_rate is None),
        confidence=confidence,
    )


__all__ = [
    "ALL",
    "NON_ENFORCING_ACTIONS",
    "OnlineReport",
    "OutcomeLike",
    "RateRow",
    "appeal_overturn_rate",
    "online_metrics",
    "proportion",
    "qa_miss_rate",
    "qa_precision",
    "wilson_interval",
]
