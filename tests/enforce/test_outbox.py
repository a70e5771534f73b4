"""The enforcement outbox on SQLite and PostgreSQL: rows, idempotency, strikes, ladder
crossings, reviews, reversals, transactions, and payloads without content text."""

from __future__ import annotations

import json
import threading

import pytest
from enforce_helpers import FakeClock, make_decision
from sqlalchemy import func, select

from warden.core import AccountAction, Action, Policy
from warden.enforce.outbox import EnforcementOutbox, idempotency_key
from warden.store import Store
from warden.store.enforce_repo import EnforcementRepository
from warden.store.models import EnforcementActionRow, StrikeRow

SECRET_TEXT = "you people are vermin, buy now"


def _count(store: Store, model: type) -> int:
    with store.session() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def _outbox(store: Store, policy: Policy, clock: FakeClock) -> EnforcementOutbox:
    return EnforcementOutbox(store, policy, clock=clock)


def test_automated_removal_writes_content_action_strike_and_first_ladder_step(
    store: Store, policy: Policy, clock: FakeClock
) -> None:
    outbox = _outbox(store, policy, clock)
    d = make_decision("c1", flagged=("hate", "spam"))
    result = outbox.record_decision(d, actor_id="user-1")
    assert [(a.kind, a.action, a.created) for a in result.actions] == [
        ("content_action", "remove", True), ("account_action", "warn", True)]
    assert result.strike is not None and (result.strike.category, result.strike.weight) == ("hate", 2.0)
    assert result.standing is not None and result.standing.account_action is AccountAction.WARN
    rows = EnforcementRepository(store).actions()
    assert [r.status for r in rows] == ["pending", "pending"]
    content = rows[0]
    assert content.idempotency_key == idempotency_key("content_action", d.decision_id, "remove")
    assert content.payload["type"] == "content_action" and content.payload["decision_id"] == d.decision_id
    assert content.payload["actor_id"] == "user-1" and content.payload["categories"] == ["hate", "spam"]
    assert content.payload["policy_version"] == "test-1"
    assert content.payload["reasons"][0] == {"category": "hate", "verdict": "violating", "detector": "bank",
                                             "score": 0.97, "threshold": 0.8, "rule": "flag"}
    assert rows[1].payload["strikes"]["account_action"] == "warn" and rows[1].payload["previous_action"] is None


def test_recording_twice_creates_nothing_new(store: Store, policy: Policy, clock: FakeClock) -> None:
    outbox = _outbox(store, policy, clock)
    d = make_decision("c1")
    outbox.record_decision(d, actor_id="user-1")
    clock.advance(60)
    again = outbox.record_decision(d, actor_id="user-1")
    assert [a.created for a in again.actions] == [False]  # the content action exists; no new crossing
    assert again.strike is None
    assert _count(store, EnforcementActionRow) == 2 and _count(store, StrikeRow) == 1


def test_allow_writes_nothing_and_hold_writes_content_action_without_strike(
    store: Store, policy: Policy, clock: FakeClock
) -> None:
    outbox = _outbox(store, policy, clock)
    assert outbox.record_decision(make_decision("ok", action=Action.ALLOW, flagged=()), actor_id="u").actions == ()
    held = outbox.record_decision(make_decision("held", action=Action.HOLD_FOR_REVIEW), actor_id="u")
    assert [(a.kind, a.action) for a in held.actions] == [("content_action", "hold_for_review")]
    assert held.strike is None and _count(store, StrikeRow) == 0
    no_actor = outbox.record_decision(make_decision("anon"), actor_id=None)
    assert [a.kind for a in no_actor.actions] == ["content_action"] and no_actor.strike is None


def test_ladder_escalates_once_per_step(store: Store, policy: Policy, clock: FakeClock) -> None:
    outbox = _outbox(store, policy, clock)
    steps = []
    for i in range(4):  # hate weighs 2: totals 2, 4, 6, 8 -> warn, restrict, suspend, (still suspend)
        r = outbox.record_decision(make_decision(f"c{i}"), actor_id="user-2")
        steps.append([a.action for a in r.actions if a.kind == "account_action"])
    assert steps == [["warn"], ["restrict"], ["suspend"], []]
    assert outbox.standing("user-2").account_action is AccountAction.SUSPEND
    assert len(EnforcementRepository(store).actions(kind="account_action", actor_id="user-2")) == 3


def test_decay_lowers_the_standing_and_a_new_strike_re_crosses(store: Store, policy: Policy, clock: FakeClock) -> None:
    outbox = _outbox(store, policy, clock)
    outbox.record_decision(make_decision("a"), actor_id="u")
    outbox.record_decision(make_decision("b"), actor_id="u")  # 4: restrict
    clock.advance(days=180)  # 4 -> 1: warn
    st = outbox.standing("u")
    assert st.total == pytest.approx(1.0) and st.account_action is AccountAction.WARN
    r = outbox.record_decision(make_decision("c"), actor_id="u")  # 1 + 2 = 3: restrict again
    assert [a.action for a in r.actions if a.kind == "account_action"] == ["restrict"]


