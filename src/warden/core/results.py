"""What detectors return: typed results, never tuples."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any


@dataclass(frozen=True, slots=True)
class Span:
    """A half-open character range [start, end) in the *original* content text."""

    start: int
    end: int
    text: str

    def to_dict(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "text": self.text}


@dataclass(frozen=True, slots=True)
class Box:
    """A rectangle in pixels of the original image (or video frame): top-left corner and size."""

    x: int
    y: int
    width: int
    height: int

    def to_dict(self) -> dict[str, Any]:
        return {"x": self.x, "y": self.y, "width": self.width, "height": self.height}


@dataclass(frozen=True, slots=True)
class MediaLocation:
    """Where in an item's media a piece of evidence was found.

    `part` indexes `Content.media`. `box` is a region of that image (or video frame); `time_s`
    a position in a video or audio part, and with `end_s` a segment [time_s, end_s] of it (a
    run of flagged frames, a spoken phrase). `via` says the evidence is about text read from
    the part ("ocr", "asr"): the evidence's spans then index that extracted text, not
    `Content.text`.
    """

    part: int
    box: Box | None = None
    time_s: float | None = None
    via: str | None = None
    end_s: float | None = None

    def __post_init__(self) -> None:
        if self.end_s is not None and (self.time_s is None or self.end_s < self.time_s):
            raise ValueError(f"MediaLocation.end_s ({self.end_s}) needs time_s <= end_s (time_s={self.time_s})")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"part": self.part}
        if self.box is not None:
            out["box"] = self.box.to_dict()
        if self.time_s is not None:
            out["time_s"] = round(self.time_s, 3)
        if self.end_s is not None:
            out["end_s"] = round(self.end_s, 3)
        if self.via is not None:
            out["via"] = self.via
        return out


@dataclass(frozen=True, slots=True)
class Evidence:
    """Why a detector scored a category: matched spans, the rule that fired, a rationale.

    `rule` names the bank entry / model head so a reviewer can trace it back to the policy.
    `location` points into the item's media (an image region, a frame, text read by OCR).
    """

    category: str
    rule: str
    spans: tuple[Span, ...] = ()
    detail: str = ""
    score: float | None = None
    location: MediaLocation | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"category": self.category, "rule": self.rule}
        if self.spans:
            out["spans"] = [s.to_dict() for s in self.spans]
        if self.detail:
            out["detail"] = self.detail
        if self.score is not None:
            out["score"] = round(self.score, 6)
        if self.location is not None:
            out["location"] = self.location.to_dict()
        return out


@dataclass(frozen=True, slots=True)
class TextTime:
    """When the characters [start, end) of an extracted text were shown or spoken: the time
    range [start_s, end_s] of the media part (an OCR'd video frame, a transcribed phrase)."""

    start: int
    end: int
    start_s: float
    end_s: float


@dataclass(frozen=True, slots=True)
class ExtractedText:
    """Text a detector read from one media part (OCR of an image or of video frames, speech
    in audio or a video's sound track).

    The Moderator moderates it with the policy's text detectors as a derived view of the item
    (`DetectorResult.source` = `via`), so words inside memes and screenshots count. `times`
    maps character ranges of `text` to times in the part (video, audio), so evidence found in
    the text points at the moment it was shown or said.
    """

    part: int
    text: str
    via: str
    confidence: float | None = None
    times: tuple[TextTime, ...] = ()

    def time_of(self, start: int, end: int) -> tuple[float, float] | None:
        """The time range covering characters [start, end), or None when no range overlaps."""
        hits = [t for t in self.times if t.start < max(end, start + 1) and start < t.end]
        if not hits:
            return None
        return min(t.start_s for t in hits), max(t.end_s for t in hits)


@dataclass(frozen=True, slots=True)
class DetectorResult:
    """One detector's output for one content item.

    `scores` are calibrated probabilities in [0, 1] per category the detector covers;
    categories a detector does not cover are absent, not zero. A detector that cannot
    process an item returns a result with `error` set and no scores, instead of raising,
    so one bad item never fails a batch.

    `source` is what the scores are about: "" or "text" for the item's own text, "image"
    for its images, "ocr" for text read from its images. `decide` combines signals within a
    source by maximum and across sources as the policy's `combine` section says. `texts` is
    text the detector read from the item's media, for the Moderator to moderate.
    """

    detector: str
    content_id: str
    scores: Mapping[str, float] = field(default_factory=dict)
    evidence: tuple[Evidence, ...] = ()
    latency_ms: float = 0.0
    model_version: str = ""
    error: str | None = None
    source: str = ""
    texts: tuple[ExtractedText, ...] = ()

    def __post_init__(self) -> None:
        for cat, p in self.scores.items():
            if not (0.0 <= p <= 1.0):
                raise ValueError(f"{self.detector}: score for {cat!r} is {p}, outside [0, 1]")
        object.__setattr__(self, "scores", MappingProxyType(dict(self.scores)))

    @property
    def ok(self) -> bool:
        return self.error is None

    @classmethod
    def failed(cls, detector: str, content_id: str, error: str, model_version: str = "",
               source: str = "") -> DetectorResult:
        return cls(detector=detector, content_id=content_id, error=error, model_version=model_version, source=source)
