"""Enforcement fixtures: stores on SQLite and PostgreSQL, a policy, a fake clock.

PostgreSQL as in tests/store: admin URL from env WARDEN_TEST_POSTGRES_URL (default
postgresql+psycopg://postgres@127.0.0.1:5432/test), a fresh database per test session (and per
test that asks for its own), dropped afterwards; skipped with the reason when unreachable,
failed when CI=true.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from enforce_helpers import FakeClock
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from warden.core import Policy
from warden.policy import load_policy
from warden.store import Store

DEFAULT_PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
ROOT = Path(__file__).resolve().parents[2]


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").strip().lower() == "true":
        pytest.fail(f"PostgreSQL is required when CI=true: {reason}", pytrace=False)
    pytest.skip(f"PostgreSQL unavailable ({reason}); set WARDEN_TEST_POSTGRES_URL to run these tests")


@pytest.fixture(scope="session")
def pg_database_factory() -> Iterator[Callable[[], str]]:
    """A function that creates a fresh empty database and returns its URL."""
    admin_url = make_url(os.environ.get("WARDEN_TEST_POSTGRES_URL", DEFAULT_PG_ADMIN_URL))
    if admin_url.drivername == "postgresql":
        admin_url = admin_url.set(drivername="postgresql+psycopg")
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
    created: list[str] = []
    try:
        with admin.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        admin.dispose()
        _unavailable(f"{admin_url.render_as_string(hide_password=True)}: {type(exc).__name__}: {str(exc)[:200]}")

    def create() -> str:
        name = f"warden_test_{uuid.uuid4().hex[:12]}"
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        created.append(name)
        return admin_url.set(database=name).render_as_string(hide_password=False)

    try:
        yield create
    finally:
        with admin.connect() as conn:
            for name in created:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


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
