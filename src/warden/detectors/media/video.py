"""Video frame sampling with PyAV, behind guard rails, shared by every detector that reads video.

`probe_video` reads the container and stream headers only (no frame is decoded) and refuses a
file whose duration, frame size or format is outside the limits. `sample_video` then decodes
the video stream once and keeps a frame every `every_s` seconds and at scene cuts (the mean
absolute difference of consecutive frames' luma on a 64x36 grid above `scene_threshold`), at
most `max_frames`, as RGB images the image detectors read. Decoding stops at `max_duration_s`
of video time and at a hard cap of decoded frames, so a file whose headers lie (no duration,
absurd frame rate) still costs bounded time.

`video_frames` is what detectors call: it reads the part behind the byte limit and keeps the
sample (or the rejection) in a small per-process cache keyed by the bytes' digest and the
sampling parameters, bounded in bytes (`WARDEN_VIDEO_CACHE_MB`, default 256), so the image
detectors, OCR and hash matching of one moderation decode a video once, not once each.

PyAV (`av`, in `warden[media]`) is imported lazily.
"""

from __future__ import annotations

import hashlib
import io
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field

from warden.core import MediaPart, Modality
from warden.detectors.base import DetectorParams
from warden.detectors.media.guards import (
    DecodedImage,
    ImageLimits,
    MediaRejected,
    declared_duration_s,
    read_part,
    sniff,
)

VideoFormat = Literal["mp4", "mov", "webm", "avi"]
#: Decoded frames per second of allowed duration, at most: bounds work when headers lie.
MAX_DECODED_FPS = 120
#: Side of the grayscale thumbnails compared for scene changes (16:9; cheap, robust to noise).
SCENE_SIZE = (64, 36)


class VideoLimits(DetectorParams):
    """How a detector reads video parts: limits checked before/while decoding, and sampling."""

    max_bytes: int = Field(default=200 * 1024 * 1024, gt=0)
    max_duration_s: float = Field(default=600.0, gt=0.0, description="longest video, in seconds")
    max_pixels: int = Field(default=3840 * 2160, gt=0, description="largest frame, width x height")
    every_s: float = Field(default=1.0, gt=0.0, description="one sampled frame per this many seconds")
    max_frames: int = Field(default=60, ge=1, le=10_000, description="most frames sampled per video")
    formats: tuple[VideoFormat, ...] = Field(default=("mp4", "mov", "webm", "avi"), min_length=1)
    scene_threshold: float | None = Field(
        default=0.12, gt=0.0, le=1.0,
        description="also sample a frame whose mean absolute difference (0-1) from the previous decoded frame, "
                    "both 64x36 grayscale, is above this (a cut); null: interval sampling only")
    min_scene_gap_s: float = Field(default=0.25, ge=0.0, description="no scene sample closer than this to the last "
                                                                     "sample (flashes, strobing)")
    frame_max_side: int = Field(default=1280, ge=64, le=8192,
                                description="sampled frames are scaled down to this longest side (memory; the "
                                            "image models read 256-320 px, OCR up to 2,000)")
    segment_min: float = Field(default=0.5, ge=0.0, le=1.0,
                               description="runs of consecutive sampled frames scoring at least this for a category "
                                           "become one segment of evidence [time_s, end_s]")

    def sampling_key(self) -> tuple[Any, ...]:
        """What the sampled frames depend on (`segment_min` does not)."""
        return (self.max_bytes, self.max_duration_s, self.max_pixels, self.every_s, self.max_frames, self.formats,
                self.scene_threshold, self.min_scene_gap_s, self.frame_max_side)


class ImageVideoLimits(ImageLimits):
    """Params of a detector that reads images and the sampled frames of videos."""

    video: VideoLimits = Field(default_factory=VideoLimits, description="limits and frame sampling of video parts")


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
    """One sampled frame: its time, why it was taken, the RGB image (its `width` x `height` are
    the video's, `scale` maps boxes on a downscaled frame back to video pixels)."""

    time_s: float
    image: DecodedImage
    reason: Literal["interval", "scene"] = "interval"


@dataclass(frozen=True, slots=True)
class VideoSample:
    """The frames sampled from one video, with its headers and how much was decoded."""

    info: VideoInfo
    frames: tuple[VideoFrame, ...]
    decoded: int  # frames decoded to find them
    digest: str  # blake2b-128 of the file bytes (hex)

    @property
    def nbytes(self) -> int:
        return sum(f.image.image.width * f.image.image.height * 3 for f in self.frames)


def _open(data: bytes, limits: VideoLimits) -> tuple[Any, Any, str]:
    try:
        import av
    except ImportError as exc:
        raise ImportError(f"reading video needs PyAV: pip install 'warden[media]' ({exc})") from exc

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
    except MediaRejected:
        raise
    except Exception as exc:  # a mangled header can leave PyAV's objects half-filled
        raise MediaRejected("corrupt", f"cannot read the {fmt} headers ({type(exc).__name__}: {exc})") from None
    finally:
        container.close()


