"""Hash bank storage: banks, their hashes, and the snapshot a `BankMatcher` is built from.

Every change runs in one transaction with its audit event (`hash_bank.*`) and bumps the
bank's `version`, which `fingerprint()` reads in one small query: a process holding a match
index rebuilds it when the fingerprint moves, so a hash removed through the API stops
matching in every worker. Adding a hash that the bank already holds is a no-op (counted as
a duplicate), so re-importing a list is idempotent.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from warden.core.policy import Action
from warden.detectors.hashing.banks import Bank, BankEntry, normalize_signal_type, validate_bank_name, validate_signal
from warden.detectors.hashing.matcher import BankMatcher
from warden.detectors.hashing.pdq import DEFAULT_MAX_DISTANCE
from warden.store.hash_models import BankHashRow, HashBankRow
from warden.store.repository import Store
from warden.store.sqltypes import utcnow

#: Rows per INSERT statement when adding hashes (bounded statement size on both databases).
INSERT_CHUNK = 2000
#: Rows fetched per round trip when loading a match index.
LOAD_CHUNK = 50_000


class HashBankError(Exception):
    """A bank operation that cannot be done; `code` is the API error code."""

    code = "invalid_bank"


class BankNotFound(HashBankError):
    code = "bank_not_found"


class BankExists(HashBankError):
    code = "bank_exists"


@dataclass(frozen=True, slots=True)
class BankRecord:
    """A stored bank with its bookkeeping."""

    id: int
    bank: Bank
    version: int
    hash_count: int
    created_by: str
    created_at: datetime
    updated_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {**self.bank.to_dict(), "id": self.id, "version": self.version, "hash_count": self.hash_count,
                "created_by": self.created_by, "created_at": self.created_at.isoformat(),
                "updated_at": self.updated_at.isoformat()}


@dataclass(frozen=True, slots=True)
class AddResult:
    added: int
    duplicates: int
    ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class StoredHash:
    """A banked hash with the name of its bank (for lookups by hash id)."""

    bank: str
    entry: BankEntry


def _bank(row: HashBankRow) -> Bank:
    return Bank(name=row.name, category=row.category, action=Action(row.action), report=row.report,
                description=row.description, enabled=row.enabled)


def _entry(row: BankHashRow) -> BankEntry:
    return BankEntry(signal_type=row.signal_type, signal=row.signal, source=row.source, category=row.category,
                     added_by=row.added_by, added_at=row.added_at, content_id=row.content_id, note=row.note,
                     id=row.id)


class HashBankRepository:
    """Reads and writes of `hash_banks` and `bank_hashes`, on SQLite and PostgreSQL."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def _insert(self) -> Any:
        return postgresql.insert if self.store.dialect == "postgresql" else sqlite.insert

    @staticmethod
    def _row(s: Session, name: str, *, lock: bool = False) -> HashBankRow:
        q = select(HashBankRow).where(HashBankRow.name == name)
        if lock:
            q = q.with_for_update()
        row = s.scalars(q).first()
        if row is None:
            raise BankNotFound(f"no hash bank named {name!r}; list them with `warden hash bank list`")
        return row

    def _count(self, s: Session, bank_id: int) -> int:
        return int(s.scalar(select(func.count()).select_from(BankHashRow).where(BankHashRow.bank_id == bank_id))
                   or 0)

    def _record(self, s: Session, row: HashBankRow) -> BankRecord:
        return BankRecord(id=row.id, bank=_bank(row), version=row.version, hash_count=self._count(s, row.id),
                          created_by=row.created_by, created_at=row.created_at, updated_at=row.updated_at)

    @staticmethod
    def _bump(s: Session, bank_id: int) -> None:
        s.execute(update(HashBankRow).where(HashBankRow.id == bank_id)
                  .values(version=HashBankRow.version + 1, updated_at=utcnow()))

    # -- banks -----------------------------------------------------------------------------
    def create_bank(self, bank: Bank, *, actor: str) -> BankRecord:
        now = utcnow()
        values = {"name": bank.name, "category": bank.category, "action": bank.action.value, "report": bank.report,
                  "description": bank.description, "enabled": bank.enabled, "version": 1, "created_by": actor,
                  "created_at": now, "updated_at": now}
        stmt = self._insert()(HashBankRow).values(**values).on_conflict_do_nothing(
            index_elements=["name"]).returning(HashBankRow.id)
        with self.store.transaction() as s:
            new_id = s.execute(stmt).scalar_one_or_none()
            if new_id is None:
                raise BankExists(f"a hash bank named {bank.name!r} already exists")
            self.store.append_audit(actor, "hash_bank.create", f"hash_bank:{bank.name}", bank.to_dict(), tx=s)
            return self._record(s, s.get(HashBankRow, new_id))

    def update_bank(self, name: str, *, actor: str, category: str | None = None, action: str | None = None,
                    report: bool | None = None, description: str | None = None,
                    enabled: bool | None = None) -> BankRecord:
        """Change what a bank means; the fields left None keep their value."""
        with self.store.transaction() as s:
            row = self._row(s, name, lock=True)
            current = _bank(row)
            changed = Bank(name=name, category=current.category if category is None else category,
                           action=current.action if action is None else action,
                           report=current.report if report is None else report,
                           description=current.description if description is None else description,
                           enabled=current.enabled if enabled is None else enabled)
            row.category, row.action, row.report = changed.category, changed.action.value, changed.report
            row.description, row.enabled = changed.description, changed.enabled
            row.version += 1
            row.updated_at = utcnow()
            s.flush()
            diff = {k: v for k, v in changed.to_dict().items() if current.to_dict()[k] != v}
            self.store.append_audit(actor, "hash_bank.update", f"hash_bank:{name}", diff, tx=s)
            return self._record(s, row)

    def delete_bank(self, name: str, *, actor: str) -> int:
        """Delete a bank and its hashes; returns how many hashes went with it."""
        with self.store.transaction() as s:
            row = self._row(s, name, lock=True)
            removed = s.execute(delete(BankHashRow).where(BankHashRow.bank_id == row.id)).rowcount or 0
            s.delete(row)
            self.store.append_audit(actor, "hash_bank.delete", f"hash_bank:{name}", {"hashes": removed}, tx=s)
            return int(removed)

    def get_bank(self, name: str) -> BankRecord | None:
        with self.store.session() as s:
            row = s.scalars(select(HashBankRow).where(HashBankRow.name == name)).first()
            return self._record(s, row) if row is not None else None

    def list_banks(self) -> list[BankRecord]:
        counts_q = select(BankHashRow.bank_id, func.count()).group_by(BankHashRow.bank_id)
        with self.store.session() as s:
            counts = {int(b): int(n) for b, n in s.execute(counts_q).all()}
            rows = s.scalars(select(HashBankRow).order_by(HashBankRow.name)).all()
            return [BankRecord(id=r.id, bank=_bank(r), version=r.version, hash_count=counts.get(r.id, 0),
                               created_by=r.created_by, created_at=r.created_at, updated_at=r.updated_at)
                    for r in rows]

    # -- hashes ----------------------------------------------------------------------------
    def add_hashes(self, name: str, entries: Iterable[BankEntry], *, actor: str) -> AddResult:
        """Add hashes (one transaction). `added_by` defaults to `actor`, `added_at` to now."""
        now = utcnow()
        rows = [{"signal_type": e.signal_type, "signal": e.signal, "source": e.source, "category": e.category,
                 "added_by": e.added_by or actor, "added_at": e.added_at or now, "content_id": e.content_id,
                 "note": e.note} for e in entries]
        ids: list[int] = []
        with self.store.transaction() as s:
            bank = self._row(s, name, lock=True)
            for start in range(0, len(rows), INSERT_CHUNK):
                chunk = [{**r, "bank_id": bank.id} for r in rows[start:start + INSERT_CHUNK]]
                stmt = self._insert()(BankHashRow).on_conflict_do_nothing(
                    index_elements=["bank_id", "signal_type", "signal"]).returning(BankHashRow.id)
                ids.extend(int(i) for i in s.execute(stmt, chunk).scalars().all())
            if ids:
                self._bump(s, bank.id)
            result = AddResult(added=len(ids), duplicates=len(rows) - len(ids), ids=tuple(sorted(ids)))
            self.store.append_audit(actor, "hash_bank.add", f"hash_bank:{name}",
                                    {"added": result.added, "duplicates": result.duplicates}, tx=s)
        return result

    def remove_hashes(self, name: str, *, actor: str, ids: Collection[int] = (),
                      signals: Collection[tuple[str, str]] = ()) -> int:
        """Remove hashes by id or by (signal_type, signal); returns how many were removed."""
        wanted = [(normalize_signal_type(t), validate_signal(normalize_signal_type(t), v)) for t, v in signals]
        removed = 0
        with self.store.transaction() as s:
            bank = self._row(s, name, lock=True)
            id_list = sorted({int(i) for i in ids})
            for start in range(0, len(id_list), INSERT_CHUNK):
                part = id_list[start:start + INSERT_CHUNK]
                removed += s.execute(delete(BankHashRow).where(BankHashRow.bank_id == bank.id,
                                                               BankHashRow.id.in_(part))).rowcount or 0
            for signal_type in {t for t, _ in wanted}:
                values = sorted({v for t, v in wanted if t == signal_type})
                for start in range(0, len(values), INSERT_CHUNK):
                    removed += s.execute(delete(BankHashRow).where(
                        BankHashRow.bank_id == bank.id, BankHashRow.signal_type == signal_type,
                        BankHashRow.signal.in_(values[start:start + INSERT_CHUNK]))).rowcount or 0
            if removed:
                self._bump(s, bank.id)
            self.store.append_audit(actor, "hash_bank.remove", f"hash_bank:{name}", {"removed": int(removed)}, tx=s)
        return int(removed)

    def list_hashes(self, name: str, *, signal_type: str | None = None, after_id: int = 0,
                    limit: int = 1000) -> list[BankEntry]:
        """A page of a bank's hashes in id order (keyset pagination: pass the last id seen)."""
        with self.store.session() as s:
            bank = self._row(s, name)
            q = (select(BankHashRow).where(BankHashRow.bank_id == bank.id, BankHashRow.id > after_id)
                 .order_by(BankHashRow.id).limit(max(1, limit)))
            if signal_type is not None:
                q = q.where(BankHashRow.signal_type == normalize_signal_type(signal_type))
            return [_entry(r) for r in s.scalars(q)]

    def iter_hashes(self, name: str, *, page: int = 10_000) -> Iterator[BankEntry]:
        after = 0
        while True:
            rows = self.list_hashes(name, after_id=after, limit=page)
            yield from rows
            if len(rows) < page:
                return
            after = int(rows[-1].id or 0)

    def get_hashes(self, ids: Sequence[int]) -> dict[int, StoredHash]:
        """Hashes by id with their bank's name (the provenance of matches)."""
        out: dict[int, StoredHash] = {}
        if not ids:
            return out
        wanted = sorted({int(i) for i in ids})
        with self.store.session() as s:
            for start in range(0, len(wanted), INSERT_CHUNK):
                q = (select(BankHashRow, HashBankRow.name).join(HashBankRow, HashBankRow.id == BankHashRow.bank_id)
                     .where(BankHashRow.id.in_(wanted[start:start + INSERT_CHUNK])))
                for row, bank_name in s.execute(q).all():
                    out[row.id] = StoredHash(bank=bank_name, entry=_entry(row))
        return out

    def find_signal(self, signal_type: str, signal: str) -> list[StoredHash]:
        """Exact lookups by hash (every bank), through the (signal_type, signal) index."""
        st = normalize_signal_type(signal_type)
        value = validate_signal(st, signal)
        q = (select(BankHashRow, HashBankRow.name).join(HashBankRow, HashBankRow.id == BankHashRow.bank_id)
             .where(BankHashRow.signal_type == st, BankHashRow.signal == value).order_by(BankHashRow.id))
        with self.store.session() as s:
            return [StoredHash(bank=n, entry=_entry(r)) for r, n in s.execute(q).all()]

    # -- match snapshots ----------------------------------------------------------------------
    def fingerprint(self) -> tuple[tuple[int, int], ...]:
        """(bank id, version) of every bank: changes whenever any bank or hash changes."""
        with self.store.session() as s:
            return tuple((int(i), int(v)) for i, v in s.execute(
                select(HashBankRow.id, HashBankRow.version).order_by(HashBankRow.id)).all())

    def load_matcher(self, *, banks: Collection[str] | None = None, radius: int = DEFAULT_MAX_DISTANCE,
                     backend: str = "mih") -> tuple[BankMatcher, tuple[tuple[int, int], ...]]:
        """A matcher over the enabled banks (or the named ones), with the fingerprint it was
        read at (read in the same transaction, so the two agree)."""
        for name in banks or ():
            validate_bank_name(name)
        with self.store.session() as s, s.begin():
            fp = tuple((int(i), int(v)) for i, v in s.execute(
                select(HashBankRow.id, HashBankRow.version).order_by(HashBankRow.id)).all())
            q = select(HashBankRow).where(HashBankRow.enabled.is_(True)).order_by(HashBankRow.id)
            if banks is not None:
                q = q.where(HashBankRow.name.in_(sorted(banks)))
            rows = s.scalars(q).all()
            bank_list = [_bank(r) for r in rows]
            position = {r.id: i for i, r in enumerate(rows)}
            pdq_ids: list[int] = []
            pdq_bank: list[int] = []
            pdq_hex: list[str] = []
            pdq_video: list[int] = []
            videos: dict[str, int] = {}  # content_id of a banked video -> position (its vpdq frame rows)
            md5: dict[str, list[tuple[int, int]]] = {}
            if position:
                stmt = (select(BankHashRow.id, BankHashRow.bank_id, BankHashRow.signal_type, BankHashRow.signal,
                               BankHashRow.content_id)
                        .where(BankHashRow.bank_id.in_(sorted(position))).order_by(BankHashRow.id)
                        .execution_options(yield_per=LOAD_CHUNK))
                for hid, bank_id, signal_type, signal, content_id in s.execute(stmt):
                    if signal_type in ("pdq", "vpdq"):
                        pdq_ids.append(hid)
                        pdq_bank.append(position[bank_id])
                        pdq_hex.append(signal)
                        pdq_video.append(videos.setdefault(str(content_id), len(videos))
                                         if signal_type == "vpdq" else -1)
                    else:
                        md5.setdefault(signal, []).append((int(hid), position[bank_id]))
        codes = np.frombuffer(bytes.fromhex("".join(pdq_hex)), dtype=np.uint8).reshape(-1, 32).copy()
        matcher = BankMatcher(bank_list, pdq_codes=codes, pdq_entry_ids=np.array(pdq_ids, dtype=np.int64),
                              pdq_bank_index=np.array(pdq_bank, dtype=np.int32), md5=md5, radius=radius,
                              backend=backend, pdq_video=np.array(pdq_video, dtype=np.int32), videos=list(videos))
        return matcher, fp


__all__ = [
    "AddResult",
    "BankExists",
    "BankNotFound",
    "BankRecord",
    "HashBankError",
    "HashBankRepository",
    "StoredHash",
]
