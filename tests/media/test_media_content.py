"""The content model for media and the shared input parsing of media references."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from media_samples import drawing, encode

from warden.core import Content, MediaPart, Modality
from warden.ingest import MAX_MEDIA_PARTS, InvalidItem, parse_item, parse_media_refs


def test_media_part_validation() -> None:
    part = MediaPart(kind="image", data=b"abc")
    assert part.kind is Modality.IMAGE and part.size == 3
    assert "3 bytes" in repr(part) and "abc" not in repr(part)
    with pytest.raises(ValueError, match="exactly one of"):
        MediaPart(kind=Modality.IMAGE)
    with pytest.raises(ValueError, match="exactly one of"):
        MediaPart(kind=Modality.IMAGE, data=b"x", path="/x")
    with pytest.raises(ValueError, match="must be one of image, video, audio"):
        MediaPart(kind=Modality.TEXT, data=b"x")
    with pytest.raises(ValueError, match="must be one of image, video, audio"):
        MediaPart(kind="pdf", data=b"x")
    with pytest.raises(TypeError, match="must be bytes"):
        MediaPart(kind=Modality.IMAGE, data="text")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="non-negative integer"):
        MediaPart(kind=Modality.IMAGE, path="/x", size=-1)


def test_content_modalities_and_parts() -> None:
    img = MediaPart(kind=Modality.IMAGE, path="/a.png")
    vid = MediaPart(kind=Modality.VIDEO, path="/b.mp4")
    c = Content(id="p", text="caption", media=[img, vid, img])  # type: ignore[arg-type]
    assert isinstance(c.media, tuple)
    assert c.modalities == {Modality.TEXT, Modality.IMAGE, Modality.VIDEO}
    assert c.part_indices(Modality.IMAGE) == (0, 2)
    assert Content(id="q", media=(img,)).modalities == {Modality.IMAGE}
    with pytest.raises(TypeError, match=r"Content.media\[0\] must be a MediaPart"):
        Content(id="r", media=("x.png",))  # type: ignore[arg-type]
    with pytest.raises(AttributeError):
        c.media = ()  # type: ignore[misc]


def test_parse_media_paths_relative_to_root(tmp_path: Path) -> None:
    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs" / "a.png").write_bytes(encode(drawing()))
    (tmp_path / "b.JPG").write_bytes(b"x")
    parts = parse_media_refs(["imgs/a.png", {"path": "b.JPG"}, {"path": "imgs/a.png", "kind": "image"}],
                             root=tmp_path)
    assert [p.kind for p in parts] == [Modality.IMAGE] * 3
    assert parts[0].path == str(tmp_path / "imgs" / "a.png")
    assert parts[0].size == (tmp_path / "imgs" / "a.png").stat().st_size
    assert parts[1].name == "b.JPG"
    # one path, and a JSON array in a CSV cell
    assert len(parse_media_refs("imgs/a.png", root=tmp_path)) == 1
    assert len(parse_media_refs(json.dumps(["imgs/a.png", "b.JPG"]), root=tmp_path)) == 2


@pytest.mark.parametrize(("value", "message"), [
    ("missing.png", r"media\[0\]: file not found: .*missing.png \(relative paths resolve against"),
    ("notes.txt", r"media\[0\]: cannot tell the media kind of 'notes.txt' from its extension"),
    ([{"path": "a.png", "kind": "text"}], r"media\[0\]: kind must be image, video or audio, got 'text'"),
    ([{"path": "a.png", "colour": 1}], r"media\[0\]: unknown keys \['colour'\]"),
    ([3], r"media\[0\]: a file path must be a non-empty string, got a number"),
    (["a.png", ""], r"media\[1\]: a file path must be a non-empty string"),
    (7, r"'media' must be a file path or a list of file paths, got a number"),
    ("[not json", r"'media' looks like a JSON array but is not valid JSON"),
    (["a.png"] * (MAX_MEDIA_PARTS + 1), rf"'media' lists {MAX_MEDIA_PARTS + 1} files; the limit is {MAX_MEDIA_PARTS}"),
])
def test_bad_media_refs_are_exact_errors(tmp_path: Path, value: object, message: str) -> None:
    (tmp_path / "a.png").write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(InvalidItem, match=message) as err:
        parse_media_refs(value, root=tmp_path)
    assert err.value.field == "media"


def test_parse_item_with_media(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(b"x")
    item = parse_item({"id": "p1", "media": "a.png"}, media_root=tmp_path)
    assert item.text is None and len(item.media) == 1
    item = parse_item({"id": "p2", "text": "caption", "media": ["a.png"]}, media_root=tmp_path)
    assert item.text == "caption"
    # an empty CSV cell / empty list is "no media"
    assert parse_item({"text": "t", "media": ""}).media == ()
    assert parse_item({"text": "t", "media": []}).media == ()
    uploaded = MediaPart(kind=Modality.IMAGE, data=b"x")
    assert parse_item({"text": None}, media=[uploaded]).media == (uploaded,)


def test_parse_item_media_errors(tmp_path: Path) -> None:
    with pytest.raises(InvalidItem, match="'media' file paths are read only from files given to `warden classify`"):
        parse_item({"text": "t", "media": "/etc/passwd"})
    with pytest.raises(InvalidItem, match="missing required field 'text'"):
        parse_item({"id": "x"})
    with pytest.raises(InvalidItem, match="'text' must be a string, got null"):
        parse_item({"text": None})
    with pytest.raises(InvalidItem, match="'text' must be a string, got a number"):
        parse_item({"text": 5}, media=[MediaPart(kind=Modality.IMAGE, data=b"x")])
    many = [MediaPart(kind=Modality.IMAGE, data=b"x")] * (MAX_MEDIA_PARTS + 1)
    with pytest.raises(InvalidItem, match=f"the item has {MAX_MEDIA_PARTS + 1} media parts; the limit is"):
        parse_item({"text": "t"}, media=many)
