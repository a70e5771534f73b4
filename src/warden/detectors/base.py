"""The one detector interface.

A detector turns a batch of `Content` into one `DetectorResult` per item, in order.
Its parameters are a pydantic model declared on the class and validated when the policy
loads, so a typo in a policy fails before any content is scanned (as in osprey's UDFs).
Detectors are batched by default because the expensive ones (embedding models, remote
APIs) amortise per-call cost; one item is simply a batch of one.
"""

from __future__ import annotations

import dataclasses
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from warden.core import Content, DetectorResult, ExtractedText, Modality


class DetectorParams(BaseModel):
    """Base for detector parameters: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class NoParams(DetectorParams):
    pass


class DetectorContext(BaseModel):
    """What the loading environment tells a detector: where relative paths resolve from,
    and which categories the policy defines (so detectors can drop the ones it doesn't)."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    base_dir: Path = Path(".")
    categories: tuple[str, ...] = ()
    policy: Any = None  # the warden.core.Policy, for detectors built from policy text


class Detector(ABC):
    """Base class for every detector.

    Subclasses declare:
      - `name`: a stable registry key, never derived from the class name, because it is
        written into policies and decisions and must survive refactors;
      - `modalities`: which content it can read;
      - `Params`: a `DetectorParams` subclass.
    Media detectors read `Content.media` parts of their modalities and point evidence at them
    (`Evidence.location`); a part they cannot read gives the item an error result.
    """

    name: ClassVar[str]
    modalities: ClassVar[frozenset[Modality]] = frozenset({Modality.TEXT})
    Params: ClassVar[type[DetectorParams]] = NoParams
    version: ClassVar[str] = "1"
    #: True when results carry `texts` read from media (OCR): the Moderator then moderates that
    #: text with the text detectors of later tiers, so such a detector runs before them.
    extracts_text: ClassVar[bool] = False

    def __init__(self, params: DetectorParams | None = None, *, instance: str | None = None,
                 context: DetectorContext | None = None) -> None:
        self.params = params if params is not None else self.Params()
        if not isinstance(self.params, self.Params):
            raise TypeError(f"{self.name}: params must be {self.Params.__name__}, got {type(self.params).__name__}")
        self.instance = instance or self.name
        self.context = context or DetectorContext()

    @classmethod
    def from_config(cls, params: dict[str, Any] | None, *, instance: str | None = None,
                    context: DetectorContext | None = None) -> Detector:
        return cls(cls.Params.model_validate(params or {}), instance=instance, context=context)

    @property
    def model_version(self) -> str:
        return f"{self.name}@{self.version}"

    def resolve_path(self, path: str | Path) -> Path:
        """A path from the policy: relative paths resolve against the policy file's folder."""
        p = Path(path)
        return p if p.is_absolute() else Path(self.context.base_dir) / p

    def detect(self, batch: Sequence[Content]) -> list[DetectorResult]:
        """Score a batch. Never raises for a single bad item: that item gets an error result.

        Subclasses implement `_detect` for the items they can read; this wrapper screens
        modalities, times the call, and converts a batch-wide failure into per-item errors.
        """
        start = time.perf_counter()
        results: list[DetectorResult | None] = [None] * len(batch)
        readable: list[int] = []
        for i, item in enumerate(batch):
            if item.modalities & self.modalities:
                readable.append(i)
            else:
                results[i] = self.failed(item, f"no {'/'.join(sorted(m.value for m in self.modalities))} content")
        if readable:
            sub = [batch[i] for i in readable]
            try:
                out = self._detect(sub)
                if len(out) != len(sub):
                    raise RuntimeError(f"returned {len(out)} results for {len(sub)} items")
            except Exception as exc:
                out = [self._detect_one_safely(item) for item in sub] if len(sub) > 1 else [
                    self.failed(sub[0], f"{type(exc).__name__}: {exc}")
                ]
            for i, res in zip(readable, out, strict=True):
                results[i] = res
        per_item_ms = (time.perf_counter() - start) * 1000.0 / max(1, len(batch))
        return [_with_latency(r, per_item_ms) for r in results if r is not None]

    def _detect_one_safely(self, item: Content) -> DetectorResult:
        try:
            return self._detect([item])[0]
        except Exception as exc:
            return self.failed(item, f"{type(exc).__name__}: {exc}")

    @abstractmethod
    def _detect(self, batch: Sequence[Content]) -> list[DetectorResult]:
        """Score items that all carry a readable modality; may raise (the wrapper isolates)."""

    def result(self, item: Content, scores: dict[str, float], evidence: tuple = (), *,
               texts: tuple[ExtractedText, ...] = ()) -> DetectorResult:
        """Build a result for `item`, keeping only categories the policy defines."""
        cats = self.context.categories
        if cats:
            scores = {c: s for c, s in scores.items() if c in cats}
            evidence = tuple(e for e in evidence if e.category in cats)
        return DetectorResult(detector=self.instance, content_id=item.id, scores=scores,
                              evidence=evidence, model_version=self.model_version, source=self.source,
                              texts=texts)

    @property
    def source(self) -> str:
        """What this detector's scores are about (`DetectorResult.source`): "" for text
        detectors (the item's own text), else its media kind ("image")."""
        if Modality.TEXT in self.modalities or not self.modalities:
            return ""
        return sorted(m.value for m in self.modalities)[0]

    def failed(self, item: Content, error: str) -> DetectorResult:
        """An error result for `item` (no scores), for a bad file or an unreadable part."""
        return DetectorResult.failed(self.instance, item.id, error, self.model_version, source=self.source)


def _with_latency(result: DetectorResult, latency_ms: float) -> DetectorResult:
    if result.latency_ms:
        return result
    return dataclasses.replace(result, latency_ms=latency_ms)
