"""ReviewRepository on SQLite and PostgreSQL: enqueue, leases, decisions, reports, appeals,
double review and agreement, queue health, reads."""

from __future__ import annotations

from datetime import timedelta

import pytest
from review_helpers import make_decision, make_policy

from warden.core import Content, Policy
from warden.evaluate.agreement import cohen_kappa_score
from warden.review import TaskSpec
from warden.store import Store
from warden.store.review_repo import (
    ContentTextRequired,
    DecisionNotFound,
    InvalidReview,
    LeaseConflict,
    ReviewerExcluded,
    ReviewRepository,
    TaskClosed,
    TaskNotFound,
)
from warden.store.sqltypes import utcnow


def spec(key: str, *, queue: str = "default", severity: str = "low", uncertainty: float = 0.0, reach: int = 0,
         sla_hours: float = 24.0, exclude: str | None = None, content_id: str | None = None) -> TaskSpec:
    return TaskSpec(dedupe_key=key, queue=queue, source="routing", content_id=content_id or f"c-{key}",
                    surface="comment", sla_hours=sla_hours, severity=severity, uncertainty=uncertainty,  # type: ignore[arg-type]
                    reach=reach, exclude_reviewer=exclude)


def moderate(store: Store, repo: ReviewRepository, policy: Policy, cid: str, scores: dict[str, float],
             *, actor: str | None = "u1", text: str = "some text"):
    """What /v1/moderate does: store the decision, queue and archive in one transaction."""
    c = Content(id=cid, text=text, actor_id=actor)
    d = make_decision(repo.policy or policy, c, scores)
    with store.transaction() as tx:
        store.save_decisions([d], tx=tx)
        repo.enqueue_decisions([c], [d], tx=tx)
    return c, d


# -- enqueue ---------------------------------------------------------------------------------
def test_enqueue_is_idempotent(repo: ReviewRepository) -> None:
    first = repo.enqueue([spec("a"), spec("b"), spec("a")])
    assert len(first) == 2
    assert repo.enqueue([spec("a"), spec("b")]) == []
    assert repo.enqueue([spec("b"), spec("c")]) != []
    assert len(repo.list_tasks()) == 3


def test_moderation_enqueue_archives_only_queued_content(store: Store, repo: ReviewRepository,
                                                         policy: Policy) -> None:
    qa_off = ReviewRepository(store, policy=make_policy(qa_sample_rate=0.0))
    moderate(store, qa_off, policy, "held", {"spam": 0.7})
    moderate(store, qa_off, policy, "clear", {"spam": 0.1})
    moderate(store, qa_off, policy, "held", {"spam": 0.7})  # a retry: still one task
    tasks = repo.list_tasks()
    assert [(t.content_id, t.source) for t in tasks] == [("held", "uncertainty")]
    assert [a.content_id for a in store.archived_content()] == ["held"]


# -- leasing ---------------------------------------------------------------------------------
def test_lease_next_takes_the_most_urgent(repo: ReviewRepository) -> None:
    now = utcnow()
    repo.enqueue([spec("low")], now=now)
    repo.enqueue([spec("critical", severity="critical")], now=now)
    repo.enqueue([spec("overdue", sla_hours=1)], now=now - timedelta(hours=3))
    repo.enqueue([spec("elsewhere", queue="reports", severity="critical")], now=now)
    order = [repo.lease_next("default", f"r{i}", now=now).dedupe_key for i in range(3)]  # type: ignore[union-attr]
    assert order == ["overdue", "critical", "low"]
    assert repo.lease_next("default", "r9", now=now) is None


def test_reach_and_uncertainty_break_ties(repo: ReviewRepository) -> None:
    now = utcnow()
    repo.enqueue([spec("plain"), spec("viral", reach=1_000_000), spec("unsure", uncertainty=1.0)], now=now)
    order = [repo.lease_next("default", "r", now=now).dedupe_key for _ in range(3)]  # type: ignore[union-attr]
    assert order == ["viral", "unsure", "plain"]


def test_excluded_reviewer_is_skipped(repo: ReviewRepository) -> None:
    (tid,) = repo.enqueue([spec("x", exclude="alice")])
    assert repo.lease_next("default", "alice") is None
    with pytest.raises(ReviewerExcluded):
        repo.lease(tid, "alice")
    task = repo.lease_next("default", "bob")
    assert task is not None and task.id == tid and task.lease_owner == "bob" and task.status == "leased"


