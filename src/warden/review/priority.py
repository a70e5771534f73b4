"""How urgent a review task is: one number, higher = review sooner.

Why multiplicative: each factor answers a different question (how bad if it is real, how
unsure the automation was, how many people see it, how late we are), and a product keeps
them comparable without hand-tuned offsets: doubling the reach adds the same share of
urgency to a low- and a critical-severity item.

    priority = severity_weight
               * (1 + UNCERTAINTY_WEIGHT * uncertainty)      # 1 .. 1.5
               * (1 + log10(1 + reach) / REACH_DECADE_DIVISOR)  # 1 at reach 0, +0.5 per 10x
               * age_factor(age / sla)

`age_factor` rises linearly from 1 (just queued) to 2 (at the SLA) and then exponentially
(x e^OVERDUE_RATE per SLA overdue): a low-severity item one SLA late (about 40x) overtakes a
fresh critical one of the same reach and uncertainty (8x to 12x), so overdue work cannot
starve behind a stream of new severe items.
The result is pure (no clock): callers pass the age.
"""

from __future__ import annotations

import math

from warden.core.policy import Severity

SEVERITY_WEIGHT: dict[Severity, float] = {
    Severity.LOW: 1.0,
    Severity.MEDIUM: 2.0,
    Severity.HIGH: 4.0,
    Severity.CRITICAL: 8.0,
}
UNCERTAINTY_WEIGHT = 0.5
REACH_DECADE_DIVISOR = 2.0
OVERDUE_RATE = 3.0
_MAX_OVERDUE_SLAS = 10.0  # caps the exponent: e^30 is urgent enough and never overflows


def age_factor(age_hours: float, sla_hours: float) -> float:
    """1 when new, 2 at the SLA, then x e^OVERDUE_RATE per further SLA (capped)."""
    if sla_hours <= 0:
        raise ValueError(f"sla_hours must be > 0, got {sla_hours}")
    fraction = max(0.0, age_hours) / sla_hours
    if fraction <= 1.0:
        return 1.0 + fraction
    return 2.0 * math.exp(OVERDUE_RATE * min(fraction - 1.0, _MAX_OVERDUE_SLAS))


def reach_factor(reach: int) -> float:
    """Log-scaled audience size: 1 at 0 viewers, 2 at 99, 3 at 9,999, 4 at 999,999."""
    if reach < 0:
        raise ValueError(f"reach must be >= 0, got {reach}")
    return 1.0 + math.log10(1.0 + reach) / REACH_DECADE_DIVISOR


def priority(*, severity: Severity | str, uncertainty: float, reach: int, age_hours: float,
             sla_hours: float) -> float:
    """The urgency of one task (see the module docstring for the formula)."""
    if not 0.0 <= uncertainty <= 1.0:
        raise ValueError(f"uncertainty must be in [0, 1], got {uncertainty}")
    return (SEVERITY_WEIGHT[Severity(severity)]
            * (1.0 + UNCERTAINTY_WEIGHT * uncertainty)
            * reach_factor(reach)
            * age_factor(age_hours, sla_hours))


__all__ = ["OVERDUE_RATE", "SEVERITY_WEIGHT", "age_factor", "priority", "reach_factor"]
