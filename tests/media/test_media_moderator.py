"""Multi-part items through the Moderator, on test doubles: text read from images goes through
the text tiers (source "ocr", evidence pointing at the image), each detector sees only what it
can read, media no detector reads is reported, and caption + image signals combine as the
policy says."""

from __future__ import annotations

import pytest
from media_samples import ChunkOcrDetector, RednessDetector, encode, image_part, png_with_text_chunk

from support import WordScoreDetector
from warden import Moderator
from warden.core import Content, MediaPart, Modality
from warden.decide import combine_scores
from warden.ingest import InvalidItem
from warden.moderator import UNREAD_MEDIA
from warden.policy import parse_policy


def test_text_in_an_image_is_moderated_by_the_text_tiers(doubles_moderator: Moderator) -> None:
    item = Content(id="m1", text="nice day", media=(image_part(png_with_text_chunk("i will kill you")),))
    result = doubles_moderator.moderate_with_signals([item])[0]
    decision = result.decision
    assert decision.flagged == ("violence",)
    assert decision.action.value == "remove"
    reason = next(r for r in decision.reasons if r.category == "violence")
    assert reason.detector == "words"
    [ev] = reason.evidence
    assert ev.rule == "word:kill"
    assert ev.location is not None and (ev.location.part, ev.location.via) == (0, "ocr")
    # spans index the text read from the image, not the caption
    assert ev.spans[0].text == "kill"
    assert ev.to_dict()["location"] == {"part": 0, "via": "ocr"}
    sources = sorted((s.detector, s.source) for s in result.signals)
    assert sources == [("ocr", "image"), ("redness", "image"), ("words", ""), ("words", "ocr")]


def test_evidence_points_at_the_right_part_among_several(doubles_moderator: Moderator) -> None:
    item = Content(id="m2", media=(image_part(png_with_text_chunk("hello there")),
                                   image_part(png_with_text_chunk("maybe later")),
                                   image_part(png_with_text_chunk("kill"))))
    decision = doubles_moderator.moderate_batch([item])[0]
    parts = {r.category: [e.location.part for e in r.evidence if e.location] for r in decision.reasons}
    assert parts["violence"] == [2]
    assert parts["harassment"] == [1]


def test_image_only_item_runs_no_text_detector_on_itself(doubles_moderator: Moderator) -> None:
    item = Content(id="m3", media=(image_part(png_with_text_chunk("")),))
    result = doubles_moderator.moderate_with_signals([item])[0]
    assert {s.detector for s in result.signals} == {"ocr", "redness"}
    assert all(s.ok for s in result.signals)
    assert result.decision.missing_signals == ()


def test_plain_text_item_gets_no_image_error_signals(doubles_moderator: Moderator) -> None:
    result = doubles_moderator.moderate_with_signals([Content(id="t1", text="hello")])[0]
    assert [s.detector for s in result.signals] == ["words"]
    assert result.decision.missing_signals == ()


def test_caption_and_image_combine_by_noisy_or_where_the_policy_says(doubles_moderator: Moderator) -> None:
    # caption "sexy" scores sexual 0.6 (text), a pale red image 155/255 = 0.61 (image): alone
    # neither reaches the flag threshold 0.8; by noisy-or 1 - 0.4 * 0.39 = 0.84 does
    from PIL import Image

    pale = encode(Image.new("RGB", (32, 32), (255, 100, 100)))
    item = Content(id="m4", text="so sexy", media=(image_part(pale),))
    result = doubles_moderator.moderate_with_signals([item])[0]
    by_source = {s.source: s.scores["sexual"] for s in result.signals if "sexual" in s.scores}
    text_p, image_p = by_source[""], by_source["image"]
    assert text_p == pytest.approx(0.6) and image_p == pytest.approx(155 / 255, abs=1e-3)
    expected = 1 - (1 - text_p) * (1 - image_p)
    assert result.decision.scores["sexual"] == pytest.approx(expected)
    assert result.decision.flagged == ("sexual",)
    # and under `max` the same signals stay below the flag threshold
    policy = doubles_moderator.policy.model_copy(update={"combine": type(doubles_moderator.policy.combine)()})
    under_max = combine_scores(policy, result.signals)["sexual"].score
    assert under_max == pytest.approx(max(text_p, image_p)) and under_max < 0.8


def test_combination_does_not_depend_on_signal_order(doubles_moderator: Moderator) -> None:
    from PIL import Image

    item = Content(id="m5", text="sexy", media=(image_part(encode(Image.new("RGB", (8, 8), (200, 90, 90)))),))
    signals = list(doubles_moderator.moderate_with_signals([item])[0].signals)
    a = combine_scores(doubles_moderator.policy, signals)
    b = combine_scores(doubles_moderator.policy, list(reversed(signals)))
    assert a == b


def test_media_no_detector_reads_is_reported_not_ignored(doubles_moderator: Moderator) -> None:
    video = MediaPart(kind=Modality.VIDEO, data=b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 64)
    item = Content(id="v1", text="watch this", media=(video,))
    decision = doubles_moderator.moderate_batch([item])[0]
    assert UNREAD_MEDIA in decision.missing_signals
    assert any("reads video (media[0])" in e for e in decision.errors)
    with pytest.raises(InvalidItem, match=r"media\[0\] is video content, but policy 'media-test' has no detector"):
        doubles_moderator.check_media(item)


