"""The enforcement outbox: decisions become webhook rows (and strikes) in the caller's transaction.

Warden never calls the platform from inside a request. `EnforcementOutbox` writes what the
platform must do (remove this comment, warn this account, undo that removal) as rows of
`enforcement_actions` in the SAME transaction that stores the decision, and
`warden.enforce.dispatcher.WebhookDispatcher` delivers them later with retries. So a decision
is never stored without its actions, and an action is never sent for a decision that was
rolled back.

Every row has an idempotency key: a stable hash of (kind, decision id, action[, review]).
Recording the same thing twice (a client retry, a redelivered stream message) inserts nothing
the second time, and the receiver gets the same key on every delivery attempt.

Payloads carry ids, actions, categories and a summary of reasons: never content text, evidence
spans or free-text notes, so they are safe to log on both sides.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from warden.core.decision import Decision
from warden.core.policy import Action, Policy
from warden.enforce.strikes import (
    Standing,
    StepChange,
    StrikeEntry,
    StrikeWeight,
    decision_weight,
    gives_strike,
    standing,
    step_change,
)
from warden.store.enforce_repo import EnforcementRepository, StrikeRecord
from warden.store.repository import Store
from warden.store.sqltypes import utcnow

EVENT_CONTENT_ACTION = "content_action"
EVENT_ACCOUNT_ACTION = "account_action"
EVENT_CONTENT_REVERSED = "content_action.reversed"
EVENT_ACCOUNT_REVERSED = "account_action.reversed"
#: `record_reversal(reason=...)` is a short code, not free text: payloads never carry prose a
#: person typed (an appeal's text can contain anything, including the content itself).
REASON_CODE = re.compile(r"^[a-z0-9][a-z0-9_.:\-]{0,63}$")
SOURCE_AUTOMATED = "automated"
SOURCE_REVIEW = "review"


def idempotency_key(kind: str, decision_id: str, action: str, *, source: str = SOURCE_AUTOMATED) -> str:
    """Stable key of one action: sha256 of (kind, decision id, action) for automated decisions;
    reviews add their own id as `source` (`review:<id>`), so a reviewer's action never collides
    with the automated action on the same decision."""
    parts = [kind, decision_id, action] + ([] if source == SOURCE_AUTOMATED else [source])
    return "whk_" + hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class RecordedAction:
    """One outbox row this call asked for; `created` is False when its key already existed."""

    idempotency_key: str
    kind: str
    event: str
    action: str
    created: bool


@dataclass(frozen=True, slots=True)
class EnforcementResult:
    """What recording a decision (automated or a reviewer's) produced."""

    decision_id: str
    actions: tuple[RecordedAction, ...]
    strike: StrikeWeight | None  # the strike added by this call (None: no strike, or already recorded)
    standing: Standing | None  # the actor's standing afterwards (None without an actor or strike)


@dataclass(frozen=True, slots=True)
class ReversalResult:
    """What reversing a decision produced."""

    decision_id: str
    actions: tuple[RecordedAction, ...]
    strikes_reversed: int
    standings: dict[str, Standing]  # per affected actor, after the reversal


def _reasons_summary(decision: Decision) -> list[dict[str, Any]]:
    # Reason.to_dict() minus evidence: evidence spans can quote the content.
    return [
        {"category": r.category, "verdict": r.verdict.value, "detector": r.detector, "score": round(r.score, 6),
         "threshold": r.threshold, "rule": r.rule}
        for r in decision.reasons
    ]


def _standing_dict(s: Standing | None) -> dict[str, Any] | None:
    if s is None:
        return None
    return {
        "total": round(s.total, 6),
        "account_action": s.account_action.value if s.account_action else None,
        "step_at": s.step.at if s.step else None,
        "active_strikes": s.active_strikes,
    }


def _entries(records: Sequence[StrikeRecord]) -> list[StrikeEntry]:
    return [StrikeEntry(weight=r.weight, created_at=r.created_at, reversed_at=r.reversed_at,
                        decision_id=r.decision_id, category=r.category) for r in records]


class EnforcementOutbox:
    """Records enforcement for decisions, reviewer decisions and reversals.

    `policy` supplies strike weights, half-life and ladder (`enforcement.strikes`); `clock`
    is injectable for tests. Every method takes `tx=`: pass the transaction that stores the
    decision so both commit together; without it, the method runs its own transaction.
    """

    def __init__(self, store: Store, policy: Policy, *, clock: Callable[[], datetime] = utcnow) -> None:
        self.store = store
        self.policy = policy
        self.repo = EnforcementRepository(store)
        self.clock = clock

    @contextmanager
    def _tx(self, tx: Session | None) -> Iterator[Session]:
        if tx is not None:
            yield tx
            return
        with self.store.transaction() as s:
            yield s

    # -- public API ------------------------------------------------------------------------
    def record_decision(self, decision: Decision, *, actor_id: str | None, tx: Session | None = None,
                        ) -> EnforcementResult:
        """An automated decision: a content-action webhook unless the action is `allow`; a
        strike when the action is in `enforcement.strikes.actions` and the item has an actor;
        an account-action webhook when that strike lifts the actor to a new ladder step."""
        return self.record_decisions([(decision, actor_id)], tx=tx)[0]

    def record_decisions(self, items: Sequence[tuple[Decision, str | None]], *, tx: Session | None = None,
                         ) -> list[EnforcementResult]:
        """`record_decision` for many (decision, actor id) pairs in one transaction: the
        content-action rows go in as one statement; strikes (per actor, under its lock) follow in
        order. The actors' locks are taken up front in a fixed order, so two workers recording
        batches with the same actors cannot deadlock."""
        now = self.clock()
        rows = [self._content_action(d, actor_id, now) for d, actor_id in items]
        with self._tx(tx) as s:
            created = self.repo.insert_actions([r for r in rows if r is not None], now=now, tx=s)
            strikes_cfg = self.policy.enforcement.strikes
            struck = {a for d, a in items if a is not None and gives_strike(strikes_cfg, d.action.value)
                      and decision_weight(self.policy, d.flagged) is not None}
            for actor in sorted(struck):
                self.repo.lock_actor(actor, tx=s)
            out: list[EnforcementResult] = []
            for (decision, actor_id), row in zip(items, rows, strict=True):
                actions: list[RecordedAction] = []
                if row is not None:
                    actions.append(RecordedAction(idempotency_key=row["idempotency_key"], kind=row["kind"],
                                                  event=EVENT_CONTENT_ACTION, action=row["action"],
                                                  created=row["idempotency_key"] in created))
                strike, after, account = self._strike(
                    s, actor_id=actor_id, strike_decision_id=decision.decision_id, action=decision.action.value,
                    categories=decision.flagged, content_id=decision.content_id,
                    policy_version=decision.policy_version, source=SOURCE_AUTOMATED, now=now)
                actions.extend(account)
                out.append(EnforcementResult(decision_id=decision.decision_id, actions=tuple(actions), strike=strike,
                                             standing=after))
        return out

    @staticmethod
    def _content_action(decision: Decision, actor_id: str | None, now: datetime) -> dict[str, Any] | None:
        """The content-action outbox row of an automated decision (None for `allow`)."""
        if decision.action is Action.ALLOW:
            return None
        key = idempotency_key(EVENT_CONTENT_ACTION, decision.decision_id, decision.action.value)
        payload = {
            "type": EVENT_CONTENT_ACTION,
            "idempotency_key": key,
            "decision_id": decision.decision_id,
            "content_id": decision.content_id,
            "actor_id": actor_id,
            "action": decision.action.value,
            "categories": list(decision.flagged),
            "uncertain": list(decision.uncertain),
            "surface": decision.surface,
            "automated": decision.automated,
            "source": SOURCE_AUTOMATED,
            "policy": decision.policy_name,
            "policy_version": decision.policy_version,
            "review_queue": decision.review_queue,
            "reasons": _reasons_summary(decision),
            "occurred_at": now.isoformat(),
        }
        return {"idempotency_key": key, "kind": "content_action", "action": decision.action.value,
                "decision_id": decision.decision_id, "content_id": decision.content_id, "actor_id": actor_id,
                "payload": payload}

    def record_review(
        self,
        *,
        review_id: int | str,
        content_id: str,
        action: Action | str,
        categories: Sequence[str],
        actor_id: str | None,
        policy_version: str,
        decision_id: str | None = None,
        tx: Session | None = None,
    ) -> EnforcementResult:
        """A reviewer's decided action on content (`review_id`: the review decision's id).

        Always a content-action webhook, `allow` included: a reviewer's verdict resolves a
        hold, so the platform must hear it. The idempotency key includes the review id. The
        strike belongs to `decision_id` (the automated decision reviewed) when given, so a
        reviewer confirming an automated removal does not strike the actor twice, and
        reversing that decision reverses it; without one it belongs to `review:<id>`.
        """
        act = Action(action)
        now = self.clock()
        source = f"review:{review_id}"
        subject = decision_id or source
        key = idempotency_key(EVENT_CONTENT_ACTION, subject, act.value, source=source)
        cats = sorted(set(categories))
        payload = {
            "type": EVENT_CONTENT_ACTION,
            "idempotency_key": key,
            "decision_id": decision_id,
            "review_id": str(review_id),
            "content_id": content_id,
            "actor_id": actor_id,
            "action": act.value,
            "categories": cats,
            "automated": False,
            "source": SOURCE_REVIEW,
            "policy_version": policy_version,
            "reasons": [{"category": c, "verdict": "violating", "rule": "reviewer"} for c in cats],
            "occurred_at": now.isoformat(),
        }
        with self._tx(tx) as s:
            actions = [self._add(s, key=key, kind="content_action", event=EVENT_CONTENT_ACTION, action=act.value,
                                 decision_id=subject, content_id=content_id, actor_id=actor_id, payload=payload,
                                 now=now)]
            strike, after, account = self._strike(
                s, actor_id=actor_id, strike_decision_id=subject, action=act.value, categories=cats,
                content_id=content_id, policy_version=policy_version, source=source, now=now)
            actions.extend(account)
        return EnforcementResult(decision_id=subject, actions=tuple(actions), strike=strike, standing=after)

    def record_reversal(self, decision_id: str, *, reason: str, tx: Session | None = None) -> ReversalResult:
        """An overturned decision (an upheld appeal against it): undo what it caused.

        One `content_action.reversed` webhook per distinct non-allow action recorded for the
        decision (automated or reviewed under that decision id); every strike of the decision
        is reversed; an actor who thereby falls below their ladder step gets an
        `account_action.reversed` webhook for the step lifted. `reason` is a short code such as
        `appeal_overturned` (never free text: payloads must not carry user prose).
        Idempotent: a second call finds nothing left to reverse and inserts nothing.
        """
        if not REASON_CODE.match(reason or ""):
            raise ValueError(f"reason must be a short code matching {REASON_CODE.pattern} (e.g. 'appeal_overturned')")
        now = self.clock()
        actions: list[RecordedAction] = []
        standings: dict[str, Standing] = {}
        strikes_cfg = self.policy.enforcement.strikes
        with self._tx(tx) as s:
            originals = [a for a in self.repo.actions(decision_id=decision_id, kind="content_action", tx=s)
                         if a.action != Action.ALLOW.value]
            done: set[str] = set()
            for original in originals:
                if original.action in done:
                    continue
                done.add(original.action)
                key = idempotency_key("reversal", decision_id, original.action)
                payload = {
                    "type": EVENT_CONTENT_REVERSED,
                    "idempotency_key": key,
                    "decision_id": decision_id,
                    "content_id": original.content_id,
                    "actor_id": original.actor_id,
                    "action": original.action,
                    "reverses": [a.idempotency_key for a in originals if a.action == original.action],
                    "categories": original.payload.get("categories", []),
                    "policy_version": original.payload.get("policy_version"),
                    "reason": reason,
                    "occurred_at": now.isoformat(),
                }
                actions.append(self._add(s, key=key, kind="reversal", event=EVENT_CONTENT_REVERSED,
                                         action=original.action, decision_id=decision_id,
                                         content_id=original.content_id, actor_id=original.actor_id,
                                         payload=payload, now=now))
            actors = sorted({r.actor_id for r in self.repo.strikes(decision_id=decision_id, tx=s)
                             if r.reversed_at is None})
            for actor in actors:
                self.repo.lock_actor(actor, tx=s)
            befores = {a: _entries(self.repo.strikes(actor_id=a, tx=s)) for a in actors}
            reversed_ = self.repo.reverse_strikes(decision_id, at=now, tx=s)
            for actor in actors:
                after_entries = _entries(self.repo.strikes(actor_id=actor, tx=s))
                change = step_change(strikes_cfg, before=befores[actor], after=after_entries, at=now)
                standings[actor] = standing(strikes_cfg, after_entries, at=now)
                if change.deescalated and change.before is not None:
                    lifted = change.before.action.value
                    key = idempotency_key("reversal", decision_id, lifted)
                    content_id = next((a.content_id for a in originals), None)
                    payload = {
                        "type": EVENT_ACCOUNT_REVERSED,
                        "idempotency_key": key,
                        "decision_id": decision_id,
                        "content_id": content_id,
                        "actor_id": actor,
                        "action": lifted,
                        "account_action": change.after.action.value if change.after else None,
                        "strikes": _standing_dict(standings[actor]),
                        "reason": reason,
                        "occurred_at": now.isoformat(),
                    }
                    actions.append(self._add(s, key=key, kind="reversal", event=EVENT_ACCOUNT_REVERSED,
                                             action=lifted, decision_id=decision_id, content_id=content_id,
                                             actor_id=actor, payload=payload, now=now))
        return ReversalResult(decision_id=decision_id, actions=tuple(actions), strikes_reversed=len(reversed_),
                              standings=standings)

    def standing(self, actor_id: str, *, at: datetime | None = None) -> Standing:
        """An actor's decayed strike total and ladder step now (or at `at`)."""
        entries = _entries(self.repo.strikes(actor_id=actor_id))
        return standing(self.policy.enforcement.strikes, entries, at=at or self.clock())

    # -- internals -------------------------------------------------------------------------
    def _add(self, s: Session, *, key: str, kind: str, event: str, action: str, decision_id: str | None,
             content_id: str | None, actor_id: str | None, payload: dict[str, Any], now: datetime) -> RecordedAction:
        new_id = self.repo.insert_action(idempotency_key=key, kind=kind, action=action, decision_id=decision_id,
                                         content_id=content_id, actor_id=actor_id, payload=payload, now=now, tx=s)
        return RecordedAction(idempotency_key=key, kind=kind, event=event, action=action, created=new_id is not None)

    def _strike(
        self, s: Session, *, actor_id: str | None, strike_decision_id: str, action: str, categories: Sequence[str],
        content_id: str, policy_version: str, source: str, now: datetime,
    ) -> tuple[StrikeWeight | None, Standing | None, list[RecordedAction]]:
        """Add the strike of one enforced decision; announce a newly reached ladder step."""
        strikes_cfg = self.policy.enforcement.strikes
        if actor_id is None or not gives_strike(strikes_cfg, action):
            return None, None, []
        weight = decision_weight(self.policy, categories)
        if weight is None:
            return None, None, []
        self.repo.lock_actor(actor_id, tx=s)
        before_records = self.repo.strikes(actor_id=actor_id, tx=s)
        before = _entries(before_records)
        if any(r.decision_id == strike_decision_id and r.reversed_at is None for r in before_records):
            # This decision already struck the actor (a retry, or a reviewer confirming it).
            return None, standing(strikes_cfg, before, at=now), []
        if not self.repo.insert_strike(actor_id=actor_id, category=weight.category, decision_id=strike_decision_id,
                                       weight=weight.weight, now=now, tx=s):
            return None, standing(strikes_cfg, before, at=now), []
        after = [*before, StrikeEntry(weight=weight.weight, created_at=now, decision_id=strike_decision_id,
                                      category=weight.category)]
        change: StepChange = step_change(strikes_cfg, before=before, after=after, at=now)
        after_standing = standing(strikes_cfg, after, at=now)
        recorded: list[RecordedAction] = []
        if change.escalated and change.after is not None:
            step = change.after.action.value
            key = idempotency_key(EVENT_ACCOUNT_ACTION, strike_decision_id, step, source=source)
            payload = {
                "type": EVENT_ACCOUNT_ACTION,
                "idempotency_key": key,
                "decision_id": strike_decision_id,
                "content_id": content_id,
                "actor_id": actor_id,
                "action": step,
                "previous_action": change.before.action.value if change.before else None,
                "categories": [weight.category],
                "policy_version": policy_version,
                "strikes": _standing_dict(after_standing),
                "source": SOURCE_AUTOMATED if source == SOURCE_AUTOMATED else SOURCE_REVIEW,
                "occurred_at": now.isoformat(),
            }
            recorded.append(self._add(s, key=key, kind="account_action", event=EVENT_ACCOUNT_ACTION, action=step,
                                      decision_id=strike_decision_id, content_id=content_id, actor_id=actor_id,
                                      payload=payload, now=now))
        return weight, after_standing, recorded


__all__ = [
    "EVENT_ACCOUNT_ACTION",
    "EVENT_ACCOUNT_REVERSED",
    "EVENT_CONTENT_ACTION",
    "EVENT_CONTENT_REVERSED",
    "EnforcementOutbox",
    "EnforcementResult",
    "RecordedAction",
    "ReversalResult",
    "idempotency_key",
]
