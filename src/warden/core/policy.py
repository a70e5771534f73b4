"""The policy as typed, validated data.

One versioned policy drives detection (which detectors, in which cascade), decisions
(thresholds per category and surface, actions) and review routing. This module only
defines and validates the shape; reading YAML files lives in `warden.policy`.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_serializer, model_validator

DEFAULT_CATEGORIES: tuple[str, ...] = (
    "sexual",
    "sexual/minors",
    "hate",
    "hate/threatening",
    "harassment",
    "harassment/threatening",
    "self-harm",
    "violence",
    "violence/graphic",
    "illicit",
    "spam",
    "scam",
    "prompt_injection",
)

CATEGORY_NAME = re.compile(r"^[a-z][a-z0-9_\-]*(/[a-z][a-z0-9_\-]*)?$")
NAME = re.compile(r"^[a-z][a-z0-9_\-]*$")


class Action(StrEnum):
    """Enforcement actions, in increasing order of severity."""

    ALLOW = "allow"
    LABEL = "label"
    LIMIT = "limit"
    HOLD_FOR_REVIEW = "hold_for_review"
    REMOVE = "remove"
    ESCALATE = "escalate"

    @property
    def rank(self) -> int:
        return _ACTION_ORDER.index(self)


_ACTION_ORDER = list(Action)


class Severity(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return list(Severity).index(self)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class Threshold(_Strict):
    """Score >= `flag` violates automatically; `review` <= score < `flag` goes to humans."""

    flag: float = Field(ge=0.0, le=1.0)
    review: float | None = Field(default=None, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _review_below_flag(self) -> Threshold:
        if self.review is not None and self.review > self.flag:
            raise ValueError(f"review ({self.review}) must be <= flag ({self.flag})")
        return self


class Examples(_Strict):
    violating: tuple[str, ...] = ()
    benign: tuple[str, ...] = ()


class CategoryPolicy(_Strict):
    definition: str = Field(min_length=1)
    severity: Severity
    action: Action
    dsa_category: str | None = None
    examples: Examples = Examples()
    thresholds: dict[str, Threshold]

    @field_validator("thresholds")
    @classmethod
    def _has_default(cls, v: dict[str, Threshold]) -> dict[str, Threshold]:
        if "default" not in v:
            raise ValueError("must include a 'default' entry (used for surfaces without their own)")
        return v

    def threshold_for(self, surface: str) -> Threshold:
        return self.thresholds.get(surface, self.thresholds["default"])


class DetectorSpec(_Strict):
    """A configured detector instance: `type` is a registry name, `params` its typed params."""

    type: str = Field(min_length=1)
    params: dict[str, Any] = {}


class SeverityAtLeast(_Strict):
    """A category whose severity is `severity` or higher scores at least `min_score`."""

    severity: Severity
    min_score: float = Field(ge=0.0, le=1.0)


class EscalateIf(_Strict):
    """When an item moves on to a tier: any category's combined score so far in [low, high]
    (`any_score_between`), OR a category of at least `severity_at_least.severity` scoring at
    least `severity_at_least.min_score` (severe harms get the stronger model at lower scores).
    An empty `escalate_if: {}` means the band [0, 1], as before the severity condition existed."""

    any_score_between: tuple[float, float] | None = None
    severity_at_least: SeverityAtLeast | None = None

    @model_validator(mode="before")
    @classmethod
    def _default_band(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("any_score_between") is None and data.get("severity_at_least") is None:
            return {**data, "any_score_between": (0.0, 1.0)}
        return data

    @field_validator("any_score_between")
    @classmethod
    def _ordered(cls, v: tuple[float, float] | None) -> tuple[float, float] | None:
        if v is None:
            return v
        low, high = v
        if not (0.0 <= low <= high <= 1.0):
            raise ValueError(f"needs 0 <= low <= high <= 1, got [{low}, {high}]")
        return v

    @model_serializer(mode="wrap")
    def _dump(self, handler: Any) -> dict[str, Any]:
        # Unset conditions are left out, so policies written before one existed keep their fingerprint.
        return {k: v for k, v in handler(self).items() if v is not None}

    def matches(self, scores: Mapping[str, float], categories: Mapping[str, CategoryPolicy]) -> bool:
        """Whether an item with these combined scores (category -> score) moves on to the tier."""
        if self.any_score_between is not None:
            low, high = self.any_score_between
            if any(low <= s <= high for s in scores.values()):
                return True
        rule = self.severity_at_least
        if rule is not None:
            floor = rule.severity.rank
            return any(s >= rule.min_score and cat in categories and categories[cat].severity.rank >= floor
                       for cat, s in scores.items())
        return False


class Tier(_Strict):
    """A cascade stage. `supersedes` names detectors of earlier tiers whose scores this tier's
    scores replace (for the categories it covers), e.g. the embedding model over the fast
    linear model; everything else combines by maximum.

    `fallback` lists, per detector of this tier, the detectors to try in order on the items it
    failed for (provider down, rate limited, invalid answer): `{claude: [gpt_local, minilm_backup]}`.
    Fallback detectors are declared under `detectors` and run only as fallbacks (in no tier);
    the Decision still lists the failed detector under `missing_signals`."""

    name: str
    detectors: tuple[str, ...] = Field(min_length=1)
    escalate_if: EscalateIf | None = None
    supersedes: tuple[str, ...] = ()
    fallback: dict[str, tuple[str, ...]] = {}


class Queue(_Strict):
    sla_hours: float = Field(gt=0)
    description: str = ""


class Review(_Strict):
    """Where humans come in. `route_by_severity` overrides the default queue; reports,
    appeals and active-learning picks go to their own queues when those are set (else to the
    default queue). The appeal and escalation queues are for senior reviewers."""

    @property
    def senior_queues(self) -> frozenset[str]:
        """Queues only senior reviewers (and admins) may work: appeals and escalations."""
        return frozenset(q for q in (self.appeal_queue, self.escalation_queue) if q is not None)


    default_queue: str = "default"
    queues: dict[str, Queue] = {"default": Queue(sla_hours=24)}
    route_by_severity: dict[Severity, str] = {}
    report_queue: str | None = None
    appeal_queue: str | None = None
    learning_queue: str | None = None
    # Where a reviewer's `escalate` sends the item: a queue for senior reviewers (else the
    # appeal queue; with neither, another reviewer of the same queue takes it).
    escalation_queue: str | None = None
    qa_sample_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    # Share of reviewed items that a second, different reviewer labels too (inter-reviewer agreement).
    double_review_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    # A leased task returns to its queue when the reviewer has not decided within this time.
    lease_minutes: float = Field(default=15.0, gt=0, le=24 * 60)
    on_detector_error: Literal["hold_for_review", "allow"] = "hold_for_review"

    @model_validator(mode="after")
    def _queues_exist(self) -> Review:
        named = [("report_queue", self.report_queue), ("appeal_queue", self.appeal_queue),
                 ("learning_queue", self.learning_queue), ("escalation_queue", self.escalation_queue)]
        for where, q in [("default_queue", self.default_queue), *(
            (f"route_by_severity.{s.value}", q) for s, q in self.route_by_severity.items()
        ), *((w, q) for w, q in named if q is not None)]:
            if q not in self.queues:
                raise ValueError(f"{where} names queue {q!r}, not defined in queues ({sorted(self.queues)})")
        return self


CombineRule = Literal["max", "noisy_or"]


class Combine(_Strict):
    """How one item's signals from different sources combine into one score per category.

    A source is what a signal is about: the item's own text, its images, the text read from
    its images by OCR (see `DetectorResult.source`). Within a source the maximum is taken
    (after `supersedes`), because detectors reading the same thing are strongly correlated.
    Across sources, `max` keeps the strongest signal; `noisy_or` (1 - prod(1 - p)) lets two
    borderline signals from different sources (a suggestive caption on a borderline photo) add
    up. `categories` overrides `across_sources` per category. A text-only item has one source,
    so this section changes nothing for it.
    """

    across_sources: CombineRule = "max"
    categories: dict[str, CombineRule] = {}

    def rule_for(self, category: str) -> CombineRule:
        return self.categories.get(category, self.across_sources)


class AccountAction(StrEnum):
    """Account-level enforcement driven by strikes, in increasing order of severity."""

    WARN = "warn"
    RESTRICT = "restrict"
    SUSPEND = "suspend"


class StrikeStep(_Strict):
    """When an actor's decayed strike total reaches `at`, take `action` on the account."""

    at: float = Field(gt=0)
    action: AccountAction


