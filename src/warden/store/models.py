"""SQLAlchemy 2 typed models. The schema itself is owned by the Alembic migrations in
`warden/store/migrations/versions/`; these models must match them (a test compares both).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
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


# -- human review, enforcement and appeals (migration 0003) -------------------------------
class UserRow(Base):
    """A person who logs in to the reviewer UI. API clients use `api_keys` instead."""

    __tablename__ = "users"
    __table_args__ = (CheckConstraint("role IN ('reviewer', 'senior_reviewer', 'admin')", name="ck_users_role"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(128), unique=True)
    password_hash: Mapped[str] = mapped_column(String(256))  # argon2id
    role: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class WebSessionRow(Base):
    """A login session. Only the SHA-256 of the cookie token is stored."""

    __tablename__ = "web_sessions"
    __table_args__ = (Index("ix_web_sessions_user_id", "user_id"),)

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(BigIntPK, ForeignKey("users.id", ondelete="CASCADE"))
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


TASK_STATUSES: tuple[str, ...] = ("open", "leased", "done", "cancelled")
TASK_SOURCES: tuple[str, ...] = (
    "routing", "uncertainty", "report", "appeal", "qa_sample", "active_learning", "double_review")


class ReviewTaskRow(Base):
    """One unit of human work in a queue, leased to one reviewer at a time."""

    __tablename__ = "review_tasks"
    __table_args__ = (
        CheckConstraint("status IN ('open', 'leased', 'done', 'cancelled')", name="ck_review_tasks_status"),
        CheckConstraint(
            "source IN ('routing', 'uncertainty', 'report', 'appeal', 'qa_sample', 'active_learning', "
            "'double_review')", name="ck_review_tasks_source"),
        CheckConstraint("uncertainty >= 0 AND uncertainty <= 1", name="ck_review_tasks_uncertainty"),
        CheckConstraint("reach >= 0", name="ck_review_tasks_reach"),
        Index("ix_review_tasks_queue_status", "queue", "status"),
        Index("ix_review_tasks_content_id", "content_id"),
        Index("ix_review_tasks_decision_id", "decision_id"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    dedupe_key: Mapped[str] = mapped_column(String(600), unique=True)
    queue: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(32))
    decision_id: Mapped[str | None] = mapped_column(String(64))
    content_id: Mapped[str] = mapped_column(String(512))
    actor_id: Mapped[str | None] = mapped_column(String(512))
    surface: Mapped[str] = mapped_column(String(64))
    policy_version: Mapped[str | None] = mapped_column(String(128))
    categories: Mapped[list[str]] = mapped_column(JSONType)
    severity: Mapped[str] = mapped_column(String(16))
    uncertainty: Mapped[float] = mapped_column(Float)
    reach: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16))
    lease_owner: Mapped[str | None] = mapped_column(String(256))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    lease_count: Mapped[int] = mapped_column(Integer, default=0)
    exclude_reviewer: Mapped[str | None] = mapped_column(String(256))
    parent_task_id: Mapped[int | None] = mapped_column(BigIntPK, ForeignKey("review_tasks.id"))
    details: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime())
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ReviewDecisionRow(Base):
    """What a reviewer decided on a task (one per task)."""

    __tablename__ = "review_decisions"
    __table_args__ = (
        Index("ix_review_decisions_content_id", "content_id"),
        Index("ix_review_decisions_reviewer", "reviewer"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    task_id: Mapped[int] = mapped_column(BigIntPK, ForeignKey("review_tasks.id"), unique=True)
    reviewer: Mapped[str] = mapped_column(String(256))
    content_id: Mapped[str] = mapped_column(String(512))
    decision_id: Mapped[str | None] = mapped_column(String(64))
    policy_version: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(32))
    labels: Mapped[dict[str, bool]] = mapped_column(JSONType)
    note: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class LabelRow(Base):
    """One category label from one reviewer decision: the training data of the feedback loop."""

    __tablename__ = "labels"
    __table_args__ = (
        UniqueConstraint("review_decision_id", "category", name="uq_labels_decision_category"),
        Index("ix_labels_created_at", "created_at"),
        Index("ix_labels_content_id", "content_id"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    review_decision_id: Mapped[int] = mapped_column(BigIntPK, ForeignKey("review_decisions.id"))
    content_id: Mapped[str] = mapped_column(String(512))
    category: Mapped[str] = mapped_column(String(128))
    violating: Mapped[bool]
    reviewer: Mapped[str] = mapped_column(String(256))
    policy_version: Mapped[str] = mapped_column(String(128))
    source: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class AppealRow(Base):
    __tablename__ = "appeals"
    __table_args__ = (CheckConstraint("status IN ('open', 'upheld', 'overturned')", name="ck_appeals_status"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    decision_id: Mapped[str] = mapped_column(String(64), unique=True)
    content_id: Mapped[str] = mapped_column(String(512))
    appellant: Mapped[str | None] = mapped_column(String(512))
    reason: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    task_id: Mapped[int | None] = mapped_column(BigIntPK, ForeignKey("review_tasks.id"))
    original_reviewer: Mapped[str | None] = mapped_column(String(256))
    decided_by: Mapped[str | None] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class EnforcementActionRow(Base):
    """Transactional outbox: a webhook to the platform, written in the same transaction as the
    decision that caused it and delivered by the dispatcher."""

    __tablename__ = "enforcement_actions"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'delivered', 'dead')", name="ck_enforcement_actions_status"),
        CheckConstraint("kind IN ('content_action', 'account_action', 'reversal')",
                        name="ck_enforcement_actions_kind"),
        Index("ix_enforcement_actions_status_next", "status", "next_attempt_at"),
        Index("ix_enforcement_actions_decision_id", "decision_id"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    idempotency_key: Mapped[str] = mapped_column(String(128), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(32))
    decision_id: Mapped[str | None] = mapped_column(String(64))
    content_id: Mapped[str | None] = mapped_column(String(512))
    actor_id: Mapped[str | None] = mapped_column(String(512))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class WebhookDeadLetterRow(Base):
    __tablename__ = "webhook_dead_letters"
    __table_args__ = (Index("ix_webhook_dead_letters_action_id", "action_id"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    action_id: Mapped[int] = mapped_column(BigIntPK, ForeignKey("enforcement_actions.id"))
    idempotency_key: Mapped[str] = mapped_column(String(128))
    error: Mapped[str] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    replayed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class StrikeRow(Base):
    __tablename__ = "strikes"
    __table_args__ = (
        UniqueConstraint("actor_id", "decision_id", "category", name="uq_strikes_actor_decision_category"),
        CheckConstraint("weight >= 0", name="ck_strikes_weight"),
        Index("ix_strikes_actor_id", "actor_id"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    actor_id: Mapped[str] = mapped_column(String(512))
    category: Mapped[str] = mapped_column(String(128))
    decision_id: Mapped[str] = mapped_column(String(64))
    weight: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    reversed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


__all__ = [
    "TASK_SOURCES",
    "TASK_STATUSES",
    "ApiKeyRow",
    "AppealRow",
    "AuditLogRow",
    "Base",
    "ContentRow",
    "DecisionRow",
    "EnforcementActionRow",
    "LabelRow",
    "ReviewDecisionRow",
    "ReviewOutcomeRow",
    "ReviewTaskRow",
    "ShadowDecisionRow",
    "StrikeRow",
    "UserRow",
    "WebSessionRow",
    "WebhookDeadLetterRow",
    "utcnow",
]

# The hash bank tables live in their own module (migration 0004); importing it here registers
# them on Base.metadata wherever the models are used (Alembic, the model-vs-migration test).
from warden.store import hash_models as _hash_models  # noqa: E402,F401
