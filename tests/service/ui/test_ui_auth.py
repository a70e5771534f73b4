"""The UI's doors: sessions, login CSRF and throttling, page CSRF, role checks, and the
separation of API keys (/v1 only) from session cookies (/ui only)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from ui_helpers import PASSWORDS, UIEnv, csrf_of, login

from warden.service.web_auth import LOGIN_CSRF_COOKIE, WebAuth, WebAuthSettings
from warden.store.users_repo import UserRepository

Client = Callable[[], TestClient]


def _logged_in(make: Client, username: str) -> TestClient:
    c = make()
    r = login(c, username)
    assert r.status_code == 303, r.text
    return c


def test_pages_redirect_to_login_and_back(client_factory: Client) -> None:
    c = client_factory()
    r = c.get("/ui/queues?x=1")
    assert r.status_code == 303 and r.headers["location"] == "/ui/login?next=/ui/queues%3Fx%3D1"
    r = login(c, "reviewer", next_url="/ui/queues")
    assert r.status_code == 303 and r.headers["location"] == "/ui/queues"
    cookie = r.headers["set-cookie"]
    assert cookie.startswith("warden_session=") and "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert "Secure" not in cookie  # tests run over plain http with cookie_secure=False
    page = c.get("/ui/queues")
    assert page.status_code == 200 and "Review queues" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store" and page.headers["x-frame-options"] == "DENY"


def test_secure_cookie_uses_host_prefix(ui_env: UIEnv) -> None:
    ui_env.app.state.web_auth = WebAuth(users=ui_env.auth.users, settings=WebAuthSettings(cookie_secure=True))
    with TestClient(ui_env.app, base_url="https://testserver", follow_redirects=False) as c:
        r = login(c, "reviewer")
        assert r.status_code == 303
        cookie = r.headers["set-cookie"]
        assert cookie.startswith("__Host-warden_session=") and "Secure" in cookie and "Path=/" in cookie
        assert "Domain" not in cookie
        assert c.get("/ui/queues").status_code == 200


def test_open_redirect_is_refused(client_factory: Client) -> None:
    for target in ("https://evil.example/", "//evil.example/ui/", "/v1/moderate", "/ui\\..\\x"):
        r = login(client_factory(), "reviewer", next_url=target)
        assert r.headers["location"] == "/ui/", target


def test_bad_password_and_throttling(client_factory: Client) -> None:
    c = client_factory()
    for _ in range(5):
        r = login(c, "reviewer", "wrong-password-123")
        assert r.status_code == 401 and "Invalid username or password" in r.text
        assert "warden_session" not in r.headers.get("set-cookie", "")
    r = login(c, "reviewer")  # right password, but the window is full
    assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
    other = login(client_factory(), "admin")  # another user is not affected
    assert other.status_code == 303


def test_login_needs_its_double_submit_token(client_factory: Client) -> None:
    c = client_factory()
    r = c.post("/ui/login", data={"username": "admin", "password": PASSWORDS["admin"], "login_csrf": "forged"})
    assert r.status_code == 403 and "warden_session" not in r.headers.get("set-cookie", "")
    c.get("/ui/login")
    assert c.cookies.get(LOGIN_CSRF_COOKIE)
    r = c.post("/ui/login", data={"username": "admin", "password": PASSWORDS["admin"], "login_csrf": "forged"})
    assert r.status_code == 403


REVIEWER_FORBIDDEN_GETS = ["/ui/admin/users", "/ui/admin/policy", "/ui/admin/queues", "/ui/agreement"]


@pytest.mark.parametrize("path", REVIEWER_FORBIDDEN_GETS)
def test_reviewer_cannot_see_admin_pages(client_factory: Client, path: str) -> None:
    c = _logged_in(client_factory, "reviewer")
    r = c.get(path)
    assert r.status_code == 403 and "may not use this page" in r.text


def test_reviewer_cannot_manage_users_or_policy(client_factory: Client, ui_env: UIEnv) -> None:
    c = _logged_in(client_factory, "reviewer")
    token = csrf_of(c)
    r = c.post("/ui/admin/users", data={"csrf_token": token, "username": "mallory", "role": "admin",
                                        "password": "mallory-password-1"})
    assert r.status_code == 403 and ui_env.auth.users.get_user("mallory") is None
    r = c.post("/ui/admin/users/reviewer/role", data={"csrf_token": token, "role": "admin"})
    assert r.status_code == 403 and ui_env.auth.users.get_user("reviewer").role == "reviewer"
    r = c.post("/ui/admin/users/admin/disable", data={"csrf_token": token})
    assert r.status_code == 403 and ui_env.auth.users.get_user("admin").active
    r = c.post("/ui/admin/policy/validate", data={"csrf_token": token, "policy_yaml": "name: x"})
    assert r.status_code == 403


def test_senior_sees_agreement_not_admin(client_factory: Client) -> None:
    c = _logged_in(client_factory, "senior-reviewer")
    assert c.get("/ui/agreement").status_code == 200
    for path in ("/ui/admin/users", "/ui/admin/policy", "/ui/admin/queues"):
        assert c.get(path).status_code == 403


def test_admin_sees_everything(client_factory: Client) -> None:
    c = _logged_in(client_factory, "admin")
    for path in ("/ui/queues", *REVIEWER_FORBIDDEN_GETS):
        assert c.get(path).status_code == 200, path


def test_api_key_does_not_open_the_ui(client_factory: Client, ui_env: UIEnv) -> None:
    _, key = ui_env.store.create_api_key("admin-key", "admin")
    c = client_factory()
    headers = {"Authorization": f"Bearer {key}", "X-API-Key": key}
    r = c.get("/ui/admin/users", headers=headers)
    assert r.status_code == 303 and r.headers["location"].startswith("/ui/login")
    r = c.post("/ui/admin/users", headers=headers, data={"username": "viakey", "role": "admin",
                                                        "password": "viakey-password-1"})
    assert r.status_code == 401 and ui_env.auth.users.get_user("viakey") is None
    assert c.get("/v1/decisions/nothing", headers={"Authorization": f"Bearer {key}"}).status_code == 404


def test_session_cookie_does_not_open_v1(client_factory: Client) -> None:
    c = _logged_in(client_factory, "admin")
    assert c.get("/ui/admin/users").status_code == 200
    token = csrf_of(c)
    r = c.get("/v1/decisions/anything")
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
    r = c.post("/v1/moderate", json={"text": "hello"}, headers={"X-CSRF-Token": token})
    assert r.status_code == 401


def test_post_without_csrf_is_refused(client_factory: Client, ui_env: UIEnv) -> None:
    c = _logged_in(client_factory, "admin")
    data = {"username": "nocsrf", "role": "reviewer", "password": "nocsrf-password-1"}
    r = c.post("/ui/admin/users", data=data)
    assert r.status_code == 403 and "CSRF" in r.text
    r = c.post("/ui/admin/users", data={**data, "csrf_token": "not-the-token"})
    assert r.status_code == 403 and ui_env.auth.users.get_user("nocsrf") is None
    other = _logged_in(client_factory, "senior-reviewer")  # another session's token is not this one's
    r = c.post("/ui/admin/users", data={**data, "csrf_token": csrf_of(other)})
    assert r.status_code == 403
    r = c.post("/ui/admin/users", data=data, headers={"X-CSRF-Token": csrf_of(c)})
    assert r.status_code == 303 and ui_env.auth.users.get_user("nocsrf") is not None
    r = c.post("/ui/logout")
    assert r.status_code == 403  # logout is state-changing too


def test_logout_revokes_the_session(client_factory: Client) -> None:
    c = _logged_in(client_factory, "reviewer")
    stolen = c.cookies.get("warden_session")
    r = c.post("/ui/logout", data={"csrf_token": csrf_of(c)})
    assert r.status_code == 303 and r.headers["location"] == "/ui/login?done=logged_out"
    assert 'warden_session=""' in r.headers["set-cookie"] or "Max-Age=0" in r.headers["set-cookie"]
    replay = client_factory()
    replay.cookies.set("warden_session", stolen)
    assert replay.get("/ui/queues").status_code == 303


def test_disabled_user_session_dies(client_factory: Client, ui_env: UIEnv) -> None:
    rev = _logged_in(client_factory, "reviewer")
    assert rev.get("/ui/queues").status_code == 200
    adm = _logged_in(client_factory, "admin")
    r = adm.post("/ui/admin/users/reviewer/disable", data={"csrf_token": csrf_of(adm)})
    assert r.status_code == 303 and r.headers["location"] == "/ui/admin/users?done=user_disabled"
    assert rev.get("/ui/queues").status_code == 303
    assert login(client_factory(), "reviewer").status_code == 401
    assert "disabled" in adm.get("/ui/admin/users").text


def test_role_change_ends_sessions(client_factory: Client, ui_env: UIEnv) -> None:
    rev = _logged_in(client_factory, "reviewer")
    adm = _logged_in(client_factory, "admin")
    r = adm.post("/ui/admin/users/reviewer/role", data={"csrf_token": csrf_of(adm), "role": "admin"})
    assert r.status_code == 303
    assert rev.get("/ui/admin/users").status_code == 303  # the old session is gone: log in again
    again = _logged_in(client_factory, "reviewer")
    assert again.get("/ui/admin/users").status_code == 200


def test_admin_creates_users_with_password_policy(client_factory: Client, ui_env: UIEnv) -> None:
    adm = _logged_in(client_factory, "admin")
    token = csrf_of(adm)
    r = adm.post("/ui/admin/users", data={"csrf_token": token, "username": "weak", "role": "reviewer",
                                          "password": "short"})
    assert r.status_code == 422 and "at least 12 characters" in r.text
    r = adm.post("/ui/admin/users", data={"csrf_token": token, "username": "<b>x</b>", "role": "reviewer",
                                          "password": "long-enough-password"})
    assert r.status_code == 422 and "<b>x</b>" not in r.text
    r = adm.post("/ui/admin/users", data={"csrf_token": token, "username": "newbie", "role": "reviewer",
                                          "password": "long-enough-password"})
    assert r.status_code == 303
    page = adm.get(r.headers["location"])
    assert "User created." in page.text and 'data-username="newbie"' in page.text
    assert login(client_factory(), "newbie", "long-enough-password").status_code == 303
    audit = ui_env.store.audit_events(event="user.create", subject="user:newbie")
    assert audit and audit[0].actor == "user:admin"


def test_last_admin_is_protected_in_the_ui(client_factory: Client) -> None:
    adm = _logged_in(client_factory, "admin")
    r = adm.post("/ui/admin/users/admin/disable", data={"csrf_token": csrf_of(adm)})
    assert r.status_code == 422 and "last enabled admin" in r.text


def test_notice_codes_only(client_factory: Client) -> None:
    c = _logged_in(client_factory, "reviewer")
    r = c.get("/ui/queues?done=<script>alert(1)</script>")
    assert r.status_code == 200 and "<script>alert" not in r.text


def test_static_files(client_factory: Client) -> None:
    c = client_factory()
    r = c.get("/ui/static/warden.js")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/javascript")
    assert c.get("/ui/static/warden.css").status_code == 200
    for bad in ("../ui.py", "..%2Fui.py", "nope.css", "%2e%2e%2fweb_auth.py"):
        assert c.get(f"/ui/static/{bad}").status_code == 404, bad


def test_login_uses_real_argon2_by_default(ui_store) -> None:
    auth = WebAuth.for_store(ui_store, WebAuthSettings(cookie_secure=False))
    assert isinstance(auth.users, UserRepository) and auth.users.hasher.memory_cost >= 19 * 1024