class Strikes(_Strict):
    """Strikes per actor: each enforced decision adds the weight of its most severe flagged
    category (`category_weights` overrides `severity_weights`); weights halve every
    `half_life_days`; the highest reached step of `ladder` is the account action."""

    actions: tuple[Action, ...] = (Action.REMOVE,)
    severity_weights: dict[Severity, float] = {
        Severity.LOW: 0.5, Severity.MEDIUM: 1.0, Severity.HIGH: 2.0, Severity.CRITICAL: 5.0}
    category_weights: dict[str, float] = {}
    half_life_days: float = Field(default=90.0, gt=0)
    ladder: tuple[StrikeStep, ...] = ()

    @field_validator("severity_weights", "category_weights")
    @classmethod
    def _non_negative(cls, v: dict[Any, float]) -> dict[Any, float]:
        for k, w in v.items():
            if w < 0:
                raise ValueError(f"weight of {getattr(k, 'value', k)!r} must be >= 0; got {w}")
        return v

    @field_validator("ladder")
    @classmethod
    def _ascending(cls, v: tuple[StrikeStep, ...]) -> tuple[StrikeStep, ...]:
        for a, b in itertools.pairwise(v):
            if not (b.at > a.at and list(AccountAction).index(b.action) > list(AccountAction).index(a.action)):
                raise ValueError(f"ladder steps must rise in both 'at' and action severity; "
                                 f"got {a.action.value}@{a.at} then {b.action.value}@{b.at}")
        return v


