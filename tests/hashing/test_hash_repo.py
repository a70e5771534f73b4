"""Hash bank storage on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from pg_support import migrated
from warden.core import Action
from warden.detectors.hashing.banks import Bank, BankEntry, export_bank, parse_bank_file, without_ids
from warden.detectors.hashing.pdq import codes_to_hex
from warden.store import Store
from warden.store.hash_repo import BankExists, BankNotFound, HashBankRepository

PDQS = codes_to_hex(np.random.default_rng(0).integers(0, 256, size=(50, 32), dtype=np.uint8))
MD5 = "0123456789abcdef0123456789abcdef"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        s = Store.from_url(f"sqlite:///{tmp_path / 'hashes.db'}")
        s.upgrade()
    else:
        factory: Callable[[], str] = request.getfixturevalue("pg_database_factory")
        s = Store.from_url(migrated(factory()))
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def repo(store: Store) -> HashBankRepository:
    return HashBankRepository(store)


def _pdq(i: int, **meta) -> BankEntry:
    return BankEntry(signal_type="pdq", signal=PDQS[i], **meta)


def test_bank_lifecycle_with_audit(repo: HashBankRepository, store: Store) -> None:
    rec = repo.create_bank(Bank(name="known", category="violence", action="escalate", report=True), actor="t:1")
    assert (rec.bank.action, rec.bank.report, rec.version, rec.hash_count) == (Action.ESCALATE, True, 1, 0)
    with pytest.raises(BankExists):
        repo.create_bank(Bank(name="known", category="hate"), actor="t:1")
    updated = repo.update_bank("known", actor="t:2", action="remove", enabled=False)
    assert (updated.bank.action, updated.bank.enabled, updated.bank.category, updated.version) == (
        Action.REMOVE, False, "violence", 2)
    with pytest.raises(ValueError, match="invalid action"):
        repo.update_bank("known", actor="t:2", action="nuke")
    with pytest.raises(BankNotFound, match="no hash bank named 'missing'"):
        repo.update_bank("missing", actor="t:2", enabled=True)
    repo.add_hashes("known", [_pdq(0), _pdq(1)], actor="t:3")
    assert [r.bank.name for r in repo.list_banks()] == ["known"]
    assert repo.list_banks()[0].hash_count == 2
    assert repo.delete_bank("known", actor="t:4") == 2
    assert repo.get_bank("known") is None and repo.list_banks() == []
    events = [e.event for e in store.audit_events(subject="hash_bank:known")]
    assert events == ["hash_bank.create", "hash_bank.update", "hash_bank.add", "hash_bank.delete"]


def test_add_is_idempotent_and_remove_by_id_or_hash(repo: HashBankRepository) -> None:
    repo.create_bank(Bank(name="b1", category="hate"), actor="t")
    first = repo.add_hashes("b1", [_pdq(0, source="s", added_by="alice"), _pdq(1), _pdq(1),
                                   BankEntry(signal_type="md5", signal=MD5)], actor="cli:bob")
    assert (first.added, first.duplicates) == (3, 1)
    again = repo.add_hashes("b1", [_pdq(0), _pdq(2)], actor="t")
    assert (again.added, again.duplicates) == (1, 1)
    stored = repo.list_hashes("b1")
    assert [e.signal for e in stored] == [PDQS[0], PDQS[1], MD5, PDQS[2]]
    assert (stored[0].added_by, stored[0].source, stored[1].added_by) == ("alice", "s", "cli:bob")
    assert stored[0].added_at is not None and stored[0].added_at.tzinfo is not None
    assert [e.signal for e in repo.list_hashes("b1", signal_type="md5")] == [MD5]
    assert [e.id for e in repo.list_hashes("b1", after_id=stored[1].id, limit=1)] == [stored[2].id]
    assert repo.remove_hashes("b1", actor="t", ids=[stored[0].id, 999_999]) == 1
    assert repo.remove_hashes("b1", actor="t", signals=[("pdq", PDQS[1].upper()), ("video_md5", MD5)]) == 2
    assert [e.signal for e in repo.list_hashes("b1")] == [PDQS[2]]
    found = repo.find_signal("pdq", PDQS[2])
    assert [(f.bank, f.entry.signal) for f in found] == [("b1", PDQS[2])]
    assert repo.get_hashes([found[0].entry.id])[found[0].entry.id].bank == "b1"
    with pytest.raises(BankNotFound):
        repo.add_hashes("nope", [_pdq(3)], actor="t")


def test_fingerprint_moves_on_every_change_and_matcher_follows(repo: HashBankRepository) -> None:
    fps = [repo.fingerprint()]
    repo.create_bank(Bank(name="a", category="violence"), actor="t")
    repo.create_bank(Bank(name="b", category="hate", enabled=False), actor="t")
    fps.append(repo.fingerprint())
    ids = repo.add_hashes("a", [_pdq(i) for i in range(10)] + [BankEntry(signal_type="md5", signal=MD5)],
                          actor="t").ids
    repo.add_hashes("b", [_pdq(20)], actor="t")
    fps.append(repo.fingerprint())
    matcher, fp = repo.load_matcher()
    assert fp == repo.fingerprint() == fps[-1]
    assert [b.name for b in matcher.banks] == ["a"]  # disabled banks are not loaded
    (m,) = matcher.match_pdq(PDQS[3])
    assert (m.bank, m.entry_id, m.distance) == ("a", ids[3], 0)
    assert matcher.match_pdq(PDQS[20]) == []
    assert [x.entry_id for x in matcher.match_md5(MD5)] == [ids[10]]
    repo.remove_hashes("a", actor="t", ids=[ids[3]])
    fps.append(repo.fingerprint())
    repo.update_bank("b", actor="t", enabled=True)
    fps.append(repo.fingerprint())
    assert len(set(fps)) == len(fps)
    matcher, _ = repo.load_matcher()
    assert matcher.match_pdq(PDQS[3]) == [] and [m.bank for m in matcher.match_pdq(PDQS[20])] == ["b"]
    only_a, _ = repo.load_matcher(banks=["a"])
    assert [b.name for b in only_a.banks] == ["a"]


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_export_import_round_trip_through_the_store(repo: HashBankRepository, fmt: str) -> None:
    bank = Bank(name="src", category="violence", action="escalate", report=True, description="d")
    repo.create_bank(bank, actor="t")
    repo.add_hashes("src", [_pdq(i, source=f"s{i}", note="n", content_id=f"c{i}") for i in range(5)], actor="cli:a")
    text = export_bank(repo.get_bank("src").bank, repo.iter_hashes("src", page=2), fmt=fmt)
    parsed = parse_bank_file(text, fmt=fmt)
    if fmt == "json":
        assert parsed.bank == bank
        repo.create_bank(Bank(**{**parsed.bank.to_dict(), "name": "dst"}), actor="t")
    else:
        assert parsed.bank is None
        repo.create_bank(Bank(name="dst", category="violence"), actor="t")
    assert repo.add_hashes("dst", parsed.entries, actor="t").added == 5
    assert without_ids(repo.list_hashes("dst")) == without_ids(repo.list_hashes("src"))
    if fmt == "json":
        assert repo.get_bank("dst").bank.report is True


def test_large_add_and_load(repo: HashBankRepository) -> None:
    codes = np.random.default_rng(1).integers(0, 256, size=(5000, 32), dtype=np.uint8)
    repo.create_bank(Bank(name="big", category="violence"), actor="t")
    result = repo.add_hashes("big", [BankEntry(signal_type="pdq", signal=h) for h in codes_to_hex(codes)], actor="t")
    assert result.added == 5000
    matcher, _ = repo.load_matcher()
    assert matcher.pdq_count == 5000
    assert matcher.match_pdq(codes_to_hex(codes[4321:4322])[0])[0].distance == 0
    assert sum(1 for _ in repo.iter_hashes("big", page=1000)) == 5000
