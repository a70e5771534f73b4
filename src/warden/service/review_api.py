"""JSON routes of human review: user reports and appeals (from the platform's client key) and
the reviewer queue (reviewer keys). Handlers only parse, call `ReviewRepository` and
serialize, so the browser UI can reuse the same repository calls.

Errors (never a 500 for bad input): 400 `malformed_json` / `invalid_encoding`; 422
`invalid_request` (schema: the message names the field), `invalid_review` (unknown category
or action), `content_text_required` (a report or appeal of content not in the archive,
without `text`), `text_too_long`; 404 `task_not_found`, `decision_not_found`,
`unknown_queue`; 409 `lease_conflict` (no live lease of yours), `task_closed`; 403
`reviewer_excluded` (an appeal of your own decision, your own double review); 503
`storage_unavailable`, `review_unavailable` (the service runs without a review policy).

A reviewer identified by an API key is `api_key:<id>` (in leases, labels and the audit log).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import fields, is_dataclass
from datetime import datetime
from typing import Any, Literal, TypeVar

from fastapi import APIRouter, Depends, Path, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import SQLAlchemyError

from warden.review.routing import MAX_REACH
from warden.service.auth import require_roles
from warden.service.bodies import M, StrictBody, parse_model
from warden.service.errors import ApiError
from warden.service.schemas import ERROR_RESPONSES
from warden.store import ApiKeyRecord
from warden.store.review_repo import (
    ContentTextRequired,
    DecisionNotFound,
    InvalidReview,
    LeaseConflict,
    ReviewerExcluded,
    ReviewError,
    ReviewRepository,
    ReviewTask,
    TaskClosed,
    TaskNotFound,
    TaskView,
)

REPORT_ROLES = ("client", "admin")
REVIEW_ROLES = ("reviewer", "admin")
MAX_TASK_ID = 2**63 - 1
_STATUS: dict[type[ReviewError], int] = {
    TaskNotFound: 404, DecisionNotFound: 404, ContentTextRequired: 422, InvalidReview: 422,
    LeaseConflict: 409, TaskClosed: 409, ReviewerExcluded: 403,
}
R = TypeVar("R")

router = APIRouter(tags=["review"])


# -- request schemas -----------------------------------------------------------------------
_In = StrictBody


class ReportIn(_In):
    """A user's report of one item. `text` is needed when the item is not in the content
    archive (Warden archives the content of items it queued for review)."""

    content_id: str = Field(min_length=1, max_length=256)
    reason: str = Field(min_length=1, max_length=2000)
    reporter: str | None = Field(default=None, min_length=1, max_length=256)
    category: str | None = Field(default=None, min_length=1, max_length=128)
    text: str | None = None
    surface: str | None = Field(default=None, min_length=1, max_length=64)
    actor_id: str | None = Field(default=None, min_length=1, max_length=256)
    reach: int = Field(default=0, ge=0, le=MAX_REACH)


class AppealIn(_In):
    """An appeal against a stored decision (one per decision)."""

    decision_id: str = Field(min_length=1, max_length=64)
    reason: str = Field(min_length=1, max_length=5000)
    appellant: str | None = Field(default=None, min_length=1, max_length=256)
    text: str | None = None


class ReviewDecisionIn(_In):
    """A reviewer's decision: a label per category they judged, and the action."""

    labels: dict[str, bool] = Field(min_length=1, max_length=200)
    action: Literal["allow", "label", "limit", "remove", "escalate"]
    note: str = Field(default="", max_length=10_000)


# -- helpers -------------------------------------------------------------------------------
def _body_doc(model: type[BaseModel]) -> dict[str, Any]:
    """OpenAPI for a body we parse ourselves (for exact 400/422 errors)."""
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": model.model_json_schema()}}}}


def _repo(request: Request) -> ReviewRepository:
    repo = getattr(request.app.state, "review", None)
    if not isinstance(repo, ReviewRepository):
        raise ApiError(503, "review_unavailable", "human review is not configured: the service policy has no review")
    return repo


def reviewer_id(key: ApiKeyRecord) -> str:
    return f"api_key:{key.id}"


async def _body(request: Request, model: type[M]) -> M:
    return parse_model(await request.body(), model)


async def _call(fn: Callable[..., R], *args: Any, **kwargs: Any) -> R:
    try:
        return await run_in_threadpool(fn, *args, **kwargs)
    except ReviewError as exc:
        raise ApiError(_STATUS.get(type(exc), 422), exc.code, str(exc)) from None
    except SQLAlchemyError:
        raise ApiError(503, "storage_unavailable", "the review store is unavailable; retry later") from None


def _json(value: Any) -> Any:
    """Records (frozen dataclasses, read-only mappings, datetimes) as JSON values."""
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _json(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float) and value != value:
        return None
    return value


def _task_json(task: ReviewTask) -> dict[str, Any]:
    return _json(task)


def _view_json(view: TaskView) -> dict[str, Any]:
    history = view.actor_history
    return {
        "task": _task_json(view.task),
        "text": view.text,
        "decision": ({**view.decision.payload, "created_at": view.decision.created_at.isoformat()}
                     if view.decision is not None else None),
        "review_decisions": _json(view.review_decisions),
        "appeal": _json(view.appeal),
        "actor_history": None if history is None else {
            "actor_id": history.actor_id,
            "decisions": [{"decision_id": d.decision_id, "content_id": d.content_id, "action": d.action,
                           "flagged": d.flagged, "policy_version": d.policy_version,
                           "created_at": d.created_at.isoformat()} for d in history.decisions],
            "reviews": _json(history.reviews),
        },
    }


