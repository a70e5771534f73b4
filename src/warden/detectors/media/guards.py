"""Guard rails for untrusted media: every limit is checked before anything is decoded.

A hostile or broken upload must cost bounded time and memory and end as an error result for
its item, never as a crash, an out-of-memory kill or a hung worker:

* size: the byte size is checked on `MediaPart.size` / the file's `stat` before reading, and
  reading stops at the limit;
* format: the real type is sniffed from magic bytes (the declared MIME type and the file
  extension are never trusted) and only allow-listed decoders may open it (no SVG, EPS, PSD);
* pixels (decompression bombs): Pillow's `Image.open` reads only the header, so width x height
  is checked before `load()` decodes a single pixel; a 100,000 x 100,000 PNG of a few KB is
  refused here;
* time: decoding work is bounded by the byte and pixel limits (Python cannot interrupt a C
  decoder, so the bound comes from the input, not from a clock); external programs (Tesseract)
  run with a timeout; video and audio (video.py, audio.py) are bounded by duration and frame count
  read from container headers before decoding.

Only the first frame of an animated image (GIF, WebP, APNG) is read.
"""

from __future__ import annotations

import io
import os
import re
import stat
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from warden.core import MediaPart, Modality
from warden.detectors.base import DetectorParams

if TYPE_CHECKING:
    from PIL import Image

MiB = 1024 * 1024
DEFAULT_MAX_BYTES = 20 * MiB
DEFAULT_MAX_PIXELS = 40_000_000  # e.g. 8,000 x 5,000: well above phone cameras, far below a bomb
DEFAULT_MAX_SIDE = 30_000

ImageFormat = Literal["jpeg", "png", "gif", "webp", "bmp", "tiff"]
DEFAULT_IMAGE_FORMATS: tuple[ImageFormat, ...] = ("jpeg", "png", "gif", "webp", "bmp")
#: Our format names -> Pillow's decoder names (the only decoders `Image.open` may use).
_PIL_FORMATS: dict[str, str] = {"jpeg": "JPEG", "png": "PNG", "gif": "GIF", "webp": "WEBP", "bmp": "BMP",
                                "tiff": "TIFF"}


