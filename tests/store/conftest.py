"""Store fixtures: every store test runs on SQLite and on PostgreSQL.

PostgreSQL: the admin URL comes from env WARDEN_TEST_POSTGRES_URL (default
postgresql+psycopg://postgres@127.0.0.1:5432/test). A fresh, uniquely named database is
created per test session (and per test that needs an empty one) and dropped afterwards.
When the server is unreachable the PostgreSQL tests are skipped with the reason, except
with CI=true, where they fail: CI must never silently lose its PostgreSQL coverage.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from pg_support import migrated
from warden.store import Store


@pytest.fixture(scope="session")
def pg_url(pg_database_factory: Callable[[], str]) -> str:
    """One migrated database shared by the session (tests use unique ids, never truncate)."""
    return migrated(pg_database_factory())


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def empty_db_url(backend: str, tmp_path, request: pytest.FixtureRequest) -> str:
    """A URL to a brand-new empty database of the parametrized backend."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'warden.db'}"
    return request.getfixturevalue("pg_database_factory")()


@pytest.fixture
def store(backend: str, tmp_path, request: pytest.FixtureRequest) -> Iterator[Store]:
    """A migrated Store on the parametrized backend."""
    if backend == "sqlite":
        s = Store.from_url(f"sqlite:///{tmp_path / 'warden.db'}")
        s.upgrade()
    else:
        s = Store.from_url(request.getfixturevalue("pg_url"))
    try:
        yield s
    finally:
        s.close()
