"""POST /v1/moderate/media: multipart uploads, every bad file a 4xx with our error shape
(never a 500, never a hang), and a property-based fuzz of the route."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from media_samples import SVG, drawing, encode, png_bomb, png_with_text_chunk, random_bytes, safe_photo_jpeg

from warden import Moderator
from warden.service import ServiceSettings, create_app
from warden.store import Store

ROUTE = "/v1/moderate/media"


def _app(moderator: Moderator, tmp_path: Path, **limits: int) -> tuple[TestClient, str]:
    store = Store.from_url(f"sqlite:///{tmp_path / 'media.db'}")
    store.upgrade()
    _, key = store.create_api_key("media", "client")
    cfg = ServiceSettings(max_text_chars=1000, **limits)
    return TestClient(create_app(moderator=moderator, store=store, settings=cfg), raise_server_exceptions=False), key


@pytest.fixture
def api(doubles_moderator: Moderator, tmp_path: Path) -> Iterator[tuple[TestClient, dict[str, str]]]:
    client, key = _app(doubles_moderator, tmp_path)
    with client:
        yield client, {"Authorization": f"Bearer {key}"}


def _error(resp, status: int, code: str) -> dict:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error"} and body["error"]["code"] == code, body
    return body["error"]


def test_caption_and_image_moderated_together(api) -> None:
    client, headers = api
    resp = client.post(ROUTE, headers=headers, data={"id": "post-1", "text": "look at this", "surface": "profile"},
                       files=[("media", ("meme.png", png_with_text_chunk("i will kill you"), "image/png"))])
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert (body["id"], body["surface"], body["flagged"], body["action"]) == ("post-1", "profile", ["violence"],
                                                                              "remove")
    [reason] = [r for r in body["reasons"] if r["category"] == "violence"]
    assert reason["evidence"][0]["location"] == {"part": 0, "via": "ocr"}
    # stored like any decision (evidence keeps its location, not the matched text)
    stored = client.get(f"/v1/decisions/{body['decision_id']}", headers=headers).json()
    ev = stored["reasons"][0]["evidence"][0]
    assert ev["location"] == {"part": 0, "via": "ocr"} and "text" not in ev["spans"][0]


def test_image_only_and_several_images(api) -> None:
    client, headers = api
    files = [("media", ("a.jpg", safe_photo_jpeg("coffee"), "image/jpeg")),
             ("media", ("b.webp", encode(drawing(), "WEBP"), "image/webp"))]
    resp = client.post(ROUTE, headers=headers, files=files)
    assert resp.status_code == 200, resp.text
    assert resp.json()["action"] == "allow" and resp.json()["missing_signals"] == []


@pytest.mark.parametrize(("data", "status", "code", "message"), [
    (png_bomb(), 422, "invalid_media", "media[0] (f.bin): the image has 10,000,000,000 pixels"),
    (b"", 422, "invalid_media", "media[0] (f.bin) is empty (0 bytes)"),
    (random_bytes(), 415, "unsupported_media_type", "is not a supported image, video or audio file"),
    (SVG, 415, "unsupported_media_type", "(declared content type image/png)"),
    (b"\xff\xd8\xff" + b"\x00" * 100, 422, "invalid_media", "cannot read the jpeg header"),
    (safe_photo_jpeg("coffee")[:5000], 422, "invalid_media", "cannot decode the jpeg data"),
    (b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 100, 422, "unsupported_media_kind",
     "is video content, but the policy has no detector that reads video"),
])
def test_bad_files_are_4xx(api, data: bytes, status: int, code: str, message: str) -> None:
    client, headers = api
    resp = client.post(ROUTE, headers=headers, data={"text": "hi"}, files=[("media", ("f.bin", data, "image/png"))])
    err = _error(resp, status, code)
    assert message in err["message"]


def test_request_shape_errors(api) -> None:
    client, headers = api
    png = ("a.png", encode(drawing()), "image/png")
    err = _error(client.post(ROUTE, headers=headers, json={"text": "x"}), 415, "unsupported_media_type")
    assert "send multipart/form-data" in err["message"]
    err = _error(client.post(ROUTE, headers=headers, data={"text": "x"}, files=[("other", png)]), 422,
                 "invalid_request")
    assert err["message"].startswith("unknown form field 'other'; allowed: id, text")
    err = _error(client.post(ROUTE, headers=headers, files=[("media", (None, b"notafile"))]), 422,
                 "invalid_request")
    assert "'media' must be a file part" in err["message"]
    err = _error(client.post(ROUTE, headers=headers, files=[("text", png)]), 422, "invalid_request")
    assert "'text' must be a text field" in err["message"]
    err = _error(client.post(ROUTE, headers=headers, data={"surface": "nope"}, files=[("media", png)]), 422,
                 "invalid_item")
    assert "unknown surface 'nope'" in err["message"]
    err = _error(client.post(ROUTE, headers=headers, data={"text": "x" * 1001}, files=[("media", png)]), 422,
                 "text_too_long")
    err = _error(client.post(ROUTE, headers=headers, data={"metadata": "[1"}, files=[("media", png)]), 422,
                 "invalid_item")
    err = _error(client.post(ROUTE, headers=headers, data={"reach": "-3"}, files=[("media", png)]), 422,
                 "invalid_item")
    err = _error(client.post(ROUTE, headers=headers, files=[("media", png)] * 17), 400, "malformed_multipart")
    assert "Too many files" in err["message"]
    resp = client.post(ROUTE, headers={**headers, "content-type": "multipart/form-data; boundary=zzz"},
                       content=b"--zzz\r\ngarbage")
    # python-multipart reads an unterminated body as an empty form: no file under 'media'
    assert (resp.status_code, resp.json()["error"]["code"]) in ((400, "malformed_multipart"), (422, "invalid_request"))
    assert client.post(ROUTE, files=[("media", png)]).status_code == 401


def test_body_limit_for_uploads(doubles_moderator: Moderator, tmp_path: Path) -> None:
    client, key = _app(doubles_moderator, tmp_path, max_media_body_bytes=50_000)
    with client:
        resp = client.post(ROUTE, headers={"Authorization": f"Bearer {key}"},
                           files=[("media", ("big.jpg", safe_photo_jpeg("astronaut"), "image/jpeg"))])
        _error(resp, 413, "body_too_large")
        # JSON moderation keeps its own (smaller) limit
        assert client.post("/v1/moderate", headers={"Authorization": f"Bearer {key}"},
                           json={"text": "x" * 3_000_000}).status_code == 413


def test_json_route_refuses_media_paths(api) -> None:
    client, headers = api
    err = _error(client.post("/v1/moderate", headers=headers, json={"text": "x", "media": "/etc/passwd"}), 422,
                 "invalid_item")
    assert "upload images with POST /v1/moderate/media" in err["message"]


def test_openapi_documents_the_upload_route(api) -> None:
    client, _ = api
    spec = client.get("/openapi.json").json()
    body = spec["paths"][ROUTE]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert body["required"] == ["media"] and body["properties"]["media"]["items"]["format"] == "binary"


# -- fuzz ----------------------------------------------------------------------------------

_state: dict = {}

_payloads = st.one_of(
    st.binary(max_size=2000),
    st.sampled_from([png_bomb(), SVG, b"", encode(drawing().resize((40, 30))), png_with_text_chunk("kill")]),
    st.builds(lambda d, cut: d[:cut], st.just(safe_photo_jpeg("chelsea")), st.integers(0, 20_000)),
)
_fields = st.dictionaries(st.sampled_from(["id", "text", "surface", "actor_id", "language", "metadata", "reach",
                                           "bogus"]), st.text(max_size=40), max_size=4)
_files = st.lists(st.tuples(st.sampled_from(["media", "media", "text", "other"]),
                            st.text(max_size=20), _payloads,
                            st.sampled_from(["image/png", "image/jpeg", "application/octet-stream", "text/plain"])),
                  max_size=3)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fields=_fields, files=_files)
def test_fuzz_upload_never_500(doubles_policy_path: Path, tmp_path_factory, fields, files) -> None:
    if "client" not in _state:
        client, key = _app(Moderator.from_file(doubles_policy_path), tmp_path_factory.mktemp("fuzz"),
                           max_media_body_bytes=64 * 1024)
        _state.update(client=client, headers={"Authorization": f"Bearer {key}"})
    client, headers = _state["client"], _state["headers"]
    resp = client.post(ROUTE, headers=headers, data=fields,
                       files=[(name, (fn or "f", data, ctype)) for name, fn, data, ctype in files] or None)
    assert resp.status_code < 500, resp.text
    body = resp.json()
    if resp.status_code >= 400:
        assert set(body) == {"error"} and {"code", "message", "details"} == set(body["error"])
    else:
        assert "decision_id" in body


@given(raw=st.binary(max_size=3000), boundary=st.sampled_from(["b", "zzz", "-" * 70]))
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_fuzz_raw_multipart_bodies_never_500(doubles_policy_path: Path, tmp_path_factory, raw: bytes,
                                             boundary: str) -> None:
    if "client" not in _state:
        client, key = _app(Moderator.from_file(doubles_policy_path), tmp_path_factory.mktemp("fuzz"),
                           max_media_body_bytes=64 * 1024)
        _state.update(client=client, headers={"Authorization": f"Bearer {key}"})
    client, headers = _state["client"], _state["headers"]
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"media\"; filename=\"x\"\r\n\r\n").encode() + raw
    resp = client.post(ROUTE, headers={**headers, "content-type": f"multipart/form-data; boundary={boundary}"},
                       content=body)
    assert resp.status_code < 500, resp.text
