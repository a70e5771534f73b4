"""The review queue in the database: tasks, leases, reviewer decisions, labels, reports,
appeals, queue health and inter-reviewer agreement.

Why leases: many reviewers (API clients, browser sessions, several service processes) pull
from one queue. A task is handed to one reviewer at a time for `policy.review.lease_minutes`;
an undecided task returns to the queue when its lease expires, so a closed browser tab never
strands work. Leasing is atomic on both dialects:

* PostgreSQL: `SELECT ... FOR UPDATE SKIP LOCKED` on the best candidate, then the UPDATE, in
  one transaction: concurrent leasers skip each other's rows instead of queueing on them.
* SQLite: a conditional `UPDATE ... WHERE id = ? AND <still claimable>` whose rowcount says
  whether this writer won, inside the store's write transaction (serialized in-process;
  across processes the condition decides).

Priority depends on the clock (overdue items rise), so it is computed at lease time over a
bounded candidate window (`CANDIDATE_WINDOW` oldest-due plus `CANDIDATE_WINDOW` most severe
claimable tasks): exact while a queue's backlog fits the window, and beyond it still serves
both the overdue end and the severe end of the queue.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any, ClassVar, Literal

from sqlalchemy import and_, case, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from warden.core.content import DEFAULT_SURFACE, Content
from warden.core.decision import Decision
from warden.core.policy import Action, Policy, Review, Severity
from warden.evaluate.agreement import AgreementReport
from warden.evaluate.agreement import agreement as agreement_reports
from warden.review.priority import priority
from warden.review.routing import (
    OUTCOME_SOURCES,
    TaskSpec,
    appeal_task,
    double_review_task,
    escalation_task,
    report_task,
    route,
    selected_for_double_review,
)
from warden.store.bulk import insert_do_nothing
from warden.store.models import (
    AppealRow,
    ContentRow,
    DecisionRow,
    LabelRow,
    ReviewDecisionRow,
    ReviewOutcomeRow,
    ReviewTaskRow,
)
from warden.store.repository import DecisionRecord, Store, _decision_record
from warden.store.sqltypes import utcnow

T = ReviewTaskRow
CANDIDATE_WINDOW = 500
# What a reviewer may decide: hold_for_review is the automation's "ask a human", not an answer.
REVIEWER_ACTIONS: tuple[str, ...] = tuple(a.value for a in Action if a is not Action.HOLD_FOR_REVIEW)
MAX_NOTE_CHARS = 10_000
MAX_REPORTS_KEPT = 50  # per task: later reports are counted, not listed
_SEVERITY_RANK = case({s.value: s.rank for s in Severity}, value=T.severity, else_=0)


# -- errors: each has a stable `code` (the HTTP layer maps them to statuses) ----------------
class ReviewError(Exception):
    code: ClassVar[str] = "review_error"


class TaskNotFound(ReviewError):
    code = "task_not_found"


class DecisionNotFound(ReviewError):
    code = "decision_not_found"


class ContentTextRequired(ReviewError):
    code = "content_text_required"


class LeaseConflict(ReviewError):
    """The reviewer does not hold a live lease (expired, released, or another reviewer's)."""

    code = "lease_conflict"


class TaskClosed(ReviewError):
    code = "task_closed"


class ReviewerExcluded(ReviewError):
    """This reviewer may not decide this task (an appeal of their own decision, the second
    opinion of a double review they made)."""

    code = "reviewer_excluded"


class InvalidReview(ReviewError):
    code = "invalid_review"


# -- records ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ReviewTask:
    id: int
    dedupe_key: str
    queue: str
    source: str
    decision_id: str | None
    content_id: str
    actor_id: str | None
    surface: str
    policy_version: str | None
    categories: tuple[str, ...]
    severity: str
    uncertainty: float
    reach: int
    status: str
    lease_owner: str | None
    lease_expires_at: datetime | None
    lease_count: int
    exclude_reviewer: str | None
    parent_task_id: int | None
    details: Mapping[str, Any]
    created_at: datetime
    due_at: datetime
    done_at: datetime | None

    @property
    def sla_hours(self) -> float:
        return max((self.due_at - self.created_at).total_seconds() / 3600.0, 1e-6)

    def priority(self, now: datetime) -> float:
        """Urgency at `now` (see `warden.review.priority`)."""
        return priority(severity=self.severity, uncertainty=self.uncertainty, reach=self.reach,
                        age_hours=(now - self.created_at).total_seconds() / 3600.0, sla_hours=self.sla_hours)


@dataclass(frozen=True, slots=True)
class ReviewDecisionRecord:
    id: int
    task_id: int
    reviewer: str
    content_id: str
    decision_id: str | None
    policy_version: str
    action: str
    labels: Mapping[str, bool]
    note: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class AppealRecord:
    id: int
    decision_id: str
    content_id: str
    appellant: str | None
    reason: str
    status: str
    task_id: int | None
    original_reviewer: str | None
    decided_by: str | None
    created_at: datetime
    decided_at: datetime | None


@dataclass(frozen=True, slots=True)
class ActorHistory:
    """What is known about an actor: decisions on their archived or queued content, and
    human review decisions on their items (newest first)."""

    actor_id: str
    decisions: tuple[DecisionRecord, ...]
    reviews: tuple[ReviewDecisionRecord, ...]


@dataclass(frozen=True, slots=True)
class TaskView:
    """Everything a reviewer needs on one screen."""

    task: ReviewTask
    text: str | None
    decision: DecisionRecord | None
    review_decisions: tuple[ReviewDecisionRecord, ...]
    appeal: AppealRecord | None
    actor_history: ActorHistory | None


@dataclass(frozen=True, slots=True)
class ReviewResult:
    """What one reviewer decision did, for the caller to enforce from.

    `action` is the reviewer's; `original_action` the action in force before (the latest
    human decision on the same automated decision, else the automated action; None without a
    decision). `overturned`: on a QA sample, report or appeal, the reviewer changed that
    action. `enforce`: the caller should apply `action` now, i.e. the task held an item for a
    human (`routing`, `uncertainty`) or overturned a decision. Double reviews and
    active-learning picks only produce labels: never `enforce`, never `overturned`."""

    task_id: int
    review_decision_id: int
    source: str
    queue: str
    reviewer: str
    content_id: str
    actor_id: str | None
    decision_id: str | None
    action: str
    labels: Mapping[str, bool]
    violating: tuple[str, ...]
    original_action: str | None
    outcome: Literal["upheld", "overturned"] | None
    overturned: bool
    enforce: bool
    appeal: AppealRecord | None
    double_review_task_id: int | None
    outcome_rows: int
    escalation_task_id: int | None = None  # the reviewer escalated: the senior task now holding the item


@dataclass(frozen=True, slots=True)
class ReportResult:
    task: ReviewTask
    created: bool  # False: the content already had a report task; this report was counted on it
    report_count: int


@dataclass(frozen=True, slots=True)
class AppealResult:
    appeal: AppealRecord
    task: ReviewTask | None
    created: bool  # False: this decision was already appealed (one appeal per decision)


@dataclass(frozen=True, slots=True)
class QueueStats:
    queue: str
    sla_hours: float | None  # None: a queue with tasks that the policy no longer defines
    description: str
    open: int  # includes tasks whose lease expired
    leased: int  # live leases
    overdue: int  # open or leased past their due time
    oldest_age_seconds: float | None  # of the oldest open or leased task


@dataclass(frozen=True, slots=True)
class LabeledExample:
    content_id: str
    text: str
    surface: str
    category: str
    violating: bool
    reviewer: str
    policy_version: str
    source: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ReviewerAgreement:
    """Cohen's kappa per category between the two reviewers of double-reviewed items."""

    n_pairs: int
    by_category: Mapping[str, AgreementReport] = field(default_factory=dict)


# -- row -> record ---------------------------------------------------------------------------
def _task(r: ReviewTaskRow) -> ReviewTask:
    return ReviewTask(
        id=r.id, dedupe_key=r.dedupe_key, queue=r.queue, source=r.source, decision_id=r.decision_id,
        content_id=r.content_id, actor_id=r.actor_id, surface=r.surface, policy_version=r.policy_version,
        categories=tuple(r.categories or ()), severity=r.severity, uncertainty=r.uncertainty, reach=int(r.reach),
        status=r.status, lease_owner=r.lease_owner, lease_expires_at=r.lease_expires_at,
        lease_count=r.lease_count, exclude_reviewer=r.exclude_reviewer, parent_task_id=r.parent_task_id,
        details=MappingProxyType(dict(r.details or {})), created_at=r.created_at, due_at=r.due_at,
        done_at=r.done_at)


def _review_decision(r: ReviewDecisionRow) -> ReviewDecisionRecord:
    return ReviewDecisionRecord(
        id=r.id, task_id=r.task_id, reviewer=r.reviewer, content_id=r.content_id, decision_id=r.decision_id,
        policy_version=r.policy_version, action=r.action, labels=MappingProxyType(dict(r.labels)), note=r.note,
        created_at=r.created_at)


def _appeal(r: AppealRow) -> AppealRecord:
    return AppealRecord(
        id=r.id, decision_id=r.decision_id, content_id=r.content_id, appellant=r.appellant, reason=r.reason,
        status=r.status, task_id=r.task_id, original_reviewer=r.original_reviewer, decided_by=r.decided_by,
        created_at=r.created_at, decided_at=r.decided_at)


def _claimable(now: datetime, reviewer: str) -> Any:
    """Open, or leased with an expired lease; and not excluded for this reviewer."""
    return and_(
        or_(T.status == "open", and_(T.status == "leased", T.lease_expires_at <= now)),
        or_(T.exclude_reviewer.is_(None), T.exclude_reviewer != reviewer),
    )


class ReviewRepository:
    """The review queue over a `Store`. `policy` supplies queues, SLAs, lease time, the
    double-review rate and the category names that labels are checked against; without one,
    the defaults of `warden.core.Review` apply and label categories are not checked."""

    def __init__(self, store: Store, *, policy: Policy | None = None) -> None:
        self.store = store
        self.policy = policy

    @property
    def _review(self) -> Review:
        return self.policy.review if self.policy is not None else Review()

    def _require_policy(self) -> Policy:
        if self.policy is None:
            raise ValueError("this operation needs the policy: ReviewRepository(store, policy=...)")
        return self.policy

    def _insert(self, model: Any) -> Any:
        return (postgresql.insert if self.store.dialect == "postgresql" else sqlite.insert)(model)

    # -- enqueue -------------------------------------------------------------------------
    def enqueue(self, specs: Iterable[TaskSpec], *, tx: Session | None = None,
                now: datetime | None = None) -> list[int]:
        """Insert tasks; returns the ids of the new ones. Idempotent: a spec whose
        `dedupe_key` is already queued (in any status) is skipped."""
        now = now or utcnow()
        rows: dict[str, dict[str, Any]] = {}
        for sp in specs:
            rows.setdefault(sp.dedupe_key, {
                "dedupe_key": sp.dedupe_key, "queue": sp.queue, "source": sp.source, "decision_id": sp.decision_id,
                "content_id": sp.content_id, "actor_id": sp.actor_id, "surface": sp.surface,
                "policy_version": sp.policy_version, "categories": list(sp.categories),
                "severity": Severity(sp.severity).value, "uncertainty": float(sp.uncertainty), "reach": sp.reach,
                "status": "open", "lease_owner": None, "lease_expires_at": None, "lease_count": 0,
                "exclude_reviewer": sp.exclude_reviewer, "parent_task_id": sp.parent_task_id,
                "details": _plain(sp.details), "created_at": now,
                "due_at": now + timedelta(hours=sp.sla_hours), "done_at": None,
            })
        if not rows:
            return []
        with self.store._using(tx) as s:
            return [int(i) for i in insert_do_nothing(s, T.__table__, list(rows.values()), returning="id",
                                                      index_elements=["dedupe_key"])]

    def enqueue_decisions(self, contents: Sequence[Content], decisions: Sequence[Decision], *,
                          tx: Session | None = None) -> list[int]:
        """Route moderation decisions (`warden.review.route`) and enqueue the tasks; archive the
        content of queued items (only those) so the reviewer can read it."""
        policy = self._require_policy()
        specs = [sp for c, d in zip(contents, decisions, strict=True) for sp in route(policy, d, c)]
        if not specs:
            return []
        queued = {sp.content_id for sp in specs}
        with self.store._using(tx) as s:
            self.store.archive_content([c for c in contents if c.id in queued], tx=s)
            return self.enqueue(specs, tx=s)

    # -- leases --------------------------------------------------------------------------
    def _lease_values(self, reviewer: str, now: datetime, lease_minutes: float | None) -> dict[str, Any]:
        minutes = lease_minutes if lease_minutes is not None else self._review.lease_minutes
        return {"status": "leased", "lease_owner": reviewer, "lease_expires_at": now + timedelta(minutes=minutes)}

    def lease_next(self, queue: str, reviewer: str, *, now: datetime | None = None,
                   lease_minutes: float | None = None) -> ReviewTask | None:
        """Lease the most urgent task of `queue` this reviewer may take; None when there is none."""
        _check_reviewer(reviewer)
        now = now or utcnow()
        claimable = and_(T.queue == queue, _claimable(now, reviewer))
        cols = (T.id, T.severity, T.uncertainty, T.reach, T.created_at, T.due_at)
        values = {**self._lease_values(reviewer, now, lease_minutes), "lease_count": T.lease_count + 1}
        pg = self.store.dialect == "postgresql"
        with self.store.transaction() as s:
            by_due = s.execute(select(*cols).where(claimable).order_by(T.due_at, T.id).limit(CANDIDATE_WINDOW))
            by_sev = s.execute(select(*cols).where(claimable)
                               .order_by(_SEVERITY_RANK.desc(), T.uncertainty.desc(), T.reach.desc(), T.id)
                               .limit(CANDIDATE_WINDOW))
            candidates = {r.id: r for r in [*by_due, *by_sev]}
            ranked = sorted(candidates.values(), key=lambda r: (-_row_priority(r, now), r.created_at, r.id))
            for cand in ranked:
                if pg:
                    got = s.execute(select(T.id).where(T.id == cand.id, claimable)
                                    .with_for_update(skip_locked=True)).first()
                    if got is None:
                        continue
                    _update_tasks(s, T.id == cand.id, **values)
                elif _update_tasks(s, T.id == cand.id, claimable, **values) != 1:
                    continue
                return _task(s.get_one(T, cand.id, populate_existing=True))
        return None

    def lease(self, task_id: int, reviewer: str, *, now: datetime | None = None,
              lease_minutes: float | None = None) -> ReviewTask:
        """Lease one given task (or renew this reviewer's own live lease on it)."""
        _check_reviewer(reviewer)
        now = now or utcnow()
        own = and_(T.status == "leased", T.lease_owner == reviewer)
        values = {**self._lease_values(reviewer, now, lease_minutes),
                  "lease_count": case((own, T.lease_count), else_=T.lease_count + 1)}
        with self.store.transaction() as s:
            if _update_tasks(s, T.id == task_id, or_(_claimable(now, reviewer), own), **values) != 1:
                raise _why_not(s, task_id, reviewer, now)
            return _task(s.get_one(T, task_id, populate_existing=True))

    def release(self, task_id: int, reviewer: str) -> ReviewTask:
        """Give a leased task back to its queue undecided."""
        with self.store.transaction() as s:
            if _update_tasks(s, T.id == task_id, T.status == "leased", T.lease_owner == reviewer,
                             status="open", lease_owner=None, lease_expires_at=None) != 1:
                raise _why_not(s, task_id, reviewer, None)
            return _task(s.get_one(T, task_id, populate_existing=True))

    # -- decisions -----------------------------------------------------------------------
    def submit(self, task_id: int, reviewer: str, *, labels: Mapping[str, bool], action: str, note: str = "",
               policy_version: str, now: datetime | None = None, double_review_rate: float | None = None,
               tx: Session | None = None) -> ReviewResult:
        """Decide a task this reviewer holds a live lease on, in one transaction: the review
        decision, one label per category, the task marked done, review outcomes (QA samples,
        reports and appeals of automated decisions), the appeal's status, a double-review
        task when selected, and an audit event. Pass `tx` to add enforcement in the same
        transaction."""
        self._check_submission(labels, action, note, policy_version)
        now = now or utcnow()
        rate = double_review_rate if double_review_rate is not None else self._review.double_review_rate
        with self.store._using(tx) as s:
            live = and_(T.id == task_id, T.status == "leased", T.lease_owner == reviewer, T.lease_expires_at > now,
                        or_(T.exclude_reviewer.is_(None), T.exclude_reviewer != reviewer))
            if _update_tasks(s, live, status="done", done_at=now) != 1:
                raise _why_not(s, task_id, reviewer, now)
            task = _task(s.get_one(T, task_id, populate_existing=True))
            rd = ReviewDecisionRow(task_id=task.id, reviewer=reviewer, content_id=task.content_id,
                                   decision_id=task.decision_id, policy_version=policy_version, action=action,
                                   labels=dict(labels), note=note, created_at=now)
            s.add(rd)
            s.flush()
            s.add_all([LabelRow(review_decision_id=rd.id, content_id=task.content_id, category=cat,
                                violating=bool(v), reviewer=reviewer, policy_version=policy_version,
                                source=task.source, created_at=now) for cat, v in sorted(labels.items())])

            if action == Action.ESCALATE.value and task.source not in ("double_review", "active_learning"):
                return self._escalate(s, task, rd.id, reviewer, labels, now)
            original_action, automated_origin, decision = None, False, None
            if task.decision_id is not None and task.source != "double_review":
                decision = s.get(DecisionRow, task.decision_id)
                if decision is not None:
                    prior = _primary_review(s, task.decision_id, exclude_task=task.id)
                    original_action = prior.action if prior is not None else decision.action
                    automated_origin = prior is None and decision.automated
            overturned = (task.source in OUTCOME_SOURCES and original_action is not None
                          and action != original_action)
            enforce = overturned or task.source in ("routing", "uncertainty")
            outcome: Literal["upheld", "overturned"] | None = None
            outcome_rows = 0
            if task.source in OUTCOME_SOURCES and original_action is not None:
                outcome = "overturned" if overturned else "upheld"
                if automated_origin and decision is not None:
                    outcome_rows = _write_outcomes(s, task, decision, labels, reviewer, now)
            appeal = None
            if task.source == "appeal":
                row = s.scalars(select(AppealRow).where(AppealRow.task_id == task.id)).first()
                if row is not None:
                    row.status = "overturned" if overturned else "upheld"
                    row.decided_by = reviewer
                    row.decided_at = now
                    s.flush()
                    appeal = _appeal(row)
            double_id = None
            if task.source != "double_review" and selected_for_double_review(task.dedupe_key, rate):
                new = self.enqueue([double_review_task(task, parent_task_id=task.id, first_reviewer=reviewer,
                                                       sla_hours=task.sla_hours)], tx=s, now=now)
                double_id = new[0] if new else None
            violating = tuple(sorted(c for c, v in labels.items() if v))
            self.store.append_audit(
                actor=reviewer, event="review.decision", subject=str(task.id),
                details={"queue": task.queue, "source": task.source, "content_id": task.content_id,
                         "decision_id": task.decision_id, "action": action, "violating": list(violating),
                         "original_action": original_action, "outcome": outcome,
                         "double_review_task_id": double_id},
                tx=s)
            return ReviewResult(
                task_id=task.id, review_decision_id=rd.id, source=task.source, queue=task.queue, reviewer=reviewer,
                content_id=task.content_id, actor_id=task.actor_id, decision_id=task.decision_id, action=action,
                labels=MappingProxyType(dict(labels)), violating=violating, original_action=original_action,
                outcome=outcome, overturned=overturned, enforce=enforce, appeal=appeal,
                double_review_task_id=double_id, outcome_rows=outcome_rows)

    def _escalate(self, s: Session, task: ReviewTask, review_decision_id: int, reviewer: str,
                  labels: Mapping[str, bool], now: datetime) -> ReviewResult:
        """Hand the item to a senior reviewer: a new task (same source, senior queue), nothing
        enforced, the appeal (if any) moved to the new task. The reviewer's labels are kept
        as their opinion; the senior's decision is the one in force."""
        policy = self._require_policy()
        new = self.enqueue([escalation_task(task, policy, parent_task_id=task.id, escalated_by=reviewer)],
                           tx=s, now=now)
        escalated = new[0] if new else None
        appeal = None
        if task.source == "appeal" and escalated is not None:
            row = s.scalars(select(AppealRow).where(AppealRow.task_id == task.id)).first()
            if row is not None:
                row.task_id = escalated
                s.flush()
                appeal = _appeal(row)
        violating = tuple(sorted(c for c, v in labels.items() if v))
        self.store.append_audit(
            actor=reviewer, event="review.escalated", subject=str(task.id),
            details={"queue": task.queue, "source": task.source, "content_id": task.content_id,
                     "decision_id": task.decision_id, "escalation_task_id": escalated, "violating": list(violating)},
            tx=s)
        return ReviewResult(
            task_id=task.id, review_decision_id=review_decision_id, source=task.source, queue=task.queue,
            reviewer=reviewer, content_id=task.content_id, actor_id=task.actor_id, decision_id=task.decision_id,
            action=Action.ESCALATE.value, labels=MappingProxyType(dict(labels)), violating=violating,
            original_action=None, outcome=None, overturned=False, enforce=False, appeal=appeal,
            double_review_task_id=None, outcome_rows=0, escalation_task_id=escalated)

    def _check_submission(self, labels: Mapping[str, bool], action: str, note: str, policy_version: str) -> None:
        if not isinstance(labels, Mapping) or not labels:
            raise InvalidReview("labels must name at least one category: {category: true|false}")
        bad = [c for c, v in labels.items() if not isinstance(c, str) or not isinstance(v, bool)]
        if bad:
            raise InvalidReview(f"labels must map category names to true/false; bad entries: {bad[:5]}")
        if self.policy is not None:
            unknown = sorted(c for c in labels if c not in self.policy.categories)
            if unknown:
                raise InvalidReview(f"unknown categories {unknown[:5]}; allowed: {', '.join(self.policy.categories)}")
        if action not in REVIEWER_ACTIONS:
            raise InvalidReview(f"unknown action {action!r}; allowed: {', '.join(REVIEWER_ACTIONS)}")
        if len(note) > MAX_NOTE_CHARS:
            raise InvalidReview(f"note has {len(note):,} characters; the limit is {MAX_NOTE_CHARS:,}")
        if not policy_version:
            raise InvalidReview("policy_version must be non-empty")

    # -- reports and appeals -------------------------------------------------------------
    def create_report(self, content_id: str, *, reason: str, reporter: str | None, text: str | None = None,
                      surface: str | None = None, actor_id: str | None = None, category: str | None = None,
                      reach: int = 0, now: datetime | None = None, tx: Session | None = None) -> ReportResult:
        """A user report of `content_id`, into the report queue. The content must be known (in
        the content archive) or its `text` given (then archived). Idempotent per content id:
        a second report is counted on the existing task (and raises its reach)."""
        policy = self._require_policy()
        if category is not None and category not in policy.categories:
            raise InvalidReview(f"unknown category {category!r}; allowed: {', '.join(policy.categories)}")
        if surface is not None and surface not in policy.surfaces:
            raise InvalidReview(f"unknown surface {surface!r}; the policy defines: {', '.join(policy.surfaces)}")
        now = now or utcnow()
        with self.store._using(tx) as s:
            content = s.get(ContentRow, content_id)
            decision = _latest_decision(s, content_id)
            if content is None:
                if text is None:
                    raise ContentTextRequired(f"content {content_id!r} is not in the content archive; send its text")
                self.store.archive_content([Content(
                    id=content_id, text=text, actor_id=actor_id,
                    surface=surface or (decision.surface if decision is not None else DEFAULT_SURFACE))], tx=s)
                content = s.get_one(ContentRow, content_id)
            spec = report_task(
                policy, content_id=content_id, surface=content.surface, reason=reason, reporter=reporter,
                actor_id=actor_id or content.actor_id, category=category,
                decision_id=decision.decision_id if decision is not None else None,
                policy_version=decision.policy_version if decision is not None else None,
                flagged=decision.flagged if decision is not None else (),
                scores=(decision.payload.get("scores") or {}) if decision is not None else None, reach=reach)
            created = bool(self.enqueue([spec], tx=s, now=now))
            q = select(T).where(T.dedupe_key == spec.dedupe_key)
            row = s.scalars(q.with_for_update() if self.store.dialect == "postgresql" else q).one()
            if not created and row.status in ("open", "leased"):
                details = dict(row.details or {})
                reports = list(details.get("reports", []))
                if len(reports) < MAX_REPORTS_KEPT:
                    reports.append({"reporter": reporter, "reason": reason[:2000], "category": category})
                details["reports"] = reports
                details["report_count"] = int(details.get("report_count", 1)) + 1
                row.details = details
                row.reach = max(int(row.reach), reach)
                s.flush()
            count = int((row.details or {}).get("report_count", 1))
            self.store.append_audit(actor=reporter or "anonymous", event="review.report", subject=content_id,
                                    details={"task_id": row.id, "created": created, "category": category,
                                             "report_count": count}, tx=s)
            return ReportResult(task=_task(row), created=created, report_count=count)

    def create_appeal(self, decision_id: str, *, reason: str, appellant: str | None, text: str | None = None,
                      now: datetime | None = None, tx: Session | None = None) -> AppealResult:
        """An appeal against a stored decision, into the appeal queue; the reviewer who made
        the decision in force (if a human did) is excluded from deciding it. One appeal per
        decision: a repeated appeal returns the first. The content must be archived or its
        `text` given."""
        policy = self._require_policy()
        now = now or utcnow()
        with self.store._using(tx) as s:
            decision = s.get(DecisionRow, decision_id)
            if decision is None:
                raise DecisionNotFound(f"no decision with decision_id {decision_id!r}")
            existing = s.scalars(select(AppealRow).where(AppealRow.decision_id == decision_id)).first()
            if existing is not None:
                return AppealResult(_appeal(existing), self._task_in(s, existing.task_id), created=False)
            content = s.get(ContentRow, decision.content_id)
            if content is None:
                if text is None:
                    raise ContentTextRequired(
                        f"content {decision.content_id!r} is not in the content archive; send its text")
                self.store.archive_content([Content(id=decision.content_id, text=text, surface=decision.surface)],
                                           tx=s)
                content = s.get_one(ContentRow, decision.content_id)
            prior = _primary_review(s, decision_id, exclude_task=None)
            original_reviewer = prior.reviewer if prior is not None else None
            actor_id = content.actor_id or s.scalars(
                select(T.actor_id).where(T.content_id == decision.content_id, T.actor_id.is_not(None)).limit(1)).first()
            stmt = (self._insert(AppealRow).on_conflict_do_nothing(index_elements=["decision_id"])
                    .returning(AppealRow.id))
            appeal_id = s.execute(stmt, [{
                "decision_id": decision_id, "content_id": decision.content_id, "appellant": appellant,
                "reason": reason, "status": "open", "task_id": None, "original_reviewer": original_reviewer,
                "decided_by": None, "created_at": now, "decided_at": None}]).scalar()
            if appeal_id is None:  # a concurrent appeal of the same decision won
                row = s.scalars(select(AppealRow).where(AppealRow.decision_id == decision_id)).one()
                return AppealResult(_appeal(row), self._task_in(s, row.task_id), created=False)
            spec = appeal_task(
                policy, decision_id=decision_id, content_id=decision.content_id, surface=decision.surface,
                policy_version=decision.policy_version, action=decision.action, flagged=decision.flagged,
                scores=decision.payload.get("scores") or {}, appeal_id=int(appeal_id),
                exclude_reviewer=original_reviewer, actor_id=actor_id)
            self.enqueue([spec], tx=s, now=now)
            task_row = s.scalars(select(T).where(T.dedupe_key == spec.dedupe_key)).one()
            row = s.get_one(AppealRow, appeal_id)
            row.task_id = task_row.id
            s.flush()
            self.store.append_audit(actor=appellant or "anonymous", event="review.appeal", subject=decision_id,
                                    details={"appeal_id": row.id, "task_id": task_row.id,
                                             "original_reviewer": original_reviewer}, tx=s)
            return AppealResult(_appeal(row), _task(task_row), created=True)

    @staticmethod
    def _task_in(s: Session, task_id: int | None) -> ReviewTask | None:
        row = s.get(T, task_id) if task_id is not None else None
        return _task(row) if row is not None else None

    # -- reads ---------------------------------------------------------------------------
    def queue_stats(self, policy: Policy | None = None, *, now: datetime | None = None) -> list[QueueStats]:
        """Per queue of the policy (and any other queue that holds live tasks): open, leased,
        overdue against the SLA, and the age of the oldest waiting task."""
        review = policy.review if policy is not None else self._review
        now = now or utcnow()
        expired = and_(T.status == "leased", T.lease_expires_at <= now)
        q = (select(T.queue,
                    func.sum(case((or_(T.status == "open", expired), 1), else_=0)),
                    func.sum(case((and_(T.status == "leased", T.lease_expires_at > now), 1), else_=0)),
                    func.sum(case((T.due_at < now, 1), else_=0)),
                    func.min(T.created_at))
             .where(T.status.in_(("open", "leased"))).group_by(T.queue))
        with self.store.session() as s:
            live = {r[0]: r for r in s.execute(q).all()}
        out = []
        for name in [*review.queues, *sorted(set(live) - set(review.queues))]:
            conf = review.queues.get(name)
            r = live.get(name)
            oldest = r[4] if r is not None else None
            out.append(QueueStats(
                queue=name, sla_hours=conf.sla_hours if conf is not None else None,
                description=conf.description if conf is not None else "",
                open=int(r[1] or 0) if r is not None else 0, leased=int(r[2] or 0) if r is not None else 0,
                overdue=int(r[3] or 0) if r is not None else 0,
                oldest_age_seconds=(now - oldest).total_seconds() if oldest is not None else None))
        return out

    def list_tasks(self, *, queue: str | None = None, status: str | None = None, source: str | None = None,
                   content_id: str | None = None, after_id: int | None = None, limit: int = 100) -> list[ReviewTask]:
        """Tasks in id order, filtered; page with `after_id`."""
        q = select(T).order_by(T.id).limit(max(1, min(limit, 10_000)))
        for col, value in ((T.queue, queue), (T.status, status), (T.source, source), (T.content_id, content_id)):
            if value is not None:
                q = q.where(col == value)
        if after_id is not None:
            q = q.where(T.id > after_id)
        with self.store.session() as s:
            return [_task(r) for r in s.scalars(q)]

    def get_task(self, task_id: int, *, history_limit: int = 20) -> TaskView | None:
        """The task with its content text, the automated decision (signals, evidence), earlier
        reviews of the same content, the appeal (if any) and the actor's history."""
        with self.store.session() as s:
            row = s.get(T, task_id)
            if row is None:
                return None
            task = _task(row)
            content = s.get(ContentRow, task.content_id)
            decision = s.get(DecisionRow, task.decision_id) if task.decision_id else None
            reviews = s.scalars(select(ReviewDecisionRow).where(ReviewDecisionRow.content_id == task.content_id)
                                .order_by(ReviewDecisionRow.id)).all()
            appeal = s.scalars(select(AppealRow).where(AppealRow.task_id == task.id)).first()
            actor = task.actor_id or (content.actor_id if content is not None else None)
        return TaskView(
            task=task, text=content.text if content is not None else None,
            decision=_decision_record(decision) if decision is not None else None,
            review_decisions=tuple(_review_decision(r) for r in reviews),
            appeal=_appeal(appeal) if appeal is not None else None,
            actor_history=self.actor_history(actor, limit=history_limit) if actor else None)

    def actor_history(self, actor_id: str, *, limit: int = 50) -> ActorHistory:
        """Decisions and human reviews on this actor's items, newest first. Decisions do not
        store the actor: items are found through the content archive and review tasks."""
        with self.store.session() as s:
            ids = set(s.scalars(select(ContentRow.content_id).where(ContentRow.actor_id == actor_id)))
            ids |= set(s.scalars(select(T.content_id).where(T.actor_id == actor_id)))
            decisions: list[DecisionRow] = []
            id_list = sorted(ids)
            for i in range(0, len(id_list), 500):
                decisions.extend(s.scalars(select(DecisionRow).where(DecisionRow.content_id.in_(id_list[i:i + 500]))))
            decisions.sort(key=lambda d: (d.created_at, d.decision_id), reverse=True)
            reviews = s.scalars(
                select(ReviewDecisionRow).join(T, T.id == ReviewDecisionRow.task_id).where(T.actor_id == actor_id)
                .order_by(ReviewDecisionRow.id.desc()).limit(limit)).all()
            return ActorHistory(actor_id=actor_id, decisions=tuple(_decision_record(d) for d in decisions[:limit]),
                                reviews=tuple(_review_decision(r) for r in reviews))

    def agreement(self, *, since: datetime | None = None, n_bootstrap: int = 200,
                  random_state: int | None = 0) -> ReviewerAgreement:
        """Cohen's kappa per category between first and second reviewers of double-reviewed
        tasks (via `warden.evaluate.agreement`); a category only one of them labeled on an
        item counts as missing there."""
        first = ReviewDecisionRow.__table__.alias("rd_first")
        second = ReviewDecisionRow.__table__.alias("rd_second")
        child = T.__table__.alias("rt_child")
        q = (select(first.c.labels, second.c.labels)
             .select_from(child.join(second, second.c.task_id == child.c.id)
                          .join(first, first.c.task_id == child.c.parent_task_id))
             .where(child.c.source == "double_review").order_by(child.c.id))
        if since is not None:
            q = q.where(second.c.created_at >= since)
        with self.store.session() as s:
            pairs = [(dict(a), dict(b)) for a, b in s.execute(q).all()]
        if not pairs:
            return ReviewerAgreement(n_pairs=0)
        cats = sorted({c for a, b in pairs for c in (*a, *b)})
        sources = {name: {c: [p[i].get(c) for p in pairs] for c in cats} for i, name in ((0, "first"), (1, "second"))}
        reports = agreement_reports(sources, categories=cats, n_bootstrap=n_bootstrap, random_state=random_state)
        return ReviewerAgreement(n_pairs=len(pairs), by_category=MappingProxyType(reports))

    def labeled_examples(self, *, since: datetime | None = None, until: datetime | None = None,
                         source: str | None = None) -> list[LabeledExample]:
        """Reviewer labels joined with the archived text, oldest first: training data. Labels
        of items whose text is not archived (or was purged) are left out."""
        q = (select(LabelRow, ContentRow.text, ContentRow.surface)
             .join(ContentRow, ContentRow.content_id == LabelRow.content_id).order_by(LabelRow.id))
        if since is not None:
            q = q.where(LabelRow.created_at >= since)
        if until is not None:
            q = q.where(LabelRow.created_at < until)
        if source is not None:
            q = q.where(LabelRow.source == source)
        with self.store.session() as s:
            return [LabeledExample(content_id=lab.content_id, text=text, surface=surface, category=lab.category,
                                   violating=lab.violating, reviewer=lab.reviewer, policy_version=lab.policy_version,
                                   source=lab.source, created_at=lab.created_at)
                    for lab, text, surface in s.execute(q).all()]


# -- helpers -----------------------------------------------------------------------------
def _update_tasks(s: Session, *where: Any, **values: Any) -> int:
    """A conditional UPDATE of review tasks; returns the rowcount (did this writer win?).
    No ORM session sync: callers re-read the row with `populate_existing`."""
    res = s.execute(update(T).where(*where).values(**values), execution_options={"synchronize_session": False})
    return int(res.rowcount)  # type: ignore[attr-defined]


def _check_reviewer(reviewer: str) -> None:
    if not isinstance(reviewer, str) or not reviewer or len(reviewer) > 256:
        raise InvalidReview("reviewer must be 1-256 characters")


def _row_priority(r: Any, now: datetime) -> float:
    sla_hours = max((r.due_at - r.created_at).total_seconds() / 3600.0, 1e-6)
    return priority(severity=r.severity, uncertainty=r.uncertainty, reach=int(r.reach),
                    age_hours=(now - r.created_at).total_seconds() / 3600.0, sla_hours=sla_hours)


def _why_not(s: Session, task_id: int, reviewer: str, now: datetime | None) -> ReviewError:
    """Why a conditional UPDATE on a task matched no row, as the error to raise."""
    row = s.get(T, task_id, populate_existing=True)
    if row is None:
        return TaskNotFound(f"no review task {task_id}")
    if row.status in ("done", "cancelled"):
        return TaskClosed(f"task {task_id} is {row.status}")
    if row.exclude_reviewer == reviewer:
        return ReviewerExcluded(f"reviewer {reviewer!r} may not decide task {task_id} ({row.source})")
    if row.status == "leased" and row.lease_owner == reviewer:
        return LeaseConflict(f"your lease on task {task_id} expired; lease it again")
    if row.status == "leased" and (now is None or (row.lease_expires_at is not None and row.lease_expires_at > now)):
        return LeaseConflict(f"task {task_id} is leased by another reviewer")
    return LeaseConflict(f"you do not hold a lease on task {task_id}; lease it first")


def _latest_decision(s: Session, content_id: str) -> DecisionRecord | None:
    row = s.scalars(select(DecisionRow).where(DecisionRow.content_id == content_id)
                    .order_by(DecisionRow.created_at.desc(), DecisionRow.decision_id.desc()).limit(1)).first()
    return _decision_record(row) if row is not None else None


def _primary_review(s: Session, decision_id: str, *, exclude_task: int | None) -> ReviewDecisionRow | None:
    """The latest human decision in force on an automated decision (double reviews only
    measure agreement and an escalation hands the call on: neither counts)."""
    q = (select(ReviewDecisionRow).join(T, T.id == ReviewDecisionRow.task_id)
         .where(ReviewDecisionRow.decision_id == decision_id, T.source != "double_review",
                ReviewDecisionRow.action != Action.ESCALATE.value)
         .order_by(ReviewDecisionRow.id.desc()).limit(1))
    if exclude_task is not None:
        q = q.where(ReviewDecisionRow.task_id != exclude_task)
    return s.scalars(q).first()


def _write_outcomes(s: Session, task: ReviewTask, decision: DecisionRow, labels: Mapping[str, bool],
                    reviewer: str, now: datetime) -> int:
    """One `review_outcomes` row per category: for an enforcing decision, each flagged
    category (upheld when the reviewer labels it violating); for `allow`, each labeled
    category (upheld when the reviewer labels it not violating)."""
    flagged = set(decision.flagged or ())
    cats = sorted(flagged) if decision.action != Action.ALLOW.value and flagged else sorted(labels)
    rate = task.details.get("sample_rate") if task.source == "qa_sample" else None
    sample_rate = float(rate) if isinstance(rate, int | float) and 0 < rate <= 1 else None
    rows = [ReviewOutcomeRow(
        decision_id=decision.decision_id, content_id=decision.content_id, category=c, surface=decision.surface,
        policy_version=decision.policy_version, action=decision.action,
        verdict="upheld" if (c in flagged) == bool(labels.get(c, False)) else "overturned",
        source=task.source, reviewer=reviewer, sample_rate=sample_rate, created_at=now) for c in cats]
    s.add_all(rows)
    return len(rows)


def _plain(value: Any) -> Any:
    """JSON-ready copy of nested mappings/sequences (details may hold read-only proxies)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


__all__ = [
    "CANDIDATE_WINDOW",
    "REVIEWER_ACTIONS",
    "ActorHistory",
    "AppealRecord",
    "AppealResult",
    "ContentTextRequired",
    "DecisionNotFound",
    "InvalidReview",
    "LabeledExample",
    "LeaseConflict",
    "QueueStats",
    "ReportResult",
    "ReviewDecisionRecord",
    "ReviewError",
    "ReviewRepository",
    "ReviewResult",
    "ReviewTask",
    "ReviewerAgreement",
    "ReviewerExcluded",
    "TaskClosed",
    "TaskNotFound",
    "TaskView",
]
