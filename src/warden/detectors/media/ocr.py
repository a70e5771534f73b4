"""OCR with Debian's Tesseract (through `pytesseract`): text inside memes and screenshots.

The detector scores nothing itself. Its results carry the text it read from each image
(`DetectorResult.texts`); the Moderator moderates that text with the policy's text detectors
(banks, linear model, MiniLM) as the item's "ocr" source, and their evidence points at the
image it was read from. So a meme saying "I will kill you" is flagged by the same rules and
models as the comment "I will kill you", with no OCR-specific classifier to train.

Tesseract is an external program: install it with `apt-get install -y tesseract-ocr` (English
is included; other languages are packages such as `tesseract-ocr-deu`). Each call runs with a
timeout, and OMP_THREAD_LIMIT=1 unless set (Tesseract's OpenMP threads are slower than one
thread on small machines, and the other core serves other requests).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import Field, field_validator

from warden.core import Content, DetectorResult, ExtractedText, Modality, TextTime
from warden.detectors.media.common import ImageDetector, ImageInput
from warden.detectors.media.guards import DecodedImage
from warden.detectors.media.video import ImageVideoLimits

TESSERACT_INSTALL = "install Debian's tesseract-ocr (apt-get install -y tesseract-ocr)"


class OcrParams(ImageVideoLimits):
    languages: tuple[str, ...] = Field(default=("eng",), min_length=1,
                                       description="Tesseract language packs, e.g. eng, deu (tesseract-ocr-deu)")
    psm: int = Field(default=11, ge=0, le=13, description="page segmentation mode; 11 = sparse text (memes)")
    min_confidence: float = Field(default=50.0, ge=0.0, le=100.0,
                                  description="words Tesseract is less sure of (0-100) are dropped")
    timeout_s: float = Field(default=15.0, gt=0.0, le=300.0, description="per image; then an error result")
    max_side: int = Field(default=2000, ge=100, le=10_000,
                          description="larger images are shrunk first (bounds time; text stays legible)")
    min_side: int = Field(default=600, ge=0, le=5_000,
                          description="smaller images are enlarged first (Tesseract wants ~20 px letters)")
    min_line_chars: int = Field(default=3, ge=0, le=100,
                                description="lines with fewer letters and digits are dropped (texture read as "
                                            "'Y', 'as?' on photos)")

    @field_validator("languages")
    @classmethod
    def _names(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for lang in v:
            if not lang.replace("_", "").isalnum():
                raise ValueError(f"language {lang!r} is not a Tesseract language name (e.g. eng, deu, chi_sim)")
        return v


class TesseractOcrDetector(ImageDetector):
    """Reads text from images; the Moderator sends it through the text tiers (source "ocr")."""

    name: ClassVar[str] = "tesseract_ocr"
    modalities = frozenset({Modality.IMAGE, Modality.VIDEO})
    Params = OcrParams
    version = "1"
    extracts_text = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        try:
            import pytesseract
        except ImportError as exc:
            raise ImportError(f"tesseract_ocr needs pytesseract: pip install 'warden[media]' ({exc})") from exc
        os.environ.setdefault("OMP_THREAD_LIMIT", "1")
        try:
            self._tesseract_version = str(pytesseract.get_tesseract_version())
            available = set(pytesseract.get_languages(config=""))
        except pytesseract.TesseractNotFoundError:
            raise ImportError(f"tesseract_ocr: the tesseract program is not installed; {TESSERACT_INSTALL}") from None
        params: Any = self.params
        missing = [lang for lang in params.languages if lang not in available]
        if missing:
            raise ValueError(f"tesseract_ocr: language pack(s) {', '.join(missing)} not installed (installed: "
                             f"{', '.join(sorted(available)) or 'none'}); apt-get install -y "
                             + " ".join(f"tesseract-ocr-{m.replace('_', '-').lower()}" for m in missing))
        self._pytesseract = pytesseract

    @property
    def model_version(self) -> str:
        return f"{self.name}@{self.version}+tesseract-{self._tesseract_version}"

    def _score(self, images: list[DecodedImage]) -> list[Any]:
        return [self._read(img) for img in images]

    def _read(self, decoded: DecodedImage) -> OcrRead:
        from PIL import Image, ImageOps

        params: Any = self.params
        image = ImageOps.autocontrast(decoded.image.convert("L"))
        side = max(image.size)
        if side > params.max_side:
            image.thumbnail((params.max_side, params.max_side), Image.Resampling.LANCZOS)
        elif 0 < side < params.min_side:
            factor = params.min_side / side
            image = image.resize((round(image.width * factor), round(image.height * factor)),
                                 Image.Resampling.LANCZOS)
        data = self._pytesseract.image_to_data(
            image, lang="+".join(params.languages), config=f"--psm {params.psm}",
            output_type=self._pytesseract.Output.DICT, timeout=params.timeout_s)
        return _words_to_text(data, min_confidence=params.min_confidence, min_line_chars=params.min_line_chars)

    def _result(self, item: Content, inputs: list[ImageInput], outputs: list[Any]) -> DetectorResult:
        pairs = list(zip(inputs, outputs, strict=True))
        texts = [ExtractedText(part=inp.part, text=out.text, via="ocr", confidence=out.confidence)
                 for inp, out in pairs if inp.time_s is None and out.text]
        frames: dict[int, list[tuple[float, OcrRead]]] = {}
        for inp, out in pairs:
            if inp.time_s is not None:
                frames.setdefault(inp.part, []).append((inp.time_s, out))
        texts += [t for part, reads in sorted(frames.items()) if (t := video_text(part, reads)) is not None]
        return self.result(item, {}, (), texts=tuple(texts))


def video_text(part: int, reads: list[tuple[float, OcrRead]]) -> ExtractedText | None:
    """The text of a video part's frames as one ExtractedText: each run of consecutive frames
    showing the same text (a subtitle, a caption held on screen) is one chunk, with the time
    range [first, last frame] it was seen in `times`; frames without text end a run. OCR of
    the same caption jitters between frames ("kill you", then "I will kill you"): a text that
    contains the previous frame's, or is contained in it, continues the run (the longer wins)."""
    chunks: list[tuple[str, float, float, list[float]]] = []  # text, start_s, end_s, confidences
    previous: str | None = None
    for time_s, read in sorted(reads, key=lambda r: r[0]):
        key = " ".join(read.text.split())
        if not key:
            previous = None
            continue
        if previous is not None and (key in previous or previous in key):
            text, start, _, confs = chunks[-1]
            if len(key) > len(previous):
                text = read.text
            chunks[-1] = (text, start, time_s, confs + ([read.confidence] if read.confidence is not None else []))
            key = max(key, previous, key=len)
        else:
            chunks.append((read.text, time_s, time_s, [read.confidence] if read.confidence is not None else []))
        previous = key
    if not chunks:
        return None
    parts: list[str] = []
    times: list[TextTime] = []
    offset = 0
    for text, start, end, _ in chunks:
        times.append(TextTime(start=offset, end=offset + len(text), start_s=start, end_s=end))
        parts.append(text)
        offset += len(text) + 1  # the joining newline
    confs = [c for *_, cs in chunks for c in cs]
    return ExtractedText(part=part, text="\n".join(parts), via="ocr",
                         confidence=round(sum(confs) / len(confs), 4) if confs else None, times=tuple(times))


