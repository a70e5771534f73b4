"""The item being moderated.

`Content` is deliberately small and immutable: every entry point (Python, CLI, HTTP,
stream, batch) adapts its input into it, so detectors and `decide` see one shape.
A multi-part item (a post with a caption and photos, a profile with a bio and pictures)
is one `Content` with `text` and `media` parts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any


class Modality(StrEnum):
    TEXT = "text"
    IMAGE = "image"
    VIDEO = "video"
    AUDIO = "audio"


DEFAULT_SURFACE = "comment"

#: The kinds a media part can have (text is the item's own `text`, never a media part).
MEDIA_KINDS: frozenset[Modality] = frozenset({Modality.IMAGE, Modality.VIDEO, Modality.AUDIO})


@dataclass(frozen=True, slots=True)
class MediaPart:
    """One image, video or audio file of an item, as bytes (an upload) or a file path (CLI, batch).

    The core never opens `path` or decodes `data`: detectors read and decode media at the edge,
    behind the size/pixel/duration guards of `warden.detectors.media.guards`, so a bad file
    becomes an error result for that item rather than a crash. `mime` is what the sender
    declared or what the entry point sniffed (detectors sniff again: never trust it); `size`
    is the byte size when known (always set for `data`). `name` is a label for people (the
    upload's file name); evidence points at parts by their index in `Content.media`.
    """

    kind: Modality
    data: bytes | None = None
    path: str | None = None
    mime: str | None = None
    size: int | None = None
    name: str | None = None

    def __post_init__(self) -> None:
        try:
            kind = Modality(self.kind)
        except ValueError:
            kind = None
        if kind not in MEDIA_KINDS:
            raise ValueError(f"MediaPart.kind must be one of image, video, audio; got {self.kind!r}")
        object.__setattr__(self, "kind", kind)
        if (self.data is None) == (self.path is None):
            raise ValueError("MediaPart needs exactly one of `data` (bytes) or `path` (a file path)")
        if self.data is not None:
            if not isinstance(self.data, bytes):
                raise TypeError(f"MediaPart.data must be bytes, got {type(self.data).__name__}")
            object.__setattr__(self, "size", len(self.data))
        elif not isinstance(self.path, str) or not self.path:
            raise TypeError("MediaPart.path must be a non-empty string")
        if self.size is not None and (isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 0):
            raise ValueError(f"MediaPart.size must be a non-negative integer, got {self.size!r}")
        for name in ("mime", "name"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise TypeError(f"MediaPart.{name} must be str or None, got {type(value).__name__}")

    def __repr__(self) -> str:  # never print megabytes of bytes into logs
        where = f"data=<{self.size} bytes>" if self.data is not None else f"path={self.path!r}"
        return f"MediaPart(kind={self.kind.value!r}, {where}, mime={self.mime!r})"


@dataclass(frozen=True, slots=True)
class Content:
    """One item to moderate.

    `id` is the caller's stable identifier: decisions are idempotent per
    (id, policy version). `surface` selects thresholds (comment, chat, profile,
    llm_prompt, ...). `metadata` is free-form context (reach, language hint) that
    detectors may read but must not require. `media` holds the item's images, videos and
    audio; `text` is then the caption (None for a media-only item).
    """

    id: str
    text: str | None = None
    surface: str = DEFAULT_SURFACE
    actor_id: str | None = None
    language: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    media: tuple[MediaPart, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise ValueError("Content.id must be a non-empty string")
        if self.text is not None and not isinstance(self.text, str):
            raise TypeError(f"Content.text must be str or None, got {type(self.text).__name__}")
        # Freeze the mapping so a Content can be shared across threads and cached safely.
        object.__setattr__(self, "metadata", MappingProxyType(dict(self.metadata)))
        if isinstance(self.media, MediaPart) or not isinstance(self.media, tuple | list):
            raise TypeError(f"Content.media must be a tuple of MediaPart, got {type(self.media).__name__}")
        media = tuple(self.media)
        for i, part in enumerate(media):
            if not isinstance(part, MediaPart):
                raise TypeError(f"Content.media[{i}] must be a MediaPart, got {type(part).__name__}")
        object.__setattr__(self, "media", media)

    @property
    def modalities(self) -> frozenset[Modality]:
        found = {part.kind for part in self.media}
        if self.text is not None:
            found.add(Modality.TEXT)
        return frozenset(found)

    def part_indices(self, kind: Modality) -> tuple[int, ...]:
        """Indices into `media` of the parts of one kind (evidence refers to parts by index)."""
        return tuple(i for i, p in enumerate(self.media) if p.kind is kind)
