"""Domain types. This package imports nothing of warden outside itself and does no I/O."""

from warden.core.content import DEFAULT_SURFACE, Content, Modality
from warden.core.decision import CategoryVerdict, Decision, Reason, Verdict, decision_id
from warden.core.policy import (
    DEFAULT_CATEGORIES,
    AccountAction,
    Action,
    CategoryPolicy,
    DetectorSpec,
    Enforcement,
    Policy,
    Review,
    Severity,
    Strikes,
    StrikeStep,
    Threshold,
    Tier,
)
from warden.core.results import DetectorResult, Evidence, Span

__all__ = [
    "DEFAULT_CATEGORIES",
    "DEFAULT_SURFACE",
    "AccountAction",
    "Action",
    "CategoryPolicy",
    "CategoryVerdict",
    "Content",
    "Decision",
    "DetectorResult",
    "DetectorSpec",
    "Enforcement",
    "Evidence",
    "Modality",
    "Policy",
    "Reason",
    "Review",
    "Severity",
    "Span",
    "StrikeStep",
    "Strikes",
    "Threshold",
    "Tier",
    "Verdict",
    "decision_id",
]
