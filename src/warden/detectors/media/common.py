"""What every image detector shares: read each image part behind the guards, run the model on
the images that decoded, and give an item whose image cannot be read an error result."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from warden.core import Content, DetectorResult, Modality
from warden.detectors.base import Detector
from warden.detectors.media.guards import DecodedImage, ImageLimits, MediaRejected, load_image


@dataclass(frozen=True, slots=True)
class ImageInput:
    """One decoded image part of an item: `part` indexes `Content.media`."""

    part: int
    image: DecodedImage


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
        for part in item.part_indices(Modality.IMAGE):
            try:
                loaded.append(ImageInput(part, load_image(item.media[part], params, reduce_to=self.reduce_to)))
            except MediaRejected as exc:
                return f"media[{part}]: {exc}"
        return loaded

    @abstractmethod
    def _score(self, images: list[DecodedImage]) -> list[Any]:
        """The model's output for each image, in order (may raise: the base isolates items)."""

    @abstractmethod
    def _result(self, item: Content, inputs: list[ImageInput], outputs: list[Any]) -> DetectorResult:
        """One item's result from its images' outputs."""
