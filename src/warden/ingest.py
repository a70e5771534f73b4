"""Turn untrusted input (a JSON object, a CSV row) into a `Content`, or a clear error.

Shared by every entry point so that the CLI, the HTTP API and the stream worker accept
and reject exactly the same things with the same messages.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Collection, Mapping

from warden.core import DEFAULT_SURFACE, Content
from warden.review.routing import MAX_REACH

MAX_TEXT_CHARS = 200_000
MAX_ID_CHARS = 256


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
) -> Content:
    if not isinstance(obj, Mapping):
        raise InvalidItem(f"an item must be a JSON object with a 'text' field, got {_kind(obj)}")
    if "text" not in obj:
        raise InvalidItem("missing required field 'text'", field="text")
    text = obj["text"]
    if not isinstance(text, str):
        raise InvalidItem(f"'text' must be a string, got {_kind(text)}", field="text")
    if len(text) > max_text_chars:
        raise InvalidItem(
            f"'text' has {len(text):,} characters; the limit is {max_text_chars:,}. Split long documents "
            "into parts and moderate each.", field="text")
    if _has_lone_surrogate(text):
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
                   language=language, metadata=metadata)


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
