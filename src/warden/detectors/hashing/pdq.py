"""PDQ perceptual hashes: Meta's open photo-similarity hash (256 bits, compared by Hamming distance).

Hashes are the 64-hex-character strings ThreatExchange and HMA exchange: bit 0 of the
`pdqhash` vector is the most significant bit of the hex string (python-threatexchange's
`pdq_hasher` convention), so banks imported from them match hashes computed here.

`compute_dihedral` hashes the 8 dihedral variants of an image (4 rotations x optional
mirror) in one pass, which is how a rotated or mirrored copy of a banked image still
matches: the bank keeps the original's hash, the query tries all 8 variants.

Decoding untrusted bytes is guarded: the header's dimensions are checked against a pixel
limit *before* any pixel is decoded (a 50-byte PNG can declare 100,000 x 100,000 pixels),
only common formats are opened, and every decoder failure becomes an `ImageError` whose
message says what to do, never a crash.

`pdqhash` and Pillow are optional (`pip install 'warden[hashing]'`) and imported lazily.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

PDQ_BITS = 256
PDQ_HEX_CHARS = 64
#: ThreatExchange's "confident match" distance for PDQ (PdqSignal.PDQ_CONFIDENT_MATCH_THRESHOLD).
DEFAULT_MAX_DISTANCE = 31
#: Below this quality a PDQ hash is unreliable (flat, nearly featureless images match each
#: other); ThreatExchange's PdqSignal refuses to match on them.
MIN_QUALITY = 50
#: Order of `pdqhash.compute_dihedral` (its README): the hash of the image after each transform.
DIHEDRAL_VARIANTS: tuple[str, ...] = (
    "original", "rotate90", "rotate180", "rotate270", "flip_vertical", "flip_horizontal",
    "rotate90_flip_vertical", "rotate90_flip_horizontal",
)
#: Largest image decoded by default (width x height). 25 MP holds 6000x4000 phone photos; a
#: 25 MP RGB image takes 75 MB decoded plus PDQ's float buffers.
DEFAULT_MAX_PIXELS = 25_000_000
#: Formats Pillow may open: the ones users upload. Fewer decoders, smaller attack surface.
IMAGE_FORMATS: tuple[str, ...] = ("PNG", "JPEG", "GIF", "WEBP", "BMP")
#: PDQ's filters need a few pixels each way; smaller images are rejected with a clear message.
MIN_SIDE = 4

_PDQ_HEX = re.compile(r"^[0-9a-fA-F]{64}$")


class ImageError(ValueError):
    """The bytes are not an image that can be hashed; the message says why and what to do."""


class MissingDependency(ImportError):
    """An optional package is not installed; the message names the extra to install."""


@dataclass(frozen=True, slots=True)
class PdqHash:
    """One PDQ hash and PDQ's quality score (0-100; below `MIN_QUALITY` do not match on it)."""

    hex: str
    quality: int


@dataclass(frozen=True, slots=True)
class DihedralHashes:
    """The 8 dihedral PDQ hashes of one image, in `DIHEDRAL_VARIANTS` order, and its quality."""

    hashes: tuple[str, ...]
    quality: int

    @property
    def original(self) -> str:
        return self.hashes[0]

    def variants(self) -> tuple[tuple[str, str], ...]:
        """(variant name, hash) pairs."""
        return tuple(zip(DIHEDRAL_VARIANTS, self.hashes, strict=True))


# -- hex strings --------------------------------------------------------------------------------
def validate_pdq_hex(value: object) -> str:
    """The hash as 64 lowercase hex characters, or ValueError saying what is wrong."""
    if not isinstance(value, str):
        raise ValueError(f"a PDQ hash must be a string of 64 hexadecimal characters, got {type(value).__name__}")
    text = value.strip()
    if not _PDQ_HEX.match(text):
        shown = text[:80].encode("ascii", "backslashreplace").decode()
        raise ValueError(f"invalid PDQ hash {shown!r}: expected 64 hexadecimal characters (256 bits), "
                         f"got {len(text)} characters")
    return text.lower()