class Enforcement(_Strict):
    """What happens on the platform after a decision (delivered as signed webhooks)."""

    strikes: Strikes = Strikes()


class Policy(_Strict):
    schema_version: Literal[1] = 1
    name: str = Field(pattern=NAME.pattern)
    version: str = Field(min_length=1)
    description: str = ""
    surfaces: tuple[str, ...] = Field(min_length=1)
    categories: dict[str, CategoryPolicy] = Field(min_length=1)
    detectors: dict[str, DetectorSpec] = {}
    cascade: tuple[Tier, ...] = ()
    review: Review = Review()
    enforcement: Enforcement = Enforcement()
    combine: Combine = Combine()

    @field_validator("categories")
    @classmethod
    def _category_names(cls, v: dict[str, CategoryPolicy]) -> dict[str, CategoryPolicy]:
        for name in v:
            if not CATEGORY_NAME.match(name):
                raise ValueError(f"category name {name!r} must match {CATEGORY_NAME.pattern}")
        return v

    @model_validator(mode="after")
    def _cross_references(self) -> Policy:
        for cat_name, cat in self.categories.items():
            for surface in cat.thresholds:
                if surface != "default" and surface not in self.surfaces:
                    raise ValueError(
                        f"categories.{cat_name}.thresholds.{surface}: unknown surface; "
                        f"allowed: default, {', '.join(self.surfaces)}"
                    )
        seen: set[str] = set()
        for i, tier in enumerate(self.cascade):
            for det in tier.detectors:
                if det not in self.detectors:
                    raise ValueError(
                        f"cascade[{i}].detectors: {det!r} is not declared under detectors "
                        f"(declared: {', '.join(sorted(self.detectors)) or 'none'})"
                    )
                if det in seen:
                    raise ValueError(f"cascade[{i}].detectors: {det!r} appears in more than one tier")
                seen.add(det)
            for old in tier.supersedes:
                if old not in seen or old in tier.detectors:
                    raise ValueError(f"cascade[{i}].supersedes: {old!r} is not a detector of an earlier tier")
            rule = tier.escalate_if.severity_at_least if tier.escalate_if is not None else None
            if rule is not None and not any(c.severity.rank >= rule.severity.rank for c in self.categories.values()):
                used = ", ".join(s.value for s in Severity if any(c.severity is s for c in self.categories.values()))
                raise ValueError(
                    f"cascade[{i}].escalate_if.severity_at_least: no category has severity {rule.severity.value} "
                    f"or higher (severities here: {used}), so the condition never holds; lower the severity or "
                    "remove the condition")
        self._check_fallbacks(seen)
        for cat in self.combine.categories:
            if cat not in self.categories:
                raise ValueError(f"combine.categories: unknown category {cat!r}; "
                                 f"allowed: {', '.join(self.categories)}")
        for cat in self.enforcement.strikes.category_weights:
            if cat not in self.categories:
                raise ValueError(f"enforcement.strikes.category_weights: unknown category {cat!r}; "
                                 f"allowed: {', '.join(self.categories)}")
        if self.cascade and self.cascade[0].escalate_if is not None:
            raise ValueError("cascade[0].escalate_if: the first tier always runs; remove escalate_if")
        return self

    def _check_fallbacks(self, in_tiers: set[str]) -> None:
        backing: dict[str, str] = {}  # fallback detector -> the detector it backs
        for i, tier in enumerate(self.cascade):
            for primary, chain in tier.fallback.items():
                where = f"cascade[{i}].fallback.{primary}"
                if primary not in tier.detectors:
                    raise ValueError(f"cascade[{i}].fallback: {primary!r} is not a detector of this tier "
                                     f"(its detectors: {', '.join(tier.detectors)})")
                if not chain:
                    raise ValueError(f"{where}: list at least one detector to fall back to")
                for det in chain:
                    if det not in self.detectors:
                        raise ValueError(f"{where}: {det!r} is not declared under detectors "
                                         f"(declared: {', '.join(sorted(self.detectors))})")
                    if det in in_tiers:
                        raise ValueError(f"{where}: {det!r} already runs in a cascade tier; a fallback detector "
                                         "runs only for the items the detector it backs failed on")
                    if det in backing:
                        raise ValueError(f"{where}: {det!r} is already the fallback of {backing[det]!r}; declare "
                                         "a second instance of it under detectors")
                    backing[det] = primary

    # -- convenience ---------------------------------------------------------------
    @property
    def category_names(self) -> tuple[str, ...]:
        return tuple(self.categories)

    def tier_of(self, detector_instance: str) -> int:
        for i, tier in enumerate(self.cascade):
            if detector_instance in tier.detectors:
                return i
        return len(self.cascade)
