"""vPDQ-style video hash matching: sampled frames against banked images, a video against
banked videos (shares of matching frames both ways), through the detector, the store
(SQLite and PostgreSQL) and `warden hash`. Videos are generated from safe photographs."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

pytest.importorskip("av", reason="PyAV (av) is not installed: pip install -e '.[media]'")
pytest.importorskip("pdqhash", reason="pdqhash is not installed: pip install -e '.[hashing]'")

import numpy as np
from typer.testing import CliRunner
from video_samples import photo, reencode, scenes

from pg_support import migrated
from warden.core import Content, MediaPart, Modality
from warden.detectors.hashing import Bank, BankEntry, BankMatcher
from warden.detectors.hashing.banks import export_bank, parse_bank_file
from warden.detectors.hashing.detector import HashBankDetector, HashBankParams
from warden.detectors.hashing.pdq import hamming, pdq_from_array
from warden.detectors.hashing.video import hash_video
from warden.store import Store
from warden.store.hash_repo import HashBankRepository

IMAGES = Bank(name="banned-images", category="violence", action="remove")
VIDEOS = Bank(name="banned-videos", category="sexual/minors", action="escalate", report=True)


def _video(data: bytes) -> Content:
    return Content(id="v", media=(MediaPart(kind=Modality.VIDEO, data=data),))


def _original() -> bytes:
    return scenes((photo("astronaut"), 3.0), (photo("coffee"), 3.0), (photo("chelsea"), 3.0))


def _frames_entries(data: bytes, content_id: str) -> list[BankEntry]:
    vh = hash_video(MediaPart(kind=Modality.VIDEO, data=data))
    return [BankEntry("vpdq", f.pdq, content_id=content_id) for f in vh.matchable(distinct=True)]


def test_a_frame_equal_to_a_banned_image_matches_with_its_times() -> None:
    coffee = pdq_from_array(photo("coffee")).hex  # the still picture, not taken from the video
    det = HashBankDetector(matcher=BankMatcher.from_entries({IMAGES: [BankEntry("pdq", coffee)]}))
    [res] = det.detect([_video(_original())])
    assert res.ok and res.scores["violence"] == 1.0
    [ev] = res.evidence
    assert (ev.location.part, ev.location.time_s, ev.location.end_s) == (0, 3.0, 5.0)  # coffee: 3-6 s, every 1 s
    assert "bank=banned-images signal=pdq" in ev.detail and "frames=3" in ev.detail
    [clean] = det.detect([_video(scenes((photo("rocket"), 3.0), (photo("camera"), 3.0)))])
    assert clean.ok and clean.scores["violence"] == 0.0 and not clean.evidence


def test_a_reencoded_copy_matches_a_banked_video_and_others_do_not() -> None:
    original = _original()
    copy = reencode(original, size=(480, 270), bit_rate=150_000)  # smaller, stronger compression
    a, b = hash_video(MediaPart(kind=Modality.VIDEO, data=original)), hash_video(MediaPart(kind=Modality.VIDEO,
                                                                                          data=copy))
    assert a.md5 != b.md5 and max(hamming(x.pdq, y.pdq) for x, y in zip(a.frames, b.frames, strict=True)) <= 31
    matcher = BankMatcher.from_entries({VIDEOS: _frames_entries(original, "case-17")})
    det = HashBankDetector(matcher=matcher)
    [res] = det.detect([_video(copy)])
    assert res.scores["sexual/minors"] == 1.0
    [ev] = res.evidence
    assert "signal=vpdq content_id=case-17" in ev.detail and "query_match=100.0%" in ev.detail
    assert "action=escalate report=true" in ev.detail and (ev.location.time_s, ev.location.end_s) == (0.0, 8.0)
    other = scenes((photo("rocket"), 3.0), (photo("camera"), 3.0))
    [miss] = det.detect([_video(other)])
    assert miss.ok and miss.scores["sexual/minors"] == 0.0
    # a clip of the banked video: all of its frames match, a third of the banked ones
    clip = scenes((photo("astronaut"), 3.0))
    lookup = matcher.match_video([f.pdq for f in hash_video(MediaPart(kind=Modality.VIDEO, data=clip)).matchable()])
    [vm] = lookup.video_matches
    assert vm.query_match_pct == 100.0 and 0 < vm.compared_match_pct < 50
    assert not matcher.match_video([f.pdq for f in hash_video(MediaPart(kind=Modality.VIDEO, data=clip)).matchable()],
                                   compared_match_pct=90.0).video_matches
    # a video that shares one shot of three does not reach the 80% query share
    mixed = scenes((photo("coffee"), 3.0), (photo("rocket"), 3.0), (photo("camera"), 3.0))
    [partial] = det.detect([_video(mixed)])
    assert partial.scores["sexual/minors"] == 0.0


def test_a_broken_video_is_an_error_result_unless_another_part_matched() -> None:
    coffee = pdq_from_array(photo("coffee")).hex
    det = HashBankDetector(HashBankParams(), matcher=BankMatcher.from_entries({IMAGES: [BankEntry("pdq", coffee)]}))
    broken = _original()[:2000]
    [res] = det.detect([_video(broken)])
    assert not res.ok and res.error.startswith("video 0: cannot read the mp4 container")
    both = Content(id="b", media=(MediaPart(kind=Modality.VIDEO, data=broken),
                                  MediaPart(kind=Modality.VIDEO, data=_original())))
    [res] = det.detect([both])
    assert res.ok and res.scores["violence"] == 1.0


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        s = Store.from_url(f"sqlite:///{tmp_path / 'hashes.db'}")
        s.upgrade()
    else:
        factory: Callable[[], str] = request.getfixturevalue("pg_database_factory")
        s = Store.from_url(migrated(factory()))
    try:
        yield s
    finally:
        s.close()


def test_banked_videos_round_trip_through_the_store(store: Store) -> None:
    repo = HashBankRepository(store)
    repo.create_bank(VIDEOS, actor="t")
    repo.create_bank(IMAGES, actor="t")
    original = _original()
    entries = _frames_entries(original, "case-17")
    assert 3 <= len(entries) <= 9  # three still shots: near-identical frames, repeats stored once
    added = repo.add_hashes(VIDEOS.name, entries, actor="t")
    assert added.added == len(entries)
    repo.add_hashes(IMAGES.name, [BankEntry("pdq", pdq_from_array(photo("chelsea")).hex)], actor="t")
    matcher, _ = repo.load_matcher()
    frames = [f.pdq for f in hash_video(MediaPart(kind=Modality.VIDEO, data=reencode(original))).matchable()]
    lookup = matcher.match_video(frames)
    [vm] = lookup.video_matches
    assert (vm.bank, vm.content_id, vm.query_match_pct, vm.compared_match_pct) == (VIDEOS.name, "case-17", 100.0,
                                                                                  100.0)
    assert {fm.match.bank for fm in lookup.frame_matches} == {IMAGES.name}
    assert sorted({fm.frame for fm in lookup.frame_matches}) == [6, 7, 8]  # chelsea: the last three seconds
    # a still image of a banned video's frame also matches it (signal vpdq)
    [m] = matcher.match_pdq(pdq_from_array(photo("astronaut")).hex)
    assert (m.bank, m.signal_type) == (VIDEOS.name, "vpdq")
    with pytest.raises(ValueError, match="needs a content_id"):
        BankEntry("vpdq", frames[0])
    # a JSON or CSV export carries the content ids that group a video's frames
    for fmt in ("json", "csv"):
        text = export_bank(VIDEOS, repo.iter_hashes(VIDEOS.name), fmt=fmt)
        parsed = parse_bank_file(text, fmt=fmt)
        [again] = BankMatcher.from_entries({VIDEOS: parsed.entries}).match_video(frames).video_matches
        assert (again.content_id, again.query_match_pct) == ("case-17", 100.0)


def test_hash_cli_compute_bank_add_and_lookup_a_video(tmp_path: Path) -> None:
    from warden.cli.main import app

    runner = CliRunner()
    db = ["--database-url", f"sqlite:///{tmp_path / 'cli.db'}"]
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(_original())
    copy = tmp_path / "copy.webm"
    copy.write_bytes(reencode(_original(), bit_rate=200_000))

    result = runner.invoke(app, ["hash", "compute", str(clip)])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["kind"] == "video" and len(out["md5"]) == 32
    assert [f["time_s"] for f in out["frames"]] == [float(t) for t in range(9)]
    assert all(len(f["pdq"]) == 64 and f["quality"] >= 50 for f in out["frames"])

    for args in (["bank", "create", "vids", "--category", "violence", "--action", "remove"],
                 ["bank", "add", "vids", str(clip), "--source", "test"]):
        result = runner.invoke(app, ["hash", *args, *db])
        assert result.exit_code == 0, result.output
    distinct = len({f["pdq"] for f in out["frames"]})
    assert f"added {1 + distinct}, duplicates 0" in result.output  # the MD5 and each distinct frame hash
    result = runner.invoke(app, ["hash", "lookup", str(copy), *db])
    assert result.exit_code == 0, result.output
    found = json.loads(result.output)
    assert found["matched"] and found["action"] == "remove" and found["categories"] == ["violence"]
    [vm] = found["video_matches"]
    assert vm["content_id"].startswith("clip.mp4#") and vm["query_match_pct"] == 100.0


def test_frames_hashes_are_stable_across_runs() -> None:
    data = _original()
    one = hash_video(MediaPart(kind=Modality.VIDEO, data=data))
    from warden.detectors.media.video import FRAME_CACHE

    FRAME_CACHE.clear()
    two = hash_video(MediaPart(kind=Modality.VIDEO, data=data))
    assert one == two and np.all([f.quality == 100 for f in one.frames])


def test_lookup_route_matches_an_uploaded_video(tmp_path: Path) -> None:
    """`POST /v1/hashes/lookup` with a `video` file: vPDQ against banked videos, frames against
    banked images; bad uploads are 4xx with the reason, never a 500."""
    from types import SimpleNamespace

    from fastapi.testclient import TestClient

    from warden.service import ServiceSettings, create_app

    store = Store.from_url(f"sqlite:///{tmp_path / 'api.db'}")
    store.upgrade()
    repo = HashBankRepository(store)
    repo.create_bank(VIDEOS, actor="t")
    repo.add_hashes(VIDEOS.name, _frames_entries(_original(), "case-9"), actor="t")
    key = store.create_api_key("k", "client")[1]
    # the hash routes never moderate
    moderator = SimpleNamespace(policy=SimpleNamespace(name="t", version="1", surfaces=("comment",),
                                                       categories={"sexual/minors": None}))
    app = create_app(moderator=moderator, store=store, settings=ServiceSettings(max_body_bytes=64 * 1024))
    h = {"Authorization": f"Bearer {key}"}
    copy = reencode(_original(), bit_rate=200_000)
    assert len(copy) > 64 * 1024  # over the JSON/image limit: videos have the media limit
    try:
        with TestClient(app, raise_server_exceptions=False) as client:
            r = client.post("/v1/hashes/lookup", headers=h, files={"video": ("copy.webm", copy, "video/webm")})
            assert r.status_code == 200, r.text
            out = r.json()
            assert out["matched"] and out["action"] == "escalate" and out["report"]
            assert out["categories"] == ["sexual/minors"]
            [vm] = out["video_matches"]
            assert (vm["content_id"], vm["query_match_pct"]) == ("case-9", 100.0)
            other = scenes((photo("rocket"), 3.0), (photo("camera"), 3.0))
            r = client.post("/v1/hashes/lookup", headers=h, files={"video": ("o.mp4", other, "video/mp4")})
            assert r.status_code == 200 and not r.json()["matched"] and r.json()["video_matches"] == []
            r = client.post("/v1/hashes/lookup", headers=h, files={"video": ("bad.mp4", copy[: len(copy) // 3],
                                                                             "video/mp4")})
            assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_image", r.text
            r = client.post("/v1/hashes/lookup", headers=h, files={"video": ("x.mp4", b"\x00" * 100, "video/mp4")})
            assert r.status_code == 422, r.text
            r = client.post("/v1/hashes/lookup", headers=h, files={"image": ("a.png", b"x", "image/png"),
                                                                   "video": ("b.mp4", copy, "video/mp4")})
            assert r.status_code in (400, 422) and r.status_code != 500, r.text
            r = client.post("/v1/hashes/lookup", headers={**h, "content-type": "application/json"},
                            content=b'{"pdq": "' + b"0" * 70_000 + b'"}')
            assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large"
    finally:
        store.close()