def test_expired_lease_returns_the_task(repo: ReviewRepository) -> None:
    t0 = utcnow()
    (tid,) = repo.enqueue([spec("x")], now=t0)
    first = repo.lease_next("default", "alice", now=t0)
    assert first is not None and first.lease_expires_at == t0 + timedelta(minutes=15)
    assert repo.lease_next("default", "bob", now=t0 + timedelta(minutes=14)) is None
    again = repo.lease_next("default", "bob", now=t0 + timedelta(minutes=16))
    assert again is not None and again.id == tid and again.lease_owner == "bob" and again.lease_count == 2
    with pytest.raises(LeaseConflict):  # alice's lease is gone
        repo.submit(tid, "alice", labels={"spam": False}, action="allow", policy_version="v",
                    now=t0 + timedelta(minutes=17))
    repo.submit(tid, "bob", labels={"spam": False}, action="allow", policy_version="v",
                now=t0 + timedelta(minutes=17))


def test_lease_release_and_renew(repo: ReviewRepository) -> None:
    (tid,) = repo.enqueue([spec("x")])
    leased = repo.lease(tid, "alice")
    assert leased.lease_owner == "alice" and leased.lease_count == 1
    assert repo.lease(tid, "alice").lease_count == 1  # renewing is not a new hand-out
    with pytest.raises(LeaseConflict):
        repo.lease(tid, "bob")
    with pytest.raises(LeaseConflict):
        repo.release(tid, "bob")
    released = repo.release(tid, "alice")
    assert released.status == "open" and released.lease_owner is None
    assert repo.lease(tid, "bob").lease_owner == "bob"
    with pytest.raises(TaskNotFound):
        repo.lease(999_999, "bob")


# -- decisions -------------------------------------------------------------------------------
def test_submit_writes_decision_labels_and_closes(store: Store, repo: ReviewRepository, policy: Policy) -> None:
    _, d = moderate(store, repo, policy, "c1", {"spam": 0.7, "hate": 0.45})
    task = repo.lease_next("default", "alice")
    assert task is not None and task.decision_id == d.decision_id
    with pytest.raises(LeaseConflict):
        repo.submit(task.id, "bob", labels={"spam": True}, action="remove", policy_version=policy.version)
    with pytest.raises(InvalidReview):
        repo.submit(task.id, "alice", labels={"nudity": True}, action="remove", policy_version=policy.version)
    with pytest.raises(InvalidReview):
        repo.submit(task.id, "alice", labels={"spam": True}, action="hold_for_review", policy_version="v")
    with pytest.raises(InvalidReview):
        repo.submit(task.id, "alice", labels={}, action="remove", policy_version="v")
    res = repo.submit(task.id, "alice", labels={"spam": True, "hate": False}, action="remove", note="ad",
                      policy_version=policy.version)
    assert (res.source, res.action, res.original_action) == ("uncertainty", "remove", "hold_for_review")
    assert res.enforce and not res.overturned and res.outcome is None and res.violating == ("spam",)
    assert res.actor_id == "u1"
    with pytest.raises(TaskClosed):
        repo.submit(task.id, "alice", labels={"spam": True}, action="remove", policy_version=policy.version)
    examples = repo.labeled_examples()
    assert sorted((e.category, e.violating, e.reviewer, e.source, e.text) for e in examples) == [
        ("hate", False, "alice", "uncertainty", "some text"), ("spam", True, "alice", "uncertainty", "some text")]
    view = repo.get_task(task.id)
    assert view is not None and view.task.status == "done" and view.text == "some text"
    assert view.decision is not None and view.decision.payload["scores"]["spam"] == 0.7
    assert [r.reviewer for r in view.review_decisions] == ["alice"]
    assert view.actor_history is not None and [x.decision_id for x in view.actor_history.decisions] == [d.decision_id]
    audit = store.audit_events(event="review.decision")
    assert audit[-1].subject == str(task.id) and "ad" not in str(audit[-1].details)


def test_qa_sample_overturn_writes_review_outcomes(store: Store, repo: ReviewRepository, policy: Policy) -> None:
    _, d = moderate(store, repo, policy, "qa1", {"spam": 0.95})
    (task,) = repo.list_tasks(source="qa_sample")
    repo.lease(task.id, "alice")
    res = repo.submit(task.id, "alice", labels={"spam": False}, action="allow", policy_version=policy.version)
    assert res.original_action == "remove" and res.overturned and res.enforce and res.outcome == "overturned"
    (outcome,) = store.review_outcomes(source="qa_sample")
    assert (outcome.decision_id, outcome.category, outcome.verdict, outcome.sample_rate) == (
        d.decision_id, "spam", "overturned", 1.0)


