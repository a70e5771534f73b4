"""Synthetic test videos written with PyAV from safe pictures (scikit-image photographs,
Pillow drawings and text). Nothing unsafe is generated."""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import Any

import numpy as np

SIZE = (640, 360)


def fit(photo: np.ndarray, size: tuple[int, int] = SIZE) -> np.ndarray:
    """A photo (H, W[, 3]) scaled and centre-cropped to fill `size` (width, height), RGB."""
    from PIL import Image

    image = Image.fromarray(photo).convert("RGB")
    w, h = size
    scale = max(w / image.width, h / image.height)
    image = image.resize((max(w, round(image.width * scale)), max(h, round(image.height * scale))),
                         Image.Resampling.BILINEAR)
    left, top = (image.width - w) // 2, (image.height - h) // 2
    return np.asarray(image.crop((left, top, left + w, top + h)))


def photo(name: str, size: tuple[int, int] = SIZE) -> np.ndarray:
    from skimage import data

    return fit(getattr(data, name)(), size)


def text_frame(text: str, size: tuple[int, int] = SIZE, font_size: int = 48) -> np.ndarray:
    """Black text on white, centred (a title card / a screenshot of a message)."""
    from PIL import Image, ImageDraw, ImageFont

    image = Image.new("RGB", size, (255, 255, 255))
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=font_size)
    box = draw.multiline_textbbox((0, 0), text, font=font, align="center")
    draw.multiline_text(((size[0] - (box[2] - box[0])) // 2, (size[1] - (box[3] - box[1])) // 2), text, font=font,
                        fill=(0, 0, 0), align="center")
    return np.asarray(image)


def write_video(frames: Iterable[np.ndarray], *, fps: int = 10, container_format: str = "mp4",
                codec: str = "mpeg4", bit_rate: int | None = None) -> bytes:
    import av

    buf = io.BytesIO()
    stream: Any = None
    with av.open(buf, mode="w", format=container_format) as out:
        for arr in frames:
            if stream is None:
                stream = out.add_stream(codec, rate=fps)
                stream.height, stream.width = arr.shape[:2]
                stream.pix_fmt = "yuv420p"
                if bit_rate:
                    stream.bit_rate = bit_rate
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(arr), format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return buf.getvalue()


def scenes(*shots: tuple[np.ndarray, float], fps: int = 10, **kwargs: Any) -> bytes:
    """Still shots one after another: (picture, seconds) each; cuts between them."""
    return write_video((arr for arr, seconds in shots for _ in range(round(seconds * fps))), fps=fps, **kwargs)


def reencode(data: bytes, *, size: tuple[int, int] | None = None, bit_rate: int = 300_000) -> bytes:
    """Decode and encode again (another bit rate, optionally another size): a re-upload."""
    import av
    from PIL import Image

    frames = []
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        fps = round(float(stream.average_rate or 10))
        for frame in container.decode(stream):
            image = frame.to_image()
            if size is not None:
                image = image.resize(size, Image.Resampling.BILINEAR)
            frames.append(np.asarray(image))
    return write_video(frames, fps=fps, bit_rate=bit_rate)


def red_frame(size: tuple[int, int] = SIZE) -> np.ndarray:
    arr = np.zeros((size[1], size[0], 3), dtype=np.uint8)
    arr[..., 0] = 230
    return arr


def claim_duration(mp4: bytes, units: int = 1) -> bytes:
    """The same MP4 with every header duration (mvhd, tkhd, mdhd, version 0) set to `units`
    of its timescale: a file whose header lies about its length."""
    out = bytearray(mp4)
    offsets = {b"mvhd": 16, b"tkhd": 20, b"mdhd": 16}  # bytes from the box type to its 32-bit duration
    for box, skip in offsets.items():
        start = 0
        while (at := out.find(box, start)) >= 0:
            if out[at + 4] == 0:  # version 0 boxes: 32-bit fields
                out[at + 4 + skip:at + 8 + skip] = units.to_bytes(4, "big")
            start = at + 4
    return bytes(out)