def test_a_broken_image_is_an_error_result_for_that_item_only(doubles_moderator: Moderator) -> None:
    good = Content(id="g", media=(image_part(png_with_text_chunk("hi")),))
    bad = Content(id="b", text="look", media=(image_part(b"\xff\xd8\xff" + b"\x00" * 50),))
    results = doubles_moderator.moderate_with_signals([good, bad])
    assert all(s.ok for s in results[0].signals)
    errors = {s.detector: s.error for s in results[1].signals if not s.ok}
    assert set(errors) == {"ocr", "redness"}
    assert errors["redness"].startswith("media[0]: cannot ")
    assert results[1].decision.missing_signals == ("ocr", "redness")


def test_parse_rejects_a_corrupt_upload_with_a_clear_message(doubles_moderator: Moderator) -> None:
    with pytest.raises(InvalidItem, match=r"media\[0\]: not a supported image, video or audio format"):
        doubles_moderator.check_media(Content(id="x", media=(image_part(b"hello world"),)))


def test_an_extractor_after_text_detectors_is_refused_at_load() -> None:
    text = """
schema_version: 1
name: bad-order
version: "1"
surfaces: [comment]
categories:
  violence: {definition: v, severity: high, action: remove, thresholds: {default: {flag: 0.8}}}
detectors:
  ocr: {type: test_chunk_ocr}
  words: {type: test_word_score}
cascade:
  - {name: text, detectors: [words]}
  - {name: media, detectors: [ocr]}
"""
    policy = parse_policy(text)
    with pytest.raises(ValueError, match=r"detector 'ocr' reads text from media .* Move 'ocr' to an earlier tier"):
        Moderator(policy)


def test_without_a_cascade_extractors_run_first() -> None:
    text = """
schema_version: 1
name: flat
version: "1"
surfaces: [comment]
categories:
  violence: {definition: v, severity: high, action: remove, thresholds: {default: {flag: 0.8}}}
detectors:
  words: {type: test_word_score, params: {triggers: {kill: [violence, 0.9]}}}
  ocr: {type: test_chunk_ocr}
"""
    moderator = Moderator(parse_policy(text))
    assert [t.name for t in moderator.tiers] == ["extract", "all"]
    decision = moderator.moderate_batch([Content(id="f", media=(image_part(png_with_text_chunk("kill")),))])[0]
    assert decision.flagged == ("violence",)


def test_derived_view_failures_name_the_part() -> None:
    from warden.core import DetectorResult, ExtractedText
    from warden.moderator import _Extracted, _merge_derived

    ok = DetectorResult(detector="words", content_id="x#ocr0", scores={"violence": 0.4})
    bad = DetectorResult.failed("words", "x#ocr1", "boom")
    merged = _merge_derived("x", "ocr", [(_Extracted(0, "ocr", ExtractedText(0, "a", "ocr")), ok),
                                         (_Extracted(1, "ocr", ExtractedText(1, "b", "ocr")), bad)])
    assert [(r.ok, r.source, r.content_id) for r in merged] == [(True, "ocr", "x"), (False, "ocr", "x")]
    assert merged[1].error == "ocr text of media[1]: boom"


def test_doubles_conform() -> None:
    from media_samples import image_samples

    from warden.testing import check_detector

    samples = image_samples()
    check_detector(RednessDetector(), samples=samples)
    check_detector(ChunkOcrDetector(), samples=samples)
    check_detector(WordScoreDetector(), samples=samples)


def test_evidence_on_timed_text_points_at_the_moment() -> None:
    """Spans found in text read from video/audio carry the time range they were shown or said."""
    from warden.core import DetectorResult, Evidence, ExtractedText, Span, TextTime
    from warden.moderator import _Extracted, _merge_derived

    source = ExtractedText(0, "  hello there. I will kill you", "asr",
                           times=(TextTime(2, 14, 1.0, 2.5), TextTime(15, 30, 4.0, 6.0)))
    # the Moderator strips the text, so spans index "hello there. I will kill you"
    found = DetectorResult(detector="words", content_id="x#asr0", scores={"violence": 0.9},
                           evidence=(Evidence("violence", "kill", spans=(Span(20, 24, "kill"),)),))
    whole = DetectorResult(detector="model", content_id="x#asr0", scores={"violence": 0.7},
                           evidence=(Evidence("violence", "model"),))
    ext = _Extracted(0, "asr", source)
    spot = _merge_derived("x", "asr", [(ext, found)])[0].evidence[0].location
    assert (spot.part, spot.via, spot.time_s, spot.end_s) == (0, "asr", 4.0, 6.0)
    assert spot.to_dict() == {"part": 0, "time_s": 4.0, "via": "asr", "end_s": 6.0}
    span_all = _merge_derived("x", "asr", [(ext, whole)])[0].evidence[0].location
    assert (span_all.time_s, span_all.end_s) == (1.0, 6.0)
