from __future__ import annotations

import numpy as np
import pytest
from hashing_support import need_hashing, png_with_size

from warden.detectors.hashing.pdq import (
    DIHEDRAL_VARIANTS,
    ImageError,
    bits_to_hex,
    compute_dihedral,
    decode_image,
    dihedral_pixels_from_array,
    hamming,
    pdq_from_bytes,
    validate_pdq_hex,
)

need_hashing()

from PIL import Image  # noqa: E402

from warden.testing.images import encode, synthetic_image  # noqa: E402

TRANSPOSES = {
    "flip_left_right": Image.FLIP_LEFT_RIGHT,
    "flip_top_bottom": Image.FLIP_TOP_BOTTOM,
    "rotate_90": Image.ROTATE_90,
    "rotate_180": Image.ROTATE_180,
    "rotate_270": Image.ROTATE_270,
    "transpose": Image.TRANSPOSE,
    "transverse": Image.TRANSVERSE,
}


def test_hex_follows_the_threatexchange_bit_order() -> None:
    bits = np.random.default_rng(1).integers(0, 2, 256)
    expected = f'{int("".join(str(b) for b in bits), 2):064x}'  # python-threatexchange's conversion
    assert bits_to_hex(bits) == expected


def test_validate_pdq_hex() -> None:
    assert validate_pdq_hex(" " + "AB" * 32 + "\n") == "ab" * 32
    for bad in ["", "ab" * 31, "zz" * 32, "ab" * 33, 5]:
        with pytest.raises(ValueError, match="PDQ hash"):
            validate_pdq_hex(bad)


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("name", sorted(TRANSPOSES))
def test_every_flip_and_rotation_matches_through_a_dihedral_variant(seed: int, name: str) -> None:
    img = synthetic_image(seed)
    banked = pdq_from_bytes(encode(img)).hex
    copy = img.transpose(TRANSPOSES[name])
    exact = dihedral_pixels_from_array(np.asarray(copy))
    assert min(hamming(banked, h) for h in exact.hashes) == 0  # pixel-space variants undo it exactly
    fast = compute_dihedral(encode(copy))
    # pdqhash's one-pass variants get close but not exact (its filter is not mirror-symmetric)
    assert min(hamming(banked, h) for h in fast.hashes) <= 60
    # the plain hash of the transformed copy is far away: without the variants it would be missed
    assert hamming(banked, fast.original) > 31


def test_pixel_variants_agree_with_pdqhash_naming() -> None:
    img = synthetic_image(4)
    banked = pdq_from_bytes(encode(img)).hex
    for transpose, variant in [(Image.ROTATE_90, "rotate270"), (Image.FLIP_LEFT_RIGHT, "flip_horizontal"),
                               (Image.FLIP_TOP_BOTTOM, "flip_vertical"), (Image.ROTATE_180, "rotate180")]:
        for hashes in (dihedral_pixels_from_array(np.asarray(img.transpose(transpose))),
                       compute_dihedral(encode(img.transpose(transpose)))):
            best = min(range(8), key=lambda i, h=hashes: hamming(banked, h.hashes[i]))
            assert DIHEDRAL_VARIANTS[best] == variant


def test_dihedral_original_equals_the_plain_hash() -> None:
    data = encode(synthetic_image(7))
    d = compute_dihedral(data)
    assert len(d.hashes) == len(DIHEDRAL_VARIANTS) == 8
    assert d.original == pdq_from_bytes(data).hex
    assert d.quality == pdq_from_bytes(data).quality >= 50


def test_small_edits_stay_within_the_match_distance() -> None:
    img = synthetic_image(11)
    banked = pdq_from_bytes(encode(img)).hex
    assert hamming(banked, pdq_from_bytes(encode(img, "JPEG", quality=60)).hex) <= 31
    assert hamming(banked, pdq_from_bytes(encode(img.resize((128, 128)))).hex) <= 31


def test_distinct_images_are_far_apart() -> None:
    hashes = [pdq_from_bytes(encode(synthetic_image(s))).hex for s in range(20, 30)]
    assert min(hamming(a, b) for i, a in enumerate(hashes) for b in hashes[i + 1:]) > 31


def test_flat_images_have_low_quality() -> None:
    flat = Image.new("RGB", (64, 64), (120, 30, 200))
    assert pdq_from_bytes(encode(flat)).quality < 50


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "LA", "1", "I;16", "CMYK"])
def test_any_pixel_mode_hashes(mode: str) -> None:
    img = synthetic_image(5).convert(mode) if mode != "I;16" else synthetic_image(5).convert("L").convert("I;16")
    fmt = "JPEG" if mode == "CMYK" else "PNG"
    assert len(pdq_from_bytes(encode(img, fmt)).hex) == 64


def test_animated_gif_hashes_its_first_frame() -> None:
    frames = [synthetic_image(s).convert("P") for s in (1, 2)]
    import io

    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:])
    first = pdq_from_bytes(encode(frames[0].convert("RGB"))).hex
    assert hamming(pdq_from_bytes(buf.getvalue()).hex, first) <= 16


@pytest.mark.parametrize(("data", "message"), [
    (b"", "empty"),
    (b"not an image at all", "not a recognized image"),
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "corrupt|not a recognized"),
    (b"%PDF-1.7 not an image", "not a recognized image"),
])
def test_bad_bytes_raise_image_error(data: bytes, message: str) -> None:
    with pytest.raises(ImageError, match=message):
        decode_image(data)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "GIF", "BMP"])
def test_truncated_files_raise_image_error(fmt: str) -> None:
    data = encode(synthetic_image(3), fmt)
    for cut in (len(data) // 3, len(data) // 2, len(data) * 4 // 5):
        with pytest.raises(ImageError):
            decode_image(data[:cut])


@pytest.mark.parametrize(("width", "height"), [(6000, 6000), (10_000, 10_000), (100_000, 100_000), (4, 2**31 - 1)])
def test_huge_declared_dimensions_are_refused_before_decoding(width: int, height: int) -> None:
    with pytest.raises(ImageError, match="pixels"):
        decode_image(png_with_size(width, height))


def test_tiny_images_are_refused() -> None:
    with pytest.raises(ImageError, match="at least"):
        decode_image(encode(Image.new("RGB", (2, 3))))


def test_pixel_limit_is_a_parameter() -> None:
    data = encode(synthetic_image(1))  # 256 x 256
    assert decode_image(data, max_pixels=256 * 256).shape == (256, 256, 3)
    with pytest.raises(ImageError, match="limit is 65,535"):
        decode_image(data, max_pixels=256 * 256 - 1)
