"""The reviewer UI in a real browser: Debian's chromium driven by Playwright against a real
uvicorn server on a loopback port (never a downloaded browser: no `playwright install`).

Locally the test skips when /usr/bin/chromium or the `playwright` package is missing; with
CI=true it fails instead, so a missing browser cannot silently turn the check off.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from ui_helpers import UIEnv, make_ui_env, seed, seed_spec

from warden.store import Store

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync"]
PIXEL = ("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQ"
         "AAAABJRU5ErkJggg==")


def _require_browser() -> str:
    missing = []
    exe = str(CHROMIUM) if CHROMIUM.exists() else shutil.which("chromium")
    if exe is None:
        missing.append("/usr/bin/chromium (apt-get install -y chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("the playwright package (pip install playwright; never `playwright install`)")
    if missing:
        why = "browser test needs " + " and ".join(missing)
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(why + " (CI=true: the CI image must provide it)")
        pytest.skip(why)
    return exe or ""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def served(ui_store: Store) -> Iterator[tuple[str, UIEnv]]:
    """The app on a real uvicorn server in a thread; yields (base URL, env)."""
    env = make_ui_env(ui_store)
    env.auth.users.create_user(username="root", password="root-password-123", role="admin", actor="test")
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(env.app, host="127.0.0.1", port=port, log_level="warning",
                                           access_log=False))
    thread = threading.Thread(target=server.run, name="ui-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", env
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _login(page: Any, base: str, username: str, password: str) -> None:
    page.goto(f"{base}/ui/queues")
    assert "/ui/login" in page.url  # no session: the page sends us to the login form
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("#login-submit")
    page.wait_for_url(re.compile(r".*/ui/queues$"))


def test_admin_creates_reviewer_who_reviews_with_the_keyboard(served: tuple[str, UIEnv]) -> None:
    exe = _require_browser()
    from playwright.sync_api import sync_playwright

    base, env = served
    seed(env, [("b-1", "Great deal, buy now while it lasts", "actor-1")])
    seed_spec(env, content_id="img-1", text="see the picture", queue="reports", source="report",
              details={"image_urls": [PIXEL]})

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=ARGS)
        try:
            problems: list[str] = []
            failed: list[tuple[int, str]] = []

            def watch(pg: Any) -> Any:
                pg.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
                pg.on("pageerror", lambda e: problems.append(str(e)))
                pg.on("response", lambda r: failed.append((r.status, r.url)) if r.status >= 400 else None)
                return pg

            # -- the admin creates a reviewer -----------------------------------------------
            admin = watch(browser.new_context().new_page())
            _login(admin, base, "root", "root-password-123")
            admin.click("text=Users")
            admin.fill("#new-username", "rita")
            admin.select_option("#new-role", "reviewer")
            admin.fill("#new-password", "rita-password-123")
            admin.click("#create-user-submit")
            admin.wait_for_selector("text=User created.")
            assert admin.inner_text('tr[data-username="rita"] .user-role') == "reviewer"
            assert "warden_session" not in admin.evaluate("document.cookie")  # HttpOnly

            # -- the reviewer sees the queue with counts and takes the next item with "n" ----
            page = watch(browser.new_context().new_page())
            _login(page, base, "rita", "rita-password-123")
            assert page.inner_text('tr[data-queue="default"] .waiting') == "1"
            assert page.inner_text('tr[data-queue="reports"] .waiting') == "1"
            assert page.locator("text=Users").count() == 0  # no admin navigation for a reviewer
            page.keyboard.press("n")
            page.wait_for_url(re.compile(r".*/ui/tasks/\d+$"))
            task_url = page.url

            # -- evidence is highlighted in the text, definitions are shown -------------------
            mark = page.locator("#content-text mark.evidence")
            assert mark.count() == 1 and mark.inner_text() == "buy now"
            assert mark.get_attribute("data-categories") == "spam"
            bg = mark.evaluate("e => getComputedStyle(e).backgroundColor")
            assert bg not in ("rgba(0, 0, 0, 0)", "transparent")
            assert "spam" in page.inner_text("#definitions")
            assert "Enter" in page.inner_text(".shortcuts")

            # -- label with the keyboard: 1 toggles spam, r picks remove, Enter submits -------
            box = page.locator('.category-row[data-category="spam"] input[type=checkbox]')
            assert not box.is_checked()
            page.keyboard.press("1")
            assert box.is_checked()
            page.keyboard.press("r")
            assert page.locator('input[name=action][value="remove"]').is_checked()
            page.keyboard.press("Enter")
            page.wait_for_url(re.compile(r".*/ui/queues\?done=decided$"))
            assert "Decision recorded." in page.inner_text("main")
            assert page.inner_text('tr[data-queue="default"] .waiting') == "0"  # the item left the queue
            page.goto(task_url)
            assert page.locator("#decision-form").count() == 0
            assert "user:rita · remove (spam)" in page.inner_text("#reviews")

            # -- wellness: the image stays blurred until clicked, and blurs again -------------
            page.goto(f"{base}/ui/queues")
            page.keyboard.press("n")
            page.wait_for_url(re.compile(r".*/ui/tasks/\d+$"))
            img = page.locator(".media img")
            assert img.count() == 1
            page.wait_for_function("() => document.querySelector('.media img').complete")
            assert "blur" in img.evaluate("e => getComputedStyle(e).filter")
            filter_is = "f => getComputedStyle(document.querySelector('.media img')).filter === f"
            page.click(".media button.reveal")
            assert "blur" not in (img.get_attribute("class") or "")
            page.wait_for_function(filter_is, arg="none", timeout=3000)  # after the short CSS transition
            page.click(".media button.reveal")
            assert "blur" in (img.get_attribute("class") or "")
            page.wait_for_function("() => getComputedStyle(document.querySelector('.media img')).filter"
                                   ".startsWith('blur(24px)')", timeout=3000)

            # -- the reviewer may not open admin pages --------------------------------------
            resp = page.goto(f"{base}/ui/admin/users")
            assert resp is not None and resp.status == 403
            # nothing else failed: no script errors, no CSP violations, no missing assets
            assert failed == [(403, f"{base}/ui/admin/users")], failed
            assert all("403" in m for m in problems), problems
        finally:
            browser.close()

    decided = env.store.audit_events(event="review.decision")
    assert [e.actor for e in decided] == ["user:rita"]
