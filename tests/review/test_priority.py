"""The priority function: monotone in each input, and overdue work overtakes fresh severe work."""

from __future__ import annotations

import math

import pytest

from warden.core import Severity
from warden.review import age_factor, priority, reach_factor


def p(**kw: object) -> float:
    base = {"severity": "low", "uncertainty": 0.0, "reach": 0, "age_hours": 0.0, "sla_hours": 24.0}
    return priority(**{**base, **kw})  # type: ignore[arg-type]


def test_higher_severity_is_more_urgent() -> None:
    values = [p(severity=s) for s in Severity]
    assert values == sorted(values) and len(set(values)) == 4


def test_uncertainty_and_reach_raise_priority() -> None:
    assert p(uncertainty=1.0) > p(uncertainty=0.5) > p(uncertainty=0.0)
    assert p(reach=1_000_000) > p(reach=1000) > p(reach=0)


def test_reach_is_log_scaled() -> None:
    assert reach_factor(0) == 1.0
    assert reach_factor(99) == pytest.approx(2.0)
    assert reach_factor(9999) == pytest.approx(3.0)
    # 10x more viewers adds the same, not 10x the urgency
    assert reach_factor(999_999) - reach_factor(99_999) == pytest.approx(reach_factor(9999) - reach_factor(999))


def test_age_rises_linearly_to_the_sla_then_sharply() -> None:
    assert age_factor(0, 24) == 1.0
    assert age_factor(12, 24) == pytest.approx(1.5)
    assert age_factor(24, 24) == pytest.approx(2.0)
    assert age_factor(48, 24) == pytest.approx(2.0 * math.e**3)
    assert age_factor(48, 24) / age_factor(36, 24) > age_factor(24, 24) / age_factor(12, 24)
    assert math.isfinite(age_factor(10**9, 1))  # capped, never overflows


def test_overdue_low_severity_overtakes_fresh_critical() -> None:
    fresh_critical = p(severity="critical", uncertainty=1.0)
    assert p(severity="low", age_hours=20) < fresh_critical
    assert p(severity="low", age_hours=48) > fresh_critical


def test_sla_is_relative() -> None:
    # The same age is more urgent in a 1-hour queue than in a 24-hour one.
    assert p(age_hours=2, sla_hours=1) > p(age_hours=2, sla_hours=24)


@pytest.mark.parametrize("kw", [{"uncertainty": 1.5}, {"uncertainty": -0.1}, {"reach": -1}, {"sla_hours": 0},
                                {"severity": "extreme"}])
def test_rejects_out_of_range_inputs(kw: dict) -> None:
    with pytest.raises(ValueError):
        p(**kw)
