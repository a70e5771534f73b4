"""Enforcement storage: the webhook outbox (`enforcement_actions`), its dead letters and strikes.

Writers take `tx=` so a caller can store a decision, its outbox rows and its strikes in one
transaction (the transactional-outbox pattern: an action exists if and only if the decision
that caused it was committed). Without `tx` each method runs its own transaction.

Delivery claims are leases: `claim_due` moves a due row's `next_attempt_at` to a lease expiry
and bumps `attempts`, in a short transaction (PostgreSQL: `FOR UPDATE SKIP LOCKED`, so
concurrent dispatchers pick disjoint rows without waiting; SQLite: the same statements, plus a
conditional UPDATE that only succeeds for the dispatcher that saw the row first). The HTTP call
runs outside any transaction; the outcome is written with a guard on the claimed attempt, so a
dispatcher whose lease expired cannot overwrite a newer attempt. A dispatcher that dies
mid-delivery leaves the row to be retried after the lease: delivery is at-least-once, and the
receiver deduplicates by idempotency key.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from warden.store.bulk import insert_do_nothing
from warden.store.models import EnforcementActionRow, StrikeRow, WebhookDeadLetterRow
from warden.store.repository import Store

ACTION_KINDS: tuple[str, ...] = ("content_action", "account_action", "reversal")
ACTION_STATUSES: tuple[str, ...] = ("pending", "delivered", "dead")
MAX_ERROR_CHARS = 1000


@dataclass(frozen=True, slots=True)
class ActionRecord:
    """One outbox row: a webhook to deliver (or delivered, or dead)."""

    id: int
    idempotency_key: str
    kind: str
    action: str
    decision_id: str | None
    content_id: str | None
    actor_id: str | None
    payload: dict[str, Any]
    status: str
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None


@dataclass(frozen=True, slots=True)
class DeadLetterRecord:
    id: int
    action_id: int
    idempotency_key: str
    error: str
    attempts: int
    created_at: datetime
    replayed_at: datetime | None


@dataclass(frozen=True, slots=True)
class StrikeRecord:
    id: int
    actor_id: str
    category: str
    decision_id: str
    weight: float
    created_at: datetime
    reversed_at: datetime | None


def _action(row: EnforcementActionRow) -> ActionRecord:
    return ActionRecord(
        id=row.id, idempotency_key=row.idempotency_key, kind=row.kind, action=row.action,
        decision_id=row.decision_id, content_id=row.content_id, actor_id=row.actor_id, payload=dict(row.payload),
        status=row.status, attempts=row.attempts, next_attempt_at=row.next_attempt_at, last_error=row.last_error,
        created_at=row.created_at, delivered_at=row.delivered_at,
    )


def _dead(row: WebhookDeadLetterRow) -> DeadLetterRecord:
    return DeadLetterRecord(id=row.id, action_id=row.action_id, idempotency_key=row.idempotency_key, error=row.error,
                            attempts=row.attempts, created_at=row.created_at, replayed_at=row.replayed_at)


def _strike(row: StrikeRow) -> StrikeRecord:
    return StrikeRecord(id=row.id, actor_id=row.actor_id, category=row.category, decision_id=row.decision_id,
                        weight=row.weight, created_at=row.created_at, reversed_at=row.reversed_at)


class EnforcementRepository:
    """Reads and writes of the enforcement tables, on SQLite and PostgreSQL."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # -- helpers -------------------------------------------------------------------------
    def _write(self, tx: Session | None) -> Any:
        return nullcontext(tx) if tx is not None else self.store.transaction()

    @contextmanager
    def _read(self, tx: Session | None) -> Iterator[Session]:
        # Reading through the caller's transaction sees its own uncommitted rows (strikes
        # just added in the same request).
        if tx is not None:
            yield tx
            return
        with self.store.session() as s:
            yield s

    def _insert(self) -> Any:
        return postgresql.insert if self.store.dialect == "postgresql" else sqlite.insert

    def lock_actor(self, actor_id: str, *, tx: Session) -> None:
        """Serialize strike bookkeeping per actor until `tx` ends (PostgreSQL advisory lock).

        Without it two concurrent decisions for one actor could both see the old total and
        both announce the same ladder step. SQLite writers are already serialized.
        """
        if self.store.dialect == "postgresql":
            key = zlib.crc32(f"warden:strikes:{actor_id}".encode()) & 0x7FFF_FFFF
            tx.execute(text("SELECT pg_advisory_xact_lock(:ns, :k)"), {"ns": 0x5754, "k": key})

    # -- outbox --------------------------------------------------------------------------
    def insert_action(
        self,
        *,
        idempotency_key: str,
        kind: str,
        action: str,
        decision_id: str | None,
        content_id: str | None,
        actor_id: str | None,
        payload: dict[str, Any],
        now: datetime,
        tx: Session | None = None,
    ) -> int | None:
        """Add a pending webhook; returns its id, or None when the key already exists
        (`INSERT ... ON CONFLICT DO NOTHING`: recording the same action twice is a no-op)."""
        if kind not in ACTION_KINDS:
            raise ValueError(f"unknown kind {kind!r}; allowed: {', '.join(ACTION_KINDS)}")
        values = {
            "idempotency_key": idempotency_key, "kind": kind, "action": action, "decision_id": decision_id,
            "content_id": content_id, "actor_id": actor_id, "payload": payload, "status": "pending", "attempts": 0,
            "next_attempt_at": now, "last_error": None, "created_at": now, "delivered_at": None,
        }
        stmt = self._insert()(EnforcementActionRow).values(**values).on_conflict_do_nothing(
            index_elements=["idempotency_key"]).returning(EnforcementActionRow.id)
        with self._write(tx) as s:
            return s.execute(stmt).scalar_one_or_none()

    def insert_actions(self, actions: list[dict[str, Any]], *, now: datetime, tx: Session | None = None) -> set[str]:
        """Add pending webhooks in one statement; returns the idempotency keys that were new
        (existing keys are skipped, as in `insert_action`). Each dict has the keyword arguments
        of `insert_action` except `now`."""
        rows: dict[str, dict[str, Any]] = {}
        for a in actions:
            if a["kind"] not in ACTION_KINDS:
                raise ValueError(f"unknown kind {a['kind']!r}; allowed: {', '.join(ACTION_KINDS)}")
            rows.setdefault(a["idempotency_key"], {
                "idempotency_key": a["idempotency_key"], "kind": a["kind"], "action": a["action"],
                "decision_id": a["decision_id"], "content_id": a["content_id"], "actor_id": a["actor_id"],
                "payload": a["payload"], "status": "pending", "attempts": 0, "next_attempt_at": now,
                "last_error": None, "created_at": now, "delivered_at": None,
            })
        if not rows:
            return set()
        with self._write(tx) as s:
            return set(insert_do_nothing(s, EnforcementActionRow.__table__, list(rows.values()),
                                         returning="idempotency_key", index_elements=["idempotency_key"]))

    def get_action(self, action_id: int) -> ActionRecord | None:
        with self.store.session() as s:
            row = s.get(EnforcementActionRow, action_id)
            return _action(row) if row is not None else None

    def actions(
        self,
        *,
        decision_id: str | None = None,
        actor_id: str | None = None,
        kind: str | None = None,
        status: str | None = None,
        limit: int = 1000,
        tx: Session | None = None,
    ) -> list[ActionRecord]:
        """Outbox rows in insertion order, filtered."""
        q = select(EnforcementActionRow).order_by(EnforcementActionRow.id).limit(max(1, limit))
        if decision_id is not None:
            q = q.where(EnforcementActionRow.decision_id == decision_id)
        if actor_id is not None:
            q = q.where(EnforcementActionRow.actor_id == actor_id)
        if kind is not None:
            q = q.where(EnforcementActionRow.kind == kind)
        if status is not None:
            q = q.where(EnforcementActionRow.status == status)
        with self._read(tx) as s:
            return [_action(r) for r in s.scalars(q)]

    def count_by_status(self) -> dict[str, int]:
        q = select(EnforcementActionRow.status, func.count()).group_by(EnforcementActionRow.status)
        with self.store.session() as s:
            counts = {status: int(n) for status, n in s.execute(q).all()}
        return {status: counts.get(status, 0) for status in ACTION_STATUSES}

    def claim_due(self, *, now: datetime, lease_until: datetime, limit: int) -> list[ActionRecord]:
        """Lease up to `limit` pending rows due at `now` (oldest first) to the caller.

        Each claimed row gets `attempts + 1` and `next_attempt_at = lease_until`; another
        dispatcher sees it again only if the outcome is not recorded by then.
        """
        q = (
            select(EnforcementActionRow.id, EnforcementActionRow.attempts)
            .where(EnforcementActionRow.status == "pending", EnforcementActionRow.next_attempt_at <= now)
            .order_by(EnforcementActionRow.next_attempt_at, EnforcementActionRow.id)
            .limit(max(1, limit))
            .with_for_update(skip_locked=True)  # PostgreSQL; SQLite ignores it (the guard below decides)
        )
        claimed: list[int] = []
        with self.store.transaction() as s:
            for action_id, attempts in s.execute(q).all():
                result = s.execute(
                    update(EnforcementActionRow)
                    .where(EnforcementActionRow.id == action_id, EnforcementActionRow.status == "pending",
                           EnforcementActionRow.attempts == attempts, EnforcementActionRow.next_attempt_at <= now)
                    .values(attempts=attempts + 1, next_attempt_at=lease_until)
                    .execution_options(synchronize_session=False)
                )
                if result.rowcount == 1:  # type: ignore[attr-defined]
                    claimed.append(action_id)
            if not claimed:
                return []
            rows = s.scalars(select(EnforcementActionRow).where(EnforcementActionRow.id.in_(claimed))
                             .order_by(EnforcementActionRow.id).execution_options(populate_existing=True)).all()
            return [_action(r) for r in rows]

    def _finish(self, s: Session, action_id: int, attempt: int, **values: Any) -> bool:
        result = s.execute(
            update(EnforcementActionRow)
            .where(EnforcementActionRow.id == action_id, EnforcementActionRow.status == "pending",
                   EnforcementActionRow.attempts == attempt)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount == 1)  # type: ignore[attr-defined]

    def mark_delivered(self, action_id: int, *, attempt: int, at: datetime) -> bool:
        """Record a 2xx for the claimed `attempt`; False when the claim was lost meanwhile."""
        with self.store.transaction() as s:
            return self._finish(s, action_id, attempt, status="delivered", delivered_at=at, last_error=None)

    def mark_retry(self, action_id: int, *, attempt: int, next_attempt_at: datetime, error: str) -> bool:
        """Record a retryable failure; the row is due again at `next_attempt_at`."""
        with self.store.transaction() as s:
            return self._finish(s, action_id, attempt, next_attempt_at=next_attempt_at,
                                last_error=error[:MAX_ERROR_CHARS])

    def mark_dead(self, action_id: int, *, attempt: int, error: str, at: datetime) -> DeadLetterRecord | None:
        """Give up on a row: status `dead` and a dead letter, in one transaction."""
        error = error[:MAX_ERROR_CHARS]
        with self.store.transaction() as s:
            if not self._finish(s, action_id, attempt, status="dead", last_error=error):
                return None
            key = s.scalar(select(EnforcementActionRow.idempotency_key).where(EnforcementActionRow.id == action_id))
            row = WebhookDeadLetterRow(action_id=action_id, idempotency_key=key, error=error, attempts=attempt,
                                       created_at=at, replayed_at=None)
            s.add(row)
            s.flush()
            return _dead(row)

    # -- dead letters ------------------------------------------------------------------------
    def dead_letters(self, *, include_replayed: bool = False, limit: int = 1000) -> list[DeadLetterRecord]:
        q = select(WebhookDeadLetterRow).order_by(WebhookDeadLetterRow.id).limit(max(1, limit))
        if not include_replayed:
            q = q.where(WebhookDeadLetterRow.replayed_at.is_(None))
        with self.store.session() as s:
            return [_dead(r) for r in s.scalars(q)]

    def replay(self, dead_letter_id: int | None, *, at: datetime) -> list[DeadLetterRecord]:
        """Send dead rows again: status back to `pending`, attempts 0, due at `at`; the dead
        letters are marked replayed. `dead_letter_id=None` replays every unreplayed one.
        Returns the dead letters replayed (empty when none matched)."""
        q = select(WebhookDeadLetterRow).where(WebhookDeadLetterRow.replayed_at.is_(None))
        if dead_letter_id is not None:
            q = q.where(WebhookDeadLetterRow.id == dead_letter_id)
        out: list[DeadLetterRecord] = []
        with self.store.transaction() as s:
            for dl in s.scalars(q.order_by(WebhookDeadLetterRow.id).with_for_update()).all():
                s.execute(
                    update(EnforcementActionRow)
                    .where(EnforcementActionRow.id == dl.action_id, EnforcementActionRow.status == "dead")
                    .values(status="pending", attempts=0, next_attempt_at=at)
                    .execution_options(synchronize_session=False)
                )
                dl.replayed_at = at
                out.append(_dead(dl))
        return out

    # -- strikes -------------------------------------------------------------------------
    def insert_strike(
        self, *, actor_id: str, category: str, decision_id: str, weight: float, now: datetime,
        tx: Session | None = None,
    ) -> bool:
        """Add a strike; False when this actor already has one for (decision, category)."""
        stmt = self._insert()(StrikeRow).values(
            actor_id=actor_id, category=category, decision_id=decision_id, weight=weight, created_at=now,
            reversed_at=None,
        ).on_conflict_do_nothing(index_elements=["actor_id", "decision_id", "category"]).returning(StrikeRow.id)
        with self._write(tx) as s:
            return s.execute(stmt).scalar_one_or_none() is not None

    def strikes(
        self, *, actor_id: str | None = None, decision_id: str | None = None, tx: Session | None = None,
    ) -> list[StrikeRecord]:
        """Strikes (reversed ones included) of an actor and/or a decision, oldest first."""
        q = select(StrikeRow).order_by(StrikeRow.created_at, StrikeRow.id)
        if actor_id is not None:
            q = q.where(StrikeRow.actor_id == actor_id)
        if decision_id is not None:
            q = q.where(StrikeRow.decision_id == decision_id)
        with self._read(tx) as s:
            return [_strike(r) for r in s.scalars(q)]

    def reverse_strikes(self, decision_id: str, *, at: datetime, tx: Session | None = None) -> list[StrikeRecord]:
        """Mark every unreversed strike of `decision_id` reversed at `at`; returns them."""
        with self._write(tx) as s:
            rows = s.scalars(select(StrikeRow).where(StrikeRow.decision_id == decision_id,
                                                     StrikeRow.reversed_at.is_(None))).all()
            for r in rows:
                r.reversed_at = at
            s.flush()
            return [_strike(r) for r in rows]


__all__ = [
    "ACTION_KINDS",
    "ACTION_STATUSES",
    "ActionRecord",
    "DeadLetterRecord",
    "EnforcementRepository",
    "StrikeRecord",
]