def test_qa_sample_upheld(store: Store, repo: ReviewRepository, policy: Policy) -> None:
    moderate(store, repo, policy, "qa2", {"spam": 0.95})
    (task,) = repo.list_tasks(source="qa_sample")
    repo.lease(task.id, "alice")
    res = repo.submit(task.id, "alice", labels={"spam": True}, action="remove", policy_version=policy.version)
    assert res.outcome == "upheld" and not res.overturned and not res.enforce
    assert [o.verdict for o in store.review_outcomes()] == ["upheld"]


# -- appeals ---------------------------------------------------------------------------------
def test_appeal_is_decided_by_a_different_reviewer(store: Store, repo: ReviewRepository, policy: Policy) -> None:
    _, d = moderate(store, repo, policy, "ap1", {"hate": 0.6})
    task = repo.lease_next("default", "alice")
    assert task is not None
    repo.submit(task.id, "alice", labels={"hate": True}, action="remove", policy_version=policy.version)

    res = repo.create_appeal(d.decision_id, reason="it was satire", appellant="u1")
    assert res.created and res.task is not None and res.appeal.original_reviewer == "alice"
    assert res.task.queue == "appeals" and res.task.exclude_reviewer == "alice"
    again = repo.create_appeal(d.decision_id, reason="again", appellant="u1")
    assert not again.created and again.appeal.id == res.appeal.id

    assert repo.lease_next("appeals", "alice") is None
    with pytest.raises(ReviewerExcluded):
        repo.lease(res.task.id, "alice")
    assert repo.lease_next("appeals", "bob") is not None
    with pytest.raises(ReviewerExcluded):
        repo.submit(res.task.id, "alice", labels={"hate": True}, action="remove", policy_version=policy.version)
    out = repo.submit(res.task.id, "bob", labels={"hate": False}, action="allow", policy_version=policy.version)
    assert out.original_action == "remove" and out.overturned and out.enforce and out.outcome == "overturned"
    assert out.appeal is not None and out.appeal.status == "overturned" and out.appeal.decided_by == "bob"
    assert store.review_outcomes(source="appeal") == []  # a human decision was appealed, not the automation
    view = repo.get_task(res.task.id)
    assert view is not None and view.appeal is not None and view.appeal.status == "overturned"


def test_appeal_of_automated_decision(store: Store, repo: ReviewRepository, policy: Policy) -> None:
    _, d = moderate(store, ReviewRepository(store, policy=make_policy(qa_sample_rate=0.0)), policy, "ap2",
                    {"hate": 0.9})
    res = repo.create_appeal(d.decision_id, reason="no", appellant=None, text="the text")
    assert res.task is not None and res.task.exclude_reviewer is None and res.task.severity == "high"
    repo.lease(res.task.id, "carol")
    out = repo.submit(res.task.id, "carol", labels={"hate": True}, action="remove", policy_version=policy.version)
    assert out.outcome == "upheld" and not out.overturned and out.appeal is not None
    assert out.appeal.status == "upheld"
    assert [(o.source, o.verdict) for o in store.review_outcomes()] == [("appeal", "upheld")]


def test_appeal_needs_a_decision_and_the_text(store: Store, repo: ReviewRepository, policy: Policy) -> None:
    with pytest.raises(DecisionNotFound):
        repo.create_appeal("nope", reason="x", appellant=None)
    c = Content(id="noarchive", text="hidden")
    d = make_decision(policy, c, {"spam": 0.99})
    store.save_decisions([d])
    with pytest.raises(ContentTextRequired):
        repo.create_appeal(d.decision_id, reason="x", appellant=None)
    res = repo.create_appeal(d.decision_id, reason="x", appellant=None, text="hidden")
    assert res.task is not None and repo.get_task(res.task.id).text == "hidden"  # type: ignore[union-attr]


# -- reports ---------------------------------------------------------------------------------
def test_reports_are_counted_per_content(store: Store, repo: ReviewRepository, policy: Policy) -> None:
    with pytest.raises(ContentTextRequired):
        repo.create_report("r1", reason="spam", reporter="u7")
    with pytest.raises(InvalidReview):
        repo.create_report("r1", reason="spam", reporter="u7", text="x", category="nudity")
    first = repo.create_report("r1", reason="spam", reporter="u7", text="buy buy", category="spam", reach=10)
    assert first.created and first.report_count == 1 and first.task.queue == "reports"
    second = repo.create_report("r1", reason="also spam", reporter="u8", reach=500)
    assert not second.created and second.report_count == 2 and second.task.id == first.task.id
    assert second.task.reach == 500 and len(second.task.details["reports"]) == 2
    assert [a.text for a in store.archived_content(content_ids=["r1"])] == ["buy buy"]


