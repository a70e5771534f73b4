"""LLM-as-judge: label a dataset with one detector of a policy (an LLM provider reading the
policy) and measure its agreement with golden labels, per category.

The judge runs through `Moderator` on a copy of the policy that keeps only the judge detector,
so it sees exactly what production would send. A category's judge label is 1 when the
judge's score reaches the category's `flag` threshold for the item's surface, else 0; an
item the judge failed on (provider error, invalid answer after the repair) is unlabeled for
every category (missing, never "clean") and counted. Agreement is Cohen's kappa with a
bootstrap interval, reported next to each source's prevalence (`warden.evaluate.agreement`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from warden.core import Content, Policy
from warden.evaluate.agreement import AgreementReport, agreement
from warden.moderator import Moderator


@dataclass(frozen=True, slots=True)
class JudgeRun:
    """The judge's labels, its failures, and agreement with the golden labels."""

    detector: str
    model_version: str
    n_items: int
    n_failed: int
    failures: tuple[str, ...]  # first few error messages, for the report
    judge_labels: Mapping[str, tuple[float, ...]]  # category -> 0/1/NaN over items
    reports: Mapping[str, AgreementReport]

    def to_dict(self) -> dict[str, Any]:
        return {"detector": self.detector, "model_version": self.model_version, "n_items": self.n_items,
                "n_failed": self.n_failed, "failures": list(self.failures),
                "agreement": {c: r.to_dict() for c, r in self.reports.items()}}


def judge_policy(policy: Policy, detector: str) -> Policy:
    """`policy` with only `detector` (and no cascade): what the judge runs."""
    if detector not in policy.detectors:
        raise ValueError(f"detector {detector!r} is not declared in policy {policy.name!r}; declared: "
                         f"{', '.join(sorted(policy.detectors)) or 'none'}")
    return policy.model_copy(update={"detectors": {detector: policy.detectors[detector]}, "cascade": ()})


def run_judge(policy: Policy, detector: str, items: Sequence[Content],
              golden: Mapping[str, Mapping[str, float]], *, base_dir: str | Path | None = None,
              categories: Sequence[str] | None = None, batch_size: int = 32, n_bootstrap: int = 1000,
              moderator: Moderator | None = None) -> JudgeRun:
    """Label `items` with `detector` and compare with `golden` (id -> category -> 0/1/NaN)."""
    mod = moderator or Moderator(judge_policy(policy, detector), base_dir=base_dir)
    cats = list(categories) if categories else [c for c in policy.category_names
                                                  if any(c in golden.get(i.id, {}) for i in items)]
    unknown = [c for c in cats if c not in policy.categories]
    if unknown:
        raise ValueError(f"categories {unknown} are not defined in policy {policy.name!r}")
    labels: dict[str, list[float]] = {c: [] for c in cats}
    failures: list[str] = []
    n_failed = 0
    model_version = ""
    for start in range(0, len(items), batch_size):
        batch = items[start:start + batch_size]
        for item, result in zip(batch, mod.moderate_with_signals(batch), strict=True):
            signal = next((s for s in result.signals if s.detector == detector), None)
            if signal is None or not signal.ok:
                n_failed += 1
                if len(failures) < 5:
                    failures.append(f"{item.id}: {signal.error if signal else 'not run'}")
                for c in cats:
                    labels[c].append(math.nan)
                continue
            model_version = model_version or signal.model_version
            for c in cats:
                score = signal.scores.get(c)
                flag = policy.categories[c].threshold_for(item.surface).flag
                labels[c].append(math.nan if score is None else float(score >= flag))
    gold = {c: [golden.get(i.id, {}).get(c, math.nan) for i in items] for c in cats}
    reports = agreement({"golden": gold, "judge": labels}, categories=cats, n_bootstrap=n_bootstrap)
    return JudgeRun(detector=detector, model_version=model_version, n_items=len(items), n_failed=n_failed,
                    failures=tuple(failures), judge_labels={c: tuple(v) for c, v in labels.items()},
                    reports=reports)
