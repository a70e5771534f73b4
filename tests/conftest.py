"""Shared fixtures. Services (PostgreSQL, Redis) skip locally when absent but fail in CI."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

import pg_support
from support import WordScoreDetector


@pytest.fixture(scope="session")
def pg_database_factory() -> Iterator[Callable[[], str]]:
    """Creates fresh PostgreSQL databases (dropped after the session); see `pg_support`."""
    yield from pg_support.database_factory()


@pytest.fixture(scope="session")
def word_detector_cls() -> type[WordScoreDetector]:
    from warden.detectors import registry

    if WordScoreDetector.name not in registry.available():
        registry.register(WordScoreDetector)
    return WordScoreDetector
