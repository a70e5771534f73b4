"""The server-rendered reviewer and admin UI under `/ui` (Jinja2, vanilla JS, no build step).

Routes parse forms and render templates; users and sessions live in
`warden.store.users_repo`, review work in `warden.store.review_repo`, pure view shaping in
`warden.service.ui_view`. Authentication is the session cookie only (see
`warden.service.web_auth`); API keys do not open these pages.

Roles: reviewer < senior_reviewer < admin, listed explicitly per route (`require_user`).
Every page carries a strict Content-Security-Policy (scripts only from /ui/static, no inline
script), so even a template mistake cannot run content as code.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Form, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from warden.core.policy import Policy
from warden.policy.candidate import check_candidate, live_fingerprint
from warden.service import ui_view as view
from warden.service.web_auth import (
    ADMIN_ROLES,
    LOGIN_CSRF_COOKIE,
    REVIEW_ROLES,
    SAFE_METHODS,
    SENIOR_ROLES,
    LoginRequired,
    UIForbidden,
    client_ip,
    get_web_auth,
    login_url,
    may_review,
    new_login_csrf,
    require_user,
    safe_next,
)
from warden.store.policy_versions import policy_versions_seen
from warden.store.review_repo import (
    REVIEWER_ACTIONS,
    ReviewError,
    ReviewRepository,
    ReviewResult,
    ReviewTask,
    TaskNotFound,
)
from warden.store.users_repo import MIN_PASSWORD_CHARS, USER_ROLES, UserError, WebSession, csrf_matches

HERE = Path(__file__).resolve().parent
STATIC_DIR = HERE / "static"
STATIC_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                ".svg": "image/svg+xml", ".png": "image/png", ".ico": "image/x-icon"}
# Images in content come from the platform's own hosts: allowed, but never scripts, frames or plugins.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: https: http:; "
       "object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
# Messages shown after a redirect, by code: never echo free text from the URL into a page.
NOTICES = {
    "user_created": "User created.",
    "role_changed": "Role changed; that user's sessions were ended.",
    "user_disabled": "User disabled; their sessions were ended.",
    "user_enabled": "User enabled.",
    "decided": "Decision recorded.",
    "queue_empty": "That queue has no item you can take right now.",
    "released": "Item released back to its queue.",
    "logged_out": "You are logged out.",
}

templates = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(default=True),
                        trim_blocks=True, lstrip_blocks=True)

router = APIRouter(prefix="/ui", include_in_schema=False)

reviewer = require_user(*REVIEW_ROLES)
senior = require_user(*SENIOR_ROLES)
admin = require_user(*ADMIN_ROLES)


def install_ui(app: FastAPI) -> None:
    """Mount the UI on `app` (routes + the handlers that turn auth failures into pages)."""
    app.include_router(router)

    @app.exception_handler(LoginRequired)
    async def _login_required(request: Request, exc: LoginRequired) -> Response:
        if request.method in SAFE_METHODS:
            return RedirectResponse(login_url(exc.next_url), status_code=303)
        return render(request, "error.html", status=401, title="Not logged in",
                      message="Your session has ended. Log in again.")

    @app.exception_handler(UIForbidden)
    async def _forbidden(request: Request, exc: UIForbidden) -> Response:
        title = {403: "Forbidden", 429: "Too many attempts"}.get(exc.status, "Error")
        return render(request, "error.html", status=exc.status, title=title, message=exc.message)


# -- rendering ------------------------------------------------------------------------------
def render(request: Request, name: str, *, status: int = 200, **context: Any) -> HTMLResponse:
    session: WebSession | None = getattr(request.state, "web_session", None)
    context.setdefault("user", session.user if session is not None else None)
    context.setdefault("csrf_token", session.csrf_token if session is not None else "")
    code = request.query_params.get("done")
    context.setdefault("notice", NOTICES.get(code or ""))
    context.setdefault("status", status)
    html = templates.get_template(name).render(**context)
    return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303, headers={"Cache-Control": "no-store"})


def actor_of(session: WebSession) -> str:
    return f"user:{session.user.username}"


@router.get("/static/{name}")
async def static(name: str) -> Response:
    path = (STATIC_DIR / name).resolve()
    if path.parent != STATIC_DIR or not path.is_file() or path.suffix not in STATIC_TYPES:
        return Response("not found", status_code=404, media_type="text/plain")
    return FileResponse(path, media_type=STATIC_TYPES[path.suffix],
                        headers={"Cache-Control": "public, max-age=300", "X-Content-Type-Options": "nosniff"})


# -- login / logout -------------------------------------------------------------------------
@router.get("/login")
async def login_form(request: Request, next: str | None = None) -> Response:
    auth = get_web_auth(request)
    token = auth.session_token(request)
    if token and await run_in_threadpool(auth.users.get_session, token) is not None:
        return redirect(safe_next(next))
    return _login_page(request, next_url=safe_next(next))


def _login_page(request: Request, *, next_url: str, status: int = 200, error: str | None = None,
                username: str = "") -> HTMLResponse:
    # Double-submit token: a cross-site form cannot read or send our SameSite cookie, so it
    # cannot log a victim into the attacker's account (login CSRF).
    token = new_login_csrf()
    auth = get_web_auth(request)
    response = render(request, "login.html", status=status, error=error, next_url=next_url, login_csrf=token,
                      username=username)
    response.set_cookie(LOGIN_CSRF_COOKIE, token, max_age=3600, path="/ui/login", httponly=True, samesite="lax",
                        secure=auth.secure(request))
    return response


@router.post("/login")
async def login_submit(
    request: Request,
    username: str = Form("", max_length=256),
    password: str = Form("", max_length=2048),
    login_csrf: str = Form(""),
    next: str = Form("/ui/"),
) -> Response:
    auth = get_web_auth(request)
    next_url = safe_next(next)
    if not csrf_matches(request.cookies.get(LOGIN_CSRF_COOKIE, ""), login_csrf):
        return _login_page(request, next_url=next_url, status=403,
                           error="The login form expired or came from another site. Try again.")
    result = await run_in_threadpool(auth.login, username=username, password=password, ip=client_ip(request))
    if result.retry_after > 0:
        response = _login_page(request, next_url=next_url, status=429, username=username,
                               error=f"Too many failed attempts. Try again in {int(result.retry_after) + 1} s.")
        response.headers["Retry-After"] = str(int(result.retry_after) + 1)
        return response
    if result.user is None or result.token is None:
        return _login_page(request, next_url=next_url, status=401, username=username,
                           error="Invalid username or password.")
    response = redirect(next_url)
    auth.set_session_cookie(response, request, result.token)
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/ui/login")
    return response


@router.post("/logout")
async def logout(request: Request, session: WebSession = Depends(reviewer)) -> Response:
    auth = get_web_auth(request)
    await run_in_threadpool(auth.users.revoke_session, auth.session_token(request), actor=actor_of(session))
    response = redirect("/ui/login?done=logged_out")
    auth.clear_session_cookie(response, request)
    return response


@router.get("/")
async def home(_session: WebSession = Depends(reviewer)) -> Response:
    return redirect("/ui/queues")


# -- admin: users ----------------------------------------------------------------------------
def _users_page(request: Request, *, status: int = 200, error: str | None = None) -> HTMLResponse:
    users = get_web_auth(request).users.list_users()
    return render(request, "admin_users.html", status=status, error=error, users=users, roles=USER_ROLES,
                  min_password=MIN_PASSWORD_CHARS)


@router.get("/admin/users")
async def admin_users(request: Request, _session: WebSession = Depends(admin)) -> Response:
    return await run_in_threadpool(_users_page, request)


@router.post("/admin/users")
async def admin_create_user(
    request: Request,
    username: str = Form(..., max_length=256),
    role: str = Form(...),
    password: str = Form(..., max_length=2048),
    session: WebSession = Depends(admin),
) -> Response:
    users = get_web_auth(request).users
    try:
        await run_in_threadpool(lambda: users.create_user(username=username, password=password, role=role,
                                                          actor=actor_of(session)))
    except UserError as exc:
        return await run_in_threadpool(_users_page, request, status=422, error=str(exc))
    return redirect("/ui/admin/users?done=user_created")


@router.post("/admin/users/{username}/role")
async def admin_set_role(request: Request, username: str, role: str = Form(...),
                         session: WebSession = Depends(admin)) -> Response:
    return await _user_change(request, lambda users: users.set_role(username=username, role=role,
                                                                    actor=actor_of(session)), "role_changed")


@router.post("/admin/users/{username}/disable")
async def admin_disable(request: Request, username: str, session: WebSession = Depends(admin)) -> Response:
    return await _user_change(request, lambda users: users.disable(username=username, actor=actor_of(session)),
                              "user_disabled")


@router.post("/admin/users/{username}/enable")
async def admin_enable(request: Request, username: str, session: WebSession = Depends(admin)) -> Response:
    return await _user_change(request, lambda users: users.enable(username=username, actor=actor_of(session)),
                              "user_enabled")


async def _user_change(request: Request, change: Any, done: str) -> Response:
    users = get_web_auth(request).users
    try:
        await run_in_threadpool(change, users)
    except UserError as exc:
        return await run_in_threadpool(_users_page, request, status=422, error=str(exc))
    return redirect(f"/ui/admin/users?done={done}")


# -- admin: policy ---------------------------------------------------------------------------
def _policy_page(request: Request, *, pasted: str = "", check: Any = None, status: int = 200) -> HTMLResponse:
    policy = request.app.state.moderator.policy
    versions = policy_versions_seen(request.app.state.store)
    return render(request, "admin_policy.html", status=status, live_name=str(getattr(policy, "name", "")),
                  live_version=str(getattr(policy, "version", "")), live_fingerprint=live_fingerprint(policy),
                  versions=versions, pasted=pasted, check=check)


@router.get("/admin/policy")
async def admin_policy(request: Request, _session: WebSession = Depends(admin)) -> Response:
    return await run_in_threadpool(_policy_page, request)


@router.post("/admin/policy/validate")
async def admin_policy_validate(request: Request, policy_yaml: str = Form(..., max_length=1024 * 1024),
                                _session: WebSession = Depends(admin)) -> Response:
    live = request.app.state.moderator.policy
    check = await run_in_threadpool(check_candidate, policy_yaml, live=live)
    return await run_in_threadpool(lambda: _policy_page(request, pasted=policy_yaml, check=check,
                                                        status=200 if check.valid else 422))


# -- review -----------------------------------------------------------------------------------
def now_utc() -> datetime:
    return datetime.now(UTC)


def live_policy(request: Request) -> Policy | None:
    policy = request.app.state.moderator.policy
    return policy if isinstance(policy, Policy) else None


def review_repo(request: Request) -> ReviewRepository:
    return ReviewRepository(request.app.state.store, policy=live_policy(request))


def reviewer_id(session: WebSession) -> str:
    """How a UI user appears as `reviewer` on tasks, decisions and labels."""
    return f"user:{session.user.username}"


def _senior_queues(request: Request) -> frozenset[str]:
    policy = live_policy(request)
    return policy.review.senior_queues if policy is not None else frozenset()


def _may_take(request: Request, session: WebSession, *, source: str, queue: str) -> bool:
    return may_review(session.user.role, source=source, queue=queue, senior_queues=_senior_queues(request))


def _queue_rows(request: Request, session: WebSession) -> list[dict[str, Any]]:
    rows, first_taken = [], False
    for st in review_repo(request).queue_stats(live_policy(request), now=now_utc()):
        may = _may_take(request, session, source="", queue=st.queue)
        first = may and st.open > 0 and not first_taken
        first_taken = first_taken or first
        rows.append({"stats": st, "may_take": may, "first": first, "oldest": view.age_text(st.oldest_age_seconds),
                     "sla_state": view.queue_sla_state(overdue=st.overdue, oldest_age_seconds=st.oldest_age_seconds,
                                                       sla_hours=st.sla_hours)})
    return rows


def _my_tasks(request: Request, session: WebSession) -> list[ReviewTask]:
    me, now = reviewer_id(session), now_utc()
    leased = review_repo(request).list_tasks(status="leased", limit=1000)
    return [t for t in leased if t.lease_owner == me and t.lease_expires_at is not None and t.lease_expires_at > now]


@router.get("/queues")
async def queues(request: Request, session: WebSession = Depends(reviewer)) -> Response:
    rows = await run_in_threadpool(_queue_rows, request, session)
    mine = await run_in_threadpool(_my_tasks, request, session)
    return render(request, "queues.html", queues=rows, my_tasks=mine)


@router.post("/queues/{queue}/next")
async def queue_next(request: Request, queue: str, release: int | None = Form(None),
                     session: WebSession = Depends(reviewer)) -> Response:
    """Lease the most urgent task of `queue` (optionally releasing the one being skipped)."""
    if not _may_take(request, session, source="", queue=queue):
        raise UIForbidden(f"the {queue!r} queue is for senior reviewers")
    repo = review_repo(request)
    # Lease the next one while still holding the skipped one, so the skip cannot hand it straight back.
    task = await run_in_threadpool(repo.lease_next, queue, reviewer_id(session))
    if release is not None:
        with contextlib.suppress(ReviewError):  # the lease already lapsed or moved on: skipping is still fine
            await run_in_threadpool(repo.release, release, reviewer_id(session))
    if task is None:
        return redirect("/ui/queues?done=queue_empty")
    return redirect(f"/ui/tasks/{task.id}")


def _task_context(request: Request, session: WebSession, task_id: int) -> dict[str, Any]:
    tv = review_repo(request).get_task(task_id)
    if tv is None:
        raise UIForbidden(f"no review task {task_id}", status=404)
    task = tv.task
    if not _may_take(request, session, source=task.source, queue=task.queue):
        raise UIForbidden("this task is for senior reviewers")
    policy = live_policy(request)
    payload = tv.decision.payload if tv.decision is not None else {}
    text = tv.text
    now = now_utc()
    mine = task.status == "leased" and task.lease_owner == reviewer_id(session) and (
        task.lease_expires_at is not None and task.lease_expires_at > now)
    leased_by_other = task.status == "leased" and not mine and (
        task.lease_expires_at is not None and task.lease_expires_at > now)
    all_categories = list(policy.categories) if policy is not None else []
    in_question = view.categories_in_question(task.categories, payload)
    main, other = view.form_categories(in_question, all_categories or in_question)
    details = dict(task.details)
    reports = details.get("reports") if isinstance(details.get("reports"), list) else []
    definitions = [{"name": c, "definition": policy.categories[c].definition,
                    "severity": policy.categories[c].severity.value, "action": policy.categories[c].action.value}
                   for c in in_question if policy is not None and c in policy.categories]
    media_meta = details.get("metadata") if isinstance(details.get("metadata"), dict) else details
    return {
        "task": task, "text": text, "decision": tv.decision, "appeal": tv.appeal, "history": tv.actor_history,
        "review_decisions": tv.review_decisions, "reports": reports,
        "report_count": details.get("report_count", len(reports)),
        "segments": view.highlight_segments(text or "", view.evidence_spans(text or "", payload.get("reasons") or ())),
        "signals": view.signals(payload) if payload else [],
        "images": view.image_urls(media_meta),
        "sla_state": view.sla_state(task.due_at, now) if task.status in ("open", "leased") else "ok",
        "can_decide": mine, "may_take": True, "leased_by_other": leased_by_other,
        "categories": main, "other_categories": other,
        "actions": view.form_actions(REVIEWER_ACTIONS), "definitions": definitions,
        "policy_version": str(getattr(request.app.state.moderator.policy, "version", "")),
    }


@router.get("/tasks/{task_id}")
async def task_page(request: Request, task_id: int, session: WebSession = Depends(reviewer)) -> Response:
    context = await run_in_threadpool(_task_context, request, session, task_id)
    return render(request, "task.html", **context)


@router.post("/tasks/{task_id}/lease")
async def task_lease(request: Request, task_id: int, session: WebSession = Depends(reviewer)) -> Response:
    await run_in_threadpool(_check_task_role, request, session, task_id)
    try:
        await run_in_threadpool(review_repo(request).lease, task_id, reviewer_id(session))
    except ReviewError as exc:
        raise UIForbidden(str(exc), status=409) from None
    return redirect(f"/ui/tasks/{task_id}")


@router.post("/tasks/{task_id}/release")
async def task_release(request: Request, task_id: int, session: WebSession = Depends(reviewer)) -> Response:
    try:
        await run_in_threadpool(review_repo(request).release, task_id, reviewer_id(session))
    except ReviewError as exc:
        raise UIForbidden(str(exc), status=409) from None
    return redirect("/ui/queues?done=released")


@router.post("/tasks/{task_id}/decision")
async def task_decision(
    request: Request,
    task_id: int,
    action: str = Form(...),
    category: list[str] = Form(default_factory=list),
    violating: list[str] = Form(default_factory=list),
    note: str = Form("", max_length=10_000),
    session: WebSession = Depends(reviewer),
) -> Response:
    await run_in_threadpool(_check_task_role, request, session, task_id)
    labels = view.labels_from_form(shown=category, violating=violating)
    try:
        await run_in_threadpool(submit_review, request, task_id=task_id, reviewer=reviewer_id(session),
                                labels=labels, action=action, note=note)
    except TaskNotFound as exc:
        raise UIForbidden(str(exc), status=404) from None
    except ReviewError as exc:
        raise UIForbidden(f"{exc} ({exc.code})", status=409 if exc.code != "invalid_review" else 422) from None
    return redirect("/ui/queues?done=decided")


def _check_task_role(request: Request, session: WebSession, task_id: int) -> None:
    # One cheap row read (get_task would also load the content, decision and actor history).
    tasks = review_repo(request).list_tasks(after_id=task_id - 1, limit=1)
    task = tasks[0] if tasks and tasks[0].id == task_id else None
    if task is None:
        raise UIForbidden(f"no review task {task_id}", status=404)
    if not _may_take(request, session, source=task.source, queue=task.queue):
        raise UIForbidden("this task is for senior reviewers")


def submit_review(request: Request, *, task_id: int, reviewer: str, labels: dict[str, bool], action: str,
                  note: str) -> ReviewResult:
    """The one place the UI records a reviewer decision: with its enforcement (webhooks,
    strikes, appeal reversals) in the same transaction, through the service's ReviewRecorder."""
    policy_version = str(getattr(request.app.state.moderator.policy, "version", ""))
    recorder = request.app.state.review_recorder
    if recorder is None:
        return review_repo(request).submit(task_id, reviewer, labels=labels, action=action, note=note,
                                           policy_version=policy_version)
    return recorder.submit(task_id, reviewer, labels=labels, action=action, note=note,
                           policy_version=policy_version).result


# -- senior: agreement; admin: queue stats ---------------------------------------------------------
def _fmt(value: float | None) -> str:
    if value is None or value != value:  # None or NaN
        return "—"
    return f"{value:.2f}"


@router.get("/agreement")
async def agreement(request: Request, _session: WebSession = Depends(senior)) -> Response:
    report = await run_in_threadpool(review_repo(request).agreement)
    rows = sorted(report.by_category.items())
    return render(request, "agreement.html", report=report, rows=rows, fmt=_fmt)


@router.get("/admin/queues")
async def admin_queues(request: Request, session: WebSession = Depends(admin)) -> Response:
    rows = await run_in_threadpool(_queue_rows, request, session)
    return render(request, "admin_queues.html", queues=rows)


__all__ = ["install_ui", "router", "submit_review"]
