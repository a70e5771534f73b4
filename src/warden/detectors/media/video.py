"""Video frame sampling with PyAV, behind guard rails (the first step of video moderation).

`probe_video` reads the container and stream headers only (no frame is decoded) and refuses a
file whose duration, frame size or format is outside the limits. `sample_frames` then decodes
the video stream once, keeping one frame every `every_s` seconds (at most `max_frames`), as
RGB images the image detectors read. Decoding stops at `max_duration_s` of video time and at a
hard cap of decoded frames, so a file whose headers lie (no duration, absurd frame rate) still
costs bounded time. Evidence from a frame will carry `MediaLocation(part, time_s=...)`.

Not wired into a detector yet: the next step runs the image detectors (and OCR) on the sampled
frames of `video` parts. PyAV (`av`, in `warden[media]`) is imported lazily.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field

from warden.core import Modality
from warden.detectors.base import DetectorParams
from warden.detectors.media.guards import DecodedImage, MediaRejected, sniff

VideoFormat = Literal["mp4", "mov", "webm", "avi"]
#: Decoded frames per second of allowed duration, at most: bounds work when headers lie.
MAX_DECODED_FPS = 120


class VideoLimits(DetectorParams):
    max_bytes: int = Field(default=200 * 1024 * 1024, gt=0)
    max_duration_s: float = Field(default=600.0, gt=0.0, description="longest video, in seconds")
    max_pixels: int = Field(default=3840 * 2160, gt=0, description="largest frame, width x height")
    every_s: float = Field(default=1.0, gt=0.0, description="one sampled frame per this many seconds")
    max_frames: int = Field(default=60, ge=1, le=10_000, description="most frames sampled per video")
    formats: tuple[VideoFormat, ...] = Field(default=("mp4", "mov", "webm", "avi"), min_length=1)


@dataclass(frozen=True, slots=True)
class VideoInfo:
    """What the headers say (duration None when the container does not tell)."""

    format: str
    codec: str
    width: int
    height: int
    duration_s: float | None
    fps: float | None


@dataclass(frozen=True, slots=True)
class VideoFrame:
    time_s: float
    image: DecodedImage


def _open(data: bytes, limits: VideoLimits) -> tuple[Any, Any, str]:
    import av

    kind = sniff(data)
    if kind is None or kind.kind is not Modality.VIDEO:
        raise MediaRejected("unsupported_format", f"not a supported video format; supported: "
                                                  f"{', '.join(limits.formats)}")
    if kind.format not in limits.formats:
        raise MediaRejected("unsupported_format", f"{kind.format} videos are not accepted; supported: "
                                                  f"{', '.join(limits.formats)}")
    if len(data) > limits.max_bytes:
        raise MediaRejected("too_large", f"the file has {len(data):,} bytes; the limit is {limits.max_bytes:,} "
                                         "(max_bytes)")
    try:
        container = av.open(io.BytesIO(data), mode="r")
    except Exception as exc:  # av.error.InvalidDataError and friends
        raise MediaRejected("corrupt", f"cannot read the {kind.format} container ({type(exc).__name__}: {exc})") \
            from None
    streams = container.streams.video
    if not streams:
        container.close()
        raise MediaRejected("corrupt", f"the {kind.format} file has no video stream")
    return container, streams[0], kind.format


def probe_video(data: bytes, limits: VideoLimits) -> VideoInfo:
    """Headers only: format, frame size and duration within limits (raises MediaRejected)."""
    container, stream, fmt = _open(data, limits)
    try:
        return _check(container, stream, fmt, limits)
    finally:
        container.close()


def _check(container: Any, stream: Any, fmt: str, limits: VideoLimits) -> VideoInfo:
    ctx = stream.codec_context
    width, height = int(ctx.width or 0), int(ctx.height or 0)
    if width <= 0 or height <= 0:
        raise MediaRejected("corrupt", f"the video stream declares an empty frame ({width}x{height})")
    if width * height > limits.max_pixels:
        raise MediaRejected("too_many_pixels", f"frames are {width:,}x{height:,} = {width * height:,} pixels; the "
                                               f"limit is {limits.max_pixels:,} (max_pixels)")
    duration = None
    if stream.duration is not None and stream.time_base is not None:
        duration = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        duration = container.duration / 1_000_000  # av.time_base
    if duration is not None and duration > limits.max_duration_s:
        raise MediaRejected("too_long", f"the video lasts {duration:,.1f} s; the limit is {limits.max_duration_s:,} s "
                                        "(max_duration_s)")
    fps = float(stream.average_rate) if stream.average_rate else None
    return VideoInfo(format=fmt, codec=str(ctx.name), width=width, height=height, duration_s=duration, fps=fps)


def sample_frames(data: bytes, limits: VideoLimits) -> list[VideoFrame]:
    """One RGB frame every `every_s` seconds (the first at 0 s), at most `max_frames`."""
    container, stream, fmt = _open(data, limits)
    frames: list[VideoFrame] = []
    cap = int(limits.max_duration_s * MAX_DECODED_FPS) + 1
    try:
        _check(container, stream, fmt, limits)
        stream.thread_type = "NONE"  # one thread: same frames every run, the other core stays free
        next_t = 0.0
        for decoded, frame in enumerate(container.decode(stream), start=1):
            t = float(frame.time) if frame.time is not None else decoded / (float(stream.average_rate or 25))
            if t > limits.max_duration_s:
                raise MediaRejected("too_long", f"the video runs past {limits.max_duration_s:,} s (max_duration_s); "
                                                "its header did not say")
            if decoded > cap:
                raise MediaRejected("too_many_frames", f"more than {cap:,} frames decoded; the header is inconsistent")
            if t + 1e-6 >= next_t:
                image = frame.to_image()  # RGB PIL image
                frames.append(VideoFrame(time_s=round(t, 3), image=DecodedImage(
                    image=image, format=fmt, width=image.width, height=image.height)))
                next_t = t + limits.every_s
                if len(frames) >= limits.max_frames:
                    break
    except MediaRejected:
        raise
    except Exception as exc:
        raise MediaRejected("corrupt", f"cannot decode the {fmt} video ({type(exc).__name__}: {exc})") from None
    finally:
        container.close()
    if not frames:
        raise MediaRejected("corrupt", f"no frame could be decoded from the {fmt} video")
    return frames


__all__ = ["VideoFrame", "VideoInfo", "VideoLimits", "probe_video", "sample_frames"]
