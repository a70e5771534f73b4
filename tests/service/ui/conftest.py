"""UI fixtures: users/sessions on SQLite and PostgreSQL, and an app with the UI mounted.

PostgreSQL: a fresh database per session from WARDEN_TEST_POSTGRES_URL (default
postgresql+psycopg://postgres@127.0.0.1:5432/test). Unreachable: the PostgreSQL tests skip
with the reason, except with CI=true where they fail.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from ui_helpers import UIEnv, fast_hasher, make_ui_env

from warden.store import Store
from warden.store.users_repo import UserRepository

DEFAULT_PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").strip().lower() == "true":
        pytest.fail(f"PostgreSQL is required when CI=true: {reason}", pytrace=False)
    pytest.skip(f"PostgreSQL unavailable ({reason}); set WARDEN_TEST_POSTGRES_URL to run these tests")


@pytest.fixture(scope="session")
def ui_pg_url() -> Iterator[str]:
    """One migrated PostgreSQL database for the session (tests use unique usernames)."""
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
    name = f"warden_ui_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = admin_url.set(database=name).render_as_string(hide_password=False)
    try:
        store = Store.from_url(url)
        store.upgrade()
        store.close()
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A migrated Store on SQLite, then on PostgreSQL."""
    if request.param == "sqlite":
        s = Store.from_url(f"sqlite:///{tmp_path / 'ui.db'}")
        s.upgrade()
    else:
        s = Store.from_url(request.getfixturevalue("ui_pg_url"))
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def users(any_store: Store) -> UserRepository:
    return UserRepository(any_store, hasher=fast_hasher())


@pytest.fixture
def unique() -> Callable[[str], str]:
    """Unique usernames: the PostgreSQL database is shared by the session."""
    tag = uuid.uuid4().hex[:8]
    return lambda name: f"{name}-{tag}"


@pytest.fixture
def ui_store(tmp_path: Path) -> Iterator[Store]:
    s = Store.from_url(f"sqlite:///{tmp_path / 'ui-app.db'}")
    s.upgrade()
    yield s
    s.close()


@pytest.fixture
def ui_env(ui_store: Store) -> UIEnv:
    env = make_ui_env(ui_store)
    for role in ("reviewer", "senior_reviewer", "admin"):
        env.auth.users.create_user(username=role.replace("_", "-"), password=f"{role}-password-1234", role=role,
                                   actor="test")
    return env


@pytest.fixture
def client_factory(ui_env: UIEnv) -> Iterator[Callable[[], TestClient]]:
    """New TestClients (each its own cookie jar) on the same app."""
    clients: list[TestClient] = []

    def make() -> TestClient:
        c = TestClient(ui_env.app, raise_server_exceptions=True, follow_redirects=False)
        c.__enter__()
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.__exit__(None, None, None)