class MediaRejected(ValueError):
    """A media part that is not moderated: `code` is stable (for APIs), the message says why
    and what to do."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class Sniffed:
    """What a file really is, from its first bytes."""

    kind: Modality
    format: str  # jpeg, png, gif, webp, bmp, tiff, mp4, webm, avi, wav, mp3, ogg, flac
    mime: str


def sniff(head: bytes) -> Sniffed | None:
    """The media type of a file from its magic bytes, or None when it is not a known format."""
    h = head[:64]
    if h.startswith(b"\xff\xd8\xff"):
        return Sniffed(Modality.IMAGE, "jpeg", "image/jpeg")
    if h.startswith(b"\x89PNG\r\n\x1a\n"):
        return Sniffed(Modality.IMAGE, "png", "image/png")
    if h[:6] in (b"GIF87a", b"GIF89a"):
        return Sniffed(Modality.IMAGE, "gif", "image/gif")
    if h[:4] == b"RIFF" and h[8:12] == b"WEBP":
        return Sniffed(Modality.IMAGE, "webp", "image/webp")
    if h[:2] == b"BM" and len(h) >= 26:
        return Sniffed(Modality.IMAGE, "bmp", "image/bmp")
    if h[:4] in (b"II*\x00", b"MM\x00*"):
        return Sniffed(Modality.IMAGE, "tiff", "image/tiff")
    if h[4:8] == b"ftyp":
        brand = h[8:12]
        if brand in (b"M4A ", b"M4B "):
            return Sniffed(Modality.AUDIO, "m4a", "audio/mp4")
        if brand in (b"qt  ",):
            return Sniffed(Modality.VIDEO, "mov", "video/quicktime")
        if brand[:3] in (b"avi", b"hei", b"hev", b"mif"):  # AVIF / HEIC still images: not supported
            return None
        return Sniffed(Modality.VIDEO, "mp4", "video/mp4")
    if h.startswith(b"\x1a\x45\xdf\xa3"):
        return Sniffed(Modality.VIDEO, "webm", "video/webm")
    if h[:4] == b"RIFF" and h[8:12] == b"AVI ":
        return Sniffed(Modality.VIDEO, "avi", "video/x-msvideo")
    if h[:4] == b"RIFF" and h[8:12] == b"WAVE":
        return Sniffed(Modality.AUDIO, "wav", "audio/wav")
    if h.startswith(b"OggS"):
        return Sniffed(Modality.AUDIO, "ogg", "audio/ogg")
    if h.startswith(b"fLaC"):
        return Sniffed(Modality.AUDIO, "flac", "audio/flac")
    if h.startswith(b"ID3") or (len(h) >= 2 and h[0] == 0xFF and (h[1] & 0xE0) == 0xE0 and (h[1] & 0x06)):
        return Sniffed(Modality.AUDIO, "mp3", "audio/mpeg")
    return None


class ImageLimits(DetectorParams):
    """Limits every image detector applies (its `params`; defaults suit user uploads)."""

    max_bytes: int = Field(default=DEFAULT_MAX_BYTES, gt=0, description="largest file in bytes")
    max_pixels: int = Field(default=DEFAULT_MAX_PIXELS, gt=0, description="largest width x height")
    formats: tuple[ImageFormat, ...] = Field(default=DEFAULT_IMAGE_FORMATS, min_length=1,
                                             description="image formats that may be decoded")


def read_part(part: MediaPart, *, max_bytes: int) -> bytes:
    """The bytes of a part, never more than `max_bytes` read (raises MediaRejected)."""
    if part.data is not None:
        data = part.data
    else:
        path = part.path or ""
        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise MediaRejected("not_found", f"file not found: {path}") from None
        except OSError as exc:
            raise MediaRejected("unreadable", f"cannot read {path}: {exc.strerror or exc}") from None
        if not stat.S_ISREG(st.st_mode):
            raise MediaRejected("unreadable", f"{path} is not a regular file")
        if st.st_size > max_bytes:
            raise MediaRejected("too_large", _too_large(st.st_size, max_bytes))
        try:
            with open(path, "rb") as fh:
                data = fh.read(max_bytes + 1)  # the file may have grown since stat
        except OSError as exc:
            raise MediaRejected("unreadable", f"cannot read {path}: {exc.strerror or exc}") from None
    if len(data) > max_bytes:
        raise MediaRejected("too_large", _too_large(len(data), max_bytes))
    if not data:
        raise MediaRejected("empty", "the file is empty (0 bytes)")
    return data


def _too_large(size: int, limit: int) -> str:
    return f"the file has {size:,} bytes; the limit is {limit:,} (max_bytes)"


def check_image_header(data: bytes, limits: ImageLimits) -> Image.Image:
    """Open an image lazily and check its type and size from the header alone (no pixel is
    decoded). Returns the still-undecoded Pillow image."""
    from PIL import Image, UnidentifiedImageError

    kind = sniff(data)
    allowed = ", ".join(limits.formats)
    if kind is None or kind.kind is not Modality.IMAGE:
        what = "not a known image format" if kind is None else f"{kind.format} ({kind.kind.value}), not an image"
        raise MediaRejected("unsupported_format", f"{what}; supported image formats: {allowed}")
    if kind.format not in limits.formats:
        raise MediaRejected("unsupported_format", f"{kind.format} images are not accepted; supported: {allowed}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow's own bomb warning: we check below, with our limit
            image = Image.open(io.BytesIO(data), formats=[_PIL_FORMATS[kind.format]])
    except Image.DecompressionBombError as exc:  # Pillow's own (higher) limit, hit while reading the header
        found = re.search(r"\((\d+) pixels\)", str(exc))
        pixels = f"{int(found.group(1)):,} pixels" if found else "too many pixels"
        raise MediaRejected("too_many_pixels", f"the image has {pixels}; the limit is {limits.max_pixels:,} "
                                               "(max_pixels)") from None
    except UnidentifiedImageError:  # its message holds a BytesIO's address: not repeatable, not useful
        raise MediaRejected("corrupt", f"cannot read the {kind.format} header: no {kind.format} decoder accepts "
                                       "the data") from None
    except Exception as exc:  # a broken header can raise anything from a C decoder's wrapper
        raise MediaRejected("corrupt", f"cannot read the {kind.format} header ({type(exc).__name__}: {exc})") from None
    width, height = image.size
    if width <= 0 or height <= 0:
        raise MediaRejected("corrupt", f"the header declares an empty image ({width}x{height})")
    if width > DEFAULT_MAX_SIDE or height > DEFAULT_MAX_SIDE or width * height > limits.max_pixels:
        raise MediaRejected("too_many_pixels", f"the image is {width:,}x{height:,} = {width * height:,} pixels; the "
                                               f"limit is {limits.max_pixels:,} (max_pixels), sides at most "
                                               f"{DEFAULT_MAX_SIDE:,}")
    return image


def declared_duration_s(container: Any, stream: Any, *, what: str, max_duration_s: float) -> float | None:
    """The duration a PyAV container's headers declare (the stream's, else the container's), or
    None when they do not say; raises `too_long` over `max_duration_s` (before any decoding)."""
    duration = None
    if stream.duration is not None and stream.time_base is not None:
        duration = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        duration = container.duration / 1_000_000  # av.time_base
    if duration is not None and duration > max_duration_s:
        raise MediaRejected("too_long", f"the {what} lasts {duration:,.1f} s; the limit is {max_duration_s:,} s "
                                        "(max_duration_s)")
    return duration


@dataclass(frozen=True, slots=True)
class DecodedImage:
    """An image decoded to RGB (first frame, EXIF orientation applied, transparency on white).

    `width` x `height` is the displayed image's size; `image` may be smaller when it was decoded
    at a reduced scale, and `scale` (displayed pixels per decoded pixel) maps boxes back, so
    evidence boxes are always in the displayed image's pixels."""

    image: Image.Image
    format: str
    width: int
    height: int
    scale: float = 1.0


