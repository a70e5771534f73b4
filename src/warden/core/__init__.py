"""Domain types. This package imports nothing of warden outside itself and does no I/O."""

from warden.core.content import DEFAULT_SURFACE, MEDIA_KINDS, Content, MediaPart, Modality
from warden.core.decision import CategoryVerdict, Decision, Reason, Verdict, decision_id
from warden.core.policy import (
    DEFAULT_CATEGORIES,
    AccountAction,
    Action,
    CategoryPolicy,
    Combine,
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
from warden.core.results import Box, DetectorResult, Evidence, ExtractedText, MediaLocation, Span

__all__ = [
    "DEFAULT_CATEGORIES",
    "DEFAULT_SURFACE",
    "MEDIA_KINDS",
    "AccountAction",
    "Action",
    "Box",
    "CategoryPolicy",
    "CategoryVerdict",
    "Combine",
    "Content",
    "Decision",
    "DetectorResult",
    "DetectorSpec",
    "Enforcement",
    "Evidence",
    "ExtractedText",
    "MediaLocation",
    "MediaPart",
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
