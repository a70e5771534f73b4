"""`Moderator`: the one facade every entry point calls.

It builds the policy's detectors once, runs them as the policy's cascade (cheap tiers
first; an item reaches an expensive tier only when its scores so far fall in that tier's
escalation band) and turns the signals into Decisions with the pure `decide` function.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, overload

from warden.core import Content, Decision, DetectorResult, Policy, Tier
from warden.decide import combine_scores, decide
from warden.detectors import registry
from warden.detectors.base import Detector, DetectorContext
from warden.ingest import MAX_TEXT_CHARS, parse_item
from warden.policy import load_policy_file

#: Called after each detector batch: (detector instance, items, seconds).
DetectorObserver = Callable[[str, int, float], None]


@dataclass(frozen=True, slots=True)
class ModerationResult:
    """A decision with the raw signals behind it (for evaluation, debugging, backtests)."""

    decision: Decision
    signals: tuple[DetectorResult, ...]


class Moderator:
    def __init__(
        self,
        policy: Policy,
        *,
        base_dir: str | Path | None = None,
        detectors: Mapping[str, Detector] | None = None,
        observer: DetectorObserver | None = None,
        max_text_chars: int = MAX_TEXT_CHARS,
    ) -> None:
        """`base_dir` resolves relative paths in detector params (the policy file's folder).
        `detectors` overrides instances by name (tests, custom wiring)."""
        self.policy = policy
        self.base_dir = Path(base_dir) if base_dir is not None else Path.cwd()
        self.observer = observer
        self.max_text_chars = max_text_chars
        context = DetectorContext(base_dir=self.base_dir, categories=policy.category_names, policy=policy)
        given = dict(detectors or {})
        self.detectors: dict[str, Detector] = {}
        for inst, spec in policy.detectors.items():
            self.detectors[inst] = given.pop(inst, None) or registry.get(spec.type).from_config(
                spec.params, instance=inst, context=context)
        self.detectors.update(given)
        self.tiers: tuple[Tier, ...] = policy.cascade or (
            Tier(name="all", detectors=tuple(self.detectors)),) if self.detectors else ()

    @classmethod
    def from_file(cls, path: str | Path, **kwargs: Any) -> Moderator:
        loaded = load_policy_file(path)
        kwargs.setdefault("base_dir", loaded.path.parent.resolve())
        return cls(loaded.policy, **kwargs)

    # -- input -----------------------------------------------------------------------
    def parse(self, obj: object, *, default_surface: str = "comment") -> Content:
        """Validate one untrusted input object against this policy (raises InvalidItem)."""
        if isinstance(obj, Content):
            return obj
        return parse_item(obj, default_surface=default_surface, allowed_surfaces=self.policy.surfaces,
                          max_text_chars=self.max_text_chars)

    # -- moderation ------------------------------------------------------------------
    @overload
    def moderate(self, item: Content | Mapping[str, Any] | str) -> Decision: ...
    @overload
    def moderate(self, item: Sequence[Content | Mapping[str, Any]]) -> list[Decision]: ...

    def moderate(self, item: Any) -> Decision | list[Decision]:
        """Moderate one item (a Content, a mapping with 'text', or a plain string) or a list."""
        if isinstance(item, str):
            return self.moderate_batch([self.parse({"text": item})])[0]
        if isinstance(item, Content | Mapping):
            return self.moderate_batch([self.parse(item)])[0]
        return self.moderate_batch([self.parse(x) for x in item])

    def moderate_batch(self, items: Sequence[Content]) -> list[Decision]:
        return [r.decision for r in self.moderate_with_signals(items)]

    def moderate_with_signals(self, items: Sequence[Content]) -> list[ModerationResult]:
        signals: list[list[DetectorResult]] = [[] for _ in items]
        active = list(range(len(items)))
        for tier in self.tiers:
            if tier.escalate_if is not None:
                low, high = tier.escalate_if.any_score_between
                # An item whose earlier signals failed also moves on: fail toward the stronger model.
                active = [i for i in active if any(not s.ok for s in signals[i])
                          or _in_band(combine_scores(self.policy, signals[i]), low, high)]
            if not active:
                break
            batch = [items[i] for i in active]
            for inst in tier.detectors:
                started = time.perf_counter()
                results = self.detectors[inst].detect(batch)
                if self.observer is not None:
                    self.observer(inst, len(batch), time.perf_counter() - started)
                for i, res in zip(active, results, strict=True):
                    signals[i].append(res)
        return [ModerationResult(decide(self.policy, item, sig), tuple(sig))
                for item, sig in zip(items, signals, strict=True)]


def _in_band(combined: Mapping[str, Any], low: float, high: float) -> bool:
    return any(low <= c.score <= high for c in combined.values())
