"""`/v1/hashes/*`: lookups by hash and by upload, bank management, roles, and bad input
(hypothesis fuzzing of the upload): never a 500."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient
from hashing_support import need_hashing, png_with_size
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from warden.service import ServiceSettings, create_app
from warden.store import Store

need_hashing()

from PIL import Image  # noqa: E402

from warden.detectors.hashing.images import hash_image  # noqa: E402
from warden.testing.images import encode, synthetic_image  # noqa: E402

BANKED = synthetic_image(21)
BANKED_PNG = encode(BANKED)
JPEG = encode(synthetic_image(22), "JPEG", quality=80)


class _Moderator:
    policy = SimpleNamespace(name="t", version="1", surfaces=("comment",),
                             categories={"violence": None, "sexual/minors": None, "hate": None})

    def moderate_batch(self, items):  # pragma: no cover - not used by these routes
        raise AssertionError("not called")


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, dict[str, str]]]:
    store = Store.from_url(f"sqlite:///{tmp_path_factory.mktemp('hashapi') / 'h.db'}")
    store.upgrade()
    keys = {role: store.create_api_key(f"k-{role}", role)[1] for role in ("client", "reviewer", "admin")}
    app = create_app(moderator=_Moderator(), store=store, settings=ServiceSettings(max_body_bytes=256 * 1024))
    with TestClient(app, raise_server_exceptions=False) as client:
        h = {r: {"Authorization": f"Bearer {k}"} for r, k in keys.items()}
        r = client.post("/v1/hashes/banks", headers=h["admin"], json={"name": "known", "category": "violence",
                                                                       "action": "escalate", "report": True})
        assert r.status_code == 201, r.text
        r = client.post("/v1/hashes/banks/known/hashes", headers=h["admin"],
                        files={"image": ("banked.png", BANKED_PNG, "image/png")}, data={"source": "case-7"})
        assert r.status_code == 201, r.text
        yield client, h
    store.close()


def test_lookup_by_upload_matches_a_rotated_copy(env) -> None:
    client, h = env
    rotated = encode(BANKED.transpose(Image.ROTATE_90), "JPEG", quality=75)
    r = client.post("/v1/hashes/lookup", headers=h["client"], files={"image": ("x.jpg", rotated, "image/jpeg")},
                    data={"exact_dihedral": "true"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["matched"] and body["categories"] == ["violence"]
    assert body["action"] == "escalate" and body["report"] is True
    (m,) = body["matches"]
    assert m["bank"] == "known" and m["signal_type"] == "pdq" and m["variant"] not in (None, "original")
    assert m["distance"] <= 31 and isinstance(m["hash_id"], int)
    assert len(body["hashes"]["pdq"]) == 64 and body["pdq_skipped"] is None


def test_lookup_by_hash(env) -> None:
    client, h = env
    banked = hash_image(BANKED_PNG)
    r = client.post("/v1/hashes/lookup", headers=h["admin"], json={"pdq": banked.pdq.original.upper()})
    assert r.json()["matched"] and r.json()["matches"][0]["distance"] == 0
    r = client.post("/v1/hashes/lookup", headers=h["client"], json={"md5": banked.md5})
    assert [m["signal_type"] for m in r.json()["matches"]] == ["md5"]
    r = client.post("/v1/hashes/lookup", headers=h["client"], json={"pdq": "0" * 64, "banks": ["known"]})
    assert r.status_code == 200 and r.json() == {"matched": False, "categories": [], "action": "allow",
                                                 "report": False, "matches": [], "pdq_skipped": None}
    r = client.post("/v1/hashes/lookup", headers=h["client"], files={"image": ("x.png", JPEG, "image/png")},
                    data={"banks": "other", "max_distance": "10"})
    assert r.status_code == 200 and not r.json()["matched"]


@pytest.mark.parametrize(("kwargs", "status", "code"), [
    ({"content": b"{"}, 400, "malformed_json"),
    ({"content": b"\xff\xfe"}, 400, "invalid_encoding"),
    ({"content": b""}, 400, "malformed_json"),
    ({"json": []}, 422, "invalid_request"),
    ({"json": {}}, 422, "invalid_request"),
    ({"json": {"pdq": "xyz"}}, 422, "invalid_hash"),
    ({"json": {"md5": "ab" * 20}}, 422, "invalid_hash"),
    ({"json": {"pdq": "0" * 64, "max_distance": 32}}, 422, "invalid_request"),
    ({"json": {"pdq": "0" * 64, "max_distance": "3"}}, 422, "invalid_request"),
    ({"json": {"pdq": "0" * 64, "extra": 1}}, 422, "invalid_request"),
    ({"json": {"pdq": "0" * 64, "banks": []}}, 422, "invalid_request"),
    ({"content": b"x", "headers": {"content-type": "image/png"}}, 415, "unsupported_media_type"),
    ({"files": {"file": ("x.png", b"abc", "image/png")}}, 422, "invalid_request"),
    ({"files": {"image": ("x.png", b"not an image", "image/png")}}, 422, "invalid_image"),
    ({"files": {"image": ("x.png", b"", "image/png")}}, 422, "invalid_image"),
    ({"files": {"image": ("x.png", png_with_size(100_000, 100_000), "image/png")}}, 422, "invalid_image"),
    ({"files": {"image": ("x.png", png_with_size(7000, 7000), "image/png")}}, 422, "invalid_image"),
    ({"files": {"image": ("x.png", BANKED_PNG[:500], "image/png")}}, 422, "invalid_image"),
    ({"files": {"image": ("x.jpg", JPEG[: len(JPEG) // 2], "image/jpeg")}}, 422, "invalid_image"),
    ({"files": {"image": ("x.png", BANKED_PNG, "image/png")}, "data": {"max_distance": "x"}}, 422,
     "invalid_request"),
    ({"files": {"image": ("x.png", BANKED_PNG, "image/png")}, "data": {"other": "1"}}, 422, "invalid_request"),
    ({"files": {"image": ("x.png", BANKED_PNG, "image/png")}, "data": {"exact_dihedral": "yes"}}, 422,
     "invalid_request"),
    ({"files": {"image": ("x.png", b"\x00" * 300_000, "image/png")}}, 413, "body_too_large"),
    ({"content": b"--xx\r\nbroken", "headers": {"content-type": "multipart/form-data; boundary=xx"}}, None, None),
])
def test_bad_lookups_get_clear_4xx(env, kwargs, status, code) -> None:
    client, h = env
    headers = {**h["client"], **kwargs.pop("headers", {})}
    r = client.post("/v1/hashes/lookup", headers=headers, **kwargs)
    if status is None:
        assert 400 <= r.status_code < 500, r.text
    else:
        assert (r.status_code, r.json()["error"]["code"]) == (status, code), r.text
    assert set(r.json()) == {"error"}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.one_of(
    st.binary(max_size=2048),
    st.builds(lambda cut, flip: bytearray(BANKED_PNG[:cut]) + bytes([flip]), st.integers(0, len(BANKED_PNG)),
              st.integers(0, 255)),
    st.builds(lambda cut: JPEG[:cut], st.integers(0, len(JPEG))),
    st.builds(png_with_size, st.integers(0, 2**31 - 1), st.integers(0, 2**31 - 1)),
    st.builds(lambda pos, val: BANKED_PNG[:pos] + bytes([val]) + BANKED_PNG[pos + 1:],
              st.integers(0, len(BANKED_PNG) - 1), st.integers(0, 255)),
))
def test_fuzzed_uploads_never_500(env, data) -> None:
    client, h = env
    r = client.post("/v1/hashes/lookup", headers=h["client"], files={"image": ("f.bin", bytes(data), "image/png")})
    assert r.status_code in (200, 413, 422), (r.status_code, r.text[:300])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.recursive(st.none() | st.booleans() | st.integers() | st.text()
                         | st.floats(allow_nan=False, allow_infinity=False),
                         lambda c: st.lists(c, max_size=4) | st.dictionaries(st.sampled_from(
                             ["pdq", "md5", "banks", "max_distance", "x"]), c, max_size=4), max_leaves=10))
def test_fuzzed_json_lookups_never_500(env, body) -> None:
    client, h = env
    r = client.post("/v1/hashes/lookup", headers=h["client"], json=body)
    assert r.status_code in (200, 400, 422), (r.status_code, r.text[:300])


def test_roles(env) -> None:
    client, h = env
    assert client.post("/v1/hashes/lookup", json={"pdq": "0" * 64}).status_code == 401
    assert client.post("/v1/hashes/lookup", headers=h["reviewer"], json={"pdq": "0" * 64}).status_code == 403
    for method, path in [("get", "/v1/hashes/banks"), ("post", "/v1/hashes/banks"), ("get", "/v1/hashes/banks/known"),
                         ("patch", "/v1/hashes/banks/known"), ("delete", "/v1/hashes/banks/known"),
                         ("get", "/v1/hashes/banks/known/hashes"), ("post", "/v1/hashes/banks/known/hashes"),
                         ("delete", "/v1/hashes/banks/known/hashes/1"), ("post", "/v1/hashes/banks/known/import"),
                         ("get", "/v1/hashes/banks/known/export")]:
        for role in ("client", "reviewer"):
            r = client.request(method, path, headers=h[role])
            assert r.status_code == 403, (method, path, role, r.status_code)
            assert r.json()["error"]["code"] == "forbidden"


def test_bank_management(env) -> None:
    client, h = env
    a = h["admin"]
    assert client.post("/v1/hashes/banks", headers=a, json={"name": "known", "category": "violence"}).status_code == 409
    r = client.post("/v1/hashes/banks", headers=a, json={"name": "spam-imgs", "category": "spam"})
    assert (r.status_code, r.json()["error"]["code"]) == (422, "unknown_category")
    r = client.post("/v1/hashes/banks", headers=a, json={"name": "bad name", "category": "hate"})
    assert (r.status_code, r.json()["error"]["code"]) == (422, "invalid_bank")
    r = client.post("/v1/hashes/banks", headers=a, json={"name": "hate-memes", "category": "hate", "action": "label"})
    assert r.status_code == 201 and r.json()["hash_count"] == 0
    pdq = "ab" * 32
    r = client.post("/v1/hashes/banks/hate-memes/hashes", headers=a, json={"hashes": [
        {"signal_type": "pdq", "signal": pdq, "source": "tx", "category": "hate"},
        {"signal_type": "md5", "signal": "cd" * 16}, {"signal_type": "pdq", "signal": pdq}]})
    assert r.status_code == 201 and (r.json()["added"], r.json()["duplicates"]) == (2, 1)
    r = client.post("/v1/hashes/banks/hate-memes/hashes", headers=a, json={"hashes": [
        {"signal_type": "pdq", "signal": "zz"}, {"signal_type": "sha1", "signal": "ab"}]})
    assert (r.status_code, r.json()["error"]["code"]) == (422, "invalid_hash")
    assert len(r.json()["error"]["details"]["errors"]) == 2
    assert client.post("/v1/hashes/lookup", headers=h["client"], json={"pdq": pdq}).json()["action"] == "label"
    r = client.patch("/v1/hashes/banks/hate-memes", headers=a, json={"action": "remove", "enabled": False})
    assert r.status_code == 200 and r.json()["enabled"] is False and r.json()["version"] >= 3
    assert not client.post("/v1/hashes/lookup", headers=h["client"], json={"pdq": pdq}).json()["matched"]
    client.patch("/v1/hashes/banks/hate-memes", headers=a, json={"enabled": True})
    listed = client.get("/v1/hashes/banks/hate-memes/hashes?limit=1", headers=a).json()
    assert len(listed["hashes"]) == 1 and listed["next_after_id"] == listed["hashes"][0]["id"]
    csv_text = client.get("/v1/hashes/banks/hate-memes/export?format=csv", headers=a)
    assert csv_text.headers["content-type"].startswith("text/csv") and pdq in csv_text.text
    exported = client.get("/v1/hashes/banks/hate-memes/export", headers=a).json()
    assert exported["bank"]["category"] == "hate" and len(exported["contents"]) == 2
    client.post("/v1/hashes/banks", headers=a, json={"name": "copy", "category": "hate"})
    r = client.post("/v1/hashes/banks/copy/import?format=csv", headers=a, content=csv_text.text.encode())
    assert r.json() == {"added": 2, "duplicates": 0}
    r = client.post("/v1/hashes/banks/copy/import?format=te", headers=a, content=b"pdq nothex\n")
    assert (r.status_code, r.json()["error"]["code"]) == (422, "invalid_bank_file")
    assert r.json()["error"]["details"]["errors"][0].startswith("line 1: invalid PDQ hash")
    r = client.post("/v1/hashes/banks/copy/import?format=xml", headers=a, content=b"x")
    assert r.status_code == 422
    hid = listed["hashes"][0]["id"]
    assert client.delete(f"/v1/hashes/banks/hate-memes/hashes/{hid}", headers=a).json() == {"removed": 1}
    assert client.delete(f"/v1/hashes/banks/hate-memes/hashes/{hid}", headers=a).status_code == 404
    assert client.get("/v1/hashes/banks/nope", headers=a).json()["error"]["code"] == "bank_not_found"
    assert client.post("/v1/hashes/banks/nope/hashes", headers=a,
                       json={"hashes": [{"signal_type": "pdq", "signal": pdq}]}).status_code == 404
    assert client.delete("/v1/hashes/banks/copy", headers=a).json() == {"deleted": "copy", "hashes": 2}
    names = [b["name"] for b in client.get("/v1/hashes/banks", headers=a).json()["banks"]]
    assert names == ["hate-memes", "known"]
