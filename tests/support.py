"""Helpers shared by tests (importable as `support` thanks to pytest's pythonpath)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pytest

from warden.core import Content, DetectorResult, Evidence, Span
from warden.detectors.base import Detector, DetectorParams

REPO = Path(__file__).resolve().parents[1]
DEFAULT_POLICY = REPO / "policies" / "default.yaml"
IN_CI = os.environ.get("CI", "").lower() == "true"


def skip_or_fail(reason: str) -> None:
    """Skip when a service is missing on a developer machine; fail in CI where it must exist."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: required services must be available)")
    pytest.skip(reason)


class WordScoreDetector(Detector):
    """Test double: scores a category when a trigger word appears; 'boom' raises."""

    name = "test_word_score"

    class Params(DetectorParams):
        triggers: dict[str, tuple[str, float]] = {"hateword": ("hate", 0.9), "maybe": ("harassment", 0.7),
                                                  "spammy": ("spam", 0.99)}

    def _detect(self, batch: Sequence[Content]) -> list[DetectorResult]:
        out = []
        for item in batch:
            if "boom" in (item.text or ""):
                raise RuntimeError("detector exploded")
            scores = {"hate": 0.01, "harassment": 0.02, "spam": 0.01}
            evidence = []
            for word, (cat, p) in self.params.triggers.items():
                pos = (item.text or "").find(word)
                if pos >= 0:
                    scores[cat] = p
                    evidence.append(Evidence(cat, f"word:{word}", (Span(pos, pos + len(word), word),)))
            out.append(self.result(item, scores, tuple(evidence)))
        return out


SMALL_POLICY = """
schema_version: 1
name: small
version: "t1"
surfaces: [comment, chat]
categories:
  hate:
    definition: attacks on protected groups
    severity: high
    action: remove
    thresholds: {default: {flag: 0.8, review: 0.5}}
  harassment:
    definition: insults
    severity: medium
    action: hold_for_review
    thresholds: {default: {flag: 0.8, review: 0.5}}
  spam:
    definition: bulk ads
    severity: low
    action: limit
    thresholds: {default: {flag: 0.9, review: 0.6}}
detectors:
  cheap:
    type: test_word_score
    params:
      triggers: {spammy: [spam, 0.99], hateword: [hate, 0.6], maybe: [harassment, 0.55]}
  expensive:
    type: test_word_score
cascade:
  - name: cheap
    detectors: [cheap]
  - name: expensive
    detectors: [expensive]
    supersedes: [cheap]
    escalate_if: {any_score_between: [0.5, 1.0]}
"""
