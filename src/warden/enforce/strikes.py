"""Strike arithmetic: pure functions over the policy's `enforcement.strikes` (no I/O).

An enforced decision adds one strike to its actor, weighted by its most severe flagged
category. Strikes fade: a strike's weight halves every `half_life_days`, so an actor who stops
violating drifts back down the ladder without anyone lifting a sanction by hand. The highest
ladder step whose `at` the decayed total reaches is the account action (warn, restrict,
suspend). Reversed strikes (an overturned appeal) count for nothing.

The store keeps the strikes (`warden.store.enforce_repo`); `warden.enforce.outbox` turns a step
crossing into an account-action webhook.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from warden.core.policy import AccountAction, Action, Policy, Severity, Strikes, StrikeStep

SECONDS_PER_DAY = 86_400.0


@dataclass(frozen=True, slots=True)
class StrikeWeight:
    """What one decision weighs: the category that set the weight, its severity, the weight."""

    category: str
    severity: Severity
    weight: float


@dataclass(frozen=True, slots=True)
class StrikeEntry:
    """One stored strike, as the arithmetic needs it."""

    weight: float
    created_at: datetime
    reversed_at: datetime | None = None
    decision_id: str = ""
    category: str = ""


@dataclass(frozen=True, slots=True)
class Standing:
    """An actor's decayed strike total at `at` and the ladder step it reaches.

    `step` is None below the first step. `next_step` is the step above (None at the top), so
    operators can see how close an account is to the next sanction.
    """

    total: float
    step: StrikeStep | None
    next_step: StrikeStep | None
    active_strikes: int
    at: datetime

    @property
    def account_action(self) -> AccountAction | None:
        return self.step.action if self.step is not None else None


@dataclass(frozen=True, slots=True)
class StepChange:
    """The ladder step before and after an event (a new strike or a reversal)."""

    before: StrikeStep | None
    after: StrikeStep | None

    @property
    def escalated(self) -> bool:
        """True when the actor reached a higher step than before: send an account action."""
        return _rank(self.after) > _rank(self.before)

    @property
    def deescalated(self) -> bool:
        """True when the actor fell below the step it was on: send an account-action reversal."""
        return _rank(self.after) < _rank(self.before)


def _rank(step: StrikeStep | None) -> int:
    return -1 if step is None else list(AccountAction).index(step.action)


def gives_strike(strikes: Strikes, action: Action | str) -> bool:
    """Whether a decision with this content action adds a strike (`strikes.actions`)."""
    try:
        return Action(action) in strikes.actions
    except ValueError:
        return False


def decision_weight(policy: Policy, categories: Iterable[str]) -> StrikeWeight | None:
    """The weight of a decision that flagged `categories`: that of its most severe category.

    "Most severe" is the category with the largest effective weight (`category_weights`
    overrides the weight of the category's severity), ties broken by severity, then name, so
    the result is deterministic. Categories the policy does not know are ignored (a reviewer
    may label with a category removed from a newer policy). None when nothing weighs anything.
    """
    strikes = policy.enforcement.strikes
    best: StrikeWeight | None = None
    for name in sorted(set(categories)):
        cat = policy.categories.get(name)
        if cat is None:
            continue
        weight = strikes.category_weights.get(name, strikes.severity_weights.get(cat.severity, 0.0))
        candidate = StrikeWeight(category=name, severity=cat.severity, weight=float(weight))
        if best is None or (candidate.weight, candidate.severity.rank) > (best.weight, best.severity.rank):
            best = candidate
    return best if best is not None and best.weight > 0 else None


def decayed_weight(weight: float, *, age_seconds: float, half_life_days: float) -> float:
    """`weight` after `age_seconds` of exponential decay (halves every `half_life_days`).

    A strike from the future (clock skew between hosts) counts at full weight, never more.
    """
    if half_life_days <= 0:
        raise ValueError(f"half_life_days must be > 0, got {half_life_days}")
    age = max(0.0, age_seconds)
    return weight * math.pow(0.5, age / (half_life_days * SECONDS_PER_DAY))


def decayed_total(entries: Iterable[StrikeEntry], *, at: datetime, half_life_days: float) -> float:
    """Sum of the decayed weights of the strikes that existed at `at` and were not reversed by
    then (so a standing can be computed as of any past moment)."""
    total = 0.0
    for e in entries:
        if e.created_at > at or (e.reversed_at is not None and e.reversed_at <= at):
            continue
        total += decayed_weight(e.weight, age_seconds=(at - e.created_at).total_seconds(),
                                half_life_days=half_life_days)
    return total


# Float sums of decayed weights land a hair under integral thresholds (3 * 1.0 decayed for
# one second is 2.99997...): a step is reached within this tolerance.
STEP_EPSILON = 1e-9


def ladder_step(ladder: Sequence[StrikeStep], total: float) -> StrikeStep | None:
    """The highest step whose `at` the total reaches (None below the first)."""
    reached: StrikeStep | None = None
    for step in ladder:  # validated ascending
        if total + STEP_EPSILON >= step.at:
            reached = step
    return reached


def standing(strikes: Strikes, entries: Sequence[StrikeEntry], *, at: datetime) -> Standing:
    """An actor's standing from all their strikes."""
    total = decayed_total(entries, at=at, half_life_days=strikes.half_life_days)
    step = ladder_step(strikes.ladder, total)
    higher = [s for s in strikes.ladder if _rank(s) > _rank(step)]
    active = sum(1 for e in entries if e.created_at <= at and (e.reversed_at is None or e.reversed_at > at))
    return Standing(total=total, step=step, next_step=higher[0] if higher else None, active_strikes=active, at=at)


def step_change(strikes: Strikes, *, before: Sequence[StrikeEntry], after: Sequence[StrikeEntry],
                at: datetime) -> StepChange:
    """Compare the ladder step reached with the strikes `before` and `after` an event."""
    return StepChange(before=standing(strikes, before, at=at).step, after=standing(strikes, after, at=at).step)


__all__ = [
    "STEP_EPSILON",
    "Standing",
    "StepChange",
    "StrikeEntry",
    "StrikeWeight",
    "decayed_total",
    "decayed_weight",
    "decision_weight",
    "gives_strike",
    "ladder_step",
    "standing",
    "step_change",
]
