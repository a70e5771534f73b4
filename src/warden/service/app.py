"""The FastAPI application factory. Routes only parse and serialize: moderation goes through
the `Moderator`, storage through the `Store`.

Input contract of `POST /v1/moderate` (never a 500 for bad input):

* 413 `body_too_large` — body over `max_body_bytes` (declared or streamed).
* 400 `invalid_encoding` — body is not UTF-8; 400 `malformed_json` — not JSON (incl. NaN,
  Infinity, absurd nesting or number sizes).
* 422 `invalid_request` — JSON that is neither an item object nor `{"items": [...]}`;
  `invalid_item` — a wrong type / missing `text` / unknown surface (message from
  `warden.ingest.parse_item`); `text_too_long` — over `max_text_chars` (message states the
  limit); `batch_too_large` / `empty_batch` / `duplicate_id` for batches.
* Empty text (`""`) is valid and moderated (usually `allow`): an empty comment is content.
* A `media` field is refused (422): images are uploaded to `POST /v1/moderate/media`
  (multipart/form-data), whose contract is in `warden.service.media_upload`.
"""

from __future__ import annotations

import logging
import time
from collections import Counter as CounterDict
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, Protocol

from fastapi import Depends, FastAPI, Path, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic.json_schema import models_json_schema
from sqlalchemy.exc import SQLAlchemyError

import warden
from warden.core import Content, Decision, Policy
from warden.detectors.providers.metrics import PROVIDER_METRICS
from warden.enforce.dispatcher import WebhookDispatcher
from warden.ingest import InvalidItem, parse_item
from warden.pipelines.record import DecisionRecorder, ReviewRecorder
from warden.service.auth import require_roles
from warden.service.bodies import parse_json
from warden.service.errors import ApiError, error_body, install_error_handlers
from warden.service.hash_api import router as hash_router
from warden.service.media_upload import MEDIA_REQUEST_BODY, parse_media_request
from warden.service.metrics import MetricsMiddleware, ServiceMetrics
from warden.service.middleware import BodySizeLimitMiddleware
from warden.service.review_api import router as review_router
from warden.service.schemas import (
    ERROR_RESPONSES,
    BatchOut,
    DecisionOut,
    ErrorOut,
    HealthOut,
    ModerateBatch,
    ModerateItem,
    StoredDecisionOut,
)
from warden.service.settings import ServiceSettings
from warden.service.shadow import ShadowRunner
from warden.service.ui import install_ui
from warden.store import ApiKeyRecord, Store

log = logging.getLogger("warden.service")

MODERATE_ROLES = ("client", "admin")
READ_DECISION_ROLES = ("client", "reviewer", "admin")
MAX_REPORTED_ITEM_ERRORS = 50


class ModeratorLike(Protocol):
    policy: Any

    def moderate_batch(self, items: Sequence[Content]) -> list[Decision]: ...


