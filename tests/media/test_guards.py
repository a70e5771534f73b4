"""Guard rails: hostile and broken files are refused from their headers, quickly, with a
stable code and a message that says what to do; good files decode the same every time."""

from __future__ import annotations

from pathlib import Path

import pytest
from media_samples import SVG, drawing, encode, png_bomb, random_bytes

from warden.core import MediaPart, Modality
from warden.detectors.media.guards import (
    ImageLimits,
    MediaRejected,
    check_image_header,
    decode_image,
    edge_limits,
    load_image,
    read_part,
    sniff,
    validate_part,
)


def _jpeg(size=(640, 480)) -> bytes:

    return encode(drawing().resize(size), "JPEG", quality=90)


@pytest.mark.parametrize(("head", "kind", "fmt"), [
    (b"\xff\xd8\xff\xe0", Modality.IMAGE, "jpeg"),
    (b"\x89PNG\r\n\x1a\n", Modality.IMAGE, "png"),
    (b"GIF89a", Modality.IMAGE, "gif"),
    (b"RIFF\x00\x00\x00\x00WEBPVP8 ", Modality.IMAGE, "webp"),
    (b"\x00\x00\x00\x18ftypisom", Modality.VIDEO, "mp4"),
    (b"\x1a\x45\xdf\xa3", Modality.VIDEO, "webm"),
    (b"RIFF\x00\x00\x00\x00WAVEfmt ", Modality.AUDIO, "wav"),
    (b"OggS\x00", Modality.AUDIO, "ogg"),
    (b"ID3\x04", Modality.AUDIO, "mp3"),
])
def test_sniff_known_formats(head: bytes, kind: Modality, fmt: str) -> None:
    found = sniff(head)
    assert found is not None and (found.kind, found.format) == (kind, fmt)


@pytest.mark.parametrize("head", [b"", SVG, b"%PDF-1.7", b"<html>", b"\x00\x00\x00\x1cftypheic", b"hello"])
def test_sniff_refuses_unsupported(head: bytes) -> None:
    assert sniff(head) is None


def test_decompression_bomb_is_refused_from_the_header() -> None:
    data = png_bomb()
    assert len(data) < 500
    with pytest.raises(MediaRejected) as err:
        check_image_header(data, ImageLimits())
    assert err.value.code == "too_many_pixels"
    assert "10,000,000,000 pixels; the limit is 40,000,000 (max_pixels)" in str(err.value)
    # below Pillow's own limit, the header check states the size
    with pytest.raises(MediaRejected, match=r"12,000x12,000 = 144,000,000 pixels; the limit is 40,000,000"):
        check_image_header(png_bomb(12_000, 12_000), ImageLimits())


def test_pixel_limit_is_a_parameter() -> None:
    data = encode(drawing())  # 640 x 480
    with pytest.raises(MediaRejected, match="307,200 pixels; the limit is 100,000"):
        decode_image(data, ImageLimits(max_pixels=100_000))
    assert decode_image(data, ImageLimits(max_pixels=307_200)).width == 640


@pytest.mark.parametrize(("data", "code", "message"), [
    (b"", "empty", "the file is empty (0 bytes)"),
    (random_bytes(), "unsupported_format", "not a known image format; supported image formats: jpeg, png"),
    (SVG, "unsupported_format", "not a known image format"),
    (b"\xff\xd8\xff" + b"\x00" * 100, "corrupt", "cannot read the jpeg header"),
])
def test_bad_bytes_are_refused(data: bytes, code: str, message: str) -> None:
    part = MediaPart(kind=Modality.IMAGE, data=data)
    with pytest.raises(MediaRejected) as err:
        load_image(part, ImageLimits())
    assert err.value.code == code
    assert message in str(err.value)


def test_truncated_jpeg_is_corrupt_not_a_crash() -> None:
    data = _jpeg((1200, 900))
    with pytest.raises(MediaRejected) as err:
        decode_image(data[: len(data) // 3], ImageLimits())
    assert err.value.code == "corrupt"
    assert "cannot decode the jpeg data" in str(err.value)


def test_formats_outside_the_allow_list_are_refused() -> None:
    data = encode(drawing(), "BMP")
    with pytest.raises(MediaRejected, match="bmp images are not accepted; supported: png"):
        decode_image(data, ImageLimits(formats=("png",)))


def test_size_limit_is_checked_before_reading_a_path(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    path.write_bytes(encode(drawing()))
    part = MediaPart(kind=Modality.IMAGE, path=str(path))
    with pytest.raises(MediaRejected) as err:
        read_part(part, max_bytes=100)
    assert err.value.code == "too_large" and "the limit is 100 (max_bytes)" in str(err.value)
    assert read_part(part, max_bytes=10 * 1024 * 1024) == path.read_bytes()
    with pytest.raises(MediaRejected, match="file not found"):
        read_part(MediaPart(kind=Modality.IMAGE, path=str(tmp_path / "nope.png")), max_bytes=100)
    with pytest.raises(MediaRejected, match="is not a regular file"):
        read_part(MediaPart(kind=Modality.IMAGE, path=str(tmp_path)), max_bytes=100)


def test_jpeg_reduced_decoding_keeps_displayed_coordinates() -> None:
    data = _jpeg((2000, 1500))
    full = decode_image(data, ImageLimits())
    small = decode_image(data, ImageLimits(), reduce_to=320)
    assert (full.width, full.height) == (small.width, small.height) == (2000, 1500)
    assert small.image.width < 2000 and small.image.width >= 320
    assert small.scale == pytest.approx(2000 / small.image.width)


def test_transparency_is_composited_on_white_and_exif_rotation_applied() -> None:
    from PIL import Image

    rgba = Image.new("RGBA", (10, 6), (0, 0, 0, 0))
    out = decode_image(encode(rgba), ImageLimits())
    assert out.image.mode == "RGB" and out.image.getpixel((0, 0)) == (255, 255, 255)
    rotated = Image.new("RGB", (40, 20), (10, 20, 30))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    out = decode_image(encode(rotated, "JPEG", exif=exif), ImageLimits())
    assert (out.width, out.height) == (20, 40)


def test_validate_part_checks_the_declared_kind() -> None:
    video = MediaPart(kind=Modality.VIDEO, data=encode(drawing()))
    with pytest.raises(MediaRejected) as err:
        validate_part(video, ImageLimits())
    assert err.value.code == "kind_mismatch" and "the file is png (image), not video" in str(err.value)
    assert validate_part(MediaPart(kind=Modality.IMAGE, data=encode(drawing())), ImageLimits()).format == "png"


def test_edge_limits_are_the_loosest() -> None:
    a = ImageLimits(max_bytes=10, max_pixels=100, formats=("png",))
    b = ImageLimits(max_bytes=5, max_pixels=1000, formats=("jpeg", "png"))
    got = edge_limits([a, b])
    assert (got.max_bytes, got.max_pixels, got.formats) == (10, 1000, ("png", "jpeg"))
    assert edge_limits([]) == ImageLimits()


def test_animated_gif_reads_the_first_frame_only() -> None:
    from PIL import Image

    frames = [Image.new("RGB", (20, 20), c) for c in ((255, 0, 0), (0, 255, 0))]
    buf = encode(frames[0], "GIF", save_all=True, append_images=frames[1:])
    out = decode_image(buf, ImageLimits())
    r, g, _ = out.image.getpixel((5, 5))
    assert r > 200 and g < 50
