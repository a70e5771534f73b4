"""opt-in content archive, shadow_decisions, review_outcomes (online metrics)

Revision ID: 0002
Revises: 0001
Create Date: 2025-01-15

* `content`: the text of moderated items, written ONLY when the service runs with
  `WARDEN_ARCHIVE_CONTENT=1` (for backtests). It holds user content: keep it no longer than
  your retention policy allows and purge it with `Store.purge_content(before=...)`.
* `shadow_decisions`: what a candidate policy would have decided, beside the live decision
  (shadow mode). Never acted on.
* `review_outcomes`: human verdicts on automated decisions (QA samples, appeals, reports),
  the data behind online precision and appeal overturn rates.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from warden.store.sqltypes import BigIntPK, JSONType, UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "content",
        sa.Column("content_id", sa.String(512), primary_key=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("surface", sa.String(64), nullable=False),
        sa.Column("actor_id", sa.String(512), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_content_created_at", "content", ["created_at"])

    op.create_table(
        "shadow_decisions",
        sa.Column("id", BigIntPK, primary_key=True, autoincrement=True),
        sa.Column("decision_id", sa.String(64), nullable=False),
        sa.Column("live_decision_id", sa.String(64), nullable=False),
        sa.Column("live_policy_version", sa.String(128), nullable=False),
        sa.Column("content_id", sa.String(512), nullable=False),
        sa.Column("policy_name", sa.String(128), nullable=False),
        sa.Column("policy_version", sa.String(128), nullable=False),
        sa.Column("surface", sa.String(64), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("automated", sa.Boolean(), nullable=False),
        sa.Column("flagged", JSONType, nullable=False),
        sa.Column("payload", JSONType, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("decision_id", "live_decision_id", name="uq_shadow_decisions_decision_live"),
    )
    op.create_index("ix_shadow_decisions_created_at", "shadow_decisions", ["created_at"])
    op.create_index("ix_shadow_decisions_live_decision_id", "shadow_decisions", ["live_decision_id"])

    op.create_table(
        "review_outcomes",
        sa.Column("id", BigIntPK, primary_key=True, autoincrement=True),
        sa.Column("decision_id", sa.String(64), nullable=False),
        sa.Column("content_id", sa.String(512), nullable=False),
        sa.Column("category", sa.String(128), nullable=False),
        sa.Column("surface", sa.String(64), nullable=False),
        sa.Column("policy_version", sa.String(128), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("verdict", sa.String(16), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("reviewer", sa.String(256), nullable=False),
        sa.Column("sample_rate", sa.Float(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint("verdict IN ('upheld', 'overturned')", name="ck_review_outcomes_verdict"),
        sa.CheckConstraint("source IN ('qa_sample', 'appeal', 'report')", name="ck_review_outcomes_source"),
        sa.CheckConstraint("sample_rate IS NULL OR (sample_rate > 0 AND sample_rate <= 1)",
                           name="ck_review_outcomes_sample_rate"),
    )
    op.create_index("ix_review_outcomes_source_created_at", "review_outcomes", ["source", "created_at"])
    op.create_index("ix_review_outcomes_decision_id", "review_outcomes", ["decision_id"])


def downgrade() -> None:
    op.drop_table("review_outcomes")
    op.drop_table("shadow_decisions")
    op.drop_table("content")
