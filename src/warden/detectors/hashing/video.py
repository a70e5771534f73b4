"""vPDQ-style video hashing: the PDQ hash of each sampled frame of a video, and its MD5.

Frames come from the same sampler the image detectors use (`warden.detectors.media.video`:
one frame every `every_s` seconds and at scene cuts, behind the duration, frame-size and byte
limits), through its per-process cache, so hashing a video the image detectors already read
decodes nothing again. Like Meta's vPDQ, matching is per frame: a frame equal to a banked
image, or enough frames in common with a banked video both ways (`BankMatcher.match_video`).
Unlike vPDQ, frames are sampled at an interval and at cuts rather than at every frame, and
frames below PDQ quality `min_quality` (flat, black) are not matched on.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import numpy as np

from warden.core import MediaPart
from warden.detectors.hashing.md5 import md5_hex
from warden.detectors.hashing.pdq import MIN_QUALITY, ImageError, MissingDependency, pdq_from_array


@dataclass(frozen=True, slots=True)
class FrameHash:
    """The PDQ hash of one sampled frame and its time in the video."""

    time_s: float
    pdq: str
    quality: int

    def to_dict(self) -> dict[str, Any]:
        return {"time_s": self.time_s, "pdq": self.pdq, "quality": self.quality}


@dataclass(frozen=True, slots=True)
class VideoHashes:
    """A video's MD5 (of the file bytes) and the PDQ hashes of its sampled frames."""

    md5: str
    size: int
    duration_s: float | None
    frames: tuple[FrameHash, ...]

    def matchable(self, min_quality: int = MIN_QUALITY, *, distinct: bool = False) -> list[FrameHash]:
        """Frames good enough to match on; with `distinct`, without repeated hashes (what a
        bank stores: a still scene gives one row)."""
        seen: set[str] = set()
        out = []
        for f in self.frames:
            if f.quality >= min_quality and not (distinct and f.pdq in seen):
                seen.add(f.pdq)
                out.append(f)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "video", "md5": self.md5, "bytes": self.size, "duration_s": self.duration_s,
                "frames": [f.to_dict() for f in self.frames]}


def hash_video(part: MediaPart, limits: Any = None) -> VideoHashes:
    """Sample a video part's frames (behind the guards; `limits`: a `VideoLimits`) and hash
    them. Raises `ImageError` (a ValueError) with the reason when the video is refused."""
    from warden.detectors.media.guards import MediaRejected, read_part
    from warden.detectors.media.video import VideoLimits, video_frames

    limits = limits or VideoLimits()
    try:
        sample = video_frames(part, limits)
        data = read_part(part, max_bytes=limits.max_bytes)
    except MediaRejected as exc:
        raise ImageError(str(exc)) from None
    except ImportError as exc:  # PyAV is in the media extra, not the hashing one
        raise MissingDependency(str(exc)) from None
    frames = []
    for f in sample.frames:
        h = pdq_from_array(np.asarray(f.image.image.convert("RGB")))
        frames.append(FrameHash(time_s=f.time_s, pdq=h.hex, quality=h.quality))
    return VideoHashes(md5=md5_hex(data), size=len(data), duration_s=sample.info.duration_s, frames=tuple(frames))


def lookup_video(matcher: Any, hashes: VideoHashes, *, max_distance: int | None = None,
                 banks: Collection[str] | None = None) -> dict[str, Any]:
    """The lookup answer for a hashed video (CLI and HTTP share it): its MD5 and frame matches
    against banked images, vPDQ matches against banked videos, and the decision they call for
    (a banked video's category, action and report flag count like a match)."""
    from warden.detectors.hashing.matcher import HashDecision

    frames = hashes.matchable()
    lookup = matcher.match_video([f.pdq for f in frames], max_distance=max_distance, banks=banks)
    matches = [*matcher.match_md5(hashes.md5, banks=banks), *(fm.match for fm in lookup.frame_matches)]
    decision = HashDecision.from_matches(matches)
    out = decision.to_dict()
    action = decision.action
    for vm in lookup.video_matches:
        out["matched"] = True
        out["categories"] = sorted({*out["categories"], vm.category})
        out["report"] = out["report"] or vm.report
        if vm.action.rank > action.rank:
            action = vm.action
    out["action"] = action.value
    out["frame_matches"] = [{"time_s": frames[fm.frame].time_s, **fm.match.to_dict()} for fm in lookup.frame_matches]
    out["video_matches"] = [vm.to_dict() for vm in lookup.video_matches]
    out["hashes"] = {"md5": hashes.md5, "bytes": hashes.size, "frames": len(hashes.frames),
                     "matchable_frames": len(frames)}
    return out


__all__ = ["FrameHash", "VideoHashes", "hash_video", "lookup_video"]
