"""SQLAlchemy models of the hash banks (migration 0004): `hash_banks` and `bank_hashes`.

Kept apart from `models.py` so the hash-matching feature stays in its own files; `models.py`
imports this module at its end, so `Base.metadata` (Alembic, the model-vs-migration test)
always includes these tables.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from warden.store.models import Base
from warden.store.sqltypes import BigIntPK, UTCDateTime, utcnow


class HashBankRow(Base):
    """A named bank of known hashes; a match means `category` and calls for `action`.

    `version` goes up on every change to the bank or its hashes: in-memory match indexes
    compare it to know when to rebuild, across processes."""

    __tablename__ = "hash_banks"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    category: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(32))
    report: Mapped[bool]
    description: Mapped[str] = mapped_column(Text)
    enabled: Mapped[bool]
    version: Mapped[int] = mapped_column(BigInteger)
    created_by: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class BankHashRow(Base):
    """One banked hash (a PDQ or MD5 hex string) with its provenance."""

    __tablename__ = "bank_hashes"
    __table_args__ = (
        UniqueConstraint("bank_id", "signal_type", "signal", name="uq_bank_hashes_bank_signal"),
        Index("ix_bank_hashes_signal", "signal_type", "signal"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    bank_id: Mapped[int] = mapped_column(BigIntPK, ForeignKey("hash_banks.id", ondelete="CASCADE"))
    signal_type: Mapped[str] = mapped_column(String(16))
    signal: Mapped[str] = mapped_column(String(64))
    source: Mapped[str | None] = mapped_column(String(256))
    category: Mapped[str | None] = mapped_column(String(128))
    added_by: Mapped[str | None] = mapped_column(String(256))
    added_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    content_id: Mapped[str | None] = mapped_column(String(512))
    note: Mapped[str | None] = mapped_column(Text)