@dataclass(frozen=True, slots=True)
class OcrRead:
    """What Tesseract read from one image: lines of words and their mean confidence (0-1)."""

    text: str
    confidence: float | None


def _words_to_text(data: dict[str, list[Any]], *, min_confidence: float, min_line_chars: int = 0) -> OcrRead:
    """Tesseract's word table as lines of text (words kept in reading order, one line per
    Tesseract line), dropping words below `min_confidence` and lines with fewer than
    `min_line_chars` letters and digits."""
    lines: dict[tuple[int, int, int], list[str]] = {}
    confidences: list[float] = []
    for i, word in enumerate(data.get("text", [])):
        word = (word or "").strip()
        try:
            conf = float(data["conf"][i])
        except (KeyError, IndexError, TypeError, ValueError):
            continue
        if not word or conf < min_confidence:
            continue
        key = (int(data["block_num"][i]), int(data["par_num"][i]), int(data["line_num"][i]))
        lines.setdefault(key, []).append(word)
        confidences.append(conf)
    kept: list[str] = []
    for _, words in sorted(lines.items()):
        # A lone "|" is Tesseract's usual reading of a sans-serif capital I ("| will kill you").
        line = " ".join("I" if w == "|" else w for w in words)
        if sum(ch.isalnum() for ch in line) >= min_line_chars:
            kept.append(line)
    text = "\n".join(kept)
    mean = sum(confidences) / len(confidences) / 100.0 if confidences else None
    return OcrRead(text=text, confidence=None if mean is None else round(mean, 4))
