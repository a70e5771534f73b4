"""What every image detector shares: read each image part behind the guards (and, for detectors
that also read video, the sampled frames of each video part), run the model on the images
that decoded, and give an item whose image or video cannot be read an error result.

Video frames are images with a time: `ImageInput.time_s`. `frame_segments` turns per-frame
scores of a video part into segments of evidence: consecutive sampled frames scoring at least
`video.segment_min` for a category become one `Evidence` with `MediaLocation(part, box,
time_s, end_s)` (first and last flagged frame) and the run's highest score. The video's score
is the maximum over its frames, like an item's over its images."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from warden.core import Box, Content, DetectorResult, Evidence, MediaLocation, Modality
from warden.detectors.base import Detector
from warden.detectors.media.guards import DecodedImage, ImageLimits, MediaRejected, load_image


@dataclass(frozen=True, slots=True)
class ImageInput:
    """One decoded image part of an item, or one sampled frame of a video part (`time_s` set):
    `part` indexes `Content.media`."""

    part: int
    image: DecodedImage
    time_s: float | None = None


@dataclass(frozen=True, slots=True)
class FrameScore:
    """One sampled frame's score for one category, with what to show for it (the rule that
    fired, a box on the frame, a detail)."""

    input: ImageInput
    category: str
    score: float
    rule: str
    box: Box | None = None
    detail: str | None = None


def frame_segments(frames: Sequence[FrameScore], *, min_score: float) -> list[Evidence]:
    """Runs of consecutive sampled frames (of one video part, one category, in time order)
    scoring at least `min_score`, each as one Evidence over [first, last] frame time with the
    run's highest score and that frame's rule and box."""
    out: list[Evidence] = []
    run: list[FrameScore] = []

    def close() -> None:
        if run:
            best = max(run, key=lambda f: f.score)
            start, end = run[0].input.time_s or 0.0, run[-1].input.time_s or 0.0
            detail = f"{len(run)} sampled frame(s) {start:.2f}-{end:.2f} s; max at {best.input.time_s or 0.0:.2f} s"
            out.append(Evidence(category=best.category, rule=best.rule, score=round(best.score, 6),
                                detail=detail + (f"; {best.detail}" if best.detail else ""),
                                location=MediaLocation(part=best.input.part, box=best.box, time_s=start, end_s=end)))
            run.clear()

    for f in frames:
        if f.score >= min_score:
            run.append(f)
        else:
            close()
    close()
    return out


def video_evidence(frames: Sequence[FrameScore], *, min_score: float) -> list[Evidence]:
    """`frame_segments` for every (part, category) of an item's frames."""
    groups: dict[tuple[int, str], list[FrameScore]] = {}
    for f in frames:
        groups.setdefault((f.input.part, f.category), []).append(f)
    out: list[Evidence] = []
    for _, group in sorted(groups.items()):
        out += frame_segments(sorted(group, key=lambda f: f.input.time_s or 0.0), min_score=min_score)
    return out


class ImageDetector(Detector):
    """Base for detectors that read `Content.media` images.

    An item with an image that cannot be read (too large, a decompression bomb, corrupt, an
    unsupported format) gets an error result naming the part and the limit, and none of its
    images is scored: a partial score would let one broken file hide the others from review.
    """

    modalities = frozenset({Modality.IMAGE})
    Params: ClassVar[type[ImageLimits]] = ImageLimits
    #: The model's input side: JPEGs decode at a reduced scale that still covers it (None: full size).
    reduce_to: ClassVar[int | None] = None

    def _detect(self, batch: Sequence[Content]) -> list[DetectorResult]:
        per_item: list[list[ImageInput] | str] = []
        for item in batch:
            per_item.append(self._load(item))
        flat = [inp for entry in per_item if not isinstance(entry, str) for inp in entry]
        outputs = iter(self._score([inp.image for inp in flat]) if flat else [])
        results: list[DetectorResult] = []
        for item, entry in zip(batch, per_item, strict=True):
            if isinstance(entry, str):
                results.append(self.failed(item, entry))
                continue
            results.append(self._result(item, entry, [next(outputs) for _ in entry]))
        return results

    def _load(self, item: Content) -> list[ImageInput] | str:
        params: Any = self.params
        loaded: list[ImageInput] = []
        for part, media in enumerate(item.media):
            try:
                if media.kind is Modality.IMAGE:
                    loaded.append(ImageInput(part, load_image(media, params, reduce_to=self.reduce_to)))
                elif media.kind is Modality.VIDEO and Modality.VIDEO in self.modalities:
                    from warden.detectors.media.video import VideoLimits, video_frames

                    sample = video_frames(media, getattr(params, "video", None) or VideoLimits())
                    loaded += [ImageInput(part, f.image, time_s=f.time_s) for f in sample.frames]
            except MediaRejected as exc:
                return f"media[{part}]: {exc}"
        return loaded

    @property
    def segment_min(self) -> float:
        """Frames of a video scoring at least this form segments (the `video.segment_min` param)."""
        video = getattr(self.params, "video", None)
        return float(video.segment_min) if video is not None else 0.5

    @abstractmethod
    def _score(self, images: list[DecodedImage]) -> list[Any]:
        """The model's output for each image, in order (may raise: the base isolates items)."""

    @abstractmethod
    def _result(self, item: Content, inputs: list[ImageInput], outputs: list[Any]) -> DetectorResult:
        """One item's result from its images' outputs."""
