"""Review fixtures: repository tests run on SQLite and on PostgreSQL.

PostgreSQL: the admin URL comes from env WARDEN_TEST_POSTGRES_URL (default
postgresql+psycopg://postgres@127.0.0.1:5432/test). A fresh, uniquely named database is
created per test module (migrated once, review tables emptied before each test) and dropped
afterwards. When the server is unreachable the PostgreSQL tests are skipped with the reason,
except with CI=true, where they fail.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from review_helpers import make_policy
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from warden.core import Policy
from warden.store import Store
from warden.store.review_repo import ReviewRepository

DEFAULT_PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
_TABLES = "review_outcomes, labels, review_decisions, appeals, review_tasks, decisions, content"


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").strip().lower() == "true":
        pytest.fail(f"PostgreSQL is required when CI=true: {reason}", pytrace=False)
    pytest.skip(f"PostgreSQL unavailable ({reason}); set WARDEN_TEST_POSTGRES_URL to run these tests")


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    """A fresh migrated database for this test module."""
    admin_url = make_url(os.environ.get("WARDEN_TEST_POSTGRES_URL", DEFAULT_PG_ADMIN_URL))
    if admin_url.drivername == "postgresql":
        admin_url = admin_url.set(drivername="postgresql+psycopg")
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
    try:
        with admin.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        admin.dispose()
        _unavailable(f"{admin_url.render_as_string(hide_password=True)}: {type(exc).__name__}: {str(exc)[:200]}")
    name = f"warden_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = admin_url.set(database=name).render_as_string(hide_password=False)
    try:
        s = Store.from_url(url)
        s.upgrade()
        s.close()
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


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
