"""What only one provider does: images, Hive levels and projects, Azure blocklists and severity
scales, Perspective spans and languages, OpenAI batching."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest
from provider_cases import CASES, Provider, serve_case

from warden.core import Content, MediaPart, Modality

PNG_NSFW = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16 + b"NSFW"
PNG_SAFE = b"\x89PNG\r\n\x1a\n" + b"\x00" * 20


def _case(name: str):
    return next(c for c in CASES if c.name == name)


@pytest.fixture
def openai(monkeypatch) -> Iterator[Provider]:
    yield from serve_case(_case("openai_moderation"), monkeypatch)


@pytest.fixture
def hive(monkeypatch) -> Iterator[Provider]:
    yield from serve_case(_case("hive"), monkeypatch)


@pytest.fixture
def azure(monkeypatch) -> Iterator[Provider]:
    yield from serve_case(_case("azure_content_safety"), monkeypatch)


@pytest.fixture
def perspective(monkeypatch) -> Iterator[Provider]:
    yield from serve_case(_case("perspective"), monkeypatch)


def test_openai_sends_text_items_together_and_images_as_content_parts(openai: Provider) -> None:
    det = openai.build()
    items = [Content(id="t1", text="I will kill you"), Content(id="t2", text="hello"),
             Content(id="img", text="look at this", media=(MediaPart(kind=Modality.IMAGE, data=PNG_NSFW),)),
             Content(id="url", text="and this", metadata={"image_url": "https://img.example/x.png"})]
    res = det.detect(items)
    assert all(r.ok for r in res), [r.error for r in res]
    assert res[0].scores["violence"] > 0.9 and res[1].scores["violence"] < 0.1
    assert res[2].scores["sexual"] > 0.9 and res[3].scores["sexual"] < 0.1
    bodies = [r.json() for r in openai.server.requests]
    assert bodies[0]["input"] == ["I will kill you", "hello"]
    assert bodies[1]["input"][0] == {"type": "text", "text": "look at this"}
    assert bodies[1]["input"][1]["image_url"]["url"].startswith("data:image/png;base64,")
    assert bodies[2]["input"][1] == {"type": "image_url", "image_url": {"url": "https://img.example/x.png"}}


def test_openai_image_only_item_and_unsupported_image(openai: Provider) -> None:
    det = openai.build()
    ok, bad = det.detect([Content(id="i", media=(MediaPart(kind=Modality.IMAGE, data=PNG_NSFW),)),
                          Content(id="b", media=(MediaPart(kind=Modality.IMAGE, data=b"BM not a png"),))])
    assert ok.ok and ok.scores["sexual"] > 0.9
    assert not bad.ok and "media[0] is not a PNG, JPEG, GIF or WebP image" in bad.error


def test_hive_text_levels_filters_and_unsupported_languages(hive: Provider) -> None:
    det = hive.build()
    res, unsupported = det.detect([Content(id="a", text="you idiot, I will kill you"),
                                   Content(id="b", text="ありがとう")])
    assert res.scores["violence"] == 1.0 and res.scores["harassment"] == 1.0
    assert res.scores["sexual"] == 0.0
    spans = {s.text for e in res.evidence for s in e.spans}
    assert spans == {"idiot"}
    assert unsupported.ok and dict(unsupported.scores) == {}  # level -1: no signal, not "clean"
    forms = sorted(r.form()["text_data"][0] for r in hive.server.requests)  # sent in parallel: any order
    assert forms == ["you idiot, I will kill you", "ありがとう"]
    assert all(r.headers["authorization"] == f"token {hive.key}" for r in hive.server.requests)


def test_hive_text_project_rejects_text_over_its_limit(hive: Provider) -> None:
    (res,) = hive.build().detect([Content(id="a", text="x" * 1025)])
    assert not res.ok and "the Hive text project accepts 1,024 (params.max_chars)" in res.error
    assert hive.server.requests == []


def test_hive_visual_project_scores_images(hive: Provider) -> None:
    det = hive.build(project="visual")
    nsfw = "data:image/png;base64," + base64.b64encode(PNG_NSFW).decode()
    safe = "data:image/png;base64," + base64.b64encode(PNG_SAFE).decode()
    res, text_only = det.detect([Content(id="a", text="caption", metadata={"image_urls": [safe, nsfw]}),
                                 Content(id="b", text="just text")])
    assert res.scores["sexual"] == pytest.approx(0.97)  # the maximum over both images
    assert text_only.ok and dict(text_only.scores) == {}
    assert len(hive.server.requests) == 2 and "url" in hive.server.requests[0].form()


def test_azure_blocklists_and_eight_severity_levels(azure: Provider) -> None:
    det = azure.build(output_type="EightSeverityLevels", blocklist_names=["house"],
                      blocklist_mapping={"house": "spam"})
    (res,) = det.detect([Content(id="a", text="buy followers now or I will kill you")])
    assert res.ok, res.error
    assert res.scores["spam"] == 1.0 and res.scores["violence"] == pytest.approx(round(0.97 * 7) / 7)
    body = azure.server.requests[0].json()
    assert body["blocklistNames"] == ["house"] and body["outputType"] == "EightSeverityLevels"
    assert azure.server.requests[0].query == {"api-version": ["2024-09-01"]}
    with pytest.raises(ValueError, match="blocklist_mapping names 'other', which is not in blocklist_names"):
        azure.build(blocklist_mapping={"other": "spam"})


def test_azure_rejects_text_over_10k_without_a_call(azure: Provider) -> None:
    (res,) = azure.build().detect([Content(id="a", text="x" * 10_001)])
    assert not res.ok and "accepts at most 10,000" in res.error and azure.server.requests == []


def test_azure_images(azure: Provider) -> None:
    (res,) = azure.build().detect([Content(id="a", text="", media=(MediaPart(kind=Modality.IMAGE, data=PNG_NSFW),))])
    assert res.ok and res.scores["sexual"] == 1.0
    (req,) = azure.server.requests
    assert req.path == "/contentsafety/image:analyze" and "content" in req.json()["image"]


def test_perspective_spans_languages_and_key_header(perspective: Provider) -> None:
    det = perspective.build()
    (res,) = det.detect([Content(id="a", text="well you are an idiot", language="en")])
    (ev,) = [e for e in res.evidence if e.category == "harassment"]
    assert [s.text for s in ev.spans] == ["idiot"]
    req = perspective.server.requests[0]
    assert req.headers["x-goog-api-key"] == perspective.key and req.query == {}
    assert req.json()["languages"] == ["en"] and req.json()["doNotStore"] is True
    (unsupported,) = det.detect([Content(id="b", text="hola", language="xx")])
    assert not unsupported.ok and "does not support request languages: xx" in unsupported.error