def test_report_of_allowed_item_overturns(store: Store, repo: ReviewRepository, policy: Policy) -> None:
    _, d = moderate(store, ReviewRepository(store, policy=make_policy(qa_sample_rate=0.0)), policy, "r2",
                    {"spam": 0.2})
    store.archive_content([Content(id="r2", text="some text")])
    rep = repo.create_report("r2", reason="spam", reporter="u9")
    assert rep.task.decision_id == d.decision_id
    repo.lease(rep.task.id, "dave")
    out = repo.submit(rep.task.id, "dave", labels={"spam": True}, action="remove", policy_version=policy.version)
    assert out.original_action == "allow" and out.overturned and out.enforce
    assert [(o.source, o.category, o.verdict) for o in store.review_outcomes()] == [("report", "spam", "overturned")]


# -- double review and agreement ---------------------------------------------------------------
def test_double_review_spawns_an_independent_task(store: Store, policy: Policy) -> None:
    repo = ReviewRepository(store, policy=make_policy(double_review_rate=1.0, qa_sample_rate=0.0))
    (tid,) = repo.enqueue([spec("x")])
    repo.lease(tid, "alice")
    res = repo.submit(tid, "alice", labels={"spam": True}, action="remove", policy_version="v")
    assert res.double_review_task_id is not None
    (child,) = repo.list_tasks(source="double_review")
    assert child.parent_task_id == tid and child.exclude_reviewer == "alice" and child.queue == "default"
    assert repo.lease_next("default", "alice") is None
    repo.lease(child.id, "bob")
    second = repo.submit(child.id, "bob", labels={"spam": False}, action="allow", policy_version="v")
    assert second.double_review_task_id is None and not second.overturned and not second.enforce
    assert repo.agreement(n_bootstrap=0).n_pairs == 1


def test_agreement_is_cohens_kappa_per_category(store: Store) -> None:
    repo = ReviewRepository(store, policy=make_policy(double_review_rate=1.0, qa_sample_rate=0.0))
    first = [True, True, False, False, True, False, True, False, False, True]
    second = [True, False, False, False, True, True, True, False, False, True]
    hate_a = [False] * 5 + [True] * 5
    hate_b = [False] * 4 + [True] * 6
    for i, (a, b, ha, hb) in enumerate(zip(first, second, hate_a, hate_b, strict=True)):
        (tid,) = repo.enqueue([spec(f"k{i}")])
        repo.lease(tid, "alice")
        child = repo.submit(tid, "alice", labels={"spam": a, "hate": ha}, action="allow",
                            policy_version="v").double_review_task_id
        assert child is not None
        repo.lease(child, "bob")
        repo.submit(child, "bob", labels={"spam": b, "hate": hb}, action="allow", policy_version="v")
    result = repo.agreement(n_bootstrap=50)
    assert result.n_pairs == 10
    assert result.by_category["spam"].kappa is not None
    assert result.by_category["spam"].kappa.value == pytest.approx(cohen_kappa_score(first, second))
    assert result.by_category["spam"].kappa.value == pytest.approx(0.6)
    assert result.by_category["hate"].kappa.value == pytest.approx(cohen_kappa_score(hate_a, hate_b))


def test_agreement_without_pairs(repo: ReviewRepository) -> None:
    assert repo.agreement().n_pairs == 0


# -- queue health ----------------------------------------------------------------------------
def test_queue_stats(repo: ReviewRepository, policy: Policy) -> None:
    now = utcnow()
    repo.enqueue([spec("old", sla_hours=1)], now=now - timedelta(hours=2))
    repo.enqueue([spec("new"), spec("rep", queue="reports")], now=now)
    (tid,) = repo.enqueue([spec("leased")], now=now)
    repo.lease(tid, "alice", now=now)
    stats = {s.queue: s for s in repo.queue_stats(now=now)}
    assert list(stats) == list(policy.review.queues)
    d = stats["default"]
    assert (d.open, d.leased, d.overdue, d.sla_hours) == (2, 1, 1, 24.0)
    assert d.oldest_age_seconds == pytest.approx(7200, abs=1)
    assert (stats["reports"].open, stats["appeals"].open, stats["appeals"].oldest_age_seconds) == (1, 0, None)
    later = {s.queue: s for s in repo.queue_stats(now=now + timedelta(minutes=20))}
    assert (later["default"].open, later["default"].leased) == (3, 0)  # the lease expired


