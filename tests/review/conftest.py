"""Review fixtures: repository tests run on SQLite and on PostgreSQL.

PostgreSQL: the admin URL comes from env WARDEN_TEST_POSTGRES_URL (default
postgresql+psycopg://postgres@127.0.0.1:5432/test). A fresh, uniquely named database is
created per test module (migrated once, review tables emptied before each test) and dropped
afterwards. When the server is unreachable the PostgreSQL tests are skipped with the reason,
except with CI=true, where they fail.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from review_helpers import make_policy
from sqlalchemy import create_engine, text

from pg_support import migrated
from warden.core import Policy
from warden.store import Store
from warden.store.review_repo import ReviewRepository

_TABLES = "review_outcomes, labels, review_decisions, appeals, review_tasks, decisions, content"


@pytest.fixture(scope="module")
def pg_url(pg_database_factory: Callable[[], str]) -> str:
    """A fresh migrated database for this test module."""
    return migrated(pg_database_factory())


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def db_url(backend: str, tmp_path, request: pytest.FixtureRequest) -> str:
    """A migrated database of the parametrized backend with empty review tables."""
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'warden.db'}"
        s = Store.from_url(url)
        s.upgrade()
        s.close()
        return url
    url = request.getfixturevalue("pg_url")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {_TABLES} RESTART IDENTITY CASCADE"))
    engine.dispose()
    return url


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    s = Store.from_url(db_url)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def policy() -> Policy:
    return make_policy()


@pytest.fixture
def repo(store: Store, policy: Policy) -> ReviewRepository:
    return ReviewRepository(store, policy=policy)
