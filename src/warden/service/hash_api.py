"""Hash matching routes: `POST /v1/hashes/lookup` (client and admin keys) and hash bank
management under `/v1/hashes/banks` (admin keys). Handlers parse, call the hashing code and
`HashBankRepository`, and serialize.

Lookup input: JSON `{"pdq": "<64 hex>"}` and/or `{"md5": "<32 hex>"}` (optional
`max_distance` 0-31, `banks`), or a multipart upload with an `image` file field (optional
`max_distance`, `banks` comma-separated, `exact_dihedral` true/false). An image is decoded only after its header's
dimensions pass the pixel limit; its size is bounded by the service's body limit.

Errors (never a 500 for bad input): 400 `malformed_json` / `invalid_encoding` /
`invalid_multipart`; 413 `body_too_large`; 415 `unsupported_media_type` (neither JSON nor
multipart); 422 `invalid_request` (schema; the message names the field), `invalid_image`
(not a decodable image, too many pixels), `invalid_hash`, `invalid_bank` (bad name,
category or action), `unknown_category` (not in the service policy), `invalid_bank_file`
(import; `details.errors` lists rows); 404 `bank_not_found`, `hash_not_found`; 409
`bank_exists`; 503 `storage_unavailable`, `hashing_unavailable` (pdqhash/Pillow missing).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Literal, TypeVar

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field, model_validator
from sqlalchemy.exc import SQLAlchemyError

from warden.core import MediaPart, Modality
from warden.detectors.hashing.banks import (
    FORMATS,
    Bank,
    BankEntry,
    BankFormatError,
    export_bank,
    parse_bank_file,
    validate_bank_name,
)
from warden.detectors.hashing.images import ImageHashes, hash_image, lookup_image
from warden.detectors.hashing.matcher import HashDecision, MatcherCache
from warden.detectors.hashing.md5 import validate_md5_hex
from warden.detectors.hashing.pdq import DEFAULT_MAX_DISTANCE, MIN_QUALITY, ImageError, MissingDependency
from warden.detectors.hashing.pdq import validate_pdq_hex as _validate_pdq
from warden.detectors.hashing.video import hash_video, lookup_video
from warden.service.auth import require_roles
from warden.service.bodies import StrictBody, parse_model, validate_model
from warden.service.errors import ApiError
from warden.service.schemas import ERROR_RESPONSES
from warden.store import ApiKeyRecord
from warden.store.hash_repo import BankExists, BankNotFound, HashBankError, HashBankRepository

LOOKUP_ROLES = ("client", "admin")
ADMIN_ROLES = ("admin",)
MAX_HASHES_PER_REQUEST = 10_000
MAX_BANKS_PER_LOOKUP = 100
#: How often lookups check whether the stored banks changed (one small query).
REFRESH_SECONDS = 2.0
_EXPORT_TYPES = {"csv": "text/csv; charset=utf-8", "json": "application/json", "te": "text/plain; charset=utf-8"}
R = TypeVar("R")

router = APIRouter(tags=["hashes"])
_cache_lock = threading.Lock()


# -- request schemas -----------------------------------------------------------------------
_In = StrictBody


class _LookupOptions(_In):
    max_distance: int = Field(default=DEFAULT_MAX_DISTANCE, ge=0, le=DEFAULT_MAX_DISTANCE)
    banks: list[str] | None = Field(default=None, min_length=1, max_length=MAX_BANKS_PER_LOOKUP)


class ImageLookupIn(_LookupOptions):
    """The options of an image lookup (multipart form fields)."""

    #: Hash the 8 rotations/mirrors in pixel space (exact for mirrored copies, ~7x the time).
    exact_dihedral: bool = False


class LookupIn(_LookupOptions):
    """Look up a PDQ and/or MD5 hash."""

    pdq: str | None = Field(default=None, max_length=128)
    md5: str | None = Field(default=None, max_length=128)

    @model_validator(mode="after")
    def _one_hash(self) -> LookupIn:
        if self.pdq is None and self.md5 is None:
            raise ValueError("send 'pdq' (64 hex characters) and/or 'md5' (32 hex characters), or upload an image")
        return self


class BankIn(_In):
    name: str = Field(min_length=1, max_length=128)
    category: str = Field(min_length=1, max_length=128)
    action: Literal["allow", "label", "limit", "hold_for_review", "remove", "escalate"] = "remove"
    report: bool = False
    description: str = Field(default="", max_length=2000)
    enabled: bool = True


class BankPatch(_In):
    category: str | None = Field(default=None, min_length=1, max_length=128)
    action: Literal["allow", "label", "limit", "hold_for_review", "remove", "escalate"] | None = None
    report: bool | None = None
    description: str | None = Field(default=None, max_length=2000)
    enabled: bool | None = None


class HashIn(_In):
    signal_type: str = Field(min_length=1, max_length=32)
    signal: str = Field(min_length=1, max_length=128)
    source: str | None = Field(default=None, max_length=256)
    category: str | None = Field(default=None, max_length=128)
    content_id: str | None = Field(default=None, max_length=512)
    note: str | None = Field(default=None, max_length=2000)


class HashesIn(_In):
    hashes: list[HashIn] = Field(min_length=1, max_length=MAX_HASHES_PER_REQUEST)


# -- helpers -------------------------------------------------------------------------------
def _body_doc(model: type[BaseModel]) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": model.model_json_schema()}}}}


async def _call(fn: Callable[..., R], *args: Any, **kwargs: Any) -> R:
    """Run blocking work in the threadpool and map domain errors to API errors."""
    try:
        return await run_in_threadpool(fn, *args, **kwargs)
    except BankNotFound as exc:
        raise ApiError(404, exc.code, str(exc)) from None
    except BankExists as exc:
        raise ApiError(409, exc.code, str(exc)) from None
    except HashBankError as exc:
        raise ApiError(422, exc.code, str(exc)) from None
    except BankFormatError as exc:
        raise ApiError(422, "invalid_bank_file", str(exc), {"errors": exc.errors}) from None
    except ImageError as exc:
        raise ApiError(422, "invalid_image", str(exc)) from None
    except MissingDependency as exc:
        raise ApiError(503, "hashing_unavailable", str(exc)) from None
    except SQLAlchemyError:
        raise ApiError(503, "storage_unavailable", "the hash bank store is unavailable; retry later") from None


def _repo(request: Request) -> HashBankRepository:
    return HashBankRepository(request.app.state.store)


def _cache(request: Request) -> MatcherCache:
    state = request.app.state
    cache = getattr(state, "hash_matcher_cache", None)
    if cache is None:
        with _cache_lock:
            cache = getattr(state, "hash_matcher_cache", None)
            if cache is None:
                repo = HashBankRepository(state.store)
                cache = MatcherCache(load=lambda: repo.load_matcher(radius=DEFAULT_MAX_DISTANCE),
                                     fingerprint=repo.fingerprint, refresh_seconds=REFRESH_SECONDS)
                state.hash_matcher_cache = cache
    return cache


def _changed(request: Request) -> None:
    cache = getattr(request.app.state, "hash_matcher_cache", None)
    if cache is not None:
        cache.invalidate()


def _actor(key: ApiKeyRecord) -> str:
    return f"api_key:{key.id}"


def _bank_name(name: str) -> str:
    try:
        return validate_bank_name(name)
    except ValueError as exc:
        raise ApiError(422, "invalid_bank", str(exc)) from None


def _check_category(request: Request, category: str | None) -> None:
    policy = getattr(request.app.state.moderator, "policy", None)
    known = getattr(policy, "categories", None)
    if category is not None and isinstance(known, dict) and known and category not in known:
        raise ApiError(422, "unknown_category", f"category {category!r} is not in the service policy; "
                       f"it defines: {', '.join(sorted(known))}")


def _is_multipart(request: Request) -> bool:
    return request.headers.get("content-type", "").lower().startswith("multipart/form-data")


def _is_json(request: Request) -> bool:
    ctype = request.headers.get("content-type", "").lower()
    return not ctype or ctype.startswith("application/json") or ctype.startswith("text/plain")


async def _form(request: Request) -> tuple[str, bytes, dict[str, str]]:
    """The uploaded file (`image` or `video`: which one, its bytes) and the text fields of a
    multipart body."""
    try:
        form = await request.form(max_files=1, max_fields=10)
    except ApiError:
        raise
    except Exception as exc:  # multipart parser errors: the client's body
        raise ApiError(400, "invalid_multipart", f"the multipart body cannot be parsed ({type(exc).__name__}); "
                       "send multipart/form-data with an 'image' or a 'video' file field") from None
    try:
        uploads = [(name, form.get(name)) for name in ("image", "video") if form.get(name) is not None]
        if len(uploads) != 1 or isinstance(uploads[0][1], str):
            raise ApiError(422, "invalid_request", "upload one file, as a file field named 'image' or 'video'")
        kind, upload = uploads[0]
        data = await upload.read()  # type: ignore[union-attr]
        fields = {k: v for k, v in form.items() if isinstance(v, str) and k not in ("image", "video")}
    finally:
        await form.close()
    settings = request.app.state.settings
    limit = int(getattr(settings, "max_media_body_bytes" if kind == "video" else "max_body_bytes", 2 * 1024 * 1024))
    if len(data) > limit:
        raise ApiError(413, "body_too_large", f"the {kind} exceeds the limit of {limit:,} bytes",
                       {"limit_bytes": limit})
    return kind, data, fields


def _form_lookup(fields: dict[str, str]) -> ImageLookupIn:
    unknown = sorted(set(fields) - {"max_distance", "banks", "exact_dihedral"})
    if unknown:
        raise ApiError(422, "invalid_request", f"unexpected form field(s): {', '.join(unknown)[:200]}")
    payload: dict[str, Any] = {}
    if "exact_dihedral" in fields:
        flag = fields["exact_dihedral"].strip().lower()
        if flag not in ("true", "false", "1", "0"):
            raise ApiError(422, "invalid_request", "exact_dihedral: must be true or false")
        payload["exact_dihedral"] = flag in ("true", "1")
    if "max_distance" in fields:
        try:
            payload["max_distance"] = int(fields["max_distance"])
        except ValueError:
            raise ApiError(422, "invalid_request", "max_distance: must be an integer from 0 to 31") from None
    if fields.get("banks", "").strip():
        payload["banks"] = [b.strip() for b in fields["banks"].split(",") if b.strip()]
    return validate_model(ImageLookupIn, payload)


def _lookup_response(decision: HashDecision, hashes: ImageHashes | None, *, skipped_low_quality: bool) -> dict:
    out = decision.to_dict()
    if hashes is not None:
        out["hashes"] = hashes.to_dict()
    out["pdq_skipped"] = (f"PDQ quality {hashes.quality} is below {MIN_QUALITY}: too featureless to match on"
                          if skipped_low_quality and hashes is not None else None)
    return out


def _lookup_video(cache: MatcherCache, data: bytes, body: ImageLookupIn) -> dict[str, Any]:
    hashes = hash_video(MediaPart(kind=Modality.VIDEO, data=data))
    return lookup_video(cache.get(), hashes, max_distance=body.max_distance, banks=body.banks)


# -- lookup (client keys) --------------------------------------------------------------------
@router.post("/v1/hashes/lookup", summary="Match a PDQ/MD5 hash or an uploaded image or video against the hash banks",
             responses=ERROR_RESPONSES, openapi_extra={"requestBody": {"required": True, "content": {
                 "application/json": {"schema": LookupIn.model_json_schema()},
                 "multipart/form-data": {"schema": {"type": "object", "properties": {
                     "image": {"type": "string", "format": "binary"},
                     "video": {"type": "string", "format": "binary", "description": "MP4, MOV, WebM or AVI: its MD5, "
                               "frame PDQs against banked images and vPDQ against banked videos"},
                     "max_distance": {"type": "integer"},
                     "exact_dihedral": {"type": "boolean"},
                     "banks": {"type": "string", "description": "comma-separated bank names"}}}}}}})
async def lookup(request: Request, _key: ApiKeyRecord = Depends(require_roles(*LOOKUP_ROLES))) -> JSONResponse:
    """The decision a match calls for: the matched banks' categories, the most severe of their
    actions and whether to report; each match with its bank, distance, hash id and variant."""
    if _is_multipart(request):
        kind, data, fields = await _form(request)
        body = _form_lookup(fields)
        if kind == "video":
            return JSONResponse(await _call(_lookup_video, _cache(request), data, body))
        hashes = await _call(hash_image, data, exact_dihedral=body.exact_dihedral)
        cache = _cache(request)

        def run_image() -> list:
            return lookup_image(cache.get(), hashes, max_distance=body.max_distance, banks=body.banks)

        matches = await _call(run_image)
        skipped = hashes.quality < MIN_QUALITY
        return JSONResponse(_lookup_response(HashDecision.from_matches(matches), hashes, skipped_low_quality=skipped))
    if not _is_json(request):
        raise ApiError(415, "unsupported_media_type", "send application/json ({\"pdq\": ...}) or multipart/form-data "
                       "with an 'image' or a 'video' file")
    raw = await request.body()
    json_limit = int(getattr(request.app.state.settings, "max_body_bytes", 2 * 1024 * 1024))
    if len(raw) > json_limit:  # the route admits video-sized bodies; a JSON hash lookup is tiny
        raise ApiError(413, "body_too_large", f"a JSON lookup is limited to {json_limit:,} bytes",
                       {"limit_bytes": json_limit})
    body = parse_model(raw, LookupIn)
    try:
        pdq = _validate_pdq(body.pdq) if body.pdq is not None else None
        md5 = validate_md5_hex(body.md5) if body.md5 is not None else None
    except ValueError as exc:
        raise ApiError(422, "invalid_hash", str(exc)) from None
    cache = _cache(request)

    def run_hash() -> list:
        matcher = cache.get()
        found = matcher.match_md5(md5, banks=body.banks) if md5 else []
        if pdq:
            found += matcher.match_pdq(pdq, max_distance=body.max_distance, banks=body.banks)
        return found

    matches = await _call(run_hash)
    return JSONResponse(_lookup_response(HashDecision.from_matches(matches), None, skipped_low_quality=False))


# -- banks (admin keys) ----------------------------------------------------------------------
@router.get("/v1/hashes/banks", summary="List hash banks", responses=ERROR_RESPONSES)
async def list_banks(request: Request, _key: ApiKeyRecord = Depends(require_roles(*ADMIN_ROLES))) -> JSONResponse:
    records = await _call(_repo(request).list_banks)
    return JSONResponse({"banks": [r.to_dict() for r in records]})


@router.post("/v1/hashes/banks", summary="Create a hash bank", status_code=201, responses=ERROR_RESPONSES,
             openapi_extra=_body_doc(BankIn))
async def create_bank(request: Request, key: ApiKeyRecord = Depends(require_roles(*ADMIN_ROLES))) -> JSONResponse:
    body: BankIn = parse_model(await request.body(), BankIn)
    _check_category(request, body.category)
    try:
        bank = Bank(name=body.name, category=body.category, action=body.action, report=body.report,
                    description=body.description, enabled=body.enabled)
    except ValueError as exc:
        raise ApiError(422, "invalid_bank", str(exc)) from None
    record = await _call(_repo(request).create_bank, bank, actor=_actor(key))
    _changed(request)
    return JSONResponse(record.to_dict(), status_code=201)


@router.get("/v1/hashes/banks/{name}", summary="One hash bank", responses=ERROR_RESPONSES)
async def get_bank(request: Request, name: str = Path(min_length=1, max_length=128),
                   _key: ApiKeyRecord = Depends(require_roles(*ADMIN_ROLES))) -> JSONResponse:
    record = await _call(_repo(request).get_bank, _bank_name(name))
    if record is None:
        raise ApiError(404, "bank_not_found", f"no hash bank named {name!r}")
    return JSONResponse(record.to_dict())


@router.patch("/v1/hashes/banks/{name}", summary="Change a bank's category, action, report flag or state",
              responses=ERROR_RESPONSES, openapi_extra=_body_doc(BankPatch))
async def update_bank(request: Request, name: str = Path(min_length=1, max_length=128),
                      key: ApiKeyRecord = Depends(require_roles(*ADMIN_ROLES))) -> JSONResponse:
    body: BankPatch = parse_model(await request.body(), BankPatch)
    _check_category(request, body.category)

    def run() -> Any:
        try:
            return _repo(request).update_bank(_bank_name(name), actor=_actor(key), category=body.category,
                                              action=body.action, report=body.report,
                                              description=body.description, enabled=body.enabled)
        except ValueError as exc:
            raise HashBankError(str(exc)) from None

    record = await _call(run)
    _changed(request)
    return JSONResponse(record.to_dict())


@router.delete("/v1/hashes/banks/{name}", summary="Delete a bank and its hashes", responses=ERROR_RESPONSES)
async def delete_bank(request: Request, name: str = Path(min_length=1, max_length=128),
                      key: ApiKeyRecord = Depends(require_roles(*ADMIN_ROLES))) -> JSONResponse:
    removed = await _call(_repo(request).delete_bank, _bank_name(name), actor=_actor(key))
    _changed(request)
    return JSONResponse({"deleted": name, "hashes": removed})


@router.get("/v1/hashes/banks/{name}/hashes", summary="A page of a bank's hashes (pass the last id as after_id)",
            responses=ERROR_RESPONSES)
async def list_hashes(request: Request, name: str = Path(min_length=1, max_length=128),
                      after_id: int = Query(default=0, ge=0, le=2**63 - 1),
                      limit: int = Query(default=100, ge=1, le=1000),
                      _key: ApiKeyRecord = Depends(require_roles(*ADMIN_ROLES))) -> JSONResponse:
    entries = await _call(_repo(request).list_hashes, _bank_name(name), after_id=after_id, limit=limit)
    return JSONResponse({"hashes": [e.to_dict() for e in entries],
                         "next_after_id": entries[-1].id if len(entries) == limit else None})


@router.post("/v1/hashes/banks/{name}/hashes", summary="Add hashes (JSON) or an image's hashes (multipart)",
             status_code=201, responses=ERROR_RESPONSES, openapi_extra=_body_doc(HashesIn))
async def add_hashes(request: Request, name: str = Path(min_length=1, max_length=128),
                     key: ApiKeyRecord = Depends(require_roles(*ADMIN_ROLES))) -> JSONResponse:
    """JSON `{"hashes": [{"signal_type": "pdq", "signal": "...", "source", "category",
    "content_id", "note"}]}`, or a multipart `image` (its PDQ and MD5 are banked; optional
    `source`, `category`, `content_id`, `note` fields). Hashes the bank holds are duplicates."""
    bank = _bank_name(name)
    hashes: ImageHashes | None = None
    if _is_multipart(request):
        kind, data, fields = await _form(request)
        if kind == "video":
            raise ApiError(422, "invalid_request", "videos are banked with the CLI (`warden hash bank add BANK "
                           "clip.mp4`: its MD5 and frame hashes under one content id); upload an image here")
        unknown = sorted(set(fields) - {"source", "category", "content_id", "note"})
        if unknown:
            raise ApiError(422, "invalid_request", f"unexpected form field(s): {', '.join(unknown)[:200]}")
        hashes = await _call(hash_image, data, dihedral=False, trim_borders=False)
        meta = {k: fields.get(k) or None for k in ("source", "category", "content_id", "note")}
        items = [{"signal_type": "pdq", "signal": hashes.pdq.original, **meta},
                 {"signal_type": "md5", "signal": hashes.md5, **meta}]
    elif _is_json(request):
        body: HashesIn = parse_model(await request.body(), HashesIn)
        items = [h.model_dump() for h in body.hashes]
    else:
        raise ApiError(415, "unsupported_media_type", "send application/json or multipart/form-data")
    entries, errors = [], []
    for i, item in enumerate(items):
        try:
            entries.append(BankEntry(**item))
        except (ValueError, TypeError) as exc:
            errors.append({"index": i, "message": str(exc)})
    if errors:
        raise ApiError(422, "invalid_hash", f"{len(errors)} invalid hash(es); hashes[{errors[0]['index']}]: "
                       f"{errors[0]['message']}", {"errors": errors[:50]})
    result = await _call(_repo(request).add_hashes, bank, entries, actor=_actor(key))
    _changed(request)
    out: dict[str, Any] = {"added": result.added, "duplicates": result.duplicates, "ids": list(result.ids)}
    if hashes is not None:
        out["hashes"] = hashes.to_dict()
    return JSONResponse(out, status_code=201)


@router.delete("/v1/hashes/banks/{name}/hashes/{hash_id}", summary="Remove one hash", responses=ERROR_RESPONSES)
async def remove_hash(request: Request, name: str = Path(min_length=1, max_length=128),
                      hash_id: int = Path(ge=1, le=2**63 - 1),
                      key: ApiKeyRecord = Depends(require_roles(*ADMIN_ROLES))) -> JSONResponse:
    removed = await _call(_repo(request).remove_hashes, _bank_name(name), actor=_actor(key), ids=[hash_id])
    if not removed:
        raise ApiError(404, "hash_not_found", f"bank {name!r} has no hash with id {hash_id}")
    _changed(request)
    return JSONResponse({"removed": removed})


@router.post("/v1/hashes/banks/{name}/import", summary="Import a bank file (csv, json or te) into a bank",
             responses=ERROR_RESPONSES)
async def import_bank(request: Request, name: str = Path(min_length=1, max_length=128),
                      fmt: Literal["csv", "json", "te"] = Query(alias="format"),
                      signal_type: Literal["pdq", "md5"] | None = Query(default=None),
                      key: ApiKeyRecord = Depends(require_roles(*ADMIN_ROLES))) -> JSONResponse:
    """The body is the file's text (UTF-8). All-or-nothing: a bad row rejects the file and
    `details.errors` lists the first problems by line. Larger files: `warden hash bank import`."""
    bank = _bank_name(name)
    raw = await request.body()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(400, "invalid_encoding", f"the file is not valid UTF-8 (byte offset {exc.start})") from None

    def run() -> Any:
        parsed = parse_bank_file(text, fmt=fmt, default_signal_type=signal_type, defaults={"added_by": _actor(key)})
        return _repo(request).add_hashes(bank, parsed.entries, actor=_actor(key))

    result = await _call(run)
    _changed(request)
    return JSONResponse({"added": result.added, "duplicates": result.duplicates})


@router.get("/v1/hashes/banks/{name}/export", summary="Export a bank as csv, json (HMA bank content) or te",
            responses=ERROR_RESPONSES)
async def export(request: Request, name: str = Path(min_length=1, max_length=128),
                 fmt: Literal["csv", "json", "te"] = Query(default="json", alias="format"),
                 _key: ApiKeyRecord = Depends(require_roles(*ADMIN_ROLES))) -> Response:
    bank_name = _bank_name(name)

    def run() -> str:
        repo = _repo(request)
        record = repo.get_bank(bank_name)
        if record is None:
            raise BankNotFound(f"no hash bank named {bank_name!r}")
        return export_bank(record.bank, repo.iter_hashes(bank_name), fmt=fmt)

    text = await _call(run)
    return Response(text, media_type=_EXPORT_TYPES[fmt],
                    headers={"Content-Disposition": f'attachment; filename="{bank_name}.{fmt}"'})


__all__ = ["ADMIN_ROLES", "FORMATS", "LOOKUP_ROLES", "router"]
