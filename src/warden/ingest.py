"""Turn untrusted input (a JSON object, a CSV row) into a `Content`, or a clear error.

Shared by every entry point so that the CLI, the HTTP API and the stream worker accept
and reject exactly the same things with the same messages.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

from warden.core import DEFAULT_SURFACE, Content, MediaPart, Modality
from warden.review.routing import MAX_REACH

MAX_TEXT_CHARS = 200_000
MAX_ID_CHARS = 256
#: Most media parts (images, videos, audio files) in one item.
MAX_MEDIA_PARTS = 16

#: File extension -> media kind, for `media` file paths (the detectors sniff the real format).
MEDIA_EXTENSIONS: dict[str, Modality] = {
    **dict.fromkeys((".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff"), Modality.IMAGE),
    **dict.fromkeys((".mp4", ".m4v", ".mov", ".webm", ".mkv", ".avi"), Modality.VIDEO),
    **dict.fromkeys((".wav", ".mp3", ".ogg", ".oga", ".opus", ".flac", ".m4a"), Modality.AUDIO),
}


class InvalidItem(ValueError):
    """An input item that cannot be moderated; the message says what to fix."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def parse_item(
    obj: object,
    *,
    default_surface: str = DEFAULT_SURFACE,
    allowed_surfaces: Collection[str] | None = None,
    max_text_chars: int = MAX_TEXT_CHARS,
    make_id: bool = True,
    media: Sequence[MediaPart] = (),
    media_root: str | Path | None = None,
) -> Content:
    """`media`: parts the entry point already holds (uploads). `media_root`: the folder that
    relative `media` file paths in `obj` resolve against (`warden classify` passes the input
    file's folder); without it a `media` field is rejected, so no network input can make the
    server read its own files. An item with media may leave out `text` (an image-only post)."""
    if not isinstance(obj, Mapping):
        raise InvalidItem(f"an item must be a JSON object with a 'text' field, got {_kind(obj)}")
    parts = list(media)
    raw_media = obj.get("media")
    if raw_media is not None and not (isinstance(raw_media, str | list) and not raw_media):  # "" / []: no media
        if media_root is None:
            raise InvalidItem("'media' file paths are read only from files given to `warden classify`; upload "
                              "images with POST /v1/moderate/media (multipart/form-data)", field="media")
        parts += parse_media_refs(raw_media, root=Path(media_root))
    if len(parts) > MAX_MEDIA_PARTS:
        raise InvalidItem(f"the item has {len(parts)} media parts; the limit is {MAX_MEDIA_PARTS}", field="media")
    text = obj.get("text")
    if "text" not in obj and not parts:
        raise InvalidItem("missing required field 'text'", field="text")
    if not isinstance(text, str) and not (text is None and parts):  # media-only items may leave text out
        raise InvalidItem(f"'text' must be a string, got {_kind(text)}", field="text")
    if text is not None and len(text) > max_text_chars:
        raise InvalidItem(
            f"'text' has {len(text):,} characters; the limit is {max_text_chars:,}. Split long documents "
            "into parts and moderate each.", field="text")
    if text is not None and _has_lone_surrogate(text):
        raise InvalidItem("'text' is not valid Unicode (it contains unpaired surrogates)", field="text")

    raw_id = obj.get("id")
    if raw_id is None or (isinstance(raw_id, float) and math.isnan(raw_id)) or raw_id == "":
        if not make_id:
            raise InvalidItem("missing required field 'id'", field="id")
        item_id = str(uuid.uuid4())
    elif isinstance(raw_id, bool) or not isinstance(raw_id, str | int):
        raise InvalidItem(f"'id' must be a string or an integer, got {_kind(raw_id)}", field="id")
    else:
        item_id = str(raw_id)
        if _has_lone_surrogate(item_id):
            raise InvalidItem("'id' is not valid Unicode (it contains unpaired surrogates)", field="id")
        if len(item_id) > MAX_ID_CHARS:
            raise InvalidItem(f"'id' is longer than {MAX_ID_CHARS} characters", field="id")

    surface = obj.get("surface")
    if surface is None or surface == "":
        surface = default_surface
    if not isinstance(surface, str):
        raise InvalidItem(f"'surface' must be a string, got {_kind(surface)}", field="surface")
    if allowed_surfaces is not None and surface not in allowed_surfaces:
        shown = surface.encode("utf-8", "backslashreplace").decode()
        raise InvalidItem(f"unknown surface {shown!r}; the policy defines: {', '.join(allowed_surfaces)}",
                          field="surface")

    actor = obj.get("actor_id")
    if actor is not None and (isinstance(actor, bool) or not isinstance(actor, str | int)):
        raise InvalidItem(f"'actor_id' must be a string or an integer, got {_kind(actor)}", field="actor_id")
    if isinstance(actor, str) and _has_lone_surrogate(actor):
        raise InvalidItem("'actor_id' is not valid Unicode (it contains unpaired surrogates)", field="actor_id")
    language = obj.get("language")
    if language is not None and not isinstance(language, str):
        raise InvalidItem(f"'language' must be a string, got {_kind(language)}", field="language")
    metadata = obj.get("metadata") or {}
    if not isinstance(metadata, Mapping):
        raise InvalidItem(f"'metadata' must be an object, got {_kind(metadata)}", field="metadata")
    reach = obj.get("reach")
    if reach is not None:  # audience size: raises the item's review priority (log-scaled)
        if isinstance(reach, bool) or not isinstance(reach, int) or not 0 <= reach <= MAX_REACH:
            shown = repr(reach) if isinstance(reach, int | float) and not isinstance(reach, bool) else _kind(reach)
            raise InvalidItem(f"'reach' must be an integer from 0 to {MAX_REACH:,}, got {shown}", field="reach")
        metadata = {**metadata, "reach": reach}

    return Content(id=item_id, text=text, surface=surface, actor_id=None if actor is None else str(actor),
                   language=language, metadata=metadata, media=tuple(parts))