def hamming(a: str, b: str) -> int:
    """Hamming distance between two PDQ hex hashes."""
    return (int(a, 16) ^ int(b, 16)).bit_count()


def bits_to_hex(bits: Any) -> str:
    """A 256-element 0/1 vector (pdqhash's output) as the ThreatExchange hex string."""
    vector = np.asarray(bits, dtype=np.uint8).ravel()
    if vector.size != PDQ_BITS:
        raise ValueError(f"a PDQ hash has {PDQ_BITS} bits, got {vector.size}")
    return np.packbits(vector).tobytes().hex()


def hex_to_codes(hexes: list[str] | tuple[str, ...]) -> np.ndarray:
    """Hex hashes as an (N, 32) uint8 array of their bytes (the index's layout). Validates each."""
    if not hexes:
        return np.zeros((0, 32), dtype=np.uint8)
    raw = b"".join(bytes.fromhex(validate_pdq_hex(h)) for h in hexes)
    return np.frombuffer(raw, dtype=np.uint8).reshape(-1, 32).copy()


def codes_to_hex(codes: np.ndarray) -> list[str]:
    """The inverse of `hex_to_codes`."""
    arr = np.ascontiguousarray(codes, dtype=np.uint8).reshape(-1, 32)
    return [row.tobytes().hex() for row in arr]


# -- decoding ----------------------------------------------------------------------------------
def _pil() -> Any:
    try:
        from PIL import Image
    except ImportError as exc:  # pragma: no cover - pillow is installed with the extra
        raise MissingDependency("image hashing needs Pillow: pip install 'warden[hashing]'") from exc
    return Image


