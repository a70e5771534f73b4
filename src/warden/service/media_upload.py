"""Parse `POST /v1/moderate/media` (multipart/form-data) into a `Content` with media parts.

The route only parses and serializes; this module turns the untrusted form into the same
`Content` every other entry point builds (fields validated by `warden.ingest.parse_item`,
files checked by `warden.detectors.media.guards` before anything is moderated), and maps
every problem to a 4xx with a stable code:

* 415 `unsupported_media_type` — the body is not multipart/form-data, or a file is not a
  supported image (sniffed from its bytes; SVG, PDF, HEIC, random bytes), or is not the kind
  its content type claims;
* 413 `body_too_large` — the request is over `max_media_body_bytes` (enforced while
  streaming); `media_too_large` — one file is over the policy's image byte limit;
* 422 `invalid_media` — an empty file, a decompression bomb (pixel limit, read from the
  header before decoding), a truncated or corrupt file, a video over the duration or frame
  size limit (read from its container headers); `unsupported_media_kind` — the
  policy has no detector for that kind (a video under an image-only policy);
  `invalid_item` / `text_too_long` — the fields, exactly as for /v1/moderate;
  `invalid_request` — unknown form fields, too many files, a file sent as a text field;
* 400 `malformed_multipart` — a body that does not parse as multipart.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from warden.core import Content, MediaPart, Modality
from warden.ingest import MAX_MEDIA_PARTS, InvalidItem, parse_item
from warden.service.errors import ApiError
from warden.service.settings import ServiceSettings

FIELDS = ("id", "text", "surface", "actor_id", "language", "metadata", "reach")
FILE_FIELD = "media"
MAX_FIELD_BYTES = 1024 * 1024
#: MediaRejected codes that are not 422 invalid_media.
_STATUS: dict[str, tuple[int, str]] = {"too_large": (413, "media_too_large"),
                                       "unsupported_format": (415, "unsupported_media_type"),
                                       "kind_mismatch": (415, "unsupported_media_type")}

#: OpenAPI description of the request body (parsing is ours, this documents it).
MEDIA_REQUEST_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "properties": {
                    "media": {"type": "array", "items": {"type": "string", "format": "binary"},
                              "description": f"1 to {MAX_MEDIA_PARTS} image files (JPEG, PNG, GIF, WebP, BMP), "
                                             "videos (MP4, MOV, WebM, AVI) or audio (WAV, MP3, Ogg, FLAC, M4A) "
                                             "the policy reads"},
                    "id": {"type": "string", "description": "Your stable id; generated (uuid4) when absent"},
                    "text": {"type": "string", "description": "The caption / bio / message (optional)"},
                    "surface": {"type": "string"},
                    "actor_id": {"type": "string"},
                    "language": {"type": "string"},
                    "metadata": {"type": "string", "description": "A JSON object"},
                    "reach": {"type": "integer"},
                },
                "required": ["media"],
            }
        }
    },
}


async def parse_media_request(request: Request, *, settings: ServiceSettings, allowed_surfaces: tuple[str, ...] | None,
                              moderator: Any) -> Content:
    """One item from a multipart request: text fields + files under `media`."""
    content_type = request.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() != "multipart/form-data":
        raise ApiError(415, "unsupported_media_type",
                       "send multipart/form-data: the item's fields (id, text, surface, ...) and its files as 'media' "
                       "(curl -F text='caption' -F media=@photo.jpg)", {"content_type": content_type[:100]})
    try:
        form = await request.form(max_files=MAX_MEDIA_PARTS, max_fields=len(FIELDS), max_part_size=MAX_FIELD_BYTES)
    except ApiError:
        raise
    except Exception as exc:  # python-multipart rejects garbage in many ways; all are the client's
        detail = getattr(exc, "detail", None) or str(exc) or type(exc).__name__
        raise ApiError(400, "malformed_multipart", f"the body is not valid multipart/form-data: {str(detail)[:200]}") \
            from None
    try:
        fields: dict[str, Any] = {}
        uploads: list[UploadFile] = []
        for name, value in form.multi_items():
            if name == FILE_FIELD:
                if not isinstance(value, UploadFile):
                    raise ApiError(422, "invalid_request", "'media' must be a file part (with a filename), not a "
                                                           "text field")
                uploads.append(value)
            elif name in FIELDS:
                if not isinstance(value, str):
                    raise ApiError(422, "invalid_request", f"{name!r} must be a text field, not a file")
                if name in fields:
                    raise ApiError(422, "invalid_request", f"{name!r} is given more than once")
                fields[name] = value
            else:
                shown = name.encode("utf-8", "backslashreplace").decode()[:64]
                raise ApiError(422, "invalid_request", f"unknown form field {shown!r}; allowed: "
                                                       f"{', '.join((*FIELDS, FILE_FIELD))}")
        if not uploads:
            raise ApiError(422, "invalid_request", "no file under 'media'; send at least one image, or use "
                                                   "POST /v1/moderate for text only")
        obj = _item_fields(fields)
        parts = [await _part(i, upload) for i, upload in enumerate(uploads)]
    finally:
        await form.close()
    try:
        content = parse_item(obj, default_surface=settings.default_surface, allowed_surfaces=allowed_surfaces,
                             max_text_chars=settings.max_text_chars, media=parts)
    except InvalidItem as exc:
        text = obj.get("text")
        if exc.field == "text" and isinstance(text, str) and len(text) > settings.max_text_chars:
            raise ApiError(422, "text_too_long", str(exc), {"field": "text", "limit": settings.max_text_chars,
                                                             "length": len(text)}) from None
        raise ApiError(422, "invalid_item", str(exc), {"field": exc.field}) from None
    except (TypeError, ValueError) as exc:
        raise ApiError(422, "invalid_item", str(exc)) from None
    await run_in_threadpool(_check_parts, content, moderator)
    return content


def _item_fields(fields: dict[str, str]) -> dict[str, Any]:
    obj: dict[str, Any] = dict(fields)
    if "metadata" in obj:
        try:
            obj["metadata"] = json.loads(obj["metadata"])
        except (json.JSONDecodeError, RecursionError, ValueError):
            raise ApiError(422, "invalid_item", "'metadata' must be a JSON object", {"field": "metadata"}) from None
    if "reach" in obj:
        raw = obj["reach"].strip()
        if not raw.isdigit() or len(raw) > 15:
            raise ApiError(422, "invalid_item", f"'reach' must be a non-negative integer, got {raw[:20]!r}",
                           {"field": "reach"})
        obj["reach"] = int(raw)
    return obj


async def _part(index: int, upload: UploadFile) -> MediaPart:
    from warden.detectors.media.guards import sniff

    data = await upload.read()
    name = (upload.filename or "")[:200] or None
    if not data:
        raise ApiError(422, "invalid_media", f"media[{index}] ({name}) is empty (0 bytes)", {"index": index})
    found = sniff(data[:64])
    if found is None:
        declared = upload.content_type or "none"
        raise ApiError(415, "unsupported_media_type",
                       f"media[{index}] ({name}) is not a supported image, video or audio file (declared content type "
                       f"{declared[:100]}); send JPEG, PNG, GIF, WebP or BMP images, MP4, MOV, WebM or AVI videos, "
                       "or WAV, MP3, Ogg, FLAC or M4A audio",
                       {"index": index})
    return MediaPart(kind=found.kind, data=data, mime=found.mime, name=name)


def _check_parts(content: Content, moderator: Any) -> None:
    """Limits and decoding, off the event loop (decoding takes milliseconds per image)."""
    from warden.detectors.media.guards import ImageLimits, MediaRejected, validate_part

    reads = getattr(moderator, "reads", frozenset({Modality.TEXT}))
    limits = getattr(moderator, "media_limits", None) or ImageLimits()
    for i, part in enumerate(content.media):
        label = f"media[{i}]{f' ({part.name})' if part.name else ''}"
        if part.kind not in reads:
            raise ApiError(422, "unsupported_media_kind",
                           f"{label} is {part.kind.value} content, but the policy has no detector that reads "
                           f"{part.kind.value}", {"index": i, "kind": part.kind.value})
        try:
            validate_part(part, limits)
        except MediaRejected as exc:
            status, code = _STATUS.get(exc.code, (422, "invalid_media"))
            raise ApiError(status, code, f"{label}: {exc}", {"index": i, "reason": exc.code}) from None
