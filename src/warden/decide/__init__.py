"""From policy + signals to a Decision: a pure, deterministic function.

No I/O, no clocks, no randomness: the same policy version and signals always give the
same Decision, which is what makes decisions idempotent and backtests meaningful.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from warden.core import (
    Action,
    CategoryVerdict,
    Content,
    Decision,
    DetectorResult,
    Evidence,
    Policy,
    Reason,
    Severity,
    Verdict,
)


@dataclass(frozen=True, slots=True)
class CombinedScore:
    """The score a category gets after combining signals, and the detector that gave it."""

    category: str
    score: float
    detector: str


def combine_scores(policy: Policy, signals: Sequence[DetectorResult]) -> dict[str, CombinedScore]:
    """Per category, within each source (`DetectorResult.source`: the item's text, its images,
    text read from its images): the maximum over signals, where a tier's `supersedes` drops the
    scores of the detectors it replaces for the categories it covers. Across sources: the
    policy's `combine` rule (`max` by default, or `noisy_or`). Errored signals are ignored."""
    ok = [s for s in signals if s.ok]
    by_source: dict[str, list[DetectorResult]] = {}
    for sig in ok:
        by_source.setdefault(sig.source or "text", []).append(sig)
    if len(by_source) <= 1:
        return _combine_within(policy, ok)
    per_source = [_combine_within(policy, sigs) for _, sigs in sorted(by_source.items())]
    combined: dict[str, CombinedScore] = {}
    for cat in policy.categories:
        # Sorted, so the result never depends on signal order (floating-point products included).
        parts = sorted((p[cat] for p in per_source if cat in p), key=lambda c: (c.score, c.detector))
        if not parts:
            continue
        best = parts[-1]
        if len(parts) == 1 or policy.combine.rule_for(cat) == "max":
            combined[cat] = best
        else:
            clear = 1.0
            for part in parts:
                clear *= 1.0 - part.score
            combined[cat] = CombinedScore(cat, min(1.0, max(0.0, 1.0 - clear)), best.detector)
    return combined


def _combine_within(policy: Policy, ok: Sequence[DetectorResult]) -> dict[str, CombinedScore]:
    dropped: set[tuple[str, str]] = set()  # (detector, category)
    for tier in policy.cascade:
        if not tier.supersedes:
            continue
        covered = {c for s in ok if s.detector in tier.detectors for c in s.scores}
        dropped.update((old, c) for old in tier.supersedes for c in covered)
    combined: dict[str, CombinedScore] = {}
    for sig in ok:
        for cat, score in sig.scores.items():
            if cat not in policy.categories or (sig.detector, cat) in dropped:
                continue
            best = combined.get(cat)
            # Ties break on detector name so the result never depends on signal order.
            if best is None or (score, sig.detector) > (best.score, best.detector):
                combined[cat] = CombinedScore(cat, score, sig.detector)
    return combined


def decide(policy: Policy, content: Content, signals: Sequence[DetectorResult]) -> Decision:
    surface = content.surface
    combined = combine_scores(policy, signals)
    verdicts: list[CategoryVerdict] = []
    reasons: list[Reason] = []
    evidence_by_cat = _evidence_by_category(signals)
    action = Action.ALLOW
    worst_severity: Severity | None = None
    any_uncertain = False

    for name, cat in policy.categories.items():
        thr = cat.threshold_for(surface)
        surface_key = surface if surface in cat.thresholds else "default"
        best = combined.get(name)
        if best is None:
            verdicts.append(CategoryVerdict(name, Verdict.UNSCORED, None, thr.flag, thr.review, None))
            continue
        if best.score >= thr.flag:
            verdict, threshold, which = Verdict.VIOLATING, thr.flag, "flag"
            if cat.action.rank > action.rank:
                action = cat.action
        elif thr.review is not None and best.score >= thr.review:
            verdict, threshold, which = Verdict.UNCERTAIN, thr.review, "review"
            any_uncertain = True
        else:
            verdicts.append(CategoryVerdict(name, Verdict.CLEAR, best.score, thr.flag, thr.review, best.detector))
            continue
        verdicts.append(CategoryVerdict(name, verdict, best.score, thr.flag, thr.review, best.detector))
        if worst_severity is None or cat.severity.rank > worst_severity.rank:
            worst_severity = cat.severity
        reasons.append(Reason(
            category=name, verdict=verdict, detector=best.detector, score=best.score, threshold=threshold,
            surface=surface, rule=f"categories.{name}.thresholds.{surface_key}.{which}",
            evidence=evidence_by_cat.get(name, ()),
        ))

    errored = tuple(sorted({s.detector for s in signals if not s.ok}))
    errors = tuple(f"{s.detector}: {s.error}" for s in signals if not s.ok)
    if any_uncertain and action.rank < Action.HOLD_FOR_REVIEW.rank:
        action = Action.HOLD_FOR_REVIEW
    no_usable_signal = not any(s.ok for s in signals)
    if (errored and no_usable_signal and policy.review.on_detector_error == "hold_for_review"
            and action.rank < Action.HOLD_FOR_REVIEW.rank):
        action = Action.HOLD_FOR_REVIEW

    automated = action is not Action.HOLD_FOR_REVIEW
    review_queue = None
    if action in (Action.HOLD_FOR_REVIEW, Action.ESCALATE):
        review_queue = policy.review.default_queue
        if worst_severity is not None:
            review_queue = policy.review.route_by_severity.get(worst_severity, review_queue)
    qa_sample = automated and _sampled(content.id, policy.version, policy.review.qa_sample_rate)

    return Decision(
        content_id=content.id,
        policy_name=policy.name,
        policy_version=policy.version,
        surface=surface,
        action=action,
        automated=automated,
        verdicts=tuple(verdicts),
        reasons=tuple(reasons),
        scores={c: s.score for c, s in sorted(combined.items())},
        review_queue=review_queue,
        qa_sample=qa_sample,
        missing_signals=errored,
        errors=errors,
    )


def _evidence_by_category(signals: Sequence[DetectorResult]) -> Mapping[str, tuple[Evidence, ...]]:
    out: dict[str, list[Evidence]] = {}
    for sig in signals:
        for ev in sig.evidence:
            out.setdefault(ev.category, []).append(ev)
    return {k: tuple(v) for k, v in out.items()}


def _sampled(content_id: str, policy_version: str, rate: float) -> bool:
    """Deterministic QA sampling: the same item is always in or out of the sample."""
    if rate <= 0.0:
        return False
    digest = hashlib.sha256(f"qa\x1f{content_id}\x1f{policy_version}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < rate


__all__ = ["CombinedScore", "combine_scores", "decide"]