def decode_image(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode image bytes to an (H, W, 3) uint8 RGB array, refusing oversized or broken files.

    The checks are the media guard rails' (`warden.detectors.media.guards.check_image_header`:
    format sniffed from magic bytes, allow-listed decoders, width x height and side limits from
    the header before a pixel is decoded), so hashing and the image detectors refuse the same
    files. The pixels are then read the way ThreatExchange's and HMA's PDQ hashers read them
    (`convert("RGB")`, no EXIF rotation, no compositing of transparency), unlike the guards'
    `decode_image`: otherwise hashes of rotated or transparent files would differ from the
    banks they are exchanged with. Every failure is an `ImageError`. Animated images hash
    their first frame.
    """
    from warden.detectors.media.guards import ImageLimits, MediaRejected, check_image_header

    if not isinstance(data, bytes | bytearray | memoryview):
        raise ImageError(f"image data must be bytes, got {type(data).__name__}")
    if len(data) == 0:
        raise ImageError("the image is empty (0 bytes); send the image file's bytes")
    Image = _pil()
    try:
        img = check_image_header(bytes(data), ImageLimits(max_pixels=max_pixels))
    except MediaRejected as exc:
        prefix = {"unsupported_format": "not a recognized image", "corrupt": "corrupt or truncated image"}.get(exc.code)
        raise ImageError(f"{prefix}: {exc}" if prefix else str(exc)) from None
    width, height = img.size
    if width < MIN_SIDE or height < MIN_SIDE:
        raise ImageError(f"the image is {width}x{height} pixels; PDQ needs at least {MIN_SIDE}x{MIN_SIDE}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img.load()
            array = np.asarray(img.convert("RGB"), dtype=np.uint8)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(f"the image declares more pixels than the limit of {max_pixels:,}; "
                         "downscale it before hashing") from None
    except MemoryError:
        raise ImageError("the image is too large to decode in memory; downscale it before hashing") from None
    except Exception as exc:
        raise ImageError(f"corrupt or truncated image ({type(exc).__name__}); re-encode it and retry") from None
    if array.ndim != 3 or array.shape[2] != 3:  # pragma: no cover - convert("RGB") guarantees it
        raise ImageError(f"unexpected decoded shape {array.shape}")
    return np.ascontiguousarray(array)


# -- hashing -----------------------------------------------------------------------------------
def _pdqhash() -> Any:
    try:
        import pdqhash
    except ImportError as exc:
        raise MissingDependency("PDQ hashing needs the 'pdqhash' package: pip install 'warden[hashing]'") from exc
    return pdqhash


def _check_array(rgb: np.ndarray) -> np.ndarray:
    arr = np.asarray(rgb)
    if arr.ndim == 2:  # grayscale: PDQ reads luminance, so repeating the channel is exact
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ImageError(f"expected an (H, W, 3) RGB array, got shape {arr.shape}")
    if arr.shape[0] < MIN_SIDE or arr.shape[1] < MIN_SIDE:
        raise ImageError(f"the image is {arr.shape[1]}x{arr.shape[0]} pixels; PDQ needs at least "
                         f"{MIN_SIDE}x{MIN_SIDE}")
    return np.ascontiguousarray(arr, dtype=np.uint8)


def pdq_from_array(rgb: np.ndarray) -> PdqHash:
    vector, quality = _pdqhash().compute(_check_array(rgb))
    return PdqHash(hex=bits_to_hex(vector), quality=int(quality))


def dihedral_from_array(rgb: np.ndarray) -> DihedralHashes:
    vectors, quality = _pdqhash().compute_dihedral(_check_array(rgb))
    hashes = tuple(bits_to_hex(v) for v in vectors)
    if len(hashes) != len(DIHEDRAL_VARIANTS):  # pragma: no cover - pdqhash's contract
        raise RuntimeError(f"pdqhash.compute_dihedral returned {len(hashes)} hashes, expected 8")
    return DihedralHashes(hashes=hashes, quality=int(quality))


def _pixel_variants(rgb: np.ndarray) -> list[np.ndarray]:
    """The 8 transforms whose *inverse* maps each of pdqhash's dihedral variants back: hashing
    them gives, per variant, the plain hash of the image transformed in pixel space."""
    r90 = np.rot90(rgb, 1)
    return [rgb, r90, np.rot90(rgb, 2), np.rot90(rgb, 3), rgb[::-1], rgb[:, ::-1], r90[::-1], r90[:, ::-1]]


def dihedral_pixels_from_array(rgb: np.ndarray) -> DihedralHashes:
    """Like `dihedral_from_array`, but each variant is the plain PDQ hash of the image rotated or
    mirrored in pixel space (8 full hashes, about 7x the time). pdqhash derives its variants from
    the DCT of one downsampled image, whose filter is not mirror-symmetric: an exact mirror or
    rotation of an image can land 10-50 bits from its variant. In pixel space an exact
    mirror/rotation of a banked image matches at distance 0."""
    arr = _check_array(rgb)
    hashes, quality = [], 0
    for i, variant in enumerate(_pixel_variants(arr)):
        h = pdq_from_array(np.ascontiguousarray(variant))
        hashes.append(h.hex)
        quality = h.quality if i == 0 else quality
    return DihedralHashes(hashes=tuple(hashes), quality=quality)


def pdq_from_bytes(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> PdqHash:
    return pdq_from_array(decode_image(data, max_pixels=max_pixels))


def compute_dihedral(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> DihedralHashes:
    """The 8 dihedral PDQ hashes of an encoded image (PNG, JPEG, ...)."""
    return dihedral_from_array(decode_image(data, max_pixels=max_pixels))


__all__ = [
    "DEFAULT_MAX_DISTANCE",
    "DEFAULT_MAX_PIXELS",
    "DIHEDRAL_VARIANTS",
    "IMAGE_FORMATS",
    "MIN_QUALITY",
    "PDQ_BITS",
    "PDQ_HEX_CHARS",
    "DihedralHashes",
    "ImageError",
    "MissingDependency",
    "PdqHash",
    "bits_to_hex",
    "codes_to_hex",
    "compute_dihedral",
    "decode_image",
    "dihedral_from_array",
    "dihedral_pixels_from_array",
    "hamming",
    "hex_to_codes",
    "pdq_from_array",
    "pdq_from_bytes",
    "validate_pdq_hex",
]
