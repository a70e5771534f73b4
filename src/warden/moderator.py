"""`Moderator`: the one facade every entry point calls.

It builds the policy's detectors once, runs them as the policy's cascade (cheap tiers
first; an item reaches an expensive tier only when its scores so far fall in that tier's
escalation band) and turns the signals into Decisions with the pure `decide` function.

Multi-part items (a caption with images) run each detector on the parts it reads. Text that
a detector reads from an item's media (OCR of a meme) becomes a derived text view of the
item, moderated by every text detector of the later tiers; its signals carry the source
"ocr" and evidence that points at the image, and `decide` combines sources per the policy.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, overload

from warden.core import (
    Content,
    Decision,
    DetectorResult,
    Evidence,
    ExtractedText,
    MediaLocation,
    Modality,
    Policy,
    Tier,
)
from warden.decide import combine_scores, decide
from warden.detectors import registry
from warden.detectors.base import Detector, DetectorContext
from warden.ingest import MAX_TEXT_CHARS, InvalidItem, parse_item
from warden.policy import load_policy_file

#: The pseudo-detector named in `missing_signals` when an item has media that no detector of
#: the policy reads (say a video under a policy with image detectors only).
UNREAD_MEDIA = "unread_media"

#: Called after each detector batch: (detector instance, items, seconds).
DetectorObserver = Callable[[str, int, float], None]


@dataclass(frozen=True, slots=True)
class ModerationResult:
    """A decision with the raw signals behind it (for evaluation, debugging, backtests)."""

    decision: Decision
    signals: tuple[DetectorResult, ...]


class Moderator:
    def __init__(
        self,
        policy: Policy,
        *,
        base_dir: str | Path | None = None,
        detectors: Mapping[str, Detector] | None = None,
        observer: DetectorObserver | None = None,
        max_text_chars: int = MAX_TEXT_CHARS,
    ) -> None:
        """`base_dir` resolves relative paths in detector params (the policy file's folder).
        `detectors` overrides instances by name (tests, custom wiring)."""
        self.policy = policy
        self.base_dir = Path(base_dir) if base_dir is not None else Path.cwd()
        self.observer = observer
        self.max_text_chars = max_text_chars
        context = DetectorContext(base_dir=self.base_dir, categories=policy.category_names, policy=policy)
        given = dict(detectors or {})
        self.detectors: dict[str, Detector] = {}
        for inst, spec in policy.detectors.items():
            self.detectors[inst] = given.pop(inst, None) or registry.get(spec.type).from_config(
                spec.params, instance=inst, context=context)
        self.detectors.update(given)
        extractors = tuple(n for n, d in self.detectors.items() if d.extracts_text)
        if policy.cascade:
            self.tiers: tuple[Tier, ...] = policy.cascade
        elif self.detectors:
            # Without a cascade everything runs, text extractors (OCR) first so their text is moderated.
            rest = tuple(n for n in self.detectors if n not in extractors)
            self.tiers = tuple(t for t in (Tier(name="extract", detectors=extractors) if extractors else None,
                                           Tier(name="all", detectors=rest) if rest else None) if t is not None)
        else:
            self.tiers = ()
        _check_extractors_first(self.tiers, self.detectors)
        self.reads: frozenset[Modality] = frozenset(m for d in self.detectors.values() for m in d.modalities)

    @classmethod
    def from_file(cls, path: str | Path, **kwargs: Any) -> Moderator:
        loaded = load_policy_file(path)
        kwargs.setdefault("base_dir", loaded.path.parent.resolve())
        return cls(loaded.policy, **kwargs)

    # -- input -----------------------------------------------------------------------
    def parse(self, obj: object, *, default_surface: str = "comment", media_root: str | Path | None = None) -> Content:
        """Validate one untrusted input object against this policy (raises InvalidItem).
        `media_root`: where relative `media` file paths resolve (file inputs only)."""
        if isinstance(obj, Content):
            return obj
        item = parse_item(obj, default_surface=default_surface, allowed_surfaces=self.policy.surfaces,
                          max_text_chars=self.max_text_chars, media_root=media_root)
        self.check_media(item)
        return item

    def check_media(self, item: Content) -> None:
        """Raise InvalidItem when a media part cannot be moderated: no detector of the policy
        reads its kind, or it fails the guards (size, format, pixels, corrupt data; see
        `warden.detectors.media.guards`). Entry points call this so a bad file is a clear
        input error (a 4xx, an error row) rather than a decision with missing signals."""
        if not item.media:
            return
        from warden.detectors.media.guards import MediaRejected, validate_part

        for i, part in enumerate(item.media):
            if part.kind not in self.reads:
                raise InvalidItem(
                    f"media[{i}] is {part.kind.value} content, but policy {self.policy.name!r} has no detector that "
                    f"reads {part.kind.value}; use a policy with media detectors (see policies/media.yaml)",
                    field="media")
            try:
                validate_part(part, self.media_limits)
            except MediaRejected as exc:
                raise InvalidItem(f"media[{i}]{f' ({part.name})' if part.name else ''}: {exc}", field="media") from None

    @property
    def media_limits(self) -> Any:
        """The loosest image limits of the policy's image detectors, with the loosest video
        limits of its video readers under `.video` and of its audio readers under `.audio`
        (what entry points accept)."""
        from warden.detectors.media.audio import AudioLimits, ImageVideoAudioLimits, edge_audio_limits
        from warden.detectors.media.guards import ImageLimits, edge_limits
        from warden.detectors.media.video import VideoLimits, edge_video_limits

        image = edge_limits([d.params for d in self.detectors.values() if isinstance(d.params, ImageLimits)])
        videos = [v for d in self.detectors.values() if isinstance(v := getattr(d.params, "video", None), VideoLimits)]
        audios = [a for d in self.detectors.values() if isinstance(a := getattr(d.params, "audio", None), AudioLimits)]
        return ImageVideoAudioLimits(**image.model_dump(), video=edge_video_limits(videos),
                                     audio=edge_audio_limits(audios))

    # -- moderation ------------------------------------------------------------------
    @overload
    def moderate(self, item: Content | Mapping[str, Any] | str) -> Decision: ...
    @overload
    def moderate(self, item: Sequence[Content | Mapping[str, Any]]) -> list[Decision]: ...

    def moderate(self, item: Any) -> Decision | list[Decision]:
        """Moderate one item (a Content, a mapping with 'text', or a plain string) or a list."""
        if isinstance(item, str):
            return self.moderate_batch([self.parse({"text": item})])[0]
        if isinstance(item, Content | Mapping):
            return self.moderate_batch([self.parse(item)])[0]
        return self.moderate_batch([self.parse(x) for x in item])

    def moderate_batch(self, items: Sequence[Content]) -> list[Decision]:
        return [r.decision for r in self.moderate_with_signals(items)]

    def moderate_with_signals(self, items: Sequence[Content]) -> list[ModerationResult]:
        signals: list[list[DetectorResult]] = [[] for _ in items]
        for i, item in enumerate(items):
            gap = _unread(self, item)
            if gap is not None:
                signals[i].append(gap)
        # Per item: the item itself, then derived text views (text read from its media).
        views: list[list[_View]] = [[_View(item, None)] for item in items]
        active = list(range(len(items)))
        for tier in self.tiers:
            if tier.escalate_if is not None:
                # An item whose earlier signals failed also moves on: fail toward the stronger model.
                active = [i for i in active if any(not s.ok for s in signals[i])
                          or _escalates(tier, self.policy, signals[i])]
            if not active:
                break
            produced: list[tuple[int, DetectorResult]] = []
            for inst in tier.detectors:
                detector = self.detectors[inst]
                # A detector runs only on the views it can read: a text detector never sees an
                # image-only post, an image detector never a plain comment (no error signals).
                owners = [(i, v) for i in active for v in views[i] if v.content.modalities & detector.modalities]
                if not owners:
                    continue
                started = time.perf_counter()
                results = detector.detect([v.content for _, v in owners])
                if self.observer is not None:
                    self.observer(inst, len(owners), time.perf_counter() - started)
                owners, results = self._with_fallbacks(tier, inst, owners, results)
                derived: dict[tuple[int, str, str], list[tuple[int, DetectorResult]]] = {}
                for (i, view), res in zip(owners, results, strict=True):
                    if view.extracted is None:
                        signals[i].append(res)
                        produced.append((i, res))
                    else:
                        derived.setdefault((i, view.extracted.via, res.detector), []).append(
                            (view.extracted, res))
                for (i, via, _), pairs in derived.items():
                    signals[i].extend(_merge_derived(items[i].id, via, pairs))
            for i, res in produced:
                for extracted in res.texts:
                    text = extracted.text.strip()[: self.max_text_chars]
                    if text and 0 <= extracted.part < len(items[i].media):
                        views[i].append(_View(_derived_content(items[i], extracted.part, extracted.via, text),
                                              _Extracted(extracted.part, extracted.via, extracted)))
        return [ModerationResult(decide(self.policy, item, sig), tuple(sig))
                for item, sig in zip(items, signals, strict=True)]


    def _with_fallbacks(self, tier: Tier, inst: str, owners: list[tuple[int, _View]],
                        results: list[DetectorResult]) -> tuple[list[tuple[int, _View]], list[DetectorResult]]:
        """The policy's fallback chain for `inst`: each next detector gets only the views still
        without a signal. Failed results stay, so the Decision names what was missing."""
        chain = tier.fallback.get(inst, ())
        owners, results = list(owners), list(results)
        failed = [k for k, res in enumerate(results) if not res.ok]
        for backup in chain:
            if not failed:
                break
            started = time.perf_counter()
            backup_results = self.detectors[backup].detect([owners[k][1].content for k in failed])
            if self.observer is not None:
                self.observer(backup, len(failed), time.perf_counter() - started)
            base = len(results)
            owners += [owners[k] for k in failed]
            results += backup_results
            failed = [base + j for j, res in enumerate(backup_results) if not res.ok]
        return owners, results


def _escalates(tier: Tier, policy: Policy, signals: Sequence[DetectorResult]) -> bool:
    """The tier's `escalate_if` (score band, severity floor) on the combined scores so far."""
    assert tier.escalate_if is not None
    scores = {cat: c.score for cat, c in combine_scores(policy, signals).items()}
    return tier.escalate_if.matches(scores, policy.categories)


@dataclass(frozen=True, slots=True)
class _Extracted:
    part: int
    via: str
    source: ExtractedText  # what the extractor returned: maps spans of the text to times


def _location(extracted: _Extracted, evidence: Evidence) -> MediaLocation:
    """Evidence on derived text points at its media part and, for video/audio, at the time its
    spans were shown or said. Spans index the text before the Moderator stripped it, so times
    are looked up on the leading-whitespace-adjusted offsets."""
    lead = len(extracted.source.text) - len(extracted.source.text.lstrip())
    when = None
    if extracted.source.times and evidence.spans:
        start = min(sp.start for sp in evidence.spans) + lead
        end = max(sp.end for sp in evidence.spans) + lead
        when = extracted.source.time_of(start, end)
    elif extracted.source.times:  # a whole-text score (a model head): the whole span of the text
        when = (min(t.start_s for t in extracted.source.times), max(t.end_s for t in extracted.source.times))
    if when is None:
        return MediaLocation(part=extracted.part, via=extracted.via)
    return MediaLocation(part=extracted.part, via=extracted.via, time_s=when[0], end_s=when[1])


@dataclass(frozen=True, slots=True)
class _View:
    """What a detector is shown: the item itself (`extracted` None) or text read from one part."""

    content: Content
    extracted: _Extracted | None


def _derived_content(item: Content, part: int, via: str, text: str) -> Content:
    """The text read from `item.media[part]` as an item of its own (same surface, actor, language)."""
    return Content(id=f"{item.id}#{via}{part}", text=text, surface=item.surface, actor_id=item.actor_id,
                   language=item.language, metadata=item.metadata)


def _merge_derived(content_id: str, via: str, pairs: list[tuple[_Extracted, DetectorResult]]) -> list[DetectorResult]:
    """One detector's results on an item's derived views (one per media part) as one signal of
    source `via`: the maximum per category, evidence pointing at the part it was read from. A
    view that failed adds an error signal naming the part."""
    out: list[DetectorResult] = []
    scores: dict[str, float] = {}
    evidence: list[Evidence] = []
    ok = [(ext, r) for ext, r in pairs if r.ok]
    for ext, res in ok:
        for cat, p in res.scores.items():
            scores[cat] = max(p, scores.get(cat, 0.0))
        evidence += [dataclasses.replace(e, location=_location(ext, e)) for e in res.evidence]
    if ok:
        first = ok[0][1]
        out.append(DetectorResult(detector=first.detector, content_id=content_id, scores=scores,
                                  evidence=tuple(evidence), latency_ms=sum(r.latency_ms for _, r in ok),
                                  model_version=first.model_version, source=via))
    out += [DetectorResult.failed(res.detector, content_id, f"{via} text of media[{ext.part}]: {res.error}",
                                  res.model_version, source=via) for ext, res in pairs if not res.ok]
    return out


def _unread(moderator: Moderator, item: Content) -> DetectorResult | None:
    """An error signal when the item has media no detector of the policy reads, so the gap shows
    in `missing_signals` (and, with nothing else to go on, the policy's on_detector_error applies)."""
    unread = sorted({f"{p.kind.value} (media[{i}])" for i, p in enumerate(item.media) if p.kind not in moderator.reads})
    if not unread:
        return None
    return DetectorResult.failed(UNREAD_MEDIA, item.id, f"no detector in policy {moderator.policy.name!r} reads "
                                 f"{', '.join(unread)}; it was not moderated")


def _check_extractors_first(tiers: Sequence[Tier], detectors: Mapping[str, Detector]) -> None:
    """Text read from media is moderated by the text detectors of *later* tiers, so a detector
    that reads text from media must run in a tier before every text detector."""
    first_text = next((t for t, tier in enumerate(tiers) for n in tier.detectors
                       if n in detectors and Modality.TEXT in detectors[n].modalities), None)
    if first_text is None:
        return
    for t, tier in enumerate(tiers):
        for name in tier.detectors:
            if name in detectors and detectors[name].extracts_text and t >= first_text:
                raise ValueError(
                    f"cascade: detector {name!r} reads text from media for the text detectors, so it must run in a "
                    f"tier before all of them; it is in tier {t} ({tier.name!r}) but text detectors already run in "
                    f"tier {first_text} ({tiers[first_text].name!r}). Move {name!r} to an earlier tier.")
