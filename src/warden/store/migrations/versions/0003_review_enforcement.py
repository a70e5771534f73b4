"""users and web sessions, review tasks and leases, reviewer decisions and labels, appeals,
enforcement outbox with dead letters, strikes

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22

* `users`, `web_sessions`: people who log in to the reviewer UI (API clients keep using
  `api_keys`). Passwords are argon2id hashes; sessions store only a SHA-256 of the cookie
  token and their CSRF token.
* `review_tasks`: one unit of human work. `dedupe_key` makes enqueueing idempotent (the same
  decision is never queued twice for the same reason). A task is leased to one reviewer at a
  time (`lease_owner`, `lease_expires_at`); an expired lease returns it to the queue.
* `review_decisions`: what a reviewer decided on a task; `labels`: one row per category of that
  decision, the training data of the feedback loop.
* `appeals`: a user's appeal against a decision, decided by a different reviewer.
* `enforcement_actions`: a transactional outbox of webhooks to the platform, one row per
  idempotency key; `webhook_dead_letters`: deliveries that exhausted their retries.
* `strikes`: weighted, time-decaying strikes per actor; an overturned appeal reverses them.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from warden.store.sqltypes import BigIntPK, JSONType, UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", BigIntPK, primary_key=True, autoincrement=True),
        sa.Column("username", sa.String(128), nullable=False, unique=True),
        sa.Column("password_hash", sa.String(256), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("disabled_at", UTCDateTime(), nullable=True),
        sa.Column("last_login_at", UTCDateTime(), nullable=True),
        sa.CheckConstraint("role IN ('reviewer', 'senior_reviewer', 'admin')", name="ck_users_role"),
    )

    op.create_table(
        "web_sessions",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("user_id", BigIntPK, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
    )
    op.create_index("ix_web_sessions_user_id", "web_sessions", ["user_id"])

    op.create_table(
        "review_tasks",
        sa.Column("id", BigIntPK, primary_key=True, autoincrement=True),
        sa.Column("dedupe_key", sa.String(600), nullable=False, unique=True),
        sa.Column("queue", sa.String(64), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("decision_id", sa.String(64), nullable=True),
        sa.Column("content_id", sa.String(512), nullable=False),
        sa.Column("actor_id", sa.String(512), nullable=True),
        sa.Column("surface", sa.String(64), nullable=False),
        sa.Column("policy_version", sa.String(128), nullable=True),
        sa.Column("categories", JSONType, nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("uncertainty", sa.Float(), nullable=False),
        sa.Column("reach", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("lease_owner", sa.String(256), nullable=True),
        sa.Column("lease_expires_at", UTCDateTime(), nullable=True),
        sa.Column("lease_count", sa.Integer(), nullable=False),
        sa.Column("exclude_reviewer", sa.String(256), nullable=True),
        sa.Column("parent_task_id", BigIntPK, sa.ForeignKey("review_tasks.id"), nullable=True),
        sa.Column("details", JSONType, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("due_at", UTCDateTime(), nullable=False),
        sa.Column("done_at", UTCDateTime(), nullable=True),
        sa.CheckConstraint("status IN ('open', 'leased', 'done', 'cancelled')", name="ck_review_tasks_status"),
        sa.CheckConstraint(
            "source IN ('routing', 'uncertainty', 'report', 'appeal', 'qa_sample', 'active_learning', "
            "'double_review')", name="ck_review_tasks_source"),
        sa.CheckConstraint("uncertainty >= 0 AND uncertainty <= 1", name="ck_review_tasks_uncertainty"),
        sa.CheckConstraint("reach >= 0", name="ck_review_tasks_reach"),
    )
    op.create_index("ix_review_tasks_queue_status", "review_tasks", ["queue", "status"])
    op.create_index("ix_review_tasks_content_id", "review_tasks", ["content_id"])
    op.create_index("ix_review_tasks_decision_id", "review_tasks", ["decision_id"])

    op.create_table(
        "review_decisions",
        sa.Column("id", BigIntPK, primary_key=True, autoincrement=True),
        sa.Column("task_id", BigIntPK, sa.ForeignKey("review_tasks.id"), nullable=False, unique=True),
        sa.Column("reviewer", sa.String(256), nullable=False),
        sa.Column("content_id", sa.String(512), nullable=False),
        sa.Column("decision_id", sa.String(64), nullable=True),
        sa.Column("policy_version", sa.String(128), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("labels", JSONType, nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_review_decisions_content_id", "review_decisions", ["content_id"])
    op.create_index("ix_review_decisions_reviewer", "review_decisions", ["reviewer"])

    op.create_table(
        "labels",
        sa.Column("id", BigIntPK, primary_key=True, autoincrement=True),
        sa.Column("review_decision_id", BigIntPK, sa.ForeignKey("review_decisions.id"), nullable=False),
        sa.Column("content_id", sa.String(512), nullable=False),
        sa.Column("category", sa.String(128), nullable=False),
        sa.Column("violating", sa.Boolean(), nullable=False),
        sa.Column("reviewer", sa.String(256), nullable=False),
        sa.Column("policy_version", sa.String(128), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("review_decision_id", "category", name="uq_labels_decision_category"),
    )
    op.create_index("ix_labels_created_at", "labels", ["created_at"])
    op.create_index("ix_labels_content_id", "labels", ["content_id"])

    op.create_table(
        "appeals",
        sa.Column("id", BigIntPK, primary_key=True, autoincrement=True),
        sa.Column("decision_id", sa.String(64), nullable=False, unique=True),
        sa.Column("content_id", sa.String(512), nullable=False),
        sa.Column("appellant", sa.String(512), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("task_id", BigIntPK, sa.ForeignKey("review_tasks.id"), nullable=True),
        sa.Column("original_reviewer", sa.String(256), nullable=True),
        sa.Column("decided_by", sa.String(256), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("decided_at", UTCDateTime(), nullable=True),
        sa.CheckConstraint("status IN ('open', 'upheld', 'overturned')", name="ck_appeals_status"),
    )

    op.create_table(
        "enforcement_actions",
        sa.Column("id", BigIntPK, primary_key=True, autoincrement=True),
        sa.Column("idempotency_key", sa.String(128), nullable=False, unique=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("decision_id", sa.String(64), nullable=True),
        sa.Column("content_id", sa.String(512), nullable=True),
        sa.Column("actor_id", sa.String(512), nullable=True),
        sa.Column("payload", JSONType, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("delivered_at", UTCDateTime(), nullable=True),
        sa.CheckConstraint("status IN ('pending', 'delivered', 'dead')", name="ck_enforcement_actions_status"),
        sa.CheckConstraint("kind IN ('content_action', 'account_action', 'reversal')",
                           name="ck_enforcement_actions_kind"),
    )
    op.create_index("ix_enforcement_actions_status_next", "enforcement_actions", ["status", "next_attempt_at"])
    op.create_index("ix_enforcement_actions_decision_id", "enforcement_actions", ["decision_id"])

    op.create_table(
        "webhook_dead_letters",
        sa.Column("id", BigIntPK, primary_key=True, autoincrement=True),
        sa.Column("action_id", BigIntPK, sa.ForeignKey("enforcement_actions.id"), nullable=False),
        sa.Column("idempotency_key", sa.String(128), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("replayed_at", UTCDateTime(), nullable=True),
    )
    op.create_index("ix_webhook_dead_letters_action_id", "webhook_dead_letters", ["action_id"])

    op.create_table(
        "strikes",
        sa.Column("id", BigIntPK, primary_key=True, autoincrement=True),
        sa.Column("actor_id", sa.String(512), nullable=False),
        sa.Column("category", sa.String(128), nullable=False),
        sa.Column("decision_id", sa.String(64), nullable=False),
        sa.Column("weight", sa.Float(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("reversed_at", UTCDateTime(), nullable=True),
        sa.UniqueConstraint("actor_id", "decision_id", "category", name="uq_strikes_actor_decision_category"),
        sa.CheckConstraint("weight >= 0", name="ck_strikes_weight"),
    )
    op.create_index("ix_strikes_actor_id", "strikes", ["actor_id"])


def downgrade() -> None:
    for table in ("strikes", "webhook_dead_letters", "enforcement_actions", "appeals", "labels",
                  "review_decisions", "review_tasks", "web_sessions", "users"):
        op.drop_table(table)
