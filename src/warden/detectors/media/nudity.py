"""Nudity boxes from NudeNet's detector (a YOLOv8 ONNX model that ships inside the `nudenet`
wheel; nothing is downloaded), mapped to the `sexual` category.

NudeNet finds 18 kinds of body-part boxes (exposed or covered). Only *exposed* sexual body
parts count towards `sexual`, each with a weight (`labels`); the item's score is the highest
weight x box confidence over its images, and every counted box is evidence with its label,
confidence and position (`Evidence.location`: image index and box in displayed pixels), so a
reviewer sees *where*, not just *whether*. Default mapping (documented in docs/media.md):

    FEMALE_GENITALIA_EXPOSED, MALE_GENITALIA_EXPOSED, ANUS_EXPOSED   1.0
    FEMALE_BREAST_EXPOSED                                            0.9
    BUTTOCKS_EXPOSED                                                 0.8
    everything else (faces, feet, armpits, belly, covered parts)     not counted

The score is a weighted detector confidence, not a calibrated probability: tune the policy's
`sexual` thresholds for images on your own labelled images (`warden eval thresholds`). The
model says nothing about age: it never feeds `sexual/minors`.

Pre- and post-processing are NudeNet 3.4's own functions (pad to a square, resize to 320,
boxes at confidence >= 0.25 after non-maximum suppression at IoU 0.45), applied to the image
decoded once behind the guards, with our own ONNX Runtime session (one thread per call, as for
the text models): the boxes equal `NudeDetector.detect` on the same pixels (checked in tests).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata, resources
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import Field, field_validator

from warden.core import Box, Content, DetectorResult, Evidence, MediaLocation, Modality
from warden.detectors.media.common import FrameScore, ImageDetector, ImageInput, video_evidence
from warden.detectors.media.guards import DecodedImage
from warden.detectors.media.video import ImageVideoLimits

#: NudeNet 3.x class order (the model's output channels after the 4 box coordinates).
NUDENET_LABELS: tuple[str, ...] = (
    "FEMALE_GENITALIA_COVERED", "FACE_FEMALE", "BUTTOCKS_EXPOSED", "FEMALE_BREAST_EXPOSED",
    "FEMALE_GENITALIA_EXPOSED", "MALE_BREAST_EXPOSED", "ANUS_EXPOSED", "FEET_EXPOSED", "BELLY_COVERED",
    "FEET_COVERED", "ARMPITS_COVERED", "ARMPITS_EXPOSED", "FACE_MALE", "BELLY_EXPOSED", "MALE_GENITALIA_EXPOSED",
    "ANUS_COVERED", "FEMALE_BREAST_COVERED", "BUTTOCKS_COVERED",
)

DEFAULT_WEIGHTS: dict[str, float] = {
    "FEMALE_GENITALIA_EXPOSED": 1.0,
    "MALE_GENITALIA_EXPOSED": 1.0,
    "ANUS_EXPOSED": 1.0,
    "FEMALE_BREAST_EXPOSED": 0.9,
    "BUTTOCKS_EXPOSED": 0.8,
}
MAX_EVIDENCE = 20


@dataclass(frozen=True, slots=True)
class NudeBox:
    """One NudeNet detection in displayed-image pixels."""

    label: str
    score: float
    box: Box


class NudityParams(ImageVideoLimits):
    labels: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_WEIGHTS),
                                     description="NudeNet label -> weight towards `sexual` (others are not counted)")
    min_box_score: float = Field(default=0.25, gt=0.0, lt=1.0,
                                 description="boxes below this confidence are dropped (NudeNet's NMS threshold)")
    model: str | None = Field(default=None, description="an ONNX file instead of the one inside the nudenet wheel")
    threads: int = Field(default=1, ge=1, le=64, description="ONNX Runtime threads per call")

    @field_validator("labels")
    @classmethod
    def _known(cls, v: dict[str, float]) -> dict[str, float]:
        for label, weight in v.items():
            if label not in NUDENET_LABELS:
                raise ValueError(f"unknown NudeNet label {label!r}; known: {', '.join(NUDENET_LABELS)}")
            if not 0.0 <= weight <= 1.0:
                raise ValueError(f"weight of {label} must be in [0, 1], got {weight}")
        return v


def bundled_model() -> Path:
    """The ONNX model inside the installed nudenet wheel (ImportError when it is absent)."""
    try:
        root = resources.files("nudenet")
    except ModuleNotFoundError as exc:
        raise ImportError(f"nudity needs nudenet: pip install 'warden[media]' ({exc})") from exc
    candidates = sorted(p.name for p in root.iterdir() if p.name.endswith(".onnx"))
    if not candidates:
        raise FileNotFoundError(f"no .onnx model inside the nudenet package at {root}")
    # 320n.onnx is NudeNet 3.4's default detector.
    name = "320n.onnx" if "320n.onnx" in candidates else candidates[0]
    return Path(str(root / name))


class NudityDetector(ImageDetector):
    """NudeNet boxes -> `sexual` (see the module docstring for the mapping)."""

    name: ClassVar[str] = "nudenet_nudity"
    modalities = frozenset({Modality.IMAGE, Modality.VIDEO})
    Params = NudityParams
    version = "1"
    reduce_to = 320

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        import onnxruntime as ort

        params: Any = self.params
        path = self.resolve_path(params.model) if params.model else bundled_model()
        if not path.is_file():
            raise FileNotFoundError(f"nudity model not found: {path}")
        options = ort.SessionOptions()
        options.intra_op_num_threads = params.threads
        options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
        from nudenet import nudenet as nn  # its pre/post-processing (pinned: nudenet>=3.4.2,<3.5)

        self._nn = nn
        inp = self._session.get_inputs()[0]
        self._input = inp.name
        side = inp.shape[2] if isinstance(inp.shape[2], int) else 320
        self._side = int(side)
        try:
            self._package_version = metadata.version("nudenet")
        except metadata.PackageNotFoundError:
            self._package_version = "unknown"

    @property
    def model_version(self) -> str:
        return f"{self.name}@{self.version}+nudenet-{self._package_version}"

    def _score(self, images: list[DecodedImage]) -> list[Any]:
        return [self._boxes(img) for img in images]

    def _boxes(self, decoded: DecodedImage) -> list[NudeBox]:
        params: Any = self.params
        # NudeNet's own pre- and post-processing on our guarded decode (BGR, as cv2 would read
        # the file): same boxes and scores as `NudeDetector.detect` on the same pixels.
        bgr = np.ascontiguousarray(np.asarray(decoded.image, dtype=np.uint8)[:, :, ::-1])
        blob, x_ratio, y_ratio, x_pad, y_pad, width, height = self._nn._read_image(bgr, self._side)
        outputs = self._session.run(None, {self._input: blob})
        found = self._nn._postprocess(outputs, x_pad, y_pad, x_ratio, y_ratio, width, height, self._side, self._side)
        out: list[NudeBox] = []
        s = decoded.scale  # boxes in displayed pixels when the JPEG was decoded at a reduced scale
        for det in found:
            score = float(det["score"])
            x, y, w, h = (int(v) for v in det["box"])
            if score < params.min_box_score or w <= 0 or h <= 0:
                continue
            out.append(NudeBox(str(det["class"]), score, Box(int(x * s), int(y * s), int(w * s), int(h * s))))
        out.sort(key=lambda b: (-b.score, b.label, b.box.x, b.box.y))
        return out

    def _result(self, item: Content, inputs: list[ImageInput], outputs: list[Any]) -> DetectorResult:
        params: Any = self.params
        score = 0.0
        evidence: list[Evidence] = []
        frames: list[FrameScore] = []
        for inp, boxes in zip(inputs, outputs, strict=True):
            if inp.time_s is not None:  # a video frame: its strongest counted box, merged into segments below
                counted = [(params.labels.get(b.label, 0.0) * b.score, b) for b in boxes
                           if params.labels.get(b.label, 0.0) > 0.0]
                top = max(counted, key=lambda c: c[0], default=None)
                frames.append(FrameScore(inp, "sexual", top[0] if top else 0.0,
                                         f"nudenet:{top[1].label}" if top else "nudenet",
                                         top[1].box if top else None,
                                         f"confidence {top[1].score:.3f}" if top else None))
                score = max(score, top[0] if top else 0.0)
                continue
            for found in boxes:
                weight = params.labels.get(found.label, 0.0)
                if weight <= 0.0:
                    continue
                score = max(score, weight * found.score)
                evidence.append(Evidence(category="sexual", rule=f"nudenet:{found.label}", score=round(found.score, 6),
                                         detail=f"weight {weight}",
                                         location=MediaLocation(part=inp.part, box=found.box)))
        evidence += video_evidence(frames, min_score=self.segment_min)
        evidence.sort(key=lambda e: (-(e.score or 0.0), e.location.part if e.location else 0,
                                     (e.location.time_s or 0.0) if e.location else 0.0, e.rule))
        return self.result(item, {"sexual": round(score, 6)}, tuple(evidence[:MAX_EVIDENCE]))
