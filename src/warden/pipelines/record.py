"""Recording decisions: the one unit every online entry point (HTTP API, stream worker) uses
after moderating, so that a decision is stored, queued for review and turned into actions the
same way wherever it was made.

Everything happens in ONE transaction: the decisions, the opt-in content archive, the review
tasks the policy routes, the enforcement outbox rows (webhooks, strikes) and an audit event.
Each part is idempotent per (content id, policy version) — decisions by a unique key, review
tasks by a dedupe key, actions by an idempotency key — so recording the same decisions again
(a retried request, a redelivered stream message) changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from warden.core import Action, Content, Decision, Policy
from warden.enforce.outbox import EnforcementOutbox, EnforcementResult, ReversalResult
from warden.store import Store
from warden.store.review_repo import ReviewRepository, ReviewResult


@dataclass(frozen=True, slots=True)
class RecordResult:
    decisions: int
    stored: int  # newly stored (the rest were already there: a retry or a redelivery)


class DecisionRecorder:
    """Stores decisions with their review tasks and enforcement actions in one transaction."""

    def __init__(self, store: Store, policy: Policy | None, *, archive_content: bool = False) -> None:
        """`policy` None (a test double without review or enforcement settings): decisions,
        archive and audit only."""
        self.store = store
        self.policy = policy
        self.archive_content = archive_content
        self.review = ReviewRepository(store, policy=policy) if policy is not None else None
        self.enforcement = EnforcementOutbox(store, policy) if policy is not None else None

    def record(self, contents: Sequence[Content], decisions: Sequence[Decision], *, actor: str, event: str,
               subject: str, details: dict | None = None) -> RecordResult:
        """`actor`/`event`/`subject`/`details` describe the audit event (never content text)."""
        if len(contents) != len(decisions):
            raise ValueError(f"{len(decisions)} decisions for {len(contents)} items")
        with self.store.transaction() as tx:
            new_ids = self.store.save_new_decisions(decisions, tx=tx)
            stored = len(new_ids)
            if self.archive_content:
                self.store.archive_content(contents, tx=tx)
            if self.review is not None:
                self.review.enqueue_decisions(contents, decisions, tx=tx)  # archives the text of queued items
            if self.enforcement is not None:
                # Only decisions stored now: a resubmission (even with other text) keeps the first
                # stored decision, so it must not queue a second, different action.
                fresh = [(d, c.actor_id) for c, d in zip(contents, decisions, strict=True) if d.decision_id in new_ids]
                if fresh:
                    self.enforcement.record_decisions(fresh, tx=tx)
            self.store.append_audit(actor=actor, event=event, subject=subject,
                                    details={**(details or {}), "items": len(decisions), "stored": stored}, tx=tx)
        return RecordResult(decisions=len(decisions), stored=stored)


@dataclass(frozen=True, slots=True)
class ReviewRecord:
    """A reviewer decision and the enforcement it set off (None: nothing to enforce)."""

    result: ReviewResult
    enforcement: EnforcementResult | None
    reversal: ReversalResult | None


#: Actions whose reversal the platform must hear about when an appeal or QA review overturns them.
_REVERSIBLE = frozenset(a.value for a in Action) - {Action.ALLOW.value}


class ReviewRecorder:
    """Records a reviewer's decision with its consequences in ONE transaction, for every
    entry point (the browser UI and the JSON API): the review decision and labels
    (`ReviewRepository.submit`), then

    * a held item (routing, uncertainty band): the reviewer's action goes to the platform,
      `allow` included (it releases the hold), with a strike when the policy says so;
    * an overturn (appeal, QA sample, report): the action in force is reversed (webhook,
      strikes and account steps rolled back) and the reviewer's action, if not `allow`, is
      applied instead;
    * double reviews and active-learning picks: labels only.
    """

    def __init__(self, store: Store, policy: Policy) -> None:
        self.store = store
        self.review = ReviewRepository(store, policy=policy)
        self.enforcement = EnforcementOutbox(store, policy)

    def submit(self, task_id: int, reviewer: str, *, labels: Mapping[str, bool], action: str, note: str = "",
               policy_version: str) -> ReviewRecord:
        with self.store.transaction() as tx:
            result = self.review.submit(task_id, reviewer, labels=labels, action=action, note=note,
                                        policy_version=policy_version, tx=tx)
            if not result.enforce:
                return ReviewRecord(result, None, None)
            reversal = None
            if result.overturned and result.decision_id and result.original_action in _REVERSIBLE:
                reversal = self.enforcement.record_reversal(result.decision_id, reason="appeal_overturned"
                                                            if result.source == "appeal" else "review_overturned",
                                                            tx=tx)
            enforcement = None
            if not result.overturned or result.action != Action.ALLOW.value:
                enforcement = self.enforcement.record_review(
                    review_id=result.review_decision_id, content_id=result.content_id, action=result.action,
                    categories=result.violating, actor_id=result.actor_id, policy_version=policy_version,
                    decision_id=result.decision_id, tx=tx)
        return ReviewRecord(result, enforcement, reversal)
