"""The item being moderated.

`Content` is deliberately small and immutable: every entry point (Python, CLI, HTTP,
stream, batch) adapts its input into it, so detectors and `decide` see one shape.
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


@dataclass(frozen=True, slots=True)
class Content:
    """One item to moderate.

    `id` is the caller's stable identifier: decisions are idempotent per
    (id, policy version). `surface` selects thresholds (comment, chat, profile,
    llm_prompt, ...). `metadata` is free-form context (reach, language hint) that
    detectors may read but must not require.
    """

    id: str
    text: str | None = None
    surface: str = DEFAULT_SURFACE
    actor_id: str | None = None
    language: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise ValueError("Content.id must be a non-empty string")
        if self.text is not None and not isinstance(self.text, str):
            raise TypeError(f"Content.text must be str or None, got {type(self.text).__name__}")
        # Freeze the mapping so a Content can be shared across threads and cached safely.
        object.__setattr__(self, "metadata", MappingProxyType(dict(self.metadata)))

    @property
    def modalities(self) -> frozenset[Modality]:
        return frozenset({Modality.TEXT}) if self.text is not None else frozenset()
