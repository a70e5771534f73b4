"""hash banks: named banks of known PDQ / MD5 hashes and the hashes with their provenance

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22

* `hash_banks`: a bank's name, the policy category a match means, the action it calls for,
  whether matches must be reported, and a `version` bumped on every change (match indexes
  rebuild when it moves).
* `bank_hashes`: one hash per row (`signal_type` pdq or md5, `signal` lowercase hex) with
  source, category, added_by, added_at, content_id and note; unique per (bank, type, hash),
  so re-importing a list is idempotent.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from warden.store.sqltypes import BigIntPK, UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "hash_banks",
        sa.Column("id", BigIntPK, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(128), nullable=False, unique=True),
        sa.Column("category", sa.String(128), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("report", sa.Boolean(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("created_by", sa.String(256), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "bank_hashes",
        sa.Column("id", BigIntPK, primary_key=True, autoincrement=True),
        sa.Column("bank_id", BigIntPK, sa.ForeignKey("hash_banks.id", ondelete="CASCADE"), nullable=False),
        sa.Column("signal_type", sa.String(16), nullable=False),
        sa.Column("signal", sa.String(64), nullable=False),
        sa.Column("source", sa.String(256), nullable=True),
        sa.Column("category", sa.String(128), nullable=True),
        sa.Column("added_by", sa.String(256), nullable=True),
        sa.Column("added_at", UTCDateTime(), nullable=False),
        sa.Column("content_id", sa.String(512), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.UniqueConstraint("bank_id", "signal_type", "signal", name="uq_bank_hashes_bank_signal"),
    )
    op.create_index("ix_bank_hashes_signal", "bank_hashes", ["signal_type", "signal"])


def downgrade() -> None:
    op.drop_index("ix_bank_hashes_signal", table_name="bank_hashes")
    op.drop_table("bank_hashes")
    op.drop_table("hash_banks")
