"""Media test fixtures: a small policy built on test doubles (no model files, no Tesseract),
so the media plumbing (content model, guards, derived OCR text, combination, API, CLI) is
tested everywhere; the real detectors are tested where `warden[media]` is installed."""

from __future__ import annotations

from pathlib import Path

import pytest
from media_samples import register_doubles

from support import WordScoreDetector

DOUBLES_POLICY = """
schema_version: 1
name: media-test
version: "m1"
surfaces: [comment, profile]
categories:
  sexual:
    definition: sexual content
    severity: medium
    action: limit
    thresholds: {default: {flag: 0.8, review: 0.5}}
  violence:
    definition: threats of violence
    severity: high
    action: remove
    thresholds: {default: {flag: 0.8, review: 0.5}}
  hate:
    definition: hate
    severity: high
    action: remove
    thresholds: {default: {flag: 0.8, review: 0.5}}
  harassment:
    definition: harassment
    severity: medium
    action: remove
    thresholds: {default: {flag: 0.8, review: 0.5}}
  spam:
    definition: spam
    severity: low
    action: label
    thresholds: {default: {flag: 0.95}}
detectors:
  ocr: {type: test_chunk_ocr}
  redness: {type: test_redness}
  words:
    type: test_word_score
    params:
      triggers: {kill: [violence, 0.95], sexy: [sexual, 0.6], maybe: [harassment, 0.7]}
cascade:
  - {name: media, detectors: [ocr, redness]}
  - {name: text, detectors: [words]}
combine:
  categories: {sexual: noisy_or}
"""


@pytest.fixture(scope="session", autouse=True)
def _doubles() -> None:
    from warden.detectors import registry

    register_doubles()
    if WordScoreDetector.name not in registry.available():
        registry.register(WordScoreDetector)


@pytest.fixture
def doubles_policy_path(tmp_path: Path) -> Path:
    path = tmp_path / "media-test.yaml"
    path.write_text(DOUBLES_POLICY, encoding="utf-8")
    return path


@pytest.fixture
def doubles_moderator(doubles_policy_path: Path):
    from warden import Moderator

    return Moderator.from_file(doubles_policy_path)