def _check(container: Any, stream: Any, fmt: str, limits: VideoLimits) -> VideoInfo:
    ctx = stream.codec_context
    if ctx is None:  # FFmpeg knows no decoder for the stream's codec id
        raise MediaRejected("corrupt", f"the {fmt} video stream has an unknown or unsupported codec")
    width, height = int(ctx.width or 0), int(ctx.height or 0)
    if width <= 0 or height <= 0:
        raise MediaRejected("corrupt", f"the video stream declares an empty frame ({width}x{height})")
    if width * height > limits.max_pixels:
        raise MediaRejected("too_many_pixels", f"frames are {width:,}x{height:,} = {width * height:,} pixels; the "
                                               f"limit is {limits.max_pixels:,} (max_pixels)")
    duration = declared_duration_s(container, stream, what="video", max_duration_s=limits.max_duration_s)
    fps = float(stream.average_rate) if stream.average_rate else None
    return VideoInfo(format=fmt, codec=str(ctx.name), width=width, height=height, duration_s=duration, fps=fps)


def _frame_image(frame: Any, fmt: str, max_side: int) -> DecodedImage:
    """The frame as RGB, scaled down (by swscale, in C) to `max_side`; boxes found on it map
    back to video pixels through `scale`."""
    w, h = int(frame.width), int(frame.height)
    factor = min(1.0, max_side / max(w, h))
    tw, th = max(2, round(w * factor)), max(2, round(h * factor))
    image = frame.to_image() if (tw, th) == (w, h) else frame.reformat(width=tw, height=th, format="rgb24").to_image()
    return DecodedImage(image=image, format=fmt, width=w, height=h, scale=w / image.width)


