"""Cookie sessions, CSRF and role checks for the server-rendered UI (`/ui/...`).

Two separate doors, on purpose:

* `/v1` routes take API keys only (`warden.service.auth`); a session cookie is ignored there,
  so a logged-in browser cannot be tricked into calling the JSON API cross-site.
* `/ui` routes take the session cookie only; an `Authorization` header is ignored, so a leaked
  API key does not open the reviewer UI.

Cookies are HttpOnly and SameSite=Lax. `Secure` (and the `__Host-` name prefix, which
browsers only accept on Secure cookies) is used when the request came over HTTPS, or
always/never with `WARDEN_COOKIE_SECURE=1/0` (tests and local runs are plain HTTP).
Every state-changing request must carry the session's CSRF token (form field `csrf_token`
or header `X-CSRF-Token`); the login form uses a double-submit cookie because it has no
session yet.
"""

from __future__ import annotations

import os
import secrets
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from urllib.parse import quote

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from starlette.responses import Response

from warden.store import Store
from warden.store.users_repo import UserRecord, UserRepository, WebSession, csrf_matches

SESSION_COOKIE = "warden_session"
LOGIN_CSRF_COOKIE = "warden_login_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
REVIEW_ROLES: tuple[str, ...] = ("reviewer", "senior_reviewer", "admin")
SENIOR_ROLES: tuple[str, ...] = ("senior_reviewer", "admin")
ADMIN_ROLES: tuple[str, ...] = ("admin",)
UI_PREFIX = "/ui"


@dataclass(frozen=True, slots=True)
class WebAuthSettings:
    #: None: Secure only over HTTPS (auto); True/False: always/never. Env WARDEN_COOKIE_SECURE=auto|1|0.
    cookie_secure: bool | None = None
    session_ttl: timedelta = timedelta(hours=12)
    #: Failed logins allowed per username, and per client address, within the window.
    max_failures_per_user: int = 5
    max_failures_per_ip: int = 30
    window_seconds: float = 300.0

    @classmethod
    def from_env(cls) -> WebAuthSettings:
        raw = os.environ.get("WARDEN_COOKIE_SECURE", "auto").strip().lower()
        secure = None if raw in ("", "auto") else raw in ("1", "true", "yes", "on")
        hours = float(os.environ.get("WARDEN_SESSION_TTL_HOURS", "12"))
        return cls(cookie_secure=secure, session_ttl=timedelta(hours=hours))


class LoginRateLimiter:
    """Failed logins in a sliding window, per username and per client address (in memory).

    In-memory is enough for one process; behind several workers each has its own window,
    which still bounds guessing to `workers x limit` per window. Argon2's cost bounds the rest.
    """

    def __init__(self, *, per_user: int, per_ip: int, window_seconds: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.per_user, self.per_ip, self.window = per_user, per_ip, window_seconds
        self.clock = clock
        self._lock = threading.Lock()
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, key: str, now: float) -> deque[float]:
        q = self._failures.setdefault(key, deque())
        while q and q[0] <= now - self.window:
            q.popleft()
        return q

    def retry_after(self, *, username: str, ip: str) -> float:
        """Seconds until another attempt is allowed; 0 when allowed now."""
        now = self.clock()
        with self._lock:
            waits = [0.0]
            for key, limit in ((f"u:{username}", self.per_user), (f"i:{ip}", self.per_ip)):
                q = self._recent(key, now)
                if len(q) >= limit:
                    waits.append(q[len(q) - limit] + self.window - now)
            return max(waits)

    def record_failure(self, *, username: str, ip: str) -> None:
        now = self.clock()
        with self._lock:
            if len(self._failures) > 100_000:  # bound memory under a spray of usernames
                self._failures.clear()
            for key in (f"u:{username}", f"i:{ip}"):
                self._recent(key, now).append(now)

    def reset_user(self, username: str) -> None:
        with self._lock:
            self._failures.pop(f"u:{username}", None)


@dataclass(frozen=True, slots=True)
class LoginResult:
    user: UserRecord | None = None
    token: str | None = None
    retry_after: float = 0.0  # > 0: rate limited, nothing was checked