def decode_image(data: bytes, limits: ImageLimits, *, reduce_to: int | None = None) -> DecodedImage:
    """Check the header, then decode. `reduce_to`: the model's input side; JPEGs are then
    decoded at a reduced scale (libjpeg's DCT scaling) that keeps at least that many pixels,
    which is much faster than decoding a 12-megapixel photo and shrinking it."""
    from PIL import Image, ImageOps

    image = check_image_header(data, limits)
    fmt = (image.format or "").lower()
    header_width = image.width
    try:
        if reduce_to is not None and fmt == "jpeg":
            image.draft("RGB", (reduce_to, reduce_to))
        image.load()
        scale = header_width / image.width
        image = ImageOps.exif_transpose(image) or image
        if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
            rgba = image.convert("RGBA")
            canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            image = Image.alpha_composite(canvas, rgba).convert("RGB")
        elif image.mode != "RGB":
            image = image.convert("RGB")
    except MediaRejected:
        raise
    except Exception as exc:  # truncated data, bad Huffman tables, zlib errors, ...
        raise MediaRejected("corrupt", f"cannot decode the {fmt or 'image'} data ({type(exc).__name__}: {exc})") \
            from None
    return DecodedImage(image=image, format=fmt, width=round(image.width * scale), height=round(image.height * scale),
                        scale=scale)


def load_image(part: MediaPart, limits: ImageLimits, *, reduce_to: int | None = None) -> DecodedImage:
    """Read and decode one image part behind every guard (raises MediaRejected)."""
    if part.size is not None and part.size > limits.max_bytes:
        raise MediaRejected("too_large", _too_large(part.size, limits.max_bytes))
    return decode_image(read_part(part, max_bytes=limits.max_bytes), limits, reduce_to=reduce_to)


def edge_limits(limits: list[ImageLimits]) -> ImageLimits:
    """The loosest of several detectors' limits: what an entry point accepts before moderation
    (a stricter detector still gives its own error result)."""
    if not limits:
        return ImageLimits()
    formats = tuple(dict.fromkeys(f for lim in limits for f in lim.formats))
    return ImageLimits(max_bytes=max(lim.max_bytes for lim in limits),
                       max_pixels=max(lim.max_pixels for lim in limits), formats=formats)


def validate_part(part: MediaPart, limits: ImageLimits) -> Sniffed:
    """Check one part at the edge, before it is moderated: its size, that its bytes are of a
    supported format of its declared kind, and for images that the header is within limits
    and the data decodes (at a reduced scale, which still reads every byte). Raises
    MediaRejected with a message that says what to fix."""
    video = getattr(limits, "video", None)  # a VideoLimits when the policy reads video (ImageVideoLimits)
    audio = getattr(limits, "audio", None)  # an AudioLimits when the policy listens (ImageVideoAudioLimits)
    max_bytes = limits.max_bytes
    if video is not None and part.kind is Modality.VIDEO:
        max_bytes = video.max_bytes
    elif audio is not None and part.kind is Modality.AUDIO:
        max_bytes = max(audio.max_bytes, audio.max_video_bytes if audio.video_formats else 0)
    data = read_part(part, max_bytes=max_bytes)
    kind = sniff(data)
    if kind is None:
        declared = f" (declared {part.mime})" if part.mime else ""
        raise MediaRejected("unsupported_format", f"not a supported image, video or audio format{declared}; "
                                                  f"supported images: {', '.join(limits.formats)}")
    # Audio may come in a video container (an audio-only MP4 or WebM): the audio reader decides.
    in_container = part.kind is Modality.AUDIO and audio is not None and kind.format in audio.video_formats
    if kind.kind is not part.kind and not in_container:
        raise MediaRejected("kind_mismatch", f"the file is {kind.format} ({kind.kind.value}), not {part.kind.value}")
    if kind.kind is Modality.IMAGE:
        decode_image(data, limits, reduce_to=256)
    elif part.kind is Modality.AUDIO and audio is not None:
        from warden.detectors.media.audio import probe_audio

        probe_audio(data, audio)  # headers only: format, audio stream, duration
    elif kind.kind is Modality.VIDEO and video is not None:
        from warden.detectors.media.video import probe_video

        probe_video(data, video)  # headers only: format, frame size, duration; frames are decoded by detectors
        if audio is not None and kind.format in audio.video_formats:
            from warden.detectors.media.audio import probe_audio

            probe_audio(data, audio, Modality.VIDEO)  # its sound track, if any
    return kind


__all__ = [
    "DEFAULT_IMAGE_FORMATS",
    "DecodedImage",
    "ImageLimits",
    "MediaRejected",
    "Sniffed",
    "check_image_header",
    "decode_image",
    "edge_limits",
    "load_image",
    "read_part",
    "sniff",
    "validate_part",
]