def parse_media_refs(value: object, *, root: Path) -> list[MediaPart]:
    """`media` of a file row: one path, a list of paths or `{"path", "kind"}` objects, or (in
    a CSV cell) that list as a JSON array. Relative paths resolve against `root`. The kind
    comes from the extension unless given; the file must exist (it is read later, by the
    detectors, behind their size guards)."""
    if isinstance(value, str) and value.lstrip().startswith("["):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise InvalidItem(f"'media' looks like a JSON array but is not valid JSON: {exc.msg}",
                              field="media") from None
    refs = [value] if isinstance(value, str | Mapping) else value
    if not isinstance(refs, list | tuple):
        raise InvalidItem(f"'media' must be a file path or a list of file paths, got {_kind(value)}", field="media")
    if len(refs) > MAX_MEDIA_PARTS:
        raise InvalidItem(f"'media' lists {len(refs)} files; the limit is {MAX_MEDIA_PARTS}", field="media")
    parts: list[MediaPart] = []
    for i, ref in enumerate(refs):
        where = f"media[{i}]"
        kind_name: object = None
        if isinstance(ref, Mapping):
            unknown = sorted(set(ref) - {"path", "kind"})
            if unknown:
                raise InvalidItem(f"{where}: unknown keys {unknown}; use 'path' and optionally 'kind'", field="media")
            kind_name, ref = ref.get("kind"), ref.get("path")
        if not isinstance(ref, str) or not ref.strip() or _has_lone_surrogate(ref) or "\x00" in ref:
            raise InvalidItem(f"{where}: a file path must be a non-empty string, got {_kind(ref)}", field="media")
        path = Path(ref.strip())
        path = path if path.is_absolute() else root / path
        if kind_name is None:
            kind = MEDIA_EXTENSIONS.get(path.suffix.lower())
            if kind is None:
                raise InvalidItem(f"{where}: cannot tell the media kind of {path.name!r} from its extension; give "
                                  '{"path": ..., "kind": "image"} (image, video or audio)', field="media")
        else:
            try:
                kind = Modality(kind_name)  # type: ignore[arg-type]
            except ValueError:
                kind = None
            if kind is None or kind is Modality.TEXT:
                raise InvalidItem(f"{where}: kind must be image, video or audio, got {kind_name!r}", field="media")
        try:
            size = path.stat().st_size if path.is_file() else None
        except OSError:
            size = None
        if size is None:
            raise InvalidItem(f"{where}: file not found: {path} (relative paths resolve against {root})",
                              field="media")
        parts.append(MediaPart(kind=kind, path=str(path), size=size, name=path.name))
    return parts


def _has_lone_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _kind(value: object) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", int: "a number",
             float: "a number", type(None): "null"}
    return names.get(type(value), type(value).__name__)
