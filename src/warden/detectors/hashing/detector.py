"""`hash_bank`: match an item's images against hash banks.

A match is not a probability: the image is (a near copy of) content someone already judged,
so the bank's category scores 1.0, with evidence naming the bank, the distance, the matched
hash's id, the dihedral variant and the bank's action. Categories of the configured banks
score 0.0 when nothing matches (scored clear, not unscored).

Banks come from the database (the `hash_banks` tables, managed with `warden hash bank` or
the API; the detector rebuilds its index when a bank changes, checked every
`refresh_seconds`) or, with `files`, from JSON bank exports next to the policy.

An image that cannot be decoded gives the item an error result (the policy's
`on_detector_error` decides: by default the item is held for review, since a broken file
can be an evasion attempt), unless another image of the item matched: a match wins.

    detectors:
      known_images:
        type: hash_bank
        params: {banks: [csam_known, terror_known], max_distance: 31}
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from warden.core import Content, DetectorResult, Evidence, MediaLocation, Modality
from warden.detectors.base import Detector, DetectorContext, DetectorParams
from warden.detectors.hashing.banks import BankFormatError, parse_bank_file, validate_bank_name
from warden.detectors.hashing.images import hash_image, lookup_image
from warden.detectors.hashing.matcher import BankMatcher, HashMatch, MatcherCache
from warden.detectors.hashing.pdq import DEFAULT_MAX_DISTANCE, DEFAULT_MAX_PIXELS, MIN_QUALITY, ImageError
from warden.detectors.hashing.video import hash_video
from warden.detectors.media.video import VideoLimits

#: Largest image file read from a path (bytes given in `MediaPart.data` were already bounded
#: by the entry point).
DEFAULT_MAX_IMAGE_BYTES = 50 * 1024 * 1024


class HashBankParams(DetectorParams):
    #: Bank names to match against; empty: every enabled bank.
    banks: tuple[str, ...] = ()
    #: JSON bank exports (`warden hash bank export --format json`) to load instead of the
    #: database; paths are relative to the policy file.
    files: tuple[str, ...] = ()
    #: The database holding the banks (default: env WARDEN_DATABASE_URL, else sqlite:///warden.db).
    database_url: str | None = None
    max_distance: int = Field(default=DEFAULT_MAX_DISTANCE, ge=0, le=63)
    min_quality: int = Field(default=MIN_QUALITY, ge=0, le=100)
    #: Try the 8 rotations/mirrors of each image (flipped or rotated copies match).
    dihedral: bool = True
    #: Hash the 8 variants in pixel space (exact for mirrored/rotated copies, ~7x the hashing
    #: time) instead of pdqhash's one-pass DCT variants (see docs/hashing.md).
    exact_dihedral: bool = False
    refresh_seconds: float = Field(default=5.0, ge=0.0, le=86_400.0)
    max_image_pixels: int = Field(default=DEFAULT_MAX_PIXELS, ge=16, le=200_000_000)
    max_image_bytes: int = Field(default=DEFAULT_MAX_IMAGE_BYTES, ge=1, le=1 << 31)
    index_backend: Literal["mih", "mih-numba", "mih-numpy", "brute", "faiss"] = "mih"
    #: How video parts are read and sampled (the image detectors' defaults: then a video is
    #: decoded once for all of them).
    video: VideoLimits = Field(default_factory=VideoLimits)
    #: vPDQ thresholds: a query video matches a banked video when at least this share (%) of
    #: its matchable frames match one of the banked video's frames ...
    video_query_match_pct: float = Field(default=80.0, gt=0.0, le=100.0)
    #: ... and at least this share (%) of the banked video's frames are matched (vPDQ: 0).
    video_compared_match_pct: float = Field(default=0.0, ge=0.0, le=100.0)

    @field_validator("banks")
    @classmethod
    def _names(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for name in v:
            validate_bank_name(name)
        return v


class HashBankDetector(Detector):
    name = "hash_bank"
    modalities = frozenset({Modality.IMAGE, Modality.VIDEO})
    Params = HashBankParams
    version = "1"

    def __init__(self, params: DetectorParams | None = None, *, instance: str | None = None,
                 context: DetectorContext | None = None, matcher: BankMatcher | None = None) -> None:
        """`matcher`: a ready matcher (tests, notebooks) instead of the database or files."""
        super().__init__(params, instance=instance, context=context)
        p: HashBankParams = self.params  # type: ignore[assignment]
        self._paths = [self.resolve_path(f) for f in p.files]
        for path in self._paths:
            if not path.is_file():
                raise FileNotFoundError(f"{self.instance}: bank file {path} does not exist; export one with "
                                        "`warden hash bank export NAME --format json`")
        self._fixed = matcher
        self._cache: MatcherCache | None = None
        self._store = None

    # -- banks -----------------------------------------------------------------------------
    def _files_matcher(self) -> BankMatcher:
        p: HashBankParams = self.params  # type: ignore[assignment]
        banks = {}
        for path in self._paths:
            try:
                parsed = parse_bank_file(path.read_text(encoding="utf-8"), fmt="json")
            except BankFormatError as exc:
                raise ValueError(f"bank file {path}: {exc}") from None
            if parsed.bank is None:
                raise ValueError(f"bank file {path} has no 'bank' definition (name, category, action); export "
                                 "banks with `warden hash bank export NAME --format json`")
            if not p.banks or parsed.bank.name in p.banks:
                banks[parsed.bank] = parsed.entries
        return BankMatcher.from_entries(banks, radius=p.max_distance, backend=p.index_backend)

    def matcher(self) -> BankMatcher:
        """The current matcher (built on first use; rebuilt when the stored banks change)."""
        if self._fixed is not None:
            return self._fixed
        p: HashBankParams = self.params  # type: ignore[assignment]
        if self._paths:
            self._fixed = self._files_matcher()
            return self._fixed
        if self._cache is None:
            from warden.store import Store
            from warden.store.hash_repo import HashBankRepository

            self._store = Store.from_url(p.database_url)
            repo = HashBankRepository(self._store)
            names = p.banks or None
            self._cache = MatcherCache(
                load=lambda: repo.load_matcher(banks=names, radius=p.max_distance, backend=p.index_backend),
                fingerprint=repo.fingerprint, refresh_seconds=p.refresh_seconds)
        return self._cache.get()

    # -- detection -------------------------------------------------------------------------
    def _image_bytes(self, item: Content, index: int) -> bytes:
        p: HashBankParams = self.params  # type: ignore[assignment]
        part = item.media[index]
        if part.data is not None:
            return part.data
        path = Path(str(part.path))
        try:
            size = os.path.getsize(path)
        except OSError as exc:
            raise ImageError(f"cannot read {path.name}: {exc.strerror or type(exc).__name__}") from None
        if size > p.max_image_bytes:
            raise ImageError(f"{path.name} is {size:,} bytes; the limit is {p.max_image_bytes:,}")
        return path.read_bytes()

    def _detect(self, batch: Sequence[Content]) -> list[DetectorResult]:
        p: HashBankParams = self.params  # type: ignore[assignment]
        matcher = self.matcher()
        names = set(p.banks) if p.banks else None
        categories = sorted({b.category for b in matcher.banks if b.enabled and (names is None or b.name in names)})
        out = []
        for item in batch:
            found: list[tuple[int, HashMatch]] = []
            failures: list[str] = []
            for index in item.part_indices(Modality.IMAGE):
                try:
                    hashes = hash_image(self._image_bytes(item, index), max_pixels=p.max_image_pixels,
                                        dihedral=p.dihedral, exact_dihedral=p.exact_dihedral)
                except ImageError as exc:
                    failures.append(f"image {index}: {exc}")
                    continue
                found += [(index, m) for m in lookup_image(matcher, hashes, max_distance=p.max_distance,
                                                           min_quality=p.min_quality, banks=names)]
            video_evidence: list[Evidence] = []
            for index in item.part_indices(Modality.VIDEO):
                try:
                    video_evidence += self._video(matcher, item, index, names)
                except ImageError as exc:
                    failures.append(f"video {index}: {exc}")
            if failures and not found and not video_evidence:
                out.append(self.failed(item, "; ".join(failures)))
                continue
            scores = dict.fromkeys(categories, 0.0)
            evidence = []
            for index, m in found:
                scores[m.category] = 1.0
                evidence.append(Evidence(category=m.category, rule=f"hash_bank:{m.bank}", detail=_detail(index, m),
                                         score=1.0, location=MediaLocation(part=index)))
            for e in video_evidence:
                scores[e.category] = 1.0
            out.append(self.result(item, scores, tuple(evidence + video_evidence)))
        return out

    def _video(self, matcher: BankMatcher, item: Content, index: int, names: set[str] | None) -> list[Evidence]:
        """A video part: its MD5, each sampled frame against banked images, and its frames
        against banked videos (vPDQ shares); evidence carries the frames' times."""
        p: HashBankParams = self.params  # type: ignore[assignment]
        hashes = hash_video(item.media[index], p.video)
        evidence = [Evidence(category=m.category, rule=f"hash_bank:{m.bank}", detail=_detail(index, m), score=1.0,
                             location=MediaLocation(part=index))
                    for m in matcher.match_md5(hashes.md5, banks=names)]
        frames = hashes.matchable(p.min_quality)
        lookup = matcher.match_video([f.pdq for f in frames], max_distance=p.max_distance, banks=names,
                                     query_match_pct=p.video_query_match_pct,
                                     compared_match_pct=p.video_compared_match_pct)
        by_entry: dict[int, tuple[HashMatch, list[float]]] = {}
        for fm in lookup.frame_matches:
            m, times = by_entry.setdefault(fm.match.entry_id, (fm.match, []))
            if fm.match.distance < m.distance:
                by_entry[fm.match.entry_id] = (fm.match, times)
            times.append(frames[fm.frame].time_s)
        for m, times in by_entry.values():
            evidence.append(Evidence(category=m.category, rule=f"hash_bank:{m.bank}",
                                     detail=f"{_detail(index, m)} frames={len(times)}", score=1.0,
                                     location=MediaLocation(part=index, time_s=min(times), end_s=max(times))))
        for vm in lookup.video_matches:
            times = [frames[q].time_s for q in vm.frames]
            detail = (f"part={index} bank={vm.bank} signal=vpdq content_id={vm.content_id} hash_id={vm.entry_id} "
                      f"query_match={vm.query_match_pct:.1f}% compared_match={vm.compared_match_pct:.1f}% "
                      f"distance={vm.min_distance} action={vm.action.value} report={'true' if vm.report else 'false'}")
            evidence.append(Evidence(category=vm.category, rule=f"hash_bank:{vm.bank}", detail=detail, score=1.0,
                                     location=MediaLocation(part=index, time_s=min(times), end_s=max(times))))
        return evidence


def _detail(part: int, m: HashMatch) -> str:
    """key=value pairs a reviewer can read and a script can split."""
    fields = [f"part={part}", f"bank={m.bank}", f"signal={m.signal_type}", f"distance={m.distance}",
              f"hash_id={m.entry_id}"]
    if m.variant is not None:
        fields.append(f"variant={m.variant}")
    fields += [f"action={m.action.value}", f"report={'true' if m.report else 'false'}"]
    return " ".join(fields)


__all__ = ["HashBankDetector", "HashBankParams"]
