"""Enforcement fixtures: stores on SQLite and PostgreSQL, a policy, a fake clock.

PostgreSQL as in tests/store: admin URL from env WARDEN_TEST_POSTGRES_URL (default
postgresql+psycopg://postgres@127.0.0.1:5432/test), a fresh database per test session (and per
test that asks for its own), dropped afterwards; skipped with the reason when unreachable,
failed when CI=true.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from enforce_helpers import FakeClock

from warden.core import Policy
from warden.policy import load_policy
from warden.store import Store

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def db_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A migrated, empty database of the parametrized backend (outbox tests count rows, so
    every test gets its own)."""
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'warden.db'}"
    else:
        url = request.getfixturevalue("pg_database_factory")()
    s = Store.from_url(url)
    s.upgrade()
    s.close()
    return url


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    s = Store.from_url(db_url)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture(scope="session")
def policy() -> Policy:
    return load_policy(ROOT / "policies" / "default.yaml", check_detectors=False)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
