"""Shared fixtures. Services (PostgreSQL, Redis) skip locally when absent but fail in CI."""

from __future__ import annotations

import pytest

from support import WordScoreDetector


@pytest.fixture(scope="session")
def word_detector_cls() -> type[WordScoreDetector]:
    from warden.detectors import registry

    if WordScoreDetector.name not in registry.available():
        registry.register(WordScoreDetector)
    return WordScoreDetector