def create_app(
    *,
    moderator: ModeratorLike,
    store: Store,
    settings: ServiceSettings | None = None,
    shadow_moderator: ModeratorLike | None = None,
    dispatcher: WebhookDispatcher | None = None,
) -> FastAPI:
    """`shadow_moderator`: a candidate policy run beside the live one on every /v1/moderate
    request, off the request path (see `warden.service.shadow`); its decisions are stored,
    never returned or acted on. `dispatcher`: delivers the enforcement outbox as webhooks in a
    background thread for the app's lifetime (`warden serve` passes one when WARDEN_WEBHOOK_URL is set)."""
    settings = settings or ServiceSettings()
    metrics = ServiceMetrics()
    shadow = (
        ShadowRunner(shadow_moderator, store, metrics, max_queue=settings.shadow_queue_size)
        if shadow_moderator is not None
        else None
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if dispatcher is not None:
            dispatcher.start()
        yield
        if dispatcher is not None:
            await run_in_threadpool(dispatcher.stop)
        if shadow is not None:
            await run_in_threadpool(shadow.stop)

    app = FastAPI(
        lifespan=lifespan,
        title="Warden",
        version=warden.__version__,
        description=(
            "Policy-driven content moderation. Every /v1 route needs an API key "
            "(`Authorization: Bearer <key>` or `X-API-Key: <key>`). Errors are "
            '`{"error": {"code", "message", "details"}}`.'
        ),
        docs_url="/docs" if settings.docs else None,
        redoc_url="/redoc" if settings.docs else None,
        openapi_url="/openapi.json" if settings.docs else None,
    )
    app.state.moderator = moderator
    app.state.store = store
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.shadow = shadow
    if shadow is not None:
        log.info("shadow mode: candidate policy version %s beside the live one", shadow.policy_version)
    install_error_handlers(app)
    install_ui(app)  # /ui: the reviewer and admin web UI (session cookies, not API keys)
    # Last added is outermost: metrics see everything, including 413s from the size limit.
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes,
                       path_limits={"/v1/moderate/media": settings.max_media_body_bytes,
                                    "/v1/hashes/lookup": settings.max_media_body_bytes})
    app.add_middleware(MetricsMiddleware, metrics=metrics)

    policy = moderator.policy
    allowed_surfaces = tuple(getattr(policy, "surfaces", ()) or ()) or None
    # Decisions, review tasks and enforcement outbox are recorded together (one transaction);
    # review and enforcement need a real Policy (its review and enforcement sections).
    live_policy = policy if isinstance(policy, Policy) else None
    recorder = app.state.recorder = DecisionRecorder(store, live_policy, archive_content=settings.archive_content)
    app.state.review = recorder.review
    app.state.enforcement = recorder.enforcement
    app.state.review_recorder = ReviewRecorder(store, live_policy) if live_policy is not None else None
    app.include_router(review_router)
    app.include_router(hash_router)  # /v1/hashes: lookups and hash bank management

    # -- routes ------------------------------------------------------------------------
    @app.post(
        "/v1/moderate",
        tags=["moderation"],
        summary="Moderate one item or a batch",
        response_model=None,
        responses={
            200: {
                "description": 'One decision (single item) or `{"decisions": [...]}` (batch)',
                "content": {
                    "application/json": {
                        "schema": {
                            "oneOf": [
                                {"$ref": "#/components/schemas/DecisionOut"},
                                {"$ref": "#/components/schemas/BatchOut"},
                            ]
                        }
                    }
                },
            },
            **ERROR_RESPONSES,
        },
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "oneOf": [
                                {"$ref": "#/components/schemas/ModerateItem"},
                                {"$ref": "#/components/schemas/ModerateBatch"},
                            ]
                        }
                    }
                },
            }
        },
    )
    async def moderate(request: Request, key: ApiKeyRecord = Depends(require_roles(*MODERATE_ROLES))) -> JSONResponse:
        """Moderate `{"text": ...}` or `{"items": [{"text": ...}, ...]}`. Ids are generated
        (uuid4) when absent. Decisions are stored idempotently per (id, policy version): a
        resubmission is moderated again but stored once (the first stored decision wins)."""
        body = await request.body()
        payload = parse_json(body)
        contents, is_batch = _parse_items(payload, settings, allowed_surfaces)
        decisions, stored = await run_in_threadpool(_moderate_and_store, contents, key, is_batch)
        if shadow is not None:
            shadow.submit(contents, decisions)  # non-blocking; never raises
        for d in decisions:
            metrics.decisions.labels(d.action.value, d.surface).inc()
        log.info(
            "moderated items=%d stored=%d key_id=%d actions=%s",
            len(decisions),
            stored,
            key.id,
            dict(CounterDict(d.action.value for d in decisions)),
        )
        if is_batch:
            return JSONResponse({"decisions": [d.to_dict() for d in decisions]})
        return JSONResponse(decisions[0].to_dict())

    @app.post(
        "/v1/moderate/media",
        tags=["moderation"],
        summary="Moderate one item with images (multipart/form-data)",
        response_model=None,
        responses={
            200: {"model": DecisionOut, "description": "The decision; evidence points at images by `location.part`"},
            415: {"model": ErrorOut, "description": "Not multipart, or a file that is not a supported image"},
            **ERROR_RESPONSES,
        },
        openapi_extra={"requestBody": MEDIA_REQUEST_BODY},
    )
    async def moderate_media(
        request: Request, key: ApiKeyRecord = Depends(require_roles(*MODERATE_ROLES))
    ) -> JSONResponse:
        """Moderate a post with a caption and images (a profile with a bio and photos): text
        fields as for /v1/moderate, files under `media` (see `warden.service.media_upload`
        for every error code). Text read from the images (OCR) is moderated like the caption.
        Shadow mode is not applied to uploads (their bytes would wait in its queue)."""
        content = await parse_media_request(request, settings=settings, allowed_surfaces=allowed_surfaces,
                                            moderator=moderator)
        decisions, stored = await run_in_threadpool(_moderate_and_store, [content], key, False)
        for d in decisions:
            metrics.decisions.labels(d.action.value, d.surface).inc()
        log.info("moderated media item parts=%d stored=%d key_id=%d action=%s", len(content.media), stored, key.id,
                 decisions[0].action.value)
        return JSONResponse(decisions[0].to_dict())

    def _moderate_and_store(contents: list[Content], key: ApiKeyRecord, is_batch: bool) -> tuple[list[Decision], int]:
        started = time.perf_counter()
        decisions = moderator.moderate_batch(contents)
        metrics.moderation_latency.observe(time.perf_counter() - started)
        metrics.batch_size.observe(len(contents))
        if len(decisions) != len(contents):
            raise RuntimeError(f"moderator returned {len(decisions)} decisions for {len(contents)} items")
        try:
            stored = recorder.record(
                contents, decisions, actor=f"api_key:{key.id}", event="moderate",
                subject="batch" if is_batch else decisions[0].decision_id,
                details={
                    "key_name": key.name,
                    "policy_version": decisions[0].policy_version if decisions else None,
                    "actions": dict(CounterDict(d.action.value for d in decisions)),
                    "decision_ids": [d.decision_id for d in decisions],
                },
            ).stored
        except SQLAlchemyError as exc:
            log.error("storing decisions failed: %s", type(exc).__name__)
            raise ApiError(503, "storage_unavailable", "the decision store is unavailable; retry later") from None
        return decisions, stored

    @app.get(
        "/v1/decisions/{decision_id}",
        tags=["moderation"],
        summary="A stored decision by decision_id, or by content id (latest policy version)",
        response_model=StoredDecisionOut,
        responses={404: {"model": ErrorOut, "description": "No such decision"}, **ERROR_RESPONSES},
    )
    async def get_decision(
        decision_id: str = Path(min_length=1, max_length=512),
        _key: ApiKeyRecord = Depends(require_roles(*READ_DECISION_ROLES)),
    ) -> JSONResponse:
        try:
            record = await run_in_threadpool(store.get_decision, decision_id)
        except SQLAlchemyError as exc:
            log.error("reading a decision failed: %s", type(exc).__name__)
            raise ApiError(503, "storage_unavailable", "the decision store is unavailable; retry later") from None
        if record is None:
            raise ApiError(404, "not_found", "no decision with this decision_id or content id")
        return JSONResponse({**record.payload, "created_at": record.created_at.isoformat()})

    @app.get(
        "/healthz",
        tags=["operations"],
        summary="Liveness and database check (no auth)",
        response_model=HealthOut,
        responses={503: {"model": HealthOut}},
    )
    async def healthz() -> JSONResponse:
        db_ok = await run_in_threadpool(store.ping)
        body = {
            "status": "ok" if db_ok else "degraded",
            "database": "ok" if db_ok else "unreachable",
            "policy": str(getattr(policy, "name", "")),
            "policy_version": str(getattr(policy, "version", "")),
        }
        return JSONResponse(body, status_code=200 if db_ok else 503)

    @app.get(
        "/metrics", tags=["operations"], summary="Prometheus metrics (no content, no auth)", response_class=Response
    )
    async def prometheus_metrics() -> Response:
        # The service's own metrics, then the provider adapters' (calls, errors, tokens, cost, cache).
        body = generate_latest(metrics.registry) + generate_latest(PROVIDER_METRICS.registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    # -- OpenAPI: the request models are documented, parsing is ours -------------------
    def custom_openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        _, defs = models_json_schema(
            [
                (ModerateItem, "validation"),
                (ModerateBatch, "validation"),
                (DecisionOut, "serialization"),
                (BatchOut, "serialization"),
            ],
            ref_template="#/components/schemas/{model}",
        )
        schema.setdefault("components", {}).setdefault("schemas", {}).update(defs.get("$defs", {}))
        app.openapi_schema = schema
        return schema

    app.openapi = custom_openapi  # type: ignore[method-assign]
    return app


# -- parsing helpers (pure) -----------------------------------------------------------
def _item_error(index: int | None, obj: object, exc: InvalidItem, settings: ServiceSettings) -> dict[str, Any]:
    text = obj.get("text") if isinstance(obj, dict) else None
    too_long = exc.field == "text" and isinstance(text, str) and len(text) > settings.max_text_chars
    err: dict[str, Any] = {
        "code": "text_too_long" if too_long else "invalid_item",
        "field": exc.field,
        "message": str(exc),
    }
    if too_long:
        err["limit"] = settings.max_text_chars
        err["length"] = len(text)  # type: ignore[arg-type]
    if index is not None:
        err["index"] = index
    return err


def _parse_items(
    payload: Any, settings: ServiceSettings, allowed_surfaces: tuple[str, ...] | None
) -> tuple[list[Content], bool]:
    def parse(obj: object) -> Content:
        # parse_item generates a uuid4 id when "id" is absent, null or "".
        try:
            return parse_item(
                obj,
                default_surface=settings.default_surface,
                allowed_surfaces=allowed_surfaces,
                max_text_chars=settings.max_text_chars,
            )
        except InvalidItem:
            raise
        except (ValueError, TypeError) as exc:  # e.g. Content's own checks: still the client's input
            raise InvalidItem(str(exc)) from None

    if not isinstance(payload, dict):
        raise ApiError(
            422,
            "invalid_request",
            'the body must be a JSON object: one item {"text": ...} or a batch {"items": [...]}',
            {"got": type(payload).__name__},
        )
    if "items" not in payload:
        try:
            return [parse(payload)], False
        except InvalidItem as exc:
            err = _item_error(None, payload, exc, settings)
            raise ApiError(422, err.pop("code"), err.pop("message"), err) from None

    items = payload["items"]
    extra = sorted(k for k in payload if k != "items")
    if extra:
        raise ApiError(422, "invalid_request", f"a batch body has only 'items'; unexpected: {', '.join(extra)}")
    if not isinstance(items, list):
        raise ApiError(422, "invalid_request", "'items' must be an array of item objects")
    if not items:
        raise ApiError(422, "empty_batch", f"'items' is empty; send 1 to {settings.max_batch_items:,} items")
    if len(items) > settings.max_batch_items:
        raise ApiError(
            422,
            "batch_too_large",
            f"'items' has {len(items):,} items; the limit is {settings.max_batch_items:,} per request",
            {"limit": settings.max_batch_items, "count": len(items)},
        )
    contents: list[Content] = []
    errors: list[dict[str, Any]] = []
    for i, obj in enumerate(items):
        try:
            contents.append(parse(obj))
        except InvalidItem as exc:
            errors.append(_item_error(i, obj, exc, settings))
    if errors:
        first = errors[0]
        codes = {e["code"] for e in errors}
        code = codes.pop() if len(codes) == 1 else "invalid_item"
        raise ApiError(
            422,
            code,
            f"{len(errors)} invalid item(s); items[{first['index']}]: {first['message']}",
            {"errors": errors[:MAX_REPORTED_ITEM_ERRORS]},
        )
    seen: dict[str, int] = {}
    for i, c in enumerate(contents):
        if c.id in seen:
            raise ApiError(
                422,
                "duplicate_id",
                f"items[{i}] repeats the id of items[{seen[c.id]}]; ids in a batch must be distinct",
                {"index": i, "first_index": seen[c.id]},
            )
        seen[c.id] = i
    return contents, True


__all__ = ["ServiceSettings", "create_app", "error_body"]