def test_review_key_is_distinct_and_confirming_does_not_strike_twice(
    store: Store, policy: Policy, clock: FakeClock
) -> None:
    outbox = _outbox(store, policy, clock)
    d = make_decision("c1")
    outbox.record_decision(d, actor_id="u")
    review = outbox.record_review(review_id=7, content_id="c1", action="remove", categories=["hate"], actor_id="u",
                                  policy_version="test-1", decision_id=d.decision_id)
    assert review.actions[0].created and review.strike is None
    keys = [a.idempotency_key for a in EnforcementRepository(store).actions(kind="content_action")]
    assert len(set(keys)) == 2
    again = outbox.record_review(review_id=7, content_id="c1", action="remove", categories=["hate"], actor_id="u",
                                 policy_version="test-1", decision_id=d.decision_id)
    assert not again.actions[0].created
    assert _count(store, StrikeRow) == 1


def test_review_of_held_item_strikes_under_its_review_id(store: Store, policy: Policy, clock: FakeClock) -> None:
    outbox = _outbox(store, policy, clock)
    r = outbox.record_review(review_id=12, content_id="c9", action=Action.REMOVE, categories=["hate/threatening"],
                             actor_id="u3", policy_version="test-1")
    assert r.decision_id == "review:12" and r.strike is not None and r.strike.weight == 5.0
    assert [a.action for a in r.actions] == ["remove", "restrict"]  # 5 jumps straight past warn to restrict
    payload = EnforcementRepository(store).actions(kind="content_action")[0].payload
    assert payload["source"] == "review" and payload["review_id"] == "12" and payload["automated"] is False
    allow = outbox.record_review(review_id=13, content_id="c10", action="allow", categories=[], actor_id="u3",
                                 policy_version="test-1")
    assert [(a.action, a.created) for a in allow.actions] == [("allow", True)]  # a reviewer's allow releases a hold


def test_reversal_undoes_content_action_strikes_and_account_step(
    store: Store, policy: Policy, clock: FakeClock
) -> None:
    outbox = _outbox(store, policy, clock)
    first, second = make_decision("c1"), make_decision("c2")
    outbox.record_decision(first, actor_id="u")  # 2: warn
    outbox.record_decision(second, actor_id="u")  # 4: restrict
    clock.advance(3600)
    result = outbox.record_reversal(second.decision_id, reason="appeal_overturned")
    assert [(a.kind, a.event, a.action) for a in result.actions] == [
        ("reversal", "content_action.reversed", "remove"), ("reversal", "account_action.reversed", "restrict")]
    assert result.strikes_reversed == 1
    assert result.standings["u"].account_action is AccountAction.WARN
    rows = EnforcementRepository(store).actions(kind="reversal")
    assert rows[0].payload["reverses"] == [idempotency_key("content_action", second.decision_id, "remove")]
    assert rows[1].payload["account_action"] == "warn" and rows[1].payload["reason"] == "appeal_overturned"
    # Idempotent: nothing left to reverse.
    again = outbox.record_reversal(second.decision_id, reason="appeal_overturned")
    assert [a.created for a in again.actions] == [False] and again.strikes_reversed == 0
    assert outbox.standing("u").total == pytest.approx(2.0, rel=1e-3)


def test_reversal_reason_must_be_a_code(store: Store, policy: Policy, clock: FakeClock) -> None:
    outbox = _outbox(store, policy, clock)
    with pytest.raises(ValueError, match="short code"):
        outbox.record_reversal("d", reason="The user wrote: you people are vermin")


def test_same_transaction_as_the_decision_commits_or_rolls_back_together(
    store: Store, policy: Policy, clock: FakeClock
) -> None:
    outbox = _outbox(store, policy, clock)
    d = make_decision("tx-1")
    with pytest.raises(RuntimeError), store.transaction() as tx:
        store.save_decisions([d], tx=tx)
        outbox.record_decision(d, actor_id="u", tx=tx)
        raise RuntimeError("request failed after recording")
    assert store.get_decision(d.decision_id) is None
    assert _count(store, EnforcementActionRow) == 0 and _count(store, StrikeRow) == 0
    with store.transaction() as tx:
        store.save_decisions([d], tx=tx)
        outbox.record_decision(d, actor_id="u", tx=tx)
    assert store.get_decision(d.decision_id) is not None and _count(store, EnforcementActionRow) == 2


def test_payloads_never_carry_content_text(store: Store, policy: Policy, clock: FakeClock) -> None:
    outbox = _outbox(store, policy, clock)
    d = make_decision("c1", text=SECRET_TEXT)
    outbox.record_decision(d, actor_id="u")
    outbox.record_review(review_id=1, content_id="c1", action="remove", categories=["hate"], actor_id="u",
                         policy_version="test-1", decision_id=d.decision_id)
    outbox.record_reversal(d.decision_id, reason="appeal_overturned")
    dumped = json.dumps([a.payload for a in EnforcementRepository(store).actions()])
    assert "vermin" not in dumped and "buy now" not in dumped and "evidence" not in dumped


def test_concurrent_recording_of_one_decision_inserts_once(db_url: str, policy: Policy, clock: FakeClock) -> None:
    stores = [Store.from_url(db_url) for _ in range(4)]
    d = make_decision("race")
    barrier = threading.Barrier(len(stores))
    errors: list[BaseException] = []

    def record(s: Store) -> None:
        try:
            barrier.wait()
            EnforcementOutbox(s, policy, clock=clock).record_decision(d, actor_id="racer")
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=record, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    try:
        assert not errors, errors
        assert _count(stores[0], EnforcementActionRow) == 2  # remove + warn, once
        assert _count(stores[0], StrikeRow) == 1
    finally:
        for s in stores:
            s.close()