@dataclass
class WebAuth:
    """The UI's authentication state for one app: users/sessions repository and the login limiter."""

    users: UserRepository
    settings: WebAuthSettings = field(default_factory=WebAuthSettings)
    limiter: LoginRateLimiter | None = None

    def __post_init__(self) -> None:
        if self.limiter is None:
            s = self.settings
            self.limiter = LoginRateLimiter(per_user=s.max_failures_per_user, per_ip=s.max_failures_per_ip,
                                            window_seconds=s.window_seconds)

    @classmethod
    def for_store(cls, store: Store, settings: WebAuthSettings | None = None) -> WebAuth:
        settings = settings or WebAuthSettings.from_env()
        return cls(users=UserRepository(store, session_ttl=settings.session_ttl), settings=settings)

    def login(self, *, username: str, password: str, ip: str) -> LoginResult:
        """Check the limiter, then the password; on success open a session."""
        assert self.limiter is not None
        name = (username or "").strip().lower()[:128]
        wait = self.limiter.retry_after(username=name, ip=ip)
        if wait > 0:
            self.users.store.append_audit("web", "auth.login_throttled", f"user:{name}", {"source": ip})
            return LoginResult(retry_after=wait)
        user = self.users.authenticate(username=name, password=password, source=ip)
        if user is None:
            self.limiter.record_failure(username=name, ip=ip)
            return LoginResult()
        self.limiter.reset_user(name)
        return LoginResult(user=user, token=self.users.create_session(user_id=user.id).token)

    def secure(self, request: Request) -> bool:
        if self.settings.cookie_secure is not None:
            return self.settings.cookie_secure
        return request.url.scheme == "https"

    def cookie_name(self, request: Request) -> str:
        # `__Host-`: the browser refuses it unless Secure, Path=/ and no Domain: no subdomain can plant it.
        return f"__Host-{SESSION_COOKIE}" if self.secure(request) else SESSION_COOKIE

    def set_session_cookie(self, response: Response, request: Request, token: str) -> None:
        response.set_cookie(self.cookie_name(request), token, max_age=int(self.users.session_max_age.total_seconds()),
                            path="/", secure=self.secure(request), httponly=True, samesite="lax")

    def clear_session_cookie(self, response: Response, request: Request) -> None:
        response.delete_cookie(self.cookie_name(request), path="/", secure=self.secure(request), httponly=True,
                               samesite="lax")

    def session_token(self, request: Request) -> str | None:
        return request.cookies.get(self.cookie_name(request))


def get_web_auth(request: Request) -> WebAuth:
    """The app's `WebAuth`, created on first use from the app's store (tests may preset
    `app.state.web_auth` with cheap argon2 parameters or fixed settings)."""
    state = request.app.state
    auth = getattr(state, "web_auth", None)
    if auth is None:
        auth = WebAuth.for_store(state.store)
        state.web_auth = auth
    return auth


# -- errors the UI renders (handlers installed by warden.service.ui.install_ui) --------------
class LoginRequired(Exception):
    """No live session: page GETs go to the login form (303), other requests get 401."""

    def __init__(self, next_url: str) -> None:
        super().__init__("login required")
        self.next_url = next_url


class UIForbidden(Exception):
    """Shown as an HTML error page (403 wrong role / bad CSRF; 429 throttled...)."""

    def __init__(self, message: str, *, status: int = 403) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def safe_next(url: str | None) -> str:
    """Only same-site UI paths are followed after login: no open redirect."""
    if url and url.startswith(UI_PREFIX + "/") and not url.startswith("//") and "\\" not in url:
        return url
    return f"{UI_PREFIX}/"


def login_url(next_url: str) -> str:
    return f"{UI_PREFIX}/login?next={quote(safe_next(next_url), safe='/')}"


async def presented_csrf(request: Request) -> str | None:
    header = request.headers.get(CSRF_HEADER)
    if header:
        return header
    content_type = request.headers.get("content-type", "")
    if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        form = await request.form()  # cached on the request: the route's Form() fields still work
        value = form.get(CSRF_FIELD)
        return value if isinstance(value, str) else None
    return None


def require_user(*roles: str) -> Callable[[Request], Awaitable[WebSession]]:
    """A UI dependency: the live `WebSession` of a user whose role is in `roles`.

    No session: `LoginRequired`. Wrong role: 403. State-changing methods must carry the
    session's CSRF token: 403 otherwise. API keys are never looked at here.
    """
    if not roles or any(r not in REVIEW_ROLES for r in roles):
        raise ValueError(f"roles must be among {REVIEW_ROLES}")

    async def dependency(request: Request) -> WebSession:
        auth = get_web_auth(request)
        token = auth.session_token(request)
        session = await run_in_threadpool(auth.users.get_session, token) if token else None
        if session is None:
            raise LoginRequired(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
        request.state.web_session = session
        if session.user.role not in roles:
            raise UIForbidden(f"your role ({session.user.role}) may not use this page; it needs: {', '.join(roles)}")
        if request.method not in SAFE_METHODS and not csrf_matches(session.csrf_token, await presented_csrf(request)):
            raise UIForbidden("missing or invalid CSRF token: reload the page and try again")
        return session

    return dependency


#: Task sources only senior reviewers (and admins) may decide: an appeal reviews a colleague's call.
SENIOR_SOURCES: frozenset[str] = frozenset({"appeal"})


def may_review(role: str, *, source: str, queue: str, senior_queues: frozenset[str] = frozenset()) -> bool:
    """Whether a user with `role` may take and decide a task from `source` / `queue`
    (`senior_queues`: the policy's appeal and escalation queues)."""
    if role not in REVIEW_ROLES:
        return False
    senior_only = source in SENIOR_SOURCES or queue in senior_queues
    return role in SENIOR_ROLES or not senior_only


def new_login_csrf() -> str:
    return secrets.token_urlsafe(32)


def client_ip(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"


__all__ = [
    "ADMIN_ROLES",
    "CSRF_FIELD",
    "CSRF_HEADER",
    "LOGIN_CSRF_COOKIE",
    "REVIEW_ROLES",
    "SENIOR_ROLES",
    "SENIOR_SOURCES",
    "LoginRateLimiter",
    "LoginRequired",
    "LoginResult",
    "UIForbidden",
    "WebAuth",
    "WebAuthSettings",
    "client_ip",
    "get_web_auth",
    "login_url",
    "may_review",
    "new_login_csrf",
    "require_user",
    "safe_next",
]
