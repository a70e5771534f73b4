from __future__ import annotations

import threading
import uuid

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.exc import DBAPIError

from warden.core import Action, CategoryVerdict, Decision, Evidence, Reason, Span, Verdict
from warden.store import Store, decision_payload
from warden.store.keys import hash_key, parse_key, redact_key
from warden.store.models import Base


def make_decision(content_id: str | None = None, version: str = "1", action: Action = Action.REMOVE) -> Decision:
    cid = content_id or uuid.uuid4().hex
    ev = Evidence(category="hate", rule="bank:slurs", spans=(Span(0, 6, "SECRET"),), detail="keyword")
    return Decision(
        content_id=cid,
        policy_name="default",
        policy_version=version,
        surface="comment",
        action=action,
        automated=True,
        verdicts=(CategoryVerdict("hate", Verdict.VIOLATING, 0.97, 0.9, 0.5, "bank"),),
        reasons=(Reason("hate", Verdict.VIOLATING, "bank", 0.97, 0.9, "comment", "flag", (ev,)),),
        scores={"hate": 0.97},
    )


# -- migrations --------------------------------------------------------------------------
def test_upgrade_on_empty_database_creates_schema_and_is_idempotent(empty_db_url: str) -> None:
    store = Store.from_url(empty_db_url)
    try:
        assert store.current_revision() is None
        store.upgrade()
        assert store.current_revision() == store.head_revision() == "0004"
        store.upgrade()  # second run is a no-op
        names = set(inspect(store.engine).get_table_names())
        assert {"decisions", "audit_log", "api_keys", "alembic_version"} <= names
    finally:
        store.close()


def test_models_match_migrations(store: Store) -> None:
    with store.engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    assert diffs == []


# -- decisions ---------------------------------------------------------------------------
def test_save_decisions_is_idempotent(store: Store) -> None:
    d = make_decision()
    assert store.save_decisions([d]) == 1
    assert store.save_decisions([d]) == 0
    # the same (content_id, policy_version) with a different outcome is still stored once
    assert store.save_decisions([make_decision(d.content_id, action=Action.ALLOW)]) == 0
    assert store.get_decision(d.decision_id).action == "remove"
    # duplicates inside one batch, plus a new policy version for the same content
    other = make_decision()
    assert store.save_decisions([other, other, make_decision(d.content_id, version="2")]) == 2
    assert store.save_decisions([]) == 0


def test_concurrent_saves_store_once(store: Store) -> None:
    d = make_decision()
    results: list[int] = []
    threads = [threading.Thread(target=lambda: results.append(store.save_decisions([d]))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [0] * 7 + [1]


def test_get_decision_by_id_and_content_id(store: Store) -> None:
    d1 = make_decision(version="2024-01")
    store.save_decisions([d1])
    d2 = make_decision(d1.content_id, version="2024-02", action=Action.ALLOW)
    store.save_decisions([d2])
    rec = store.get_decision(d1.decision_id)
    assert rec is not None and rec.policy_version == "2024-01" and rec.flagged == ["hate"]
    assert rec.created_at.tzinfo is not None
    latest = store.get_decision(d1.content_id)
    assert latest is not None and latest.decision_id == d2.decision_id and latest.action == "allow"
    assert store.get_decision("nope-" + uuid.uuid4().hex) is None


def test_payload_has_no_content_text(store: Store) -> None:
    d = make_decision()
    store.save_decisions([d])
    payload = store.get_decision(d.decision_id).payload
    assert "SECRET" not in repr(payload)
    assert payload["reasons"][0]["evidence"][0]["spans"] == [{"start": 0, "end": 6}]
    expected = d.to_dict()
    expected["reasons"][0]["evidence"][0]["spans"][0].pop("text")
    assert payload == expected == decision_payload(d)


# -- audit log ---------------------------------------------------------------------------
def test_audit_append_and_query(store: Store) -> None:
    subject = uuid.uuid4().hex
    e1 = store.append_audit("api_key:1", "moderate", subject, {"n": 1})
    e2 = store.append_audit("cli:root", "api_key.create", subject, {"role": "admin"})
    events = store.audit_events(subject=subject)
    assert [e.id for e in events] == [e1.id, e2.id]
    assert events[1].details == {"role": "admin"} and events[0].ts.tzinfo is not None
    assert [e.id for e in store.audit_events(subject=subject, after_id=e1.id)] == [e2.id]
    assert [e.id for e in store.audit_events(subject=subject, event="moderate")] == [e1.id]


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE audit_log SET actor = 'mallory' WHERE id = :id",
        "UPDATE audit_log SET details = details WHERE id = :id",
        "DELETE FROM audit_log WHERE id = :id",
        "DELETE FROM audit_log",
    ],
)
def test_audit_log_is_append_only(store: Store, sql: str) -> None:
    ev = store.append_audit("x", "test", uuid.uuid4().hex, {})
    with pytest.raises(DBAPIError, match="append-only"), store.engine.begin() as conn:
        conn.execute(text(sql), {"id": ev.id})
    assert [e.id for e in store.audit_events(subject=ev.subject)] == [ev.id]


