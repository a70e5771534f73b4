"""From decisions, reports, appeals and model picks to review tasks (`TaskSpec`s). Pure.

Every task has a `dedupe_key` of the form `{source}:{subject}` (subject = the decision id,
the content id, the parent task id...). The store enqueues with "on conflict do nothing", so
routing the same decision twice (a retried request, a replayed stream message) never queues
the same work twice.

Uncertainty is how close the deciding category's score sits to its flag threshold, in [0, 1]:
1 = on the threshold (a coin flip between acting and not), 0 = as far from it as the score
range allows. It feeds the priority (`warden.review.priority`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal, Protocol

from warden.core.content import Content
from warden.core.decision import CategoryVerdict, Decision, Verdict
from warden.core.policy import Policy, Severity

TaskSource = Literal["routing", "uncertainty", "report", "appeal", "qa_sample", "active_learning", "double_review"]
TASK_SOURCES: tuple[str, ...] = (
    "routing", "uncertainty", "report", "appeal", "qa_sample", "active_learning", "double_review")
# Tasks whose human verdict is compared with an automated decision (`review_outcomes`).
OUTCOME_SOURCES: tuple[str, ...] = ("qa_sample", "appeal", "report")
MAX_REASON_CHARS = 2000
MAX_REACH = 10**12  # far above any audience; keeps reach inside a BIGINT whatever the input


@dataclass(frozen=True, slots=True)
class TaskSpec:
    """A task to enqueue. `sla_hours` sets its due time (created + SLA); `exclude_reviewer`
    may not take it (appeals: the original reviewer; double reviews: the first reviewer)."""

    dedupe_key: str
    queue: str
    source: TaskSource
    content_id: str
    surface: str
    sla_hours: float
    categories: tuple[str, ...] = ()
    severity: Severity = Severity.LOW
    uncertainty: float = 0.0
    reach: int = 0
    decision_id: str | None = None
    actor_id: str | None = None
    policy_version: str | None = None
    exclude_reviewer: str | None = None
    parent_task_id: int | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.source not in TASK_SOURCES:
            raise ValueError(f"unknown task source {self.source!r}; allowed: {', '.join(TASK_SOURCES)}")
        if not self.dedupe_key or not self.queue or not self.content_id:
            raise ValueError("dedupe_key, queue and content_id must be non-empty")
        if not 0.0 <= self.uncertainty <= 1.0:
            raise ValueError(f"uncertainty must be in [0, 1], got {self.uncertainty}")
        if isinstance(self.reach, bool) or not isinstance(self.reach, int) or not 0 <= self.reach <= MAX_REACH:
            raise ValueError(f"reach must be an integer from 0 to {MAX_REACH}, got {self.reach!r}")
        if not self.sla_hours > 0:
            raise ValueError(f"sla_hours must be > 0, got {self.sla_hours}")
        object.__setattr__(self, "severity", Severity(self.severity))
        object.__setattr__(self, "categories", tuple(self.categories))
        object.__setattr__(self, "details", MappingProxyType(dict(self.details)))


class TaskFields(Protocol):
    """What a double review or an escalation copies from its parent (a `TaskSpec` or a stored task)."""

    queue: str
    content_id: str
    surface: str
    decision_id: str | None
    actor_id: str | None
    policy_version: str | None
    uncertainty: float
    reach: int

    @property
    def source(self) -> str: ...

    @property
    def exclude_reviewer(self) -> str | None: ...

    @property
    def categories(self) -> tuple[str, ...]: ...

    @property
    def severity(self) -> Severity | str: ...


# -- building blocks ---------------------------------------------------------------------
def closeness(score: float, flag: float) -> float:
    """1 - |score - flag| / (largest distance possible from `flag` in [0, 1])."""
    span = max(flag, 1.0 - flag)
    return min(1.0, max(0.0, 1.0 - abs(score - flag) / span)) if span > 0 else 1.0


def deciding_verdict(policy: Policy, decision: Decision) -> CategoryVerdict | None:
    """The verdict that drove the decision: among violating/uncertain categories (else all
    scored ones) the most severe, ties broken by the score relative to its flag threshold."""
    scored = [v for v in decision.verdicts if v.score is not None]
    acting = [v for v in scored if v.verdict in (Verdict.VIOLATING, Verdict.UNCERTAIN)]
    pool = acting or scored
    if not pool:
        return None

    def key(v: CategoryVerdict) -> tuple[int, float, str]:
        cat = policy.categories.get(v.category)
        rank = cat.severity.rank if cat is not None else 0
        rel = (v.score or 0.0) / v.flag_threshold if v.flag_threshold > 0 else 1.0
        return rank, rel, v.category

    return max(pool, key=key)


def decision_uncertainty(policy: Policy, decision: Decision) -> float:
    """Closeness of the deciding category's score to its flag threshold; 1.0 when nothing was
    scored (every detector failed: the automation knows nothing about the item)."""
    v = deciding_verdict(policy, decision)
    if v is None or v.score is None:
        return 1.0
    return closeness(v.score, v.flag_threshold)


def scores_uncertainty(policy: Policy, *, surface: str, categories: Iterable[str],
                       scores: Mapping[str, float]) -> float:
    """Like `decision_uncertainty` for a stored decision (scores only): the highest closeness
    among `categories` that have a score; 0.5 (no information) when none has."""
    values = [closeness(float(scores[c]), policy.categories[c].threshold_for(surface).flag)
              for c in categories if c in scores and c in policy.categories]
    return max(values) if values else 0.5


def severity_of(policy: Policy, categories: Iterable[str]) -> Severity:
    """The worst severity among `categories` (LOW when none is a policy category)."""
    ranks = [policy.categories[c].severity for c in categories if c in policy.categories]
    return max(ranks, key=lambda s: s.rank) if ranks else Severity.LOW


def reach_of(content: Content) -> int:
    """`content.metadata["reach"]` when it is a non-negative integer (capped at MAX_REACH),
    else 0 (never raises: reach is optional context)."""
    value = content.metadata.get("reach")
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return 0
    return min(value, MAX_REACH)


def queue_sla_hours(policy: Policy, queue: str) -> float:
    """The SLA of `queue`; a queue the policy no longer defines gets the default queue's."""
    q = policy.review.queues.get(queue) or policy.review.queues.get(policy.review.default_queue)
    return q.sla_hours if q is not None else 24.0


