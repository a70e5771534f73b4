"""Hash one image file (MD5 of its bytes, PDQ of its pixels) and look it up in a matcher.

Shared by the `hash_bank` detector, `POST /v1/hashes/lookup` and `warden hash`, so the
three hash and match an image identically.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from warden.detectors.hashing.crops import trim_border
from warden.detectors.hashing.matcher import BankMatcher, HashMatch
from warden.detectors.hashing.md5 import md5_hex
from warden.detectors.hashing.pdq import (
    DEFAULT_MAX_DISTANCE,
    DEFAULT_MAX_PIXELS,
    MIN_QUALITY,
    DihedralHashes,
    decode_image,
    dihedral_from_array,
    dihedral_pixels_from_array,
    pdq_from_array,
)


@dataclass(frozen=True, slots=True)
class ImageHashes:
    """An image's hashes. `pdq` holds the 8 dihedral hashes, or only the original (a 1-tuple)
    when dihedral hashing is off."""

    md5: str
    pdq: DihedralHashes
    size: int
    #: The hashes of the image with its uniform border trimmed (None: no border found).
    trimmed: DihedralHashes | None = None

    @property
    def quality(self) -> int:
        return self.pdq.quality

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"md5": self.md5, "pdq": self.pdq.original, "quality": self.pdq.quality,
                               "bytes": self.size}
        if self.trimmed is not None:
            out["pdq_border_trimmed"] = self.trimmed.original
        return out


def _pdq(rgb: Any, dihedral: bool, exact: bool = False) -> DihedralHashes:
    if dihedral:
        return dihedral_pixels_from_array(rgb) if exact else dihedral_from_array(rgb)
    one = pdq_from_array(rgb)
    return DihedralHashes(hashes=(one.hex,), quality=one.quality)


def hash_image(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS, dihedral: bool = True,
               trim_borders: bool = True, exact_dihedral: bool = False) -> ImageHashes:
    """MD5 of the bytes and PDQ of the pixels (with `dihedral`, the 8 rotations/mirrors, from
    pdqhash's DCT or, with `exact_dihedral`, hashed in pixel space at ~7x the cost; with
    `trim_borders`, also the image without a uniform frame, see `crops.trim_border`).
    Raises `ImageError` (a ValueError) for bytes that are not a decodable image."""
    rgb = decode_image(data, max_pixels=max_pixels)
    trimmed = trim_border(rgb) if trim_borders else None
    return ImageHashes(md5=md5_hex(bytes(data)), pdq=_pdq(rgb, dihedral, exact_dihedral), size=len(data),
                       trimmed=_pdq(trimmed, dihedral, exact_dihedral) if trimmed is not None else None)


def lookup_image(matcher: BankMatcher, hashes: ImageHashes, *, max_distance: int = DEFAULT_MAX_DISTANCE,
                 min_quality: int = MIN_QUALITY, banks: Collection[str] | None = None) -> list[HashMatch]:
    """MD5 matches (exact copies) and PDQ matches; PDQ is skipped below `min_quality`, where
    featureless images (flat colours, tiny icons) would match each other."""
    matches = matcher.match_md5(hashes.md5, banks=banks)
    best: dict[int, HashMatch] = {}
    for pdq in (hashes.pdq, hashes.trimmed):
        if pdq is None or pdq.quality < min_quality:
            continue
        queries = pdq if len(pdq.hashes) > 1 else pdq.original
        for m in matcher.match_pdq(queries, max_distance=max_distance, banks=banks):
            if m.entry_id not in best or m.distance < best[m.entry_id].distance:
                best[m.entry_id] = m
    matches += best.values()
    return sorted(matches, key=lambda m: (m.distance, m.bank, m.entry_id, m.signal_type))


__all__ = ["ImageHashes", "hash_image", "lookup_image"]
