"""The outcome for one item: verdicts per category, the action, and why."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from warden.core.policy import Action
from warden.core.results import Evidence


class Verdict(StrEnum):
    VIOLATING = "violating"  # score >= flag threshold: automated action
    UNCERTAIN = "uncertain"  # review <= score < flag: a human decides
    CLEAR = "clear"
    UNSCORED = "unscored"  # no detector that ran covers this category


@dataclass(frozen=True, slots=True)
class CategoryVerdict:
    category: str
    verdict: Verdict
    score: float | None
    flag_threshold: float
    review_threshold: float | None
    source: str | None  # the detector instance whose score decided


@dataclass(frozen=True, slots=True)
class Reason:
    """A statement of reasons entry: which detector, which rule, which threshold."""

    category: str
    verdict: Verdict
    detector: str
    score: float
    threshold: float
    surface: str
    rule: str
    evidence: tuple[Evidence, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "category": self.category,
            "verdict": self.verdict.value,
            "detector": self.detector,
            "score": round(self.score, 6),
            "threshold": self.threshold,
            "surface": self.surface,
            "rule": self.rule,
            "evidence": [e.to_dict() for e in self.evidence],
        }


@dataclass(frozen=True, slots=True)
class Decision:
    content_id: str
    policy_name: str
    policy_version: str
    surface: str
    action: Action
    automated: bool
    verdicts: tuple[CategoryVerdict, ...]
    reasons: tuple[Reason, ...]
    scores: dict[str, float]
    review_queue: str | None = None
    qa_sample: bool = False
    missing_signals: tuple[str, ...] = ()  # detector instances that errored for this item
    errors: tuple[str, ...] = ()

    @property
    def decision_id(self) -> str:
        return decision_id(self.content_id, self.policy_version)

    @property
    def flagged(self) -> tuple[str, ...]:
        return tuple(v.category for v in self.verdicts if v.verdict is Verdict.VIOLATING)

    @property
    def uncertain(self) -> tuple[str, ...]:
        return tuple(v.category for v in self.verdicts if v.verdict is Verdict.UNCERTAIN)

    def to_dict(self) -> dict[str, Any]:
        """The documented wire shape shared by the CLI, the HTTP API and the store."""
        return {
            "id": self.content_id,
            "decision_id": self.decision_id,
            "scores": {k: round(v, 6) for k, v in self.scores.items()},
            "flagged": list(self.flagged),
            "uncertain": list(self.uncertain),
            "action": self.action.value,
            "automated": self.automated,
            "review_queue": self.review_queue,
            "qa_sample": self.qa_sample,
            "reasons": [r.to_dict() for r in self.reasons],
            "missing_signals": list(self.missing_signals),
            "surface": self.surface,
            "policy": self.policy_name,
            "policy_version": self.policy_version,
        }


def decision_id(content_id: str, policy_version: str) -> str:
    """Stable id: re-moderating the same item under the same policy yields the same id."""
    return hashlib.sha256(f"{content_id}\x1f{policy_version}".encode()).hexdigest()[:32]
