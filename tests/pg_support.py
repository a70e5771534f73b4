"""Real PostgreSQL for tests, shared by every folder (root conftest exposes the fixtures).

The admin URL comes from env WARDEN_TEST_POSTGRES_URL (default
postgresql+psycopg://postgres@127.0.0.1:5432/test). Each test database is fresh, uniquely
named and dropped at the end of the session. When the server is unreachable the PostgreSQL
tests skip with the reason, except with CI=true, where they fail: CI must never silently lose
its PostgreSQL coverage.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from warden.store import Store

DEFAULT_PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def unavailable(reason: str) -> None:
    if os.environ.get("CI", "").strip().lower() == "true":
        pytest.fail(f"PostgreSQL is required when CI=true: {reason}", pytrace=False)
    pytest.skip(f"PostgreSQL unavailable ({reason}); set WARDEN_TEST_POSTGRES_URL to run these tests")


def database_factory() -> Iterator[Callable[[], str]]:
    """Yields a function that creates a fresh empty database and returns its URL."""
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
        unavailable(f"{admin_url.render_as_string(hide_password=True)}: {type(exc).__name__}: {str(exc)[:200]}")

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


def migrated(url: str) -> str:
    store = Store.from_url(url)
    try:
        store.upgrade()
    finally:
        store.close()
    return url
