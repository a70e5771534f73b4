"""Test helper: put one reviewer decision with its labels (and optionally the archived text)
into a store, as the review flow writes them (review task -> review decision -> labels)."""

from __future__ import annotations

from datetime import datetime

from warden.store import Store
from warden.store.models import ContentRow, LabelRow, ReviewDecisionRow, ReviewTaskRow


def add_review(store: Store, content_id: str, text: str | None, labels: dict[str, bool], *, at: datetime,
               reviewer: str = "rev1", source: str = "routing", policy_version: str = "p1") -> None:
    with store.transaction() as s:
        if text is not None and s.get(ContentRow, content_id) is None:
            s.add(ContentRow(content_id=content_id, text=text, surface="comment", actor_id=None, created_at=at))
        task = ReviewTaskRow(dedupe_key=f"{content_id}:{at.isoformat()}:{reviewer}", queue="default", source=source,
                             decision_id=None, content_id=content_id, actor_id=None, surface="comment",
                             policy_version=policy_version, categories=sorted(labels), severity="low",
                             uncertainty=0.5, reach=0, status="done", lease_count=0, details={}, created_at=at,
                             due_at=at, done_at=at)
        s.add(task)
        s.flush()
        decision = ReviewDecisionRow(task_id=task.id, reviewer=reviewer, content_id=content_id, decision_id=None,
                                     policy_version=policy_version, action="none", labels=dict(labels), note="",
                                     created_at=at)
        s.add(decision)
        s.flush()
        for cat, violating in labels.items():
            s.add(LabelRow(review_decision_id=decision.id, content_id=content_id, category=cat, violating=violating,
                           reviewer=reviewer, policy_version=policy_version, source=source, created_at=at))
