"""Service fixtures: a tiny fake Moderator (the HTTP layer is tested on its own contract),
a migrated SQLite store and keys for each role."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from svc_helpers import FakeModerator, Keys

from warden.service import ServiceSettings, create_app
from warden.store import Store


@pytest.fixture
def store(tmp_path) -> Iterator[Store]:
    s = Store.from_url(f"sqlite:///{tmp_path / 'svc.db'}")
    s.upgrade()
    yield s
    s.close()


@pytest.fixture
def keys(store: Store) -> Keys:
    out = {role: store.create_api_key(f"test-{role}", role)[1] for role in ("client", "reviewer", "admin")}
    rec, revoked = store.create_api_key("test-revoked", "client")
    store.revoke_api_key(rec.id)
    return Keys(revoked=revoked, **out)


@pytest.fixture
def settings() -> ServiceSettings:
    return ServiceSettings(max_body_bytes=64 * 1024, max_batch_items=10, max_text_chars=1000)


@pytest.fixture
def moderator() -> FakeModerator:
    return FakeModerator()


@pytest.fixture
def client(moderator: FakeModerator, store: Store, settings: ServiceSettings) -> Iterator[TestClient]:
    app = create_app(moderator=moderator, store=store, settings=settings)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c
