"""UI fixtures: users/sessions on SQLite and PostgreSQL, and an app with the UI mounted.

PostgreSQL: a fresh database per session from WARDEN_TEST_POSTGRES_URL (default
postgresql+psycopg://postgres@127.0.0.1:5432/test). Unreachable: the PostgreSQL tests skip
with the reason, except with CI=true where they fail.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from ui_helpers import UIEnv, fast_hasher, make_ui_env

from pg_support import migrated
from warden.store import Store
from warden.store.users_repo import UserRepository


@pytest.fixture(scope="session")
def ui_pg_url(pg_database_factory: Callable[[], str]) -> str:
    """One migrated PostgreSQL database for the session (tests use unique usernames)."""
    return migrated(pg_database_factory())


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
