"""Users and web sessions on SQLite and PostgreSQL: password policy, argon2id, rehash,
disabled users, session expiry, revocation on every user change, audit events."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select
from ui_helpers import fast_hasher

from warden.store.models import UserRow, WebSessionRow
from warden.store.sqltypes import utcnow
from warden.store.users_repo import PasswordPolicyError, UnknownUser, UserError, UserRepository, token_hash

PASSWORD = "correct horse battery"


def _admin(users: UserRepository, unique: Callable[[str], str]) -> str:
    name = unique("boss")
    users.create_user(username=name, password=PASSWORD, role="admin", actor="test")
    return name


def test_create_and_authenticate(users: UserRepository, unique: Callable[[str], str]) -> None:
    name = unique("Alice")
    user = users.create_user(username=name, password=PASSWORD, role="reviewer", actor="test")
    assert user.username == name.lower() and user.role == "reviewer" and user.active
    with users.store.session() as s:
        stored = s.scalar(select(UserRow.password_hash).where(UserRow.id == user.id))
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    ok = users.authenticate(username=name.upper(), password=PASSWORD, source="10.0.0.1")
    assert ok is not None and ok.id == user.id and ok.last_login_at is not None
    assert users.authenticate(username=name, password=PASSWORD + "x") is None
    assert users.authenticate(username=unique("nobody"), password=PASSWORD) is None
    events = [(e.event, e.details.get("reason")) for e in users.store.audit_events(subject=f"user:{name.lower()}")]
    assert events == [("user.create", None), ("auth.login", None), ("auth.login_failed", "bad_password")]
    assert all(PASSWORD not in str(e.details) for e in users.store.audit_events(limit=1000))


@pytest.mark.parametrize("password, why", [("short", "at least 12"), ("x" * 1025, "at most 1024")])
def test_password_policy(users: UserRepository, unique: Callable[[str], str], password: str, why: str) -> None:
    with pytest.raises(PasswordPolicyError, match=why):
        users.create_user(username=unique("bob"), password=password, role="reviewer", actor="test")


def test_password_must_not_be_username(users: UserRepository) -> None:
    with pytest.raises(PasswordPolicyError, match="username"):
        users.create_user(username="longusername12", password="LongUsername12", role="reviewer", actor="test")


def test_bad_usernames_roles_and_duplicates(users: UserRepository, unique: Callable[[str], str]) -> None:
    with pytest.raises(UserError, match="username"):
        users.create_user(username="has space", password=PASSWORD, role="reviewer", actor="test")
    with pytest.raises(UserError, match="unknown role"):
        users.create_user(username=unique("carol"), password=PASSWORD, role="client", actor="test")
    name = unique("dave")
    users.create_user(username=name, password=PASSWORD, role="reviewer", actor="test")
    with pytest.raises(UserError, match="already exists"):
        users.create_user(username=name.upper(), password=PASSWORD, role="reviewer", actor="test")


def test_disabled_user_cannot_log_in_and_sessions_die(users: UserRepository, unique: Callable[[str], str]) -> None:
    _admin(users, unique)
    name = unique("erin")
    user = users.create_user(username=name, password=PASSWORD, role="reviewer", actor="test")
    new = users.create_session(user_id=user.id)
    assert users.get_session(new.token) is not None
    users.disable(username=name, actor="user:boss")
    assert users.get_session(new.token) is None
    assert users.authenticate(username=name, password=PASSWORD) is None
    failed = users.store.audit_events(event="auth.login_failed", subject=f"user:{name}")
    assert failed[-1].details["reason"] == "disabled"
    with pytest.raises(UnknownUser):
        users.create_session(user_id=user.id)
    users.enable(username=name, actor="test")
    assert users.authenticate(username=name, password=PASSWORD) is not None
    assert users.get_session(new.token) is None  # enabling does not resurrect old sessions


def test_role_change_and_password_change_revoke_sessions(users: UserRepository, unique: Callable[[str], str]) -> None:
    name = unique("frank")
    user = users.create_user(username=name, password=PASSWORD, role="reviewer", actor="test")
    a, b = users.create_session(user_id=user.id), users.create_session(user_id=user.id)
    users.set_role(username=name, role="senior_reviewer", actor="test")
    assert users.get_session(a.token) is None and users.get_session(b.token) is None
    c = users.create_session(user_id=user.id)
    assert users.get_session(c.token).user.role == "senior_reviewer"
    users.set_role(username=name, role="senior_reviewer", actor="test")  # no change: sessions stay
    assert users.get_session(c.token) is not None
    users.set_password(username=name, password="another long password", actor="test")
    assert users.get_session(c.token) is None
    assert users.authenticate(username=name, password=PASSWORD) is None
    assert users.authenticate(username=name, password="another long password") is not None
    events = [e.event for e in users.store.audit_events(subject=f"user:{name}")]
    assert events.count("user.set_role") == 1 and "user.set_password" in events


def test_last_admin_cannot_be_demoted_or_disabled(any_store, unique: Callable[[str], str]) -> None:
    users = UserRepository(any_store, hasher=fast_hasher())
    with any_store.transaction() as s:  # the PostgreSQL database is shared: start from no enabled admin
        for row in s.scalars(select(UserRow).where(UserRow.role == "admin", UserRow.disabled_at.is_(None))):
            row.disabled_at = utcnow()
    only = unique("root")
    users.create_user(username=only, password=PASSWORD, role="admin", actor="test")
    with pytest.raises(UserError, match="last enabled admin"):
        users.set_role(username=only, role="reviewer", actor="test")
    with pytest.raises(UserError, match="last enabled admin"):
        users.disable(username=only, actor="test")
    other = unique("root2")
    users.create_user(username=other, password=PASSWORD, role="admin", actor="test")
    assert users.set_role(username=only, role="reviewer", actor="test").role == "reviewer"


def test_session_token_is_stored_hashed(users: UserRepository, unique: Callable[[str], str]) -> None:
    user = users.create_user(username=unique("gina"), password=PASSWORD, role="reviewer", actor="test")
    new = users.create_session(user_id=user.id)
    assert len(new.token) >= 43  # 32 random bytes, urlsafe base64
    with users.store.session() as s:
        hashes = list(s.scalars(select(WebSessionRow.token_hash).where(WebSessionRow.user_id == user.id)))
    assert hashes == [token_hash(new.token)] and new.token not in hashes
    assert users.get_session(token_hash(new.token)) is None  # the stored hash is not a credential
    assert users.get_session("") is None and users.get_session("x" * 1000) is None
    assert new.session.csrf_token and new.session.csrf_token != new.token


def test_logout_revokes(users: UserRepository, unique: Callable[[str], str]) -> None:
    user = users.create_user(username=unique("hank"), password=PASSWORD, role="reviewer", actor="test")
    new = users.create_session(user_id=user.id)
    assert users.revoke_session(new.token) is True
    assert users.get_session(new.token) is None
    assert users.revoke_session(new.token) is False
    assert users.store.audit_events(event="auth.logout", subject=f"user:{user.username}")


def test_session_expiry_and_sliding(any_store, unique: Callable[[str], str]) -> None:
    now = [utcnow()]
    users = UserRepository(any_store, hasher=fast_hasher(), session_ttl=timedelta(hours=12),
                           session_max_age=timedelta(hours=30), clock=lambda: now[0])
    user = users.create_user(username=unique("ivy"), password=PASSWORD, role="reviewer", actor="test")
    new = users.create_session(user_id=user.id)
    start = now[0]
    now[0] = start + timedelta(hours=3)  # more than half left: no write
    assert users.get_session(new.token).expires_at == start + timedelta(hours=12)
    now[0] = start + timedelta(hours=10)  # less than half left: extended to now + ttl
    assert users.get_session(new.token).expires_at == start + timedelta(hours=22)
    now[0] = start + timedelta(hours=20)
    assert users.get_session(new.token).expires_at == start + timedelta(hours=30)  # capped by max age
    now[0] = start + timedelta(hours=30, seconds=1)
    assert users.get_session(new.token) is None

    fixed = UserRepository(any_store, hasher=fast_hasher(), sliding=False, clock=lambda: now[0])
    other = fixed.create_session(user_id=user.id)
    now[0] += timedelta(hours=11)
    assert fixed.get_session(other.token).expires_at == other.session.expires_at
    now[0] += timedelta(hours=2)
    assert fixed.get_session(other.token) is None


def test_rehash_when_parameters_change(any_store, unique: Callable[[str], str]) -> None:
    old = UserRepository(any_store, hasher=fast_hasher())
    name = unique("jack")
    user = old.create_user(username=name, password=PASSWORD, role="reviewer", actor="test")
    stronger = UserRepository(any_store, hasher=PasswordHasher(time_cost=2, memory_cost=2048, parallelism=1))
    assert stronger.authenticate(username=name, password=PASSWORD) is not None
    with any_store.session() as s:
        new_hash = s.scalar(select(UserRow.password_hash).where(UserRow.id == user.id))
    assert "m=2048,t=2,p=1" in new_hash
    assert not stronger.hasher.check_needs_rehash(new_hash)
    assert old.authenticate(username=name, password=PASSWORD) is not None  # old params still verify
    login = any_store.audit_events(event="auth.login", subject=f"user:{name}")
    assert [e.details["rehashed"] for e in login] == [True, True]


class _SpyHasher(PasswordHasher):
    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=1024, parallelism=1)
        self.verified: list[str] = []

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:
        self.verified.append(str(hash))
        return super().verify(hash, password)


def test_unknown_user_still_pays_for_a_hash(any_store, unique: Callable[[str], str]) -> None:
    users = UserRepository(any_store, hasher=_SpyHasher())
    assert users.authenticate(username=unique("ghost"), password=PASSWORD) is None
    assert len(users.hasher.verified) == 1 and users.hasher.verified[0].startswith("$argon2id$")


def test_list_users(users: UserRepository, unique: Callable[[str], str]) -> None:
    _admin(users, unique)
    a = unique("kate")
    users.create_user(username=a, password=PASSWORD, role="reviewer", actor="test")
    users.disable(username=a, actor="test")
    names_all = {u.username for u in users.list_users()}
    names_active = {u.username for u in users.list_users(include_disabled=False)}
    assert a in names_all and a not in names_active
    assert users.get_user(a.upper()).disabled_at is not None and users.get_user(unique("zed")) is None
