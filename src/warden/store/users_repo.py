"""People who log in to the reviewer UI, and their web sessions.

Passwords are argon2id hashes (argon2-cffi). Unlike API keys (256 random bits, see
`warden.store.keys`), passwords are low-entropy, so each guess must be expensive. Sessions
are random 32-byte tokens handed to the browser once; only their SHA-256 is stored, so a
leaked database cannot be replayed as a login.

Every change of a user (role, password, disabled) revokes all of their sessions: a demoted
or disabled person must not keep the rights an open tab had.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from warden.store.models import UserRow, WebSessionRow
from warden.store.repository import Store
from warden.store.sqltypes import utcnow

USER_ROLES: tuple[str, ...] = ("reviewer", "senior_reviewer", "admin")
MIN_PASSWORD_CHARS = 12
# argon2 hashes whatever it is given; an unbounded password is a CPU/memory lever for attackers.
MAX_PASSWORD_CHARS = 1024
USERNAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.@\-]{0,127}$")
SESSION_TOKEN_BYTES = 32
DEFAULT_SESSION_TTL = timedelta(hours=12)
# A sliding session is extended on use, but never beyond this age: a stolen cookie dies eventually.
DEFAULT_SESSION_MAX_AGE = timedelta(days=7)


class UserError(ValueError):
    """A user operation that cannot be done (message is safe to show to an admin)."""


class PasswordPolicyError(UserError):
    pass


class UnknownUser(UserError):
    pass


@dataclass(frozen=True, slots=True)
class UserRecord:
    """A user without the password hash (safe to print, log and render)."""

    id: int
    username: str
    role: str
    created_at: datetime
    disabled_at: datetime | None
    last_login_at: datetime | None

    @property
    def active(self) -> bool:
        return self.disabled_at is None


@dataclass(frozen=True, slots=True)
class WebSession:
    """A live session, as resolved from a cookie. The token itself is never kept."""

    token_hash: str
    user: UserRecord
    csrf_token: str
    created_at: datetime
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class NewSession:
    """`token` goes into the cookie once; the database keeps only its SHA-256."""

    token: str
    session: WebSession


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def normalize_username(username: str) -> str:
    return (username or "").strip().lower()


def check_password(password: str, *, username: str = "") -> None:
    """Raise `PasswordPolicyError` when the password is not acceptable."""
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_CHARS:
        raise PasswordPolicyError(f"the password must have at least {MIN_PASSWORD_CHARS} characters")
    if len(password) > MAX_PASSWORD_CHARS:
        raise PasswordPolicyError(f"the password must have at most {MAX_PASSWORD_CHARS} characters")
    if username and normalize_username(password) == normalize_username(username):
        raise PasswordPolicyError("the password must not be the username")


def _user_record(row: UserRow) -> UserRecord:
    return UserRecord(id=row.id, username=row.username, role=row.role, created_at=row.created_at,
                      disabled_at=row.disabled_at, last_login_at=row.last_login_at)


_DUMMY_LOCK = threading.Lock()
_DUMMY_HASHES: dict[tuple[int, int, int], str] = {}


def _dummy_hash(hasher: PasswordHasher) -> str:
    """A hash with the same parameters as real ones: unknown usernames cost as much as known ones."""
    key = (hasher.time_cost, hasher.memory_cost, hasher.parallelism)
    with _DUMMY_LOCK:
        if key not in _DUMMY_HASHES:
            _DUMMY_HASHES[key] = hasher.hash(secrets.token_hex(16))
        return _DUMMY_HASHES[key]


class UserRepository:
    """Users and web sessions on top of a `Store` (SQLite or PostgreSQL).

    `hasher`: the argon2id parameters for new hashes (argon2-cffi's RFC 9106 defaults unless
    given); hashes made with other parameters are upgraded at the next successful login.
    `clock` is injectable so expiry can be tested without sleeping.
    """

    def __init__(
        self,
        store: Store,
        *,
        hasher: PasswordHasher | None = None,
        session_ttl: timedelta = DEFAULT_SESSION_TTL,
        session_max_age: timedelta = DEFAULT_SESSION_MAX_AGE,
        sliding: bool = True,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.store = store
        self.hasher = hasher or PasswordHasher()
        self.session_ttl = session_ttl
        self.session_max_age = session_max_age
        self.sliding = sliding
        self.clock = clock

    # -- users ---------------------------------------------------------------------------
    def create_user(self, *, username: str, password: str, role: str, actor: str) -> UserRecord:
        name = normalize_username(username)
        if not USERNAME_PATTERN.match(name):
            raise UserError("the username must be 1-128 characters: letters, digits, '_', '.', '@' or '-'")
        _check_role(role)
        check_password(password, username=name)
        password_hash = self.hasher.hash(password)  # outside the transaction: it is slow
        with self.store.transaction() as s:
            if s.scalar(select(UserRow.id).where(UserRow.username == name)) is not None:
                raise UserError(f"a user named {name!r} already exists")
            row = UserRow(username=name, password_hash=password_hash, role=role, created_at=self.clock())
            s.add(row)
            s.flush()
            self.store.append_audit(actor, "user.create", f"user:{name}", {"role": role}, tx=s)
            return _user_record(row)

    def get_user(self, username: str) -> UserRecord | None:
        with self.store.session() as s:
            row = s.scalars(select(UserRow).where(UserRow.username == normalize_username(username))).first()
            return _user_record(row) if row is not None else None

    def list_users(self, *, include_disabled: bool = True) -> list[UserRecord]:
        q = select(UserRow).order_by(UserRow.username)
        if not include_disabled:
            q = q.where(UserRow.disabled_at.is_(None))
        with self.store.session() as s:
            return [_user_record(r) for r in s.scalars(q)]

    def count_users(self) -> int:
        with self.store.session() as s:
            return int(s.scalar(select(func.count()).select_from(UserRow)) or 0)

    def set_role(self, *, username: str, role: str, actor: str) -> UserRecord:
        _check_role(role)
        with self.store.transaction() as s:
            row = self._row(s, username)
            old = row.role
            if old != role:
                if old == "admin":
                    self._keep_an_admin(s, row)
                row.role = role
                revoked = self._revoke_user_sessions(s, row.id)
                self.store.append_audit(actor, "user.set_role", f"user:{row.username}",
                                        {"old_role": old, "role": role, "sessions_revoked": revoked}, tx=s)
            return _user_record(row)

    def disable(self, *, username: str, actor: str) -> UserRecord:
        with self.store.transaction() as s:
            row = self._row(s, username)
            if row.disabled_at is None:
                if row.role == "admin":
                    self._keep_an_admin(s, row)
                row.disabled_at = self.clock()
            revoked = self._revoke_user_sessions(s, row.id)
            self.store.append_audit(actor, "user.disable", f"user:{row.username}", {"sessions_revoked": revoked}, tx=s)
            return _user_record(row)

    def enable(self, *, username: str, actor: str) -> UserRecord:
        with self.store.transaction() as s:
            row = self._row(s, username)
            if row.disabled_at is not None:
                row.disabled_at = None
                self.store.append_audit(actor, "user.enable", f"user:{row.username}", {}, tx=s)
            return _user_record(row)

    def set_password(self, *, username: str, password: str, actor: str) -> UserRecord:
        name = normalize_username(username)
        check_password(password, username=name)
        password_hash = self.hasher.hash(password)
        with self.store.transaction() as s:
            row = self._row(s, name)
            row.password_hash = password_hash
            revoked = self._revoke_user_sessions(s, row.id)
            self.store.append_audit(actor, "user.set_password", f"user:{row.username}",
                                    {"sessions_revoked": revoked}, tx=s)
            return _user_record(row)

    def authenticate(self, *, username: str, password: str, source: str | None = None) -> UserRecord | None:
        """The user when the password matches and the account is enabled, else None.

        Unknown users are verified against a dummy hash so response time does not tell which
        usernames exist. Hashes made with older parameters are re-hashed on success. Both
        outcomes are audited (`auth.login`, `auth.login_failed`), never with the password.
        """
        name = normalize_username(username)
        details = {"source": source} if source else {}
        if not isinstance(password, str) or len(password) > MAX_PASSWORD_CHARS:
            password = ""
        with self.store.session() as s:
            row = s.scalars(select(UserRow).where(UserRow.username == name)).first()
            stored = row.password_hash if row is not None else None
            user_id = row.id if row is not None else None
            disabled = row is not None and row.disabled_at is not None
        ok = _verify(self.hasher, stored or _dummy_hash(self.hasher), password) and stored is not None
        subject = f"user:{name[:128]}"
        if not ok or disabled or user_id is None:
            reason = "unknown_user" if stored is None else ("disabled" if disabled and ok else "bad_password")
            self.store.append_audit("web", "auth.login_failed", subject, {**details, "reason": reason})
            return None
        new_hash = self.hasher.hash(password) if self.hasher.check_needs_rehash(stored or "") else None
        with self.store.transaction() as s:
            values: dict[str, object] = {"last_login_at": self.clock()}
            if new_hash is not None:
                values["password_hash"] = new_hash
            s.execute(update(UserRow).where(UserRow.id == user_id).values(**values))
            row = s.get(UserRow, user_id)
            assert row is not None
            self.store.append_audit(f"user:{name}", "auth.login", subject,
                                    {**details, "rehashed": new_hash is not None}, tx=s)
            return _user_record(row)

    # -- sessions ------------------------------------------------------------------------
    def create_session(self, *, user_id: int) -> NewSession:
        token = secrets.token_urlsafe(SESSION_TOKEN_BYTES)
        now = self.clock()
        with self.store.transaction() as s:
            user = s.get(UserRow, user_id)
            if user is None or user.disabled_at is not None:
                raise UnknownUser("no enabled user with this id")
            row = WebSessionRow(token_hash=token_hash(token), user_id=user_id, csrf_token=secrets.token_urlsafe(32),
                                created_at=now, expires_at=now + self.session_ttl)
            s.add(row)
            s.flush()
            return NewSession(token=token, session=_session_record(row, user))

    def get_session(self, token: str | None) -> WebSession | None:
        """The live session for a cookie token, or None (unknown, revoked, expired, user disabled).

        Sliding sessions are extended when less than half their lifetime is left (one write
        per half-TTL, not per request), never past `session_max_age` after login.
        """
        if not token or len(token) > 256:
            return None
        now = self.clock()
        th = token_hash(token)
        with self.store.session() as s:
            found = s.execute(select(WebSessionRow, UserRow).join(UserRow, UserRow.id == WebSessionRow.user_id)
                              .where(WebSessionRow.token_hash == th)).first()
            if found is None:
                return None
            row, user = found
            if row.revoked_at is not None or row.expires_at <= now or user.disabled_at is not None:
                return None
            record = _session_record(row, user)
        if self.sliding and record.expires_at - now < self.session_ttl / 2:
            new_expiry = min(now + self.session_ttl, record.created_at + self.session_max_age)
            if new_expiry > record.expires_at:
                with self.store.transaction() as s:
                    s.execute(update(WebSessionRow).where(WebSessionRow.token_hash == th)
                              .values(expires_at=new_expiry))
                record = WebSession(record.token_hash, record.user, record.csrf_token, record.created_at, new_expiry)
        return record

    def revoke_session(self, token: str | None, *, actor: str | None = None) -> bool:
        """Log out: True when a live session was revoked."""
        if not token:
            return False
        with self.store.transaction() as s:
            row = s.get(WebSessionRow, token_hash(token))
            if row is None or row.revoked_at is not None:
                return False
            row.revoked_at = self.clock()
            user = s.get(UserRow, row.user_id)
            name = user.username if user is not None else str(row.user_id)
            self.store.append_audit(actor or f"user:{name}", "auth.logout", f"user:{name}", {}, tx=s)
            return True

    def revoke_user_sessions(self, *, username: str, actor: str) -> int:
        with self.store.transaction() as s:
            row = self._row(s, username)
            n = self._revoke_user_sessions(s, row.id)
            self.store.append_audit(actor, "user.revoke_sessions", f"user:{row.username}", {"sessions_revoked": n},
                                    tx=s)
            return n

    # -- helpers -------------------------------------------------------------------------
    def _row(self, s: Session, username: str) -> UserRow:
        name = normalize_username(username)
        row = s.scalars(select(UserRow).where(UserRow.username == name)).first()
        if row is None:
            raise UnknownUser(f"no user named {name!r}")
        return row

    def _keep_an_admin(self, s: Session, row: UserRow) -> None:
        """Refuse to demote or disable the last enabled admin: nobody could manage users after it."""
        if row.disabled_at is not None:
            return
        others = s.scalar(select(func.count()).select_from(UserRow).where(
            UserRow.role == "admin", UserRow.disabled_at.is_(None), UserRow.id != row.id))
        if not others:
            raise UserError("this is the last enabled admin; create or enable another admin first")

    def _revoke_user_sessions(self, s: Session, user_id: int) -> int:
        result = s.execute(update(WebSessionRow)
                           .where(WebSessionRow.user_id == user_id, WebSessionRow.revoked_at.is_(None))
                           .values(revoked_at=self.clock()))
        return int(result.rowcount or 0)  # type: ignore[attr-defined]


def _session_record(row: WebSessionRow, user: UserRow) -> WebSession:
    return WebSession(token_hash=row.token_hash, user=_user_record(user), csrf_token=row.csrf_token,
                      created_at=row.created_at, expires_at=row.expires_at)


def _check_role(role: str) -> None:
    if role not in USER_ROLES:
        raise UserError(f"unknown role {role!r}; allowed: {', '.join(USER_ROLES)}")


def _verify(hasher: PasswordHasher, stored: str, password: str) -> bool:
    try:
        return hasher.verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def csrf_matches(expected: str, presented: str | None) -> bool:
    """Constant-time comparison of a CSRF token (None or empty never matches)."""
    return bool(presented) and hmac.compare_digest(expected.encode(), (presented or "").encode())


__all__ = [
    "DEFAULT_SESSION_MAX_AGE",
    "DEFAULT_SESSION_TTL",
    "MIN_PASSWORD_CHARS",
    "USER_ROLES",
    "NewSession",
    "PasswordPolicyError",
    "UnknownUser",
    "UserError",
    "UserRecord",
    "UserRepository",
    "WebSession",
    "check_password",
    "csrf_matches",
    "normalize_username",
    "token_hash",
]
