"""SQLAlchemy 2 typed models. The schema itself is owned by the Alembic migrations in
`warden/store/migrations/versions/`; these models must match them (a test compares both).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, Float, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from warden.store.sqltypes import BigIntPK, JSONType, UTCDateTime, utcnow


class Base(DeclarativeBase):
    pass


class DecisionRow(Base):
    __tablename__ = "decisions"
    __table_args__ = (
        UniqueConstraint("content_id", "policy_version", name="uq_decisions_content_policy_version"),
        Index("ix_decisions_created_at", "created_at"),
        Index("ix_decisions_action_created_at", "action", "created_at"),
    )

    decision_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    content_id: Mapped[str] = mapped_column(String(512))
    policy_name: Mapped[str] = mapped_column(String(128))
    policy_version: Mapped[str] = mapped_column(String(128))
    surface: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32))
    automated: Mapped[bool]
    flagged: Mapped[list[str]] = mapped_column(JSONType)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class AuditLogRow(Base):
    """Append-only: UPDATE and DELETE are rejected by database triggers (see migration 0001)."""

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_ts", "ts"),
        Index("ix_audit_log_subject", "subject"),
        Index("ix_audit_log_event", "event"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    ts: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    actor: Mapped[str] = mapped_column(String(256))
    event: Mapped[str] = mapped_column(String(128))
    subject: Mapped[str | None] = mapped_column(String(512))
    details: Mapped[dict[str, Any]] = mapped_column(JSONType)


class ApiKeyRow(Base):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128))
    prefix: Mapped[str] = mapped_column(String(32), unique=True)
    key_hash: Mapped[str] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ContentRow(Base):
    """Opt-in content archive (migration 0002): written only when the service runs with
    `archive_content` on. Holds user text: purge it per your retention policy."""

    __tablename__ = "content"
    __table_args__ = (Index("ix_content_created_at", "created_at"),)

    content_id: Mapped[str] = mapped_column(String(512), primary_key=True)
    text: Mapped[str] = mapped_column(Text)
    surface: Mapped[str] = mapped_column(String(64))
    actor_id: Mapped[str | None] = mapped_column(String(512))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ShadowDecisionRow(Base):
    """A candidate policy's decision beside the live one (shadow mode); never acted on."""

    __tablename__ = "shadow_decisions"
    __table_args__ = (
        UniqueConstraint("decision_id", "live_decision_id", name="uq_shadow_decisions_decision_live"),
        Index("ix_shadow_decisions_created_at", "created_at"),
        Index("ix_shadow_decisions_live_decision_id", "live_decision_id"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    decision_id: Mapped[str] = mapped_column(String(64))
    live_decision_id: Mapped[str] = mapped_column(String(64))
    live_policy_version: Mapped[str] = mapped_column(String(128))
    content_id: Mapped[str] = mapped_column(String(512))
    policy_name: Mapped[str] = mapped_column(String(128))
    policy_version: Mapped[str] = mapped_column(String(128))
    surface: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32))
    automated: Mapped[bool]
    flagged: Mapped[list[str]] = mapped_column(JSONType)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ReviewOutcomeRow(Base):
    """A human verdict on an automated decision: the data behind online precision (QA
    samples) and appeal overturn rates."""

    __tablename__ = "review_outcomes"
    __table_args__ = (
        CheckConstraint("verdict IN ('upheld', 'overturned')", name="ck_review_outcomes_verdict"),
        CheckConstraint("source IN ('qa_sample', 'appeal', 'report')", name="ck_review_outcomes_source"),
        CheckConstraint("sample_rate IS NULL OR (sample_rate > 0 AND sample_rate <= 1)",
                        name="ck_review_outcomes_sample_rate"),
        Index("ix_review_outcomes_source_created_at", "source", "created_at"),
        Index("ix_review_outcomes_decision_id", "decision_id"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    decision_id: Mapped[str] = mapped_column(String(64))
    content_id: Mapped[str] = mapped_column(String(512))
    category: Mapped[str] = mapped_column(String(128))
    surface: Mapped[str] = mapped_column(String(64))
    policy_version: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(32))
    verdict: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(16))
    reviewer: Mapped[str] = mapped_column(String(256))
    sample_rate: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


__all__ = [
    "ApiKeyRow",
    "AuditLogRow",
    "Base",
    "ContentRow",
    "DecisionRow",
    "ReviewOutcomeRow",
    "ShadowDecisionRow",
    "utcnow",
]
