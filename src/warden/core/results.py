"""What detectors return: typed results, never tuples."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any


@dataclass(frozen=True, slots=True)
class Span:
    """A half-open character range [start, end) in the *original* content text."""

    start: int
    end: int
    text: str

    def to_dict(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "text": self.text}


@dataclass(frozen=True, slots=True)
class Evidence:
    """Why a detector scored a category: matched spans, the rule that fired, a rationale.

    `rule` names the bank entry / model head so a reviewer can trace it back to the policy.
    """

    category: str
    rule: str
    spans: tuple[Span, ...] = ()
    detail: str = ""
    score: float | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"category": self.category, "rule": self.rule}
        if self.spans:
            out["spans"] = [s.to_dict() for s in self.spans]
        if self.detail:
            out["detail"] = self.detail
        if self.score is not None:
            out["score"] = round(self.score, 6)
        return out


@dataclass(frozen=True, slots=True)
class DetectorResult:
    """One detector's output for one content item.

    `scores` are calibrated probabilities in [0, 1] per category the detector covers;
    categories a detector does not cover are absent, not zero. A detector that cannot
    process an item returns a result with `error` set and no scores, instead of raising,
    so one bad item never fails a batch.
    """

    detector: str
    content_id: str
    scores: Mapping[str, float] = field(default_factory=dict)
    evidence: tuple[Evidence, ...] = ()
    latency_ms: float = 0.0
    model_version: str = ""
    error: str | None = None

    def __post_init__(self) -> None:
        for cat, p in self.scores.items():
            if not (0.0 <= p <= 1.0):
                raise ValueError(f"{self.detector}: score for {cat!r} is {p}, outside [0, 1]")
        object.__setattr__(self, "scores", MappingProxyType(dict(self.scores)))

    @property
    def ok(self) -> bool:
        return self.error is None

    @classmethod
    def failed(cls, detector: str, content_id: str, error: str, model_version: str = "") -> DetectorResult:
        return cls(detector=detector, content_id=content_id, error=error, model_version=model_version)