def test_actor_history_spans_decisions_and_reviews(store: Store, repo: ReviewRepository, policy: Policy) -> None:
    moderate(store, repo, policy, "h1", {"spam": 0.7}, actor="troll")
    moderate(store, repo, policy, "h2", {"hate": 0.6}, actor="troll")
    moderate(store, repo, policy, "h3", {"hate": 0.6}, actor="someone")
    task = repo.lease_next("default", "alice")
    assert task is not None
    repo.submit(task.id, "alice", labels={"hate": True}, action="remove", policy_version=policy.version)
    hist = repo.actor_history("troll")
    assert sorted(d.content_id for d in hist.decisions) == ["h1", "h2"]
    assert all(r.content_id in ("h1", "h2") for r in hist.reviews)


# -- escalation ------------------------------------------------------------------------------
def test_escalate_hands_the_item_to_a_senior_queue(store: Store, policy: Policy) -> None:
    pol = make_policy(queues={"default": {"sla_hours": 24}, "appeals": {"sla_hours": 48},
                              "senior": {"sla_hours": 4}, "reports": {"sla_hours": 24}, "learning": {"sla_hours": 72},
                              "priority": {"sla_hours": 1}},
                      escalation_queue="senior")
    assert pol.review.senior_queues == frozenset({"appeals", "senior"})
    repo = ReviewRepository(store, policy=pol)
    _, d = moderate(store, repo, pol, "esc1", {"hate": 0.6})
    task = repo.lease_next("default", "alice")
    assert task is not None
    res = repo.submit(task.id, "alice", labels={"hate": True}, action="escalate", note="context needed",
                      policy_version=pol.version)
    assert not res.enforce and res.outcome is None and res.escalation_task_id is not None
    senior = repo.get_task(res.escalation_task_id)
    assert senior is not None
    t = senior.task
    assert (t.queue, t.source, t.decision_id, t.exclude_reviewer, t.parent_task_id) == (
        "senior", task.source, d.decision_id, "alice", task.id)
    assert (t.due_at - t.created_at) == timedelta(hours=4)
    assert repo.lease_next("senior", "alice") is None  # the escalating reviewer never decides it
    assert repo.lease_next("senior", "sam") is not None
    out = repo.submit(t.id, "sam", labels={"hate": False}, action="allow", policy_version=pol.version)
    # the senior's call is the one in force: it releases the held item (enforced like any held item)
    assert out.enforce and out.original_action == "hold_for_review" and out.action == "allow"
    assert [e.event for e in store.audit_events(event="review.escalated")] == ["review.escalated"]


def test_escalated_appeal_keeps_its_appeal(store: Store, repo: ReviewRepository, policy: Policy) -> None:
    """Without an escalation queue the appeal queue takes escalations; the appeal follows the task."""
    _, d = moderate(store, repo, policy, "esc2", {"hate": 0.6})
    task = repo.lease_next("default", "alice")
    assert task is not None
    repo.submit(task.id, "alice", labels={"hate": True}, action="remove", policy_version=policy.version)
    appeal = repo.create_appeal(d.decision_id, reason="satire", appellant="u1")
    assert appeal.task is not None
    repo.lease(appeal.task.id, "bob")
    esc = repo.submit(appeal.task.id, "bob", labels={"hate": True}, action="escalate", policy_version=policy.version)
    assert esc.appeal is not None and esc.appeal.status == "open" and not esc.enforce
    assert esc.escalation_task_id is not None
    new = repo.get_task(esc.escalation_task_id)
    assert new is not None and new.task.queue == "appeals" and new.task.source == "appeal"
    assert new.task.exclude_reviewer == "alice"  # the appealed reviewer stays excluded
    repo.lease(esc.escalation_task_id, "carol")
    out = repo.submit(esc.escalation_task_id, "carol", labels={"hate": False}, action="allow",
                      policy_version=policy.version)
    # compared with alice's removal, not with bob's escalation
    assert out.original_action == "remove" and out.overturned and out.enforce
    assert out.appeal is not None and out.appeal.status == "overturned" and out.appeal.decided_by == "carol"
