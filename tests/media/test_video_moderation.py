"""Video moderation end to end: frames sampled at an interval and at scene cuts, decoded once
for all detectors, image detectors and OCR on frames with timestamps, segments of consecutive
flagged frames, and every broken or hostile video an error result / 4xx, never a crash.

Videos are generated with PyAV from scikit-image's safe photographs, Pillow drawings and text."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

pytest.importorskip("av", reason="PyAV (av) is not installed: pip install -e '.[media]'")

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from media_samples import MEDIA_POLICY, need_media_extra, need_tesseract
from typer.testing import CliRunner
from video_samples import claim_duration, photo, red_frame, scenes, text_frame

from warden import Moderator
from warden.core import Content, DetectorResult, MediaPart, Modality
from warden.detectors.media.common import FrameScore, ImageDetector, ImageInput, video_evidence
from warden.detectors.media.guards import DecodedImage, MediaRejected
from warden.detectors.media.video import (
    FRAME_CACHE,
    FrameCache,
    ImageVideoLimits,
    VideoLimits,
    probe_video,
    sample_video,
    video_frames,
)
from warden.ingest import InvalidItem


class VideoRednessDetector(ImageDetector):
    """Test double: `sexual` = how red a picture is; reads images and video frames (no model)."""

    name: ClassVar[str] = "test_video_redness"
    modalities = frozenset({Modality.IMAGE, Modality.VIDEO})
    Params = ImageVideoLimits

    def _score(self, images: list[DecodedImage]) -> list[Any]:
        import numpy as np

        out = []
        for img in images:
            arr = np.asarray(img.image, dtype=np.float64)
            out.append(float(np.clip((arr[..., 0] - (arr[..., 1] + arr[..., 2]) / 2).mean() / 255.0, 0.0, 1.0)))
        return out

    def _result(self, item: Content, inputs: list[ImageInput], outputs: list[Any]) -> DetectorResult:
        frames = [FrameScore(inp, "sexual", p, "redness") for inp, p in zip(inputs, outputs, strict=True)
                  if inp.time_s is not None]
        return self.result(item, {"sexual": round(max(outputs), 6)},
                           tuple(video_evidence(frames, min_score=self.segment_min)))


VIDEO_POLICY = """
schema_version: 1
name: video-test
version: "v1"
surfaces: [comment]
categories:
  sexual:
    definition: sexual content
    severity: medium
    action: limit
    thresholds: {default: {flag: 0.6, review: 0.4}}
detectors:
  redness:
    type: test_video_redness
    params:
      video: {every_s: 0.5, max_duration_s: 30}