def test_audit_log_truncate_rejected_on_postgres(store: Store) -> None:
    if store.dialect != "postgresql":
        pytest.skip("SQLite has no TRUNCATE")
    with pytest.raises(DBAPIError, match="append-only"), store.engine.begin() as conn:
        conn.execute(text("TRUNCATE audit_log"))


# -- API keys ----------------------------------------------------------------------------
def test_api_key_create_and_authenticate(store: Store) -> None:
    record, plaintext = store.create_api_key("ci-client", "client")
    parsed = parse_key(plaintext)
    assert parsed is not None and parsed.prefix == record.prefix
    assert len(bytes.fromhex(parsed.secret)) == 32  # 256-bit secret
    auth = store.authenticate(plaintext)
    assert auth is not None and auth.id == record.id and auth.role == "client" and auth.last_used_at is not None
    # the plaintext is stored nowhere
    with store.engine.connect() as conn:
        row = conn.execute(text("SELECT * FROM api_keys WHERE id = :id"), {"id": record.id}).mappings().one()
    assert plaintext not in repr(dict(row)) and parsed.secret not in repr(dict(row))
    assert row["key_hash"] == hash_key(plaintext)


def test_api_key_rejections(store: Store) -> None:
    _record, plaintext = store.create_api_key("k", "admin")
    wrong_secret = plaintext[:-1] + ("0" if plaintext[-1] != "0" else "1")
    unknown_prefix = f"wdn_{'0' * 12}_{'a' * 64}"
    for bad in [wrong_secret, unknown_prefix, "", None, "garbage", plaintext + "x", plaintext.upper()]:
        assert store.authenticate(bad) is None


def test_api_key_revocation(store: Store) -> None:
    record, plaintext = store.create_api_key("to-revoke", "reviewer")
    assert store.authenticate(plaintext) is not None
    revoked = store.revoke_api_key(record.id)
    assert revoked is not None and revoked.revoked_at is not None and not revoked.active
    assert store.authenticate(plaintext) is None
    again = store.revoke_api_key(record.id)
    assert again is not None and again.revoked_at == revoked.revoked_at
    assert store.revoke_api_key(10**12) is None
    listed = {k.id: k for k in store.list_api_keys()}
    assert listed[record.id].revoked_at is not None
    assert record.id not in {k.id for k in store.list_api_keys(include_revoked=False)}


def test_api_key_invalid_role_and_name(store: Store) -> None:
    with pytest.raises(ValueError, match="allowed: client, reviewer, admin"):
        store.create_api_key("x", "root")
    with pytest.raises(ValueError, match="name"):
        store.create_api_key("  ", "client")


def test_ping(store: Store) -> None:
    assert store.ping()


def test_redact_key() -> None:
    _, plaintext = __import__("warden.store.keys", fromlist=["generate_key"]).generate_key()
    prefix = parse_key(plaintext).prefix
    out = redact_key(f"Authorization: Bearer {plaintext} done")
    assert plaintext not in out and f"wdn_{prefix}_[redacted]" in out


def test_decisions_and_audit_commit_together_or_not_at_all(store: Store) -> None:
    before_decisions, before_audit = store.count_decisions(), len(store.audit_events(limit=10_000))
    with pytest.raises(RuntimeError), store.transaction() as tx:
        store.save_decisions([make_decision()], tx=tx)
        store.append_audit(actor="t", event="moderate", tx=tx)
        raise RuntimeError("fail after both writes")
    assert store.count_decisions() == before_decisions
    assert len(store.audit_events(limit=10_000)) == before_audit
    with store.transaction() as tx:
        assert store.save_decisions([make_decision()], tx=tx) == 1
        store.append_audit(actor="t", event="moderate", tx=tx)
    assert store.count_decisions() == before_decisions + 1


def test_auth_cache_never_outlives_a_revocation_through_the_store(store: Store) -> None:
    store.auth_cache_seconds = 60.0
    record, plaintext = store.create_api_key(f"cache-{uuid.uuid4().hex[:6]}", "client")
    assert store.authenticate(plaintext) == store.authenticate(plaintext)  # second one from the cache
    store.revoke_api_key(record.id)
    assert store.authenticate(plaintext) is None
    # A revocation by another process (direct DB write) is seen once the cache entry expires.
    other, key2 = store.create_api_key(f"cache-{uuid.uuid4().hex[:6]}", "client")
    store.auth_cache_seconds = 0.0
    assert store.authenticate(key2) is not None
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE api_keys SET revoked_at = CURRENT_TIMESTAMP WHERE id = :i"), {"i": other.id})
    assert store.authenticate(key2) is None
