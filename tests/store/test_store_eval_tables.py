"""Migration 0002 (content archive, shadow_decisions, review_outcomes) and their Store
methods, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from warden.core import Action, CategoryVerdict, Content, Decision, Evidence, Reason, Span, Verdict
from warden.store import ReviewOutcome, Store


def decision(cid: str, version: str, action: Action = Action.REMOVE, flagged: bool = True) -> Decision:
    verdict = Verdict.VIOLATING if flagged else Verdict.CLEAR
    ev = Evidence(category="hate", rule="bank:x", spans=(Span(0, 6, "SECRET"),))
    return Decision(content_id=cid, policy_name="p", policy_version=version, surface="comment", action=action,
                    automated=True, verdicts=(CategoryVerdict("hate", verdict, 0.9, 0.8, 0.5, "bank"),),
                    reasons=(Reason("hate", verdict, "bank", 0.9, 0.8, "comment", "flag", (ev,)),),
                    scores={"hate": 0.9})


def test_upgrade_from_0001_to_head_keeps_data(empty_db_url: str) -> None:
    store = Store.from_url(empty_db_url)
    try:
        store.upgrade("0001")
        assert store.current_revision() == "0001"
        assert "shadow_decisions" not in inspect(store.engine).get_table_names()
        store.save_decisions([decision("keep-me", "v1")])
        store.append_audit("t", "before-0002")
        store.upgrade()
        assert store.current_revision() == store.head_revision()
        tables = set(inspect(store.engine).get_table_names())
        assert {"content", "shadow_decisions", "review_outcomes", "review_tasks", "users"} <= tables
        assert store.get_decision("keep-me") is not None
        assert store.audit_events(event="before-0002")
        store.upgrade()  # idempotent
    finally:
        store.close()


def test_downgrade_0002_to_0001(empty_db_url: str) -> None:
    from alembic import command

    store = Store.from_url(empty_db_url)
    try:
        store.upgrade()
        with store.engine.begin() as conn:
            cfg = store._alembic_config()
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0001")
        assert store.current_revision() == "0001"
        assert "review_outcomes" not in inspect(store.engine).get_table_names()
    finally:
        store.close()


def test_content_archive_roundtrip_and_purge(store: Store) -> None:
    tag = uuid.uuid4().hex[:8]
    items = [Content(id=f"{tag}-1", text="one", surface="chat", actor_id="u1"), Content(id=f"{tag}-2", text="two"),
             Content(id=f"{tag}-3", text=None)]
    assert store.archive_content(items) == 2
    assert store.archive_content([Content(id=f"{tag}-1", text="changed")]) == 0  # first text wins
    got = {a.content_id: a for a in store.archived_content(content_ids=[f"{tag}-1", f"{tag}-2", f"{tag}-3"])}
    assert set(got) == {f"{tag}-1", f"{tag}-2"}
    assert (got[f"{tag}-1"].text, got[f"{tag}-1"].surface, got[f"{tag}-1"].actor_id) == ("one", "chat", "u1")
    assert got[f"{tag}-1"].created_at.tzinfo is not None
    assert store.purge_content(before=datetime.now(UTC) - timedelta(days=1)) == 0
    assert store.purge_content(before=datetime.now(UTC) + timedelta(seconds=1)) >= 2
    assert store.archived_content(content_ids=[f"{tag}-1"]) == []


def test_shadow_decisions_pairs(store: Store) -> None:
    tag = uuid.uuid4().hex[:8]
    live = [decision(f"{tag}-{i}", "live-1") for i in range(3)]
    cand_version = f"cand-{tag}"
    shadow = [decision(f"{tag}-{i}", cand_version, Action.ALLOW if i == 0 else Action.REMOVE, flagged=i != 0)
              for i in range(3)]
    store.save_decisions(live)
    assert store.save_shadow_decisions(zip(live, shadow, strict=True)) == 3
    assert store.save_shadow_decisions(zip(live, shadow, strict=True)) == 0
    pairs = store.shadow_comparisons(policy_version=cand_version)
    assert [sh.content_id for _, sh in pairs] == [f"{tag}-{i}" for i in range(3)]
    lv, sh = pairs[0]
    assert (lv.action, sh.action, sh.flagged, sh.live_policy_version) == ("remove", "allow", [], "live-1")
    assert "SECRET" not in str(sh.payload)
    assert store.shadow_comparisons(policy_version=cand_version, since=datetime.now(UTC) + timedelta(hours=1)) == []
    with pytest.raises(ValueError, match="paired"):
        store.save_shadow_decisions([(live[0], shadow[1])])


def test_list_decisions_filters(store: Store) -> None:
    tag = uuid.uuid4().hex[:8]
    store.save_decisions([decision(f"{tag}-a", "v1"), decision(f"{tag}-a", "v2"), decision(f"{tag}-b", "v1")])
    got = store.list_decisions(content_ids=[f"{tag}-a", f"{tag}-b"])
    assert sorted((r.content_id, r.policy_version) for r in got) == [
        (f"{tag}-a", "v1"), (f"{tag}-a", "v2"), (f"{tag}-b", "v1")]
    assert [r.policy_version for r in store.list_decisions(content_ids=[f"{tag}-a"], policy_version="v2")] == ["v2"]


def test_review_outcomes_record_and_read(store: Store) -> None:
    version = f"pv-{uuid.uuid4().hex[:8]}"
    base = {"decision_id": "d1", "content_id": "c1", "category": "hate", "surface": "comment",
            "policy_version": version, "action": "remove", "reviewer": "r@x"}
    a = store.record_review_outcome(ReviewOutcome(**base, verdict="upheld", source="qa_sample", sample_rate=0.05))
    b = store.record_review_outcome(ReviewOutcome(**base, verdict="overturned", source="appeal"))
    assert a.id is not None and a.created_at is not None and a.sample_rate == pytest.approx(0.05)
    got = store.review_outcomes(policy_version=version)
    assert [(o.source, o.verdict) for o in got] == [("qa_sample", "upheld"), ("appeal", "overturned")]
    assert store.review_outcomes(policy_version=version, source="appeal") == [b]
    for bad in ({"verdict": "maybe", "source": "appeal"}, {"verdict": "upheld", "source": "nope"},
                {"verdict": "upheld", "source": "qa_sample", "sample_rate": 0.0}):
        with pytest.raises(ValueError):
            store.record_review_outcome(ReviewOutcome(**base, **bad))


def test_review_outcomes_check_constraints_in_the_database(store: Store) -> None:
    with pytest.raises(IntegrityError), store.engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO review_outcomes (decision_id, content_id, category, surface, policy_version, action, "
            "verdict, source, reviewer, created_at) VALUES ('d', 'c', 'hate', 'comment', 'v', 'remove', "
            "'wrong', 'appeal', 'r', CURRENT_TIMESTAMP)"))