"""


@pytest.fixture(scope="module", autouse=True)
def _register() -> None:
    from warden.detectors import registry

    if VideoRednessDetector.name not in registry.available():
        registry.register(VideoRednessDetector)


@pytest.fixture
def video_policy(tmp_path: Path) -> Path:
    path = tmp_path / "video.yaml"
    path.write_text(VIDEO_POLICY, encoding="utf-8")
    return path


def _video(data: bytes) -> Content:
    return Content(id="v", media=(MediaPart(kind=Modality.VIDEO, data=data, name="clip.mp4"),))


#: 8 s at 10 fps: a photo, a red shot over [3.0, 5.0), the photo again.
def red_middle() -> bytes:
    return scenes((photo("coffee"), 3.0), (red_frame(), 2.0), (photo("coffee"), 3.0))


# -- sampling ----------------------------------------------------------------------------------
def test_scene_cuts_are_sampled_between_interval_frames() -> None:
    data = scenes((photo("astronaut"), 2.5), (photo("coffee"), 2.0), fps=10)
    sample = sample_video(data, VideoLimits(every_s=1.0))
    assert [(f.time_s, f.reason) for f in sample.frames] == [
        (0.0, "interval"), (1.0, "interval"), (2.0, "interval"), (2.5, "scene"), (3.0, "interval"),
        (4.0, "interval")]
    assert sample.frames[3].image.image.getpixel((320, 180)) != sample.frames[2].image.image.getpixel((320, 180))
    # without the scene test the cut is seen only at the next interval frame
    plain = sample_video(data, VideoLimits(every_s=1.0, scene_threshold=None))
    assert [f.time_s for f in plain.frames] == [0.0, 1.0, 2.0, 3.0, 4.0]
    # max_frames bounds the total; the grid widens to cover the whole video (4.5 s over 6 grid
    # frames: one every 0.75 s, at the next decoded frame) rather than its first 0.8 s
    bounded = sample_video(data, VideoLimits(every_s=0.1, max_frames=8))
    assert [f.time_s for f in bounded.frames] == [0.0, 0.8, 1.5, 2.3, 3.0, 3.8]
    # frames are scaled down to frame_max_side; `scale` maps boxes back to video pixels
    small = sample_video(data, VideoLimits(frame_max_side=320)).frames[0].image
    assert (small.image.size, small.width, small.height, small.scale) == ((320, 180), 640, 360, 2.0)


def test_a_video_is_decoded_once_for_all_detectors(video_policy: Path) -> None:
    cache = FrameCache(64 * 1024 * 1024)
    part = MediaPart(kind=Modality.VIDEO, data=red_middle())
    first = video_frames(part, VideoLimits(), cache=cache)
    assert video_frames(part, VideoLimits(segment_min=0.9), cache=cache) is first  # scoring params: same frames
    assert (cache.hits, cache.misses) == (1, 1)
    video_frames(part, VideoLimits(every_s=2.0), cache=cache)  # other sampling: decoded again
    assert cache.misses == 2
    # a refusal is cached too (a corrupt file is not decoded again per detector), and re-raised each time
    bad = MediaPart(kind=Modality.VIDEO, data=red_middle()[:3000])
    for _ in range(2):
        with pytest.raises(MediaRejected):
            video_frames(bad, VideoLimits(), cache=cache)
    assert cache.misses == 3
    # bounded in bytes: the least recently used video goes first
    tiny = FrameCache(first.nbytes + 1000)
    video_frames(part, VideoLimits(), cache=tiny)
    video_frames(MediaPart(kind=Modality.VIDEO, data=scenes((photo("rocket"), 2.0))), VideoLimits(), cache=tiny)
    video_frames(part, VideoLimits(), cache=tiny)
    assert (tiny.hits, tiny.misses) == (0, 3)


# -- segments ----------------------------------------------------------------------------------
def test_segment_evidence_covers_the_flagged_frame_range(video_policy: Path) -> None:
    moderator = Moderator.from_file(video_policy)
    result = moderator.moderate_with_signals([_video(red_middle())])[0]
    [signal] = result.signals
    assert signal.ok and signal.scores["sexual"] > 0.6
    [segment] = signal.evidence  # one run of red frames: sampled every 0.5 s, 3.0 .. 4.5
    loc = segment.location
    assert (loc.part, loc.time_s, loc.end_s) == (0, 3.0, 4.5)
    assert segment.score == signal.scores["sexual"] and "4 sampled frame(s) 3.00-4.50 s" in (segment.detail or "")
    decision = result.decision
    assert decision.flagged == ("sexual",) and decision.action.value == "limit"
    assert decision.to_dict()["reasons"][0]["evidence"][0]["location"] == {"part": 0, "time_s": 3.0, "end_s": 4.5}


def test_two_separate_runs_are_two_segments() -> None:
    data = scenes((red_frame(), 1.0), (photo("coffee"), 2.0), (red_frame(), 1.0), fps=10)
    det = VideoRednessDetector(ImageVideoLimits(video=VideoLimits(every_s=0.5)))
    [res] = det.detect([_video(data)])
    assert [(e.location.time_s, e.location.end_s) for e in res.evidence] == [(0.0, 0.5), (3.0, 3.5)]


def test_real_image_models_read_video_frames() -> None:
    need_media_extra()
    from warden.detectors.media.nsfw import OpenNsfwDetector
    from warden.detectors.media.nudity import NudityDetector

    FRAME_CACHE.clear()
    data = scenes((photo("coffee"), 2.0), (photo("rocket"), 2.0))
    item = _video(data)
    hits = FRAME_CACHE.hits
    nudity = NudityDetector().detect([item])[0]
    nsfw = OpenNsfwDetector().detect([item])[0]
    assert FRAME_CACHE.hits == hits + 1  # the second detector reused the first one's frames
    assert nudity.ok and nsfw.ok, (nudity.error, nsfw.error)
    assert nudity.scores["sexual"] == 0.0 and nsfw.scores["sexual"] < 0.2 and not nsfw.evidence
    # the video's score is the maximum over its frames: the same as scoring those frames as images
    sample = sample_video(data, VideoLimits())
    assert nsfw.scores["sexual"] == pytest.approx(max(OpenNsfwDetector()._score([f.image for f in sample.frames])),
                                                  abs=1e-6)


def test_ocr_of_video_frames_is_moderated_with_times() -> None:
    need_tesseract()
    data = scenes((text_frame("Lovely weather today"), 2.0), (text_frame("I will kill you"), 2.0),
                  (photo("coffee"), 2.0), fps=5)
    moderator = Moderator.from_file(MEDIA_POLICY)
    result = moderator.moderate_with_signals([_video(data)])[0]
    [ocr] = [s for s in result.signals if s.detector == "ocr"]
    [extracted] = ocr.texts
    assert extracted.text.splitlines() == ["Lovely weather today", "I will kill you"]  # repeated frames: once
    assert [(t.start_s, t.end_s) for t in extracted.times] == [(0.0, 1.0), (2.0, 3.0)]
    decision = result.decision.to_dict()
    assert "harassment/threatening" in decision["flagged"]
    [reason] = [r for r in decision["reasons"] if r["category"] == "harassment/threatening"]
    assert {"part": 0, "time_s": 2.0, "end_s": 3.0, "via": "ocr"} in [e["location"] for e in reason["evidence"]]


# -- broken and hostile videos -----------------------------------------------------------------
def _broken() -> dict[str, bytes]:
    good = red_middle()
    return {"truncated": good[: len(good) // 3], "garbage_after_header": good[:64] + bytes(4000),
            "lying_header": claim_duration(scenes((photo("coffee"), 40.0), fps=2)),
            "too_long": scenes((photo("coffee"), 35.0), fps=2)}


def test_broken_videos_are_error_results_and_input_errors(video_policy: Path) -> None:
    moderator = Moderator.from_file(video_policy)
    det = moderator.detectors["redness"]
    for name, data in _broken().items():
        [res] = det.detect([_video(data)])
        assert not res.ok and res.error.startswith("media[0]: "), (name, res)
        if name in ("lying_header", "too_long"):
            assert "30.0 s (max_duration_s)" in res.error or "the limit is 30.0 s" in res.error, res.error
        decision = moderator.moderate(_video(data))
        assert decision.missing_signals == ("redness",)
    # at the edge: headers are read before moderation (a header that lies passes here; decoding stops it)
    for name in ("truncated", "garbage_after_header", "too_long"):
        with pytest.raises(InvalidItem, match=r"media\[0\] \(clip.mp4\): "):
            moderator.check_media(_video(_broken()[name]))
    with pytest.raises(MediaRejected, match=r"lasts 35\.0 s; the limit is 30\.0 s"):
        probe_video(_broken()["too_long"], VideoLimits(max_duration_s=30))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_fuzz_video_guards_never_crash(data: st.DataObject) -> None:
    """Random bytes behind a video signature, and real videos with bytes flipped, cut or
    inserted: a VideoSample or MediaRejected, nothing else."""
    base = _FUZZ_BASE
    kind = data.draw(st.sampled_from(["random", "mutate", "cut"]))
    if kind == "random":
        head = data.draw(st.sampled_from([b"\x00\x00\x00\x18ftypisom", b"\x1a\x45\xdf\xa3",
                                          b"RIFF\x00\x00\x00\x00AVI "]))
        blob = head + data.draw(st.binary(max_size=2000))
    elif kind == "mutate":
        blob = bytearray(base)
        for _ in range(data.draw(st.integers(1, 20))):
            blob[data.draw(st.integers(0, len(blob) - 1))] = data.draw(st.integers(0, 255))
        blob = bytes(blob)
    else:
        at = data.draw(st.integers(0, len(base)))
        blob = base[:at] + data.draw(st.binary(max_size=64)) + base[at + data.draw(st.integers(0, 500)):]
    limits = VideoLimits(max_duration_s=5, max_frames=10)
    try:
        info = probe_video(blob, limits)  # the edge check: headers only
    except MediaRejected as exc:
        assert exc.code in {"corrupt", "unsupported_format", "too_long", "too_many_pixels", "too_large"}, exc.code
    else:
        assert info.width > 0 and info.height > 0
    try:
        sample = sample_video(blob, limits)
    except MediaRejected as exc:
        assert exc.code in {"corrupt", "unsupported_format", "too_long", "too_many_frames", "too_many_pixels",
                            "too_large"}, exc.code
    else:
        assert 1 <= len(sample.frames) <= 10 and all(f.time_s <= 5 for f in sample.frames)


_FUZZ_BASE = scenes((photo("coffee", (96, 64)), 1.0), (photo("rocket", (96, 64)), 1.0), fps=5)


# -- entry points ------------------------------------------------------------------------------
@pytest.fixture
def api(video_policy: Path, tmp_path: Path) -> Iterator[tuple[TestClient, dict[str, str]]]:
    from warden.service import ServiceSettings, create_app
    from warden.store import Store

    store = Store.from_url(f"sqlite:///{tmp_path / 'video.db'}")
    store.upgrade()
    _, key = store.create_api_key("video", "client")
    app = create_app(moderator=Moderator.from_file(video_policy), store=store, settings=ServiceSettings())
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client, {"Authorization": f"Bearer {key}"}


def test_upload_a_video_gets_a_decision_with_frame_times(api) -> None:
    client, headers = api
    resp = client.post("/v1/moderate/media", headers=headers, data={"id": "clip-1", "text": "my holiday"},
                       files=[("media", ("clip.bin", red_middle(), "application/octet-stream"))])
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["flagged"] == ["sexual"] and body["action"] == "limit"
    assert body["reasons"][0]["evidence"][0]["location"] == {"part": 0, "time_s": 3.0, "end_s": 4.5}


@pytest.mark.parametrize(("name", "status", "code"), [("truncated", 422, "invalid_media"),
                                                      ("garbage_after_header", 422, "invalid_media"),
                                                      ("too_long", 422, "invalid_media")])
def test_upload_broken_videos_are_4xx(api, name: str, status: int, code: str) -> None:
    client, headers = api
    resp = client.post("/v1/moderate/media", headers=headers,
                       files=[("media", ("clip.mp4", _broken()[name], "video/mp4"))])
    assert resp.status_code == status, resp.text
    assert resp.json()["error"]["code"] == code


def test_upload_a_header_that_lies_is_held_not_crashed(api) -> None:
    client, headers = api
    resp = client.post("/v1/moderate/media", headers=headers,
                       files=[("media", ("clip.mp4", _broken()["lying_header"], "video/mp4"))])
    assert resp.status_code == 200, resp.text
    assert resp.json()["missing_signals"] == ["redness"]  # the policy's on_detector_error decides


def test_classify_rows_with_video_paths(video_policy: Path, tmp_path: Path) -> None:
    from warden.cli.main import app

    (tmp_path / "clips").mkdir()
    (tmp_path / "clips" / "red.mp4").write_bytes(red_middle())
    (tmp_path / "clips" / "cut.mp4").write_bytes(_broken()["truncated"])
    rows = [{"id": "red", "media": "clips/red.mp4"}, {"id": "cut", "media": ["clips/cut.mp4"]}]
    inp = tmp_path / "rows.jsonl"
    inp.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    out = tmp_path / "out.jsonl"
    result = CliRunner().invoke(app, ["classify", str(inp), "-o", str(out), "--policy", str(video_policy),
                                      "--no-progress", "--workers", "1"])
    assert result.exit_code == 0, result.output
    lines = {line["id"]: line for line in map(json.loads, out.read_text().splitlines())}
    assert lines["red"]["flagged"] == ["sexual"]
    assert lines["red"]["reasons"][0]["evidence"][0]["location"] == {"part": 0, "time_s": 3.0, "end_s": 4.5}
    assert lines["cut"]["error"].startswith("row 1: media[0] (cut.mp4): cannot read the mp4 container")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzz_video_uploads_are_never_a_500(api, data: st.DataObject) -> None:
    client, headers = api
    blob = bytearray(_FUZZ_BASE)
    for _ in range(data.draw(st.integers(0, 30))):
        blob[data.draw(st.integers(0, len(blob) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(1, len(blob)))
    resp = client.post("/v1/moderate/media", headers=headers,
                       files=[("media", ("v.mp4", bytes(blob[:cut]), "video/mp4"))])
    assert resp.status_code in (200, 413, 415, 422), resp.text
    if resp.status_code == 200:
        body = resp.json()
        assert body["missing_signals"] in ([], ["redness"])


def test_model_outputs_on_frames_become_segments_with_boxes() -> None:
    """The detectors' mapping from per-frame model outputs to segments, on given outputs (no
    unsafe picture is needed to check where a flagged run starts and ends)."""
    need_media_extra()
    from PIL import Image

    from warden.core import Box
    from warden.detectors.media.nsfw import OpenNsfwDetector
    from warden.detectors.media.nudity import NudeBox, NudityDetector

    img = DecodedImage(image=Image.new("RGB", (64, 36)), format="mp4", width=640, height=360)
    inputs = [ImageInput(0, img, time_s=float(t)) for t in range(6)]
    item = _video(b"")
    box = Box(10, 20, 100, 80)
    per_frame = [[], [NudeBox("FEMALE_BREAST_EXPOSED", 0.9, box)], [NudeBox("BUTTOCKS_EXPOSED", 0.7, box)],
                 [NudeBox("FACE_FEMALE", 0.99, box)], [NudeBox("ANUS_EXPOSED", 0.6, Box(1, 2, 3, 4))], []]
    res = NudityDetector()._result(item, inputs, per_frame)
    assert res.scores["sexual"] == pytest.approx(0.81)  # 0.9 weight x 0.9: the highest frame
    assert [(e.rule, e.score, e.location.time_s, e.location.end_s, e.location.box) for e in res.evidence] == [
        ("nudenet:FEMALE_BREAST_EXPOSED", 0.81, 1.0, 2.0, box),  # 0.81 and 0.56: one run; a face does not count
        ("nudenet:ANUS_EXPOSED", 0.6, 4.0, 4.0, Box(1, 2, 3, 4))]
    res = OpenNsfwDetector()._result(item, inputs, [0.1, 0.3, 0.9, 0.95, 0.2, 0.7])
    assert res.scores["sexual"] == 0.95
    assert [(e.score, e.location.time_s, e.location.end_s) for e in res.evidence] == [(0.95, 2.0, 3.0),
                                                                                     (0.7, 5.0, 5.0)]