def _check_text(request: Request, text: str | None) -> None:
    limit = int(getattr(request.app.state.settings, "max_text_chars", 200_000))
    if text is not None and len(text) > limit:
        raise ApiError(422, "text_too_long", f"'text' has {len(text):,} characters; the limit is {limit:,}",
                       {"field": "text", "limit": limit, "length": len(text)})


# -- reports and appeals (the platform's client key) ----------------------------------------
@router.post("/v1/reports", summary="Report an item for human review", status_code=201,
             responses=ERROR_RESPONSES, openapi_extra=_body_doc(ReportIn))
async def create_report(request: Request, key: ApiKeyRecord = Depends(require_roles(*REPORT_ROLES))) -> JSONResponse:
    """201 with the new report task; 200 when the item already had one (this report is
    counted on it)."""
    body: ReportIn = await _body(request, ReportIn)
    _check_text(request, body.text)
    repo = _repo(request)
    res = await _call(repo.create_report, body.content_id, reason=body.reason, reporter=body.reporter,
                      text=body.text, surface=body.surface, actor_id=body.actor_id, category=body.category,
                      reach=body.reach)
    return JSONResponse({"task_id": res.task.id, "queue": res.task.queue, "status": res.task.status,
                         "created": res.created, "report_count": res.report_count},
                        status_code=201 if res.created else 200)


@router.post("/v1/appeals", summary="Appeal a decision", status_code=201, responses=ERROR_RESPONSES,
             openapi_extra=_body_doc(AppealIn))
async def create_appeal(request: Request, key: ApiKeyRecord = Depends(require_roles(*REPORT_ROLES))) -> JSONResponse:
    """201 with the new appeal; 200 with the existing one when the decision was already appealed."""
    body: AppealIn = await _body(request, AppealIn)
    _check_text(request, body.text)
    repo = _repo(request)
    res = await _call(repo.create_appeal, body.decision_id, reason=body.reason, appellant=body.appellant,
                      text=body.text)
    return JSONResponse({"appeal": _json(res.appeal), "created": res.created},
                        status_code=201 if res.created else 200)


# -- the reviewer queue (reviewer keys) ------------------------------------------------------
@router.get("/v1/review/queues", summary="Queue health: open, leased, overdue, oldest age", responses=ERROR_RESPONSES)
async def queues(request: Request, _key: ApiKeyRecord = Depends(require_roles(*REVIEW_ROLES))) -> JSONResponse:
    repo = _repo(request)
    stats = await _call(repo.queue_stats)
    return JSONResponse({"queues": _json(stats)})


@router.post("/v1/review/queues/{queue}/lease", summary="Lease the most urgent task of a queue",
             responses=ERROR_RESPONSES)
async def lease_next(request: Request, queue: str = Path(min_length=1, max_length=64),
                     key: ApiKeyRecord = Depends(require_roles(*REVIEW_ROLES))) -> JSONResponse:
    """`{"task": null}` when the queue has nothing this reviewer may take."""
    repo = _repo(request)
    if repo.policy is not None and queue not in repo.policy.review.queues:
        raise ApiError(404, "unknown_queue", f"no review queue {queue!r}; the policy defines: "
                       f"{', '.join(repo.policy.review.queues)}")
    task = await _call(repo.lease_next, queue, reviewer_id(key))
    if task is None:
        return JSONResponse({"task": None})
    view = await _call(repo.get_task, task.id)
    return JSONResponse(_view_json(view) if view is not None else {"task": _task_json(task)})


@router.get("/v1/review/tasks/{task_id}", summary="A task with its content, decision and actor history",
            responses=ERROR_RESPONSES)
async def get_task(request: Request, task_id: int = Path(ge=1, le=MAX_TASK_ID),
                   _key: ApiKeyRecord = Depends(require_roles(*REVIEW_ROLES))) -> JSONResponse:
    view = await _call(_repo(request).get_task, task_id)
    if view is None:
        raise ApiError(404, "task_not_found", f"no review task {task_id}")
    return JSONResponse(_view_json(view))


@router.post("/v1/review/tasks/{task_id}/decision", summary="Decide a leased task", responses=ERROR_RESPONSES,
             openapi_extra=_body_doc(ReviewDecisionIn))
async def decide_task(request: Request, task_id: int = Path(ge=1, le=MAX_TASK_ID),
                      key: ApiKeyRecord = Depends(require_roles(*REVIEW_ROLES))) -> JSONResponse:
    """Needs your live lease on the task. Labels are recorded under the live policy version."""
    body: ReviewDecisionIn = await _body(request, ReviewDecisionIn)
    repo = _repo(request)
    version = str(getattr(repo.policy, "version", "") or "unknown")
    recorder = request.app.state.review_recorder  # the decision with its enforcement, one transaction
    res = await _call(recorder.submit, task_id, reviewer_id(key), labels=body.labels, action=body.action,
                      note=body.note, policy_version=version)
    return JSONResponse(_json(res.result))


@router.post("/v1/review/tasks/{task_id}/release", summary="Return a leased task to its queue undecided",
             responses=ERROR_RESPONSES)
async def release_task(request: Request, task_id: int = Path(ge=1, le=MAX_TASK_ID),
                       key: ApiKeyRecord = Depends(require_roles(*REVIEW_ROLES))) -> JSONResponse:
    task = await _call(_repo(request).release, task_id, reviewer_id(key))
    return JSONResponse({"task": _task_json(task)})


__all__ = ["REPORT_ROLES", "REVIEW_ROLES", "AppealIn", "ReportIn", "ReviewDecisionIn", "reviewer_id", "router"]