def selected_for_double_review(task_key: str, rate: float) -> bool:
    """Deterministic: the same task key is always in or out (retries never change it)."""
    if rate <= 0.0:
        return False
    digest = hashlib.sha256(f"double_review\x1f{task_key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < rate


# -- task constructors -----------------------------------------------------------------
def route(policy: Policy, decision: Decision, content: Content) -> tuple[TaskSpec, ...]:
    """The tasks one moderation decision creates: held/escalated items go to
    `decision.review_queue` (source `uncertainty` when a category sat in its review band,
    else `routing`); QA-sampled automated decisions go to the default queue (`qa_sample`)."""
    if content.id != decision.content_id:
        raise ValueError(f"decision for {decision.content_id!r} routed with content {content.id!r}")
    specs: list[TaskSpec] = []
    reach = reach_of(content)
    categories = (*decision.flagged, *decision.uncertain)
    common: dict[str, Any] = {
        "content_id": decision.content_id, "surface": decision.surface, "decision_id": decision.decision_id,
        "actor_id": content.actor_id, "policy_version": decision.policy_version, "reach": reach,
        "categories": categories, "severity": severity_of(policy, categories),
        "uncertainty": decision_uncertainty(policy, decision),
    }
    media = _media_of(content)
    if decision.review_queue is not None:
        source: TaskSource = "uncertainty" if decision.uncertain else "routing"
        specs.append(TaskSpec(
            dedupe_key=f"{source}:{decision.decision_id}", queue=decision.review_queue, source=source,
            sla_hours=queue_sla_hours(policy, decision.review_queue),
            details={"action": decision.action.value, "missing_signals": list(decision.missing_signals), **media},
            **common))
    if decision.qa_sample:
        queue = policy.review.default_queue
        specs.append(TaskSpec(
            dedupe_key=f"qa_sample:{decision.decision_id}", queue=queue, source="qa_sample",
            sla_hours=queue_sla_hours(policy, queue),
            details={"action": decision.action.value, "sample_rate": policy.review.qa_sample_rate, **media},
            **common))
    return tuple(specs)


#: Content metadata keys that reference media; copied onto tasks so the reviewer UI can show
#: the images (blurred until clicked). Nothing else of the metadata is copied.
MEDIA_KEYS: tuple[str, ...] = ("image_url", "image_urls", "images", "media")


def _media_of(content: Content) -> dict[str, Any]:
    meta = content.metadata or {}
    picked = {k: meta[k] for k in MEDIA_KEYS if k in meta}
    return {"metadata": picked} if picked else {}


def report_task(policy: Policy, *, content_id: str, surface: str, reason: str, reporter: str | None,
                actor_id: str | None = None, category: str | None = None, decision_id: str | None = None,
                policy_version: str | None = None, flagged: Iterable[str] = (),
                scores: Mapping[str, float] | None = None, reach: int = 0) -> TaskSpec:
    """A user report, in `review.report_queue` (else the default queue). One task per content
    id: further reports of the same item are counted on it, not queued again."""
    queue = policy.review.report_queue or policy.review.default_queue
    categories = (category,) if category is not None else tuple(flagged)
    uncertainty = (scores_uncertainty(policy, surface=surface, categories=categories, scores=scores)
                   if scores else 0.5)
    return TaskSpec(
        dedupe_key=f"report:{content_id}", queue=queue, source="report", content_id=content_id,
        surface=surface, sla_hours=queue_sla_hours(policy, queue), categories=categories,
        severity=severity_of(policy, categories), uncertainty=uncertainty, reach=reach,
        decision_id=decision_id, actor_id=actor_id, policy_version=policy_version,
        details={"reports": [{"reporter": reporter, "reason": reason[:MAX_REASON_CHARS], "category": category}],
                 "report_count": 1})


def appeal_task(policy: Policy, *, decision_id: str, content_id: str, surface: str, policy_version: str,
                action: str, flagged: Iterable[str], scores: Mapping[str, float], appeal_id: int,
                exclude_reviewer: str | None, actor_id: str | None = None, reach: int = 0) -> TaskSpec:
    """An appeal against a decision, in `review.appeal_queue` (else the default queue), never
    to be decided by `exclude_reviewer` (who made the original human decision, if any)."""
    queue = policy.review.appeal_queue or policy.review.default_queue
    categories = tuple(flagged)
    return TaskSpec(
        dedupe_key=f"appeal:{decision_id}", queue=queue, source="appeal", content_id=content_id, surface=surface,
        sla_hours=queue_sla_hours(policy, queue), categories=categories,
        severity=severity_of(policy, categories),
        uncertainty=scores_uncertainty(policy, surface=surface, categories=categories, scores=scores),
        reach=reach, decision_id=decision_id, actor_id=actor_id, policy_version=policy_version,
        exclude_reviewer=exclude_reviewer, details={"appeal_id": appeal_id, "action": action})


def learning_task(policy: Policy, *, content_id: str, surface: str, categories: Iterable[str], uncertainty: float,
                  model: str, actor_id: str | None = None, decision_id: str | None = None,
                  policy_version: str | None = None, reach: int = 0) -> TaskSpec:
    """An active-learning pick (an item whose label would teach `model` most), in
    `review.learning_queue` (else the default queue). One task per (model, content id)."""
    queue = policy.review.learning_queue or policy.review.default_queue
    cats = tuple(categories)
    return TaskSpec(
        dedupe_key=f"active_learning:{model}:{content_id}", queue=queue, source="active_learning",
        content_id=content_id, surface=surface, sla_hours=queue_sla_hours(policy, queue), categories=cats,
        severity=severity_of(policy, cats), uncertainty=uncertainty, reach=reach, decision_id=decision_id,
        actor_id=actor_id, policy_version=policy_version, details={"model": model})


def escalation_task(parent: TaskFields, policy: Policy, *, parent_task_id: int, escalated_by: str) -> TaskSpec:
    """A reviewer's `escalate`: the same item, with its source (so an escalated appeal or QA
    sample keeps its outcome rules), in the policy's escalation queue (else the appeal queue:
    both are senior-only), due by that queue's SLA. With neither queue, it stays in its queue
    for another reviewer. The escalating reviewer never decides it, except an escalated appeal:
    there the reviewer whose decision is appealed stays the one excluded (one exclusion per task)."""
    review = policy.review
    exclude = parent.exclude_reviewer if parent.source == "appeal" and parent.exclude_reviewer else escalated_by
    queue = review.escalation_queue or review.appeal_queue or parent.queue
    return TaskSpec(
        dedupe_key=f"escalation:{parent_task_id}", queue=queue, source=parent.source,  # type: ignore[arg-type]
        content_id=parent.content_id, surface=parent.surface, sla_hours=queue_sla_hours(policy, queue),
        categories=tuple(parent.categories), severity=Severity(parent.severity), uncertainty=parent.uncertainty,
        reach=parent.reach, decision_id=parent.decision_id, actor_id=parent.actor_id,
        policy_version=parent.policy_version, exclude_reviewer=exclude, parent_task_id=parent_task_id,
        details={"escalated_by": escalated_by, "escalated_from": parent.queue})


def double_review_task(parent: TaskFields, *, parent_task_id: int, first_reviewer: str,
                       sla_hours: float) -> TaskSpec:
    """A second, independent review of `parent` in the same queue, by anyone but the first
    reviewer. Its labels measure inter-reviewer agreement; it never changes enforcement."""
    return TaskSpec(
        dedupe_key=f"double_review:{parent_task_id}", queue=parent.queue, source="double_review",
        content_id=parent.content_id, surface=parent.surface, sla_hours=sla_hours,
        categories=tuple(parent.categories), severity=Severity(parent.severity), uncertainty=parent.uncertainty,
        reach=parent.reach, decision_id=parent.decision_id, actor_id=parent.actor_id,
        policy_version=parent.policy_version, exclude_reviewer=first_reviewer, parent_task_id=parent_task_id)


__all__ = [
    "MAX_REACH",
    "OUTCOME_SOURCES",
    "TASK_SOURCES",
    "TaskSource",
    "TaskSpec",
    "appeal_task",
    "closeness",
    "deciding_verdict",
    "decision_uncertainty",
    "double_review_task",
    "escalation_task",
    "learning_task",
    "queue_sla_hours",
    "reach_of",
    "report_task",
    "route",
    "scores_uncertainty",
    "selected_for_double_review",
    "severity_of",
]
