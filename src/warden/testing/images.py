"""Generated test images (Pillow drawings) and the copy transforms hash matching must survive.

Safe by construction: gradients, shapes and words, never photographs of people. Each seed
gives a different, deterministic image. Synthetic images are simpler than photos (flat
regions, hard edges), so figures measured on them are a stand-in, not a substitute, for
photos; the benchmark reports photos (scikit-image's bundled samples) separately.
"""

from __future__ import annotations

import io
import random
from collections.abc import Callable
from typing import Any

import numpy as np

WORDS = ("sample", "warden", "river", "market", "orange", "signal", "travel", "garden", "pixel", "copy", "north",
         "delta", "violet", "harbor", "summit", "quartz", "lantern", "meadow", "cobalt", "ember")


def _pil() -> Any:
    from PIL import Image, ImageDraw, ImageFilter, ImageFont

    return Image, ImageDraw, ImageFilter, ImageFont


def synthetic_image(seed: int, *, size: tuple[int, int] = (256, 256)) -> Any:
    """A PIL RGB image: a random gradient, 4-14 random shapes and 0-3 words."""
    Image, ImageDraw, _, ImageFont = _pil()
    rng = random.Random(seed)
    nrng = np.random.default_rng(seed)
    w, h = size
    angle = rng.uniform(0, 2 * np.pi)
    ys, xs = np.mgrid[0:h, 0:w]
    t = (np.cos(angle) * xs / w + np.sin(angle) * ys / h)
    t = (t - t.min()) / max(1e-9, float(t.max() - t.min()))
    c1, c2 = nrng.integers(0, 256, 3), nrng.integers(0, 256, 3)
    bg = (c1[None, None, :] * (1 - t[..., None]) + c2[None, None, :] * t[..., None])
    bg += nrng.normal(0, rng.uniform(0, 12), bg.shape)  # texture
    img = Image.fromarray(np.clip(bg, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(img)

    def color() -> tuple[int, int, int]:
        return (rng.randrange(256), rng.randrange(256), rng.randrange(256))

    def point() -> tuple[int, int]:
        return (rng.randrange(-w // 8, w + w // 8), rng.randrange(-h // 8, h + h // 8))

    for _ in range(rng.randint(4, 14)):
        kind = rng.choice(("ellipse", "rectangle", "polygon", "line", "arc"))
        (x0, y0), (x1, y1) = point(), point()
        box = (min(x0, x1), min(y0, y1), max(x0, x1) + 4, max(y0, y1) + 4)
        if kind == "ellipse":
            draw.ellipse(box, fill=color(), outline=color(), width=rng.randint(0, 6))
        elif kind == "rectangle":
            draw.rectangle(box, fill=color(), outline=color(), width=rng.randint(0, 6))
        elif kind == "polygon":
            draw.polygon([point() for _ in range(rng.randint(3, 7))], fill=color())
        elif kind == "line":
            draw.line([point() for _ in range(rng.randint(2, 5))], fill=color(), width=rng.randint(1, 12))
        else:
            draw.arc(box, rng.uniform(0, 360), rng.uniform(0, 360), fill=color(), width=rng.randint(1, 10))
    for _ in range(rng.randint(0, 3)):
        font = ImageFont.load_default(size=rng.randint(12, max(13, h // 6)))
        draw.text(point(), " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 3))), fill=color(), font=font)
    return img


def encode(img: Any, fmt: str = "PNG", **kwargs: Any) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def _crop(img: Any, left: float, top: float, right: float, bottom: float) -> Any:
    w, h = img.size
    return img.crop((round(w * left), round(h * top), w - round(w * right), h - round(h * bottom)))


def _watermark(img: Any) -> Any:
    Image, ImageDraw, _, ImageFont = _pil()
    base = img.convert("RGBA")
    layer = Image.new("RGBA", base.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    w, h = base.size
    font = ImageFont.load_default(size=max(12, h // 10))
    draw.text((w * 0.08, h * 0.42), "(c) SAMPLE COPY", fill=(255, 255, 255, 150), font=font)
    draw.rectangle((w * 0.72, h * 0.82, w * 0.97, h * 0.97), fill=(20, 20, 20, 170))
    small = ImageFont.load_default(size=max(8, h // 22))
    draw.text((w * 0.74, h * 0.85), "@user", fill=(255, 255, 255, 230), font=small)
    return Image.alpha_composite(base, layer).convert("RGB")


def _border(img: Any, fraction: float = 0.1) -> Any:
    Image, *_ = _pil()
    w, h = img.size
    dx, dy = round(w * fraction), round(h * fraction)
    out = Image.new("RGB", (w + 2 * dx, h + 2 * dy), (255, 255, 255))
    out.paste(img, (dx, dy))
    return out


def _jpeg(img: Any, quality: int) -> Any:
    Image, *_ = _pil()
    return Image.open(io.BytesIO(encode(img, "JPEG", quality=quality))).convert("RGB")


def transforms() -> dict[str, Callable[[Any], Any]]:
    """Name -> copy transform (PIL image in, PIL image out): the benchmark's edits."""
    Image, _, ImageFilter, _ = _pil()
    return {
        "resize_50": lambda im: im.resize((max(8, im.width // 2), max(8, im.height // 2)), Image.LANCZOS),
        "jpeg_q30": lambda im: _jpeg(im, 30),
        "blur_r2": lambda im: im.filter(ImageFilter.GaussianBlur(2)),
        "grayscale": lambda im: im.convert("L").convert("RGB"),
        "flip_horizontal": lambda im: im.transpose(Image.FLIP_LEFT_RIGHT),
        "rotate_90": lambda im: im.transpose(Image.ROTATE_90),
        "crop_5": lambda im: _crop(im, 0.05, 0.05, 0.05, 0.05),
        "crop_15": lambda im: _crop(im, 0.15, 0.15, 0.15, 0.15),
        "crop_offcenter_15": lambda im: _crop(im, 0.15, 0.15, 0.0, 0.0),
        "watermark_text": _watermark,
        "border_10": _border,
    }


def random_crop(img: Any, rng: random.Random, *, max_fraction: float = 0.2) -> Any:
    """Each side trimmed by an independent uniform fraction in [0, max_fraction]."""
    return _crop(img, *(rng.uniform(0, max_fraction) for _ in range(4)))


__all__ = ["encode", "random_crop", "synthetic_image", "transforms"]
