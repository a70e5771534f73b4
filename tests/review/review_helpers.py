"""Helpers for the review tests (a uniquely named module: `conftest` names collide across folders)."""

from __future__ import annotations

from collections.abc import Mapping

from warden.core import Content, Decision, DetectorResult, Policy
from warden.decide import decide

POLICY_DATA: dict = {
    "name": "test",
    "version": "2026.1",
    "surfaces": ["comment", "chat"],
    "categories": {
        "spam": {"definition": "unsolicited ads", "severity": "low", "action": "remove",
                 "thresholds": {"default": {"flag": 0.9, "review": 0.5}}},
        "hate": {"definition": "attacks on protected groups", "severity": "high", "action": "remove",
                 "thresholds": {"default": {"flag": 0.8, "review": 0.4}}},
        "sexual/minors": {"definition": "sexualization of minors", "severity": "critical", "action": "escalate",
                          "thresholds": {"default": {"flag": 0.5, "review": 0.2}}},
    },
    "review": {
        "default_queue": "default",
        "queues": {"default": {"sla_hours": 24}, "priority": {"sla_hours": 1}, "reports": {"sla_hours": 24},
                   "appeals": {"sla_hours": 72}, "learning": {"sla_hours": 168}},
        "route_by_severity": {"critical": "priority"},
        "report_queue": "reports",
        "appeal_queue": "appeals",
        "learning_queue": "learning",
        "qa_sample_rate": 1.0,
        "double_review_rate": 0.0,
        "lease_minutes": 15,
    },
}


def make_policy(**review: object) -> Policy:
    data = {**POLICY_DATA, "review": {**POLICY_DATA["review"], **review}}
    return Policy.model_validate(data)


def make_decision(policy: Policy, content: Content, scores: Mapping[str, float]) -> Decision:
    """A real `decide` over one fake detector's scores."""
    return decide(policy, content, [DetectorResult(detector="fake", content_id=content.id, scores=dict(scores))])


def lease_worker(url: str, queue: str, reviewer_prefix: str, n_threads: int) -> list[tuple[int, str]]:
    """Run in a child process: `n_threads` reviewers lease from `queue` until it is empty."""
    import threading

    from warden.store import Store
    from warden.store.review_repo import ReviewRepository

    store = Store.from_url(url)
    repo = ReviewRepository(store, policy=make_policy())
    got: list[tuple[int, str]] = []
    lock = threading.Lock()

    def run(reviewer: str) -> None:
        while (task := repo.lease_next(queue, reviewer)) is not None:
            with lock:
                got.append((task.id, reviewer))

    threads = [threading.Thread(target=run, args=(f"{reviewer_prefix}-{i}",)) for i in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    store.close()
    return got


class PolicyModerator:
    """A moderator over the test policy: 'spam' scores 0.95, 'maybe' 0.7 (review band),
    'hate' 0.6 (review band), anything else 0.1."""

    def __init__(self, **review: object) -> None:
        self.policy = make_policy(**review)

    def moderate_batch(self, items):  # type: ignore[no-untyped-def]
        out = []
        for c in items:
            text = (c.text or "").lower()
            scores = {"spam": 0.95 if "spam" in text else 0.7 if "maybe" in text else 0.1,
                      "hate": 0.6 if "hate" in text else 0.05}
            out.append(make_decision(self.policy, c, scores))
        return out
