"""Strike arithmetic (pure): weights from the policy, exponential decay, the ladder."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from warden.core import AccountAction, Action, Policy, Severity, Strikes, StrikeStep
from warden.enforce.strikes import (
    StrikeEntry,
    decayed_total,
    decayed_weight,
    decision_weight,
    gives_strike,
    ladder_step,
    standing,
    step_change,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
LADDER = (StrikeStep(at=1, action=AccountAction.WARN), StrikeStep(at=3, action=AccountAction.RESTRICT),
          StrikeStep(at=6, action=AccountAction.SUSPEND))
CFG = Strikes(half_life_days=90, ladder=LADDER)


def _with_strikes(policy: Policy, **changes: object) -> Policy:
    strikes = policy.enforcement.strikes.model_copy(update=changes)
    return policy.model_copy(update={"enforcement": policy.enforcement.model_copy(update={"strikes": strikes})})


def test_weight_is_the_most_severe_flagged_category(policy: Policy) -> None:
    w = decision_weight(policy, ["spam", "hate", "harassment"])  # low 0.5, high 2, medium 1
    assert w is not None and (w.category, w.severity, w.weight) == ("hate", Severity.HIGH, 2.0)
    w = decision_weight(policy, ["hate", "sexual/minors"])
    assert w is not None and (w.category, w.weight) == ("sexual/minors", 5.0)


def test_category_weights_override_severity_weights(policy: Policy) -> None:
    p = _with_strikes(policy, category_weights={"spam": 3.0, "hate": 0.0})
    w = decision_weight(p, ["spam", "hate"])
    assert w is not None and (w.category, w.weight) == ("spam", 3.0)
    assert decision_weight(p, ["hate"]) is None  # weighs nothing: no strike


def test_weight_ignores_unknown_categories_and_empty_input(policy: Policy) -> None:
    assert decision_weight(policy, []) is None
    assert decision_weight(policy, ["no-such-category"]) is None
    w = decision_weight(policy, ["no-such-category", "spam"])
    assert w is not None and w.category == "spam"


def test_gives_strike_follows_policy_actions() -> None:
    cfg = Strikes(actions=(Action.REMOVE, Action.LIMIT))
    assert gives_strike(cfg, Action.REMOVE) and gives_strike(cfg, "limit")
    assert not gives_strike(cfg, Action.HOLD_FOR_REVIEW)
    assert not gives_strike(cfg, "not-an-action")


def test_decay_halves_every_half_life() -> None:
    day = 86_400.0
    assert decayed_weight(2.0, age_seconds=0, half_life_days=90) == 2.0
    assert decayed_weight(2.0, age_seconds=90 * day, half_life_days=90) == pytest.approx(1.0)
    assert decayed_weight(2.0, age_seconds=180 * day, half_life_days=90) == pytest.approx(0.5)
    assert decayed_weight(2.0, age_seconds=45 * day, half_life_days=90) == pytest.approx(2.0 / 2 ** 0.5)
    assert decayed_weight(2.0, age_seconds=-5 * day, half_life_days=90) == 2.0  # clock skew: never more
    with pytest.raises(ValueError):
        decayed_weight(1.0, age_seconds=0, half_life_days=0)


def test_total_skips_reversed_strikes() -> None:
    entries = [
        StrikeEntry(weight=2.0, created_at=T0),
        StrikeEntry(weight=5.0, created_at=T0, reversed_at=T0 + timedelta(days=1)),
        StrikeEntry(weight=1.0, created_at=T0 + timedelta(days=90)),
    ]
    at = T0 + timedelta(days=90)
    assert decayed_total(entries, at=at, half_life_days=90) == pytest.approx(1.0 + 1.0)
    # Before the reversal it still counted; the strike from day 90 did not exist yet.
    assert decayed_total(entries, at=T0, half_life_days=90) == pytest.approx(7.0)


def test_ladder_step_boundaries() -> None:
    assert ladder_step(LADDER, 0.99) is None
    assert ladder_step(LADDER, 1.0).action is AccountAction.WARN  # type: ignore[union-attr]
    assert ladder_step(LADDER, 2.9999).action is AccountAction.WARN  # type: ignore[union-attr]
    assert ladder_step(LADDER, 3 - 1e-12).action is AccountAction.RESTRICT  # float noise reaches the step
    assert ladder_step(LADDER, 100).action is AccountAction.SUSPEND  # type: ignore[union-attr]
    assert ladder_step((), 100) is None


def test_standing_reports_step_next_step_and_decay() -> None:
    entries = [StrikeEntry(weight=2.0, created_at=T0), StrikeEntry(weight=2.0, created_at=T0)]
    now = standing(CFG, entries, at=T0)
    assert now.total == pytest.approx(4.0)
    assert now.account_action is AccountAction.RESTRICT and now.next_step == LADDER[2]
    assert now.active_strikes == 2
    later = standing(CFG, entries, at=T0 + timedelta(days=90))  # 4 -> 2: back to warn
    assert later.total == pytest.approx(2.0) and later.account_action is AccountAction.WARN
    much_later = standing(CFG, entries, at=T0 + timedelta(days=270))  # 0.5: below every step
    assert much_later.step is None and much_later.account_action is None and much_later.next_step == LADDER[0]


def test_step_change_on_new_strike_and_on_reversal() -> None:
    before = [StrikeEntry(weight=2.0, created_at=T0, decision_id="d1")]
    after = [*before, StrikeEntry(weight=2.0, created_at=T0, decision_id="d2")]
    up = step_change(CFG, before=before, after=after, at=T0)
    assert up.escalated and not up.deescalated
    assert (up.before.action, up.after.action) == (AccountAction.WARN, AccountAction.RESTRICT)  # type: ignore[union-attr]
    same = step_change(CFG, before=[], after=[StrikeEntry(weight=0.5, created_at=T0)], at=T0)
    assert not same.escalated and not same.deescalated
    reversed_ = [before[0], StrikeEntry(weight=2.0, created_at=T0, decision_id="d2", reversed_at=T0)]
    down = step_change(CFG, before=after, after=reversed_, at=T0)
    assert down.deescalated and down.after.action is AccountAction.WARN  # type: ignore[union-attr]
