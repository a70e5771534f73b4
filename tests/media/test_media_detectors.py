"""The real image detectors (NudeNet, Open NSFW, Tesseract) and the media policy end to end.

Needs `warden[media]` (+ scikit-image) and Debian's tesseract-ocr: skipped with a reason
locally when absent, a failure in CI. Test images are generated or are scikit-image's safe
photographs; no unsafe image exists anywhere in the repository, so "flags nudity" is shown on
the model's own terms (boxes found on a photo are mapped by the documented weights) rather
than on explicit material.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from media_samples import (
    MEDIA_POLICY,
    SAFE_PHOTOS,
    drawing,
    encode,
    image_part,
    image_samples,
    meme,
    need_media_extra,
    need_tesseract,
    safe_photo_jpeg,
    text_image,
)

from warden.core import DEFAULT_CATEGORIES, Content
from warden.detectors.base import DetectorContext
from warden.testing import check_detector

CONTEXT = DetectorContext(base_dir=MEDIA_POLICY.parent, categories=DEFAULT_CATEGORIES)


def _build(type_name: str, **params):
    from warden.detectors import registry

    return registry.get(type_name).from_config(params, instance=type_name, context=CONTEXT)


@pytest.fixture(scope="module")
def nudity():
    need_media_extra()
    return _build("nudenet_nudity")


@pytest.fixture(scope="module")
def nsfw():
    need_media_extra()
    return _build("open_nsfw")


@pytest.fixture(scope="module")
def ocr():
    need_tesseract()
    return _build("tesseract_ocr")


@pytest.fixture(scope="module")
def media_moderator():
    need_tesseract()
    from warden import Moderator

    return Moderator.from_file(MEDIA_POLICY)


def test_nudity_conforms(nudity) -> None:
    check_detector(nudity, samples=image_samples())


def test_nsfw_conforms(nsfw) -> None:
    check_detector(nsfw, samples=image_samples())


def test_ocr_conforms(ocr) -> None:
    check_detector(ocr, samples=image_samples())


@pytest.mark.parametrize("photo", SAFE_PHOTOS)
def test_safe_photos_are_not_sexual(nudity, nsfw, photo: str) -> None:
    item = Content(id=photo, media=(image_part(safe_photo_jpeg(photo)),))
    for det in (nudity, nsfw):
        [res] = det.detect([item])
        assert res.ok, res.error
        assert res.source == "image"
        assert res.scores["sexual"] < 0.1, (det.instance, photo, res.scores, res.evidence)


@pytest.mark.parametrize("photo", SAFE_PHOTOS)
def test_nudity_boxes_equal_nudenets_own_detector(nudity, photo: str) -> None:
    from nudenet import NudeDetector

    data = safe_photo_jpeg(photo)
    theirs = sorted((d["class"], round(d["score"], 5), tuple(d["box"])) for d in NudeDetector().detect(data))
    mine = nudity._score([nudity._load(Content(id=photo, media=(image_part(data),)))[0].image])[0]
    assert sorted((b.label, round(b.score, 5), (b.box.x, b.box.y, b.box.width, b.box.height)) for b in mine) == theirs


def test_nudity_boxes_map_to_sexual_by_the_documented_weights(nudity) -> None:
    from warden.detectors.media.nudity import DEFAULT_WEIGHTS, NUDENET_LABELS

    assert set(DEFAULT_WEIGHTS) <= set(NUDENET_LABELS)
    assert all(label.endswith("_EXPOSED") for label in DEFAULT_WEIGHTS)
    # the astronaut photo has a face: found by the model, but faces never count towards `sexual`
    item = Content(id="a", media=(image_part(safe_photo_jpeg("astronaut")),))
    raw = nudity._score([nudity._load(item)[0].image])[0]
    assert any(b.label.startswith("FACE_") for b in raw), raw
    face = next(b for b in raw if b.label.startswith("FACE_"))
    assert 0 <= face.box.x < 512 and 0 <= face.box.y < 512 and face.box.width > 20
    # counting faces (for the sake of the test) turns them into `sexual` evidence with boxes
    counting = _build("nudenet_nudity", labels={face.label: 0.5})
    [res] = counting.detect([item])
    assert res.scores["sexual"] == pytest.approx(0.5 * face.score, abs=1e-4)
    [ev] = [e for e in res.evidence if e.rule == f"nudenet:{face.label}"]
    assert ev.location is not None and ev.location.part == 0 and ev.location.box == face.box
    assert ev.to_dict()["location"]["box"] == {"x": face.box.x, "y": face.box.y, "width": face.box.width,
                                               "height": face.box.height}


def test_nudity_boxes_are_in_displayed_pixels_at_any_scale(nudity) -> None:
    from media_samples import safe_photo_array
    from PIL import Image

    photo = Image.fromarray(safe_photo_array("astronaut"))
    big = photo.resize((1536, 1536))
    boxes = {}
    for name, im in (("small", photo), ("big", big)):
        item = Content(id=name, media=(image_part(encode(im, "JPEG", quality=92)),))
        boxes[name] = next(b for b in nudity._score([nudity._load(item)[0].image])[0] if b.label.startswith("FACE_"))
    small, large = boxes["small"].box, boxes["big"].box
    assert abs(large.x - 3 * small.x) <= 12 and abs(large.width - 3 * small.width) <= 12


def test_nudity_rejects_unknown_labels() -> None:
    need_media_extra()
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="unknown NudeNet label 'NAKED'"):
        _build("nudenet_nudity", labels={"NAKED": 1.0})


def test_ocr_reads_meme_text(ocr) -> None:
    item = Content(id="m", media=(image_part(encode(meme("I will kill you"))),
                                  image_part(encode(text_image("Have a nice day")))))
    [res] = ocr.detect([item])
    assert res.ok and res.scores == {}
    texts = {t.part: t.text.lower() for t in res.texts}
    assert "kill you" in texts[0]
    assert "nice day" in texts[1]
    assert all(t.via == "ocr" and 0 < (t.confidence or 0) <= 1 for t in res.texts)


def test_ocr_finds_nothing_in_a_drawing(ocr) -> None:
    [res] = ocr.detect([Content(id="d", media=(image_part(encode(drawing())),))])
    assert res.ok and res.texts == ()


def test_ocr_missing_language_pack_is_a_clear_error() -> None:
    need_tesseract()
    with pytest.raises(ValueError, match=r"pack\(s\) xxx not installed .* apt-get install -y tesseract-ocr-xxx"):
        _build("tesseract_ocr", languages=["xxx"])


def test_meme_threat_is_flagged_through_the_text_tiers(media_moderator) -> None:
    """The meme is decided like the same words posted as a comment, with evidence on the image."""
    item = Content(id="meme-1", media=(image_part(encode(meme("I will kill you"))),))
    decision = media_moderator.moderate_batch([item])[0]
    as_text = media_moderator.moderate_batch([Content(id="text-1", text="I will kill you")])[0]
    assert {"violence", "hate/threatening", "harassment/threatening"} & set(decision.flagged), decision.to_dict()
    assert decision.flagged == as_text.flagged and decision.action == as_text.action
    for reason in decision.reasons:
        assert reason.evidence and all(e.location is not None and (e.location.part, e.location.via) == (0, "ocr")
                                       for e in reason.evidence)
    assert any(e.spans and "kill" in e.spans[0].text.lower() for r in decision.reasons for e in r.evidence)


def test_benign_post_with_photo_is_allowed(media_moderator) -> None:
    item = Content(id="post-1", text="Morning coffee before work", surface="profile",
                   media=(image_part(safe_photo_jpeg("coffee")), image_part(encode(drawing()))))
    decision = media_moderator.moderate_batch([item])[0]
    assert decision.action.value == "allow", decision.to_dict()
    assert decision.missing_signals == ()
    assert decision.scores["sexual"] < 0.5


def test_caption_and_image_signals_combine(media_moderator) -> None:
    """`sexual` combines the caption's and the images' scores by noisy-or (policies/media.yaml);
    other categories keep the maximum."""
    item = Content(id="c1", text="Send me nudes right now", media=(image_part(safe_photo_jpeg("coffee")),))
    result = media_moderator.moderate_with_signals([item])[0]
    per_source: dict[str, float] = {}
    for s in result.signals:
        if s.ok and "sexual" in s.scores:
            src = s.source or "text"
            per_source[src] = max(per_source.get(src, 0.0), s.scores["sexual"])
    assert {"text", "image"} <= set(per_source)  # and "ocr" when Tesseract reads anything in the photo
    clear = 1.0
    for p in per_source.values():
        clear *= 1 - p
    expected = 1 - clear
    assert result.decision.scores["sexual"] == pytest.approx(expected, abs=1e-6)
    assert result.decision.scores["sexual"] > max(per_source.values())


def test_media_policy_categories_match_the_default_policy() -> None:
    import yaml

    media = yaml.safe_load(MEDIA_POLICY.read_text(encoding="utf-8"))
    default = yaml.safe_load((MEDIA_POLICY.parent / "default.yaml").read_text(encoding="utf-8"))
    assert media["categories"] == default["categories"], "policies/media.yaml drifted from default.yaml"
    for key in ("surfaces", "review", "enforcement"):
        assert media[key] == default[key], key


def test_no_model_download_at_run_time(tmp_path: Path, monkeypatch) -> None:
    """Models load from the installed wheels with the network unusable and HOME empty."""
    need_media_extra()
    import socket

    def no_network(*args, **kwargs):
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setenv("HOME", str(tmp_path))
    for name in ("nudenet_nudity", "open_nsfw"):
        det = _build(name)
        [res] = det.detect([Content(id="x", media=(image_part(safe_photo_jpeg("rocket")),))])
        assert res.ok, res.error