#: 8-bit pixel formats whose first plane is the luma (Y) plane, read without conversion.
_LUMA_FIRST = frozenset({"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "nv12", "nv21", "gray"})


def _thumbnail(frame: Any) -> Any:
    """The frame as a SCENE_SIZE grayscale grid: for the usual 8-bit YUV formats, luma pixels
    picked on a grid straight from the decoder's plane (about 10x cheaper than swscale);
    other formats go through swscale."""
    import numpy as np

    w, h = int(frame.width), int(frame.height)
    if frame.format.name in _LUMA_FIRST and w >= SCENE_SIZE[0] and h >= SCENE_SIZE[1]:
        plane = frame.planes[0]
        luma = np.frombuffer(plane, dtype=np.uint8).reshape(-1, plane.line_size)[:h, :w]
        ys = (np.arange(SCENE_SIZE[1]) * h) // SCENE_SIZE[1] + h // (2 * SCENE_SIZE[1])
        xs = (np.arange(SCENE_SIZE[0]) * w) // SCENE_SIZE[0] + w // (2 * SCENE_SIZE[0])
        return luma[np.ix_(ys, xs)].astype(np.int16)
    small = frame.reformat(width=SCENE_SIZE[0], height=SCENE_SIZE[1], format="gray").to_ndarray()
    return np.asarray(small[:, :SCENE_SIZE[0]], dtype=np.int16)  # rows may be padded


def _scene_diff(frame: Any, previous: Any) -> tuple[Any, float]:
    import numpy as np

    small = _thumbnail(frame)
    if previous is None:
        return small, 0.0
    return small, float(np.abs(small - previous).mean()) / 255.0


def sample_video(data: bytes, limits: VideoLimits) -> VideoSample:
    """Decode once: frames on a grid every `every_s` seconds (from 0 s) and at scene cuts, at
    most `max_frames` (raises MediaRejected for anything outside the limits or undecodable).

    A quarter of `max_frames` is kept for scene cuts; when the header's duration needs more
    grid frames than the rest, the grid widens (duration / grid frames) so the whole video is
    covered rather than its start only. Decoding goes on to the end after the last sample, so a
    video that runs past `max_duration_s` is refused even when its header says otherwise."""
    container, stream, fmt = _open(data, limits)
    frames: list[VideoFrame] = []
    cap = int(limits.max_duration_s * MAX_DECODED_FPS) + 1
    scene_budget = limits.max_frames // 4 if limits.scene_threshold is not None else 0
    decoded = 0
    try:
        info = _check(container, stream, fmt, limits)
        step = limits.every_s
        if info.duration_s:
            step = max(step, info.duration_s / max(1, limits.max_frames - scene_budget))
        stream.thread_type = "NONE"  # one thread: same frames every run, the other core stays free
        next_t = 0.0
        last_t: float | None = None
        scenes = 0
        previous = None
        for decoded, frame in enumerate(container.decode(stream), start=1):
            t = float(frame.time) if frame.time is not None else decoded / (float(stream.average_rate or 25))
            if t > limits.max_duration_s:
                raise MediaRejected("too_long", f"the video runs past {limits.max_duration_s:,} s (max_duration_s); "
                                                "its header did not say")
            if decoded > cap:
                raise MediaRejected("too_many_frames", f"more than {cap:,} frames decoded; the header is inconsistent")
            if int(frame.width) * int(frame.height) > limits.max_pixels:  # the size can change mid-stream
                raise MediaRejected("too_many_pixels", f"a frame at {t:.1f} s is {frame.width}x{frame.height}, over "
                                                       f"{limits.max_pixels:,} pixels (max_pixels)")
            if len(frames) >= limits.max_frames:
                continue  # full: decode on only to check the real length
            reason: Literal["interval", "scene"] | None = None
            if t + 1e-6 >= next_t:
                reason = "interval"
                while next_t <= t + 1e-6:
                    next_t += step
            if limits.scene_threshold is not None:
                previous, diff = _scene_diff(frame, previous)
                if reason is None and scenes < scene_budget and diff > limits.scene_threshold and (
                        last_t is None or t - last_t >= limits.min_scene_gap_s):
                    reason = "scene"
                    scenes += 1
            if reason is not None:
                frames.append(VideoFrame(time_s=round(t, 3), image=_frame_image(frame, fmt, limits.frame_max_side),
                                         reason=reason))
                last_t = t
    except MediaRejected:
        raise
    except Exception as exc:
        raise MediaRejected("corrupt", f"cannot decode the {fmt} video ({type(exc).__name__}: {exc})") from None
    finally:
        container.close()
    if not frames:
        raise MediaRejected("corrupt", f"no frame could be decoded from the {fmt} video")
    return VideoSample(info=info, frames=tuple(frames), decoded=decoded,
                       digest=hashlib.blake2b(data, digest_size=16).hexdigest())


def sample_frames(data: bytes, limits: VideoLimits) -> list[VideoFrame]:
    """The sampled frames of `sample_video`, in time order."""
    return list(sample_video(data, limits).frames)


class FrameCache:
    """The last videos sampled in this process (or why they were refused), least recently used
    first out, at most `max_bytes` of decoded frames. Thread-safe; two threads sampling the same
    new video at once both decode it (rare, and bounded)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._items: OrderedDict[tuple[Any, ...], VideoSample | MediaRejected] = OrderedDict()
        self._size = 0
        self.hits = 0
        self.misses = 0

    @staticmethod
    def _cost(value: VideoSample | MediaRejected) -> int:
        return value.nbytes if isinstance(value, VideoSample) else 256

    def get(self, key: tuple[Any, ...]) -> VideoSample | MediaRejected | None:
        with self._lock:
            value = self._items.get(key)
            if value is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return value

    def put(self, key: tuple[Any, ...], value: VideoSample | MediaRejected) -> None:
        cost = self._cost(value)
        if cost > self.max_bytes:
            return
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._size -= self._cost(old)
            self._items[key] = value
            self._size += cost
            while self._size > self.max_bytes and self._items:
                _, dropped = self._items.popitem(last=False)
                self._size -= self._cost(dropped)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._size = 0


FRAME_CACHE = FrameCache(int(float(os.environ.get("WARDEN_VIDEO_CACHE_MB", "256")) * 1024 * 1024))


def video_frames(part: MediaPart, limits: VideoLimits, *, cache: FrameCache | None = FRAME_CACHE) -> VideoSample:
    """The sampled frames of one video part behind every guard (raises MediaRejected), from the
    cache when another detector already sampled the same bytes with the same parameters."""
    if part.size is not None and part.size > limits.max_bytes:
        raise MediaRejected("too_large", f"the file has {part.size:,} bytes; the limit is {limits.max_bytes:,} "
                                         "(max_bytes)")
    data = read_part(part, max_bytes=limits.max_bytes)
    if cache is None:
        return sample_video(data, limits)
    key = (hashlib.blake2b(data, digest_size=16).digest(), limits.sampling_key())
    found = cache.get(key)
    if found is None:
        try:
            found = sample_video(data, limits)
        except MediaRejected as exc:
            found = exc
        cache.put(key, found)
    if isinstance(found, MediaRejected):
        raise MediaRejected(found.code, str(found))
    return found


def edge_video_limits(limits: list[VideoLimits]) -> VideoLimits:
    """The loosest of several detectors' video limits (what an entry point accepts)."""
    if not limits:
        return VideoLimits()
    return VideoLimits(max_bytes=max(v.max_bytes for v in limits), max_duration_s=max(v.max_duration_s for v in limits),
                       max_pixels=max(v.max_pixels for v in limits),
                       formats=tuple(dict.fromkeys(f for v in limits for f in v.formats)))


__all__ = ["FRAME_CACHE", "FrameCache", "ImageVideoLimits", "VideoFrame", "VideoInfo", "VideoLimits", "VideoSample",
           "edge_video_limits", "probe_video", "sample_frames", "sample_video", "video_frames"]
