"""Audio moderation end to end: audio files and videos' sound decoded with PyAV behind guard
rails, speech found by Silero VAD (ONNX), transcribed by pocketsphinx with word times, and the
transcript moderated by the text tiers with evidence at the time the words were said.

Speech is generated with Debian's espeak-ng (skipped locally with a reason when it is missing,
required in CI); the transcripts asserted are what the recognizer makes of that speech."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("av", reason="PyAV (av) is not installed: pip install -e '.[media]'")

from audio_samples import (
    ENCODINGS,
    concat,
    encode,
    need_audio,
    need_espeak,
    samples_of,
    silence,
    speak,
    tone,
    video_with_sound,
    wav,
)
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from media_samples import MEDIA_POLICY, need_tesseract
from typer.testing import CliRunner
from video_samples import claim_duration, photo

from warden import Moderator
from warden.core import Content, MediaPart, Modality
from warden.detectors.media.audio import (
    AudioLimits,
    AudioTranscriptDetector,
    AudioTranscriptParams,
    decode_audio,
    probe_audio,
    speech_segments,
)
from warden.detectors.media.guards import MediaRejected, sniff
from warden.ingest import InvalidItem

REPO = Path(__file__).resolve().parents[2]

#: A small real policy: the audio detector and the default keyword banks (no image models).
AUDIO_POLICY = f"""
schema_version: 1
name: audio-test
version: "a1"
surfaces: [comment]
categories:
  harassment/threatening:
    definition: threats of violence against a person
    severity: high
    action: remove
    thresholds: {{default: {{flag: 0.8, review: 0.45}}}}
  violence:
    definition: violence
    severity: high
    action: remove
    thresholds: {{default: {{flag: 0.85, review: 0.55}}}}
detectors:
  asr:
    type: audio_transcript
    params:
      audio: {{max_duration_s: 20}}
  keywords:
    type: keyword_bank
    params:
      path: {REPO / "policies" / "banks" / "default.yaml"}
cascade:
  - {{name: extract, detectors: [asr]}}
  - {{name: rules, detectors: [keywords]}}
"""

GREETING = "Good morning everyone"
THREAT = "I will kill you"


def _audio(data: bytes, name: str = "clip.wav", item_id: str = "a1", text: str | None = None) -> Content:
    return Content(id=item_id, text=text, media=(MediaPart(kind=Modality.AUDIO, data=data, name=name),))


def _video(data: bytes, item_id: str = "v1") -> Content:
    return Content(id=item_id, text=None, media=(MediaPart(kind=Modality.VIDEO, data=data, name="clip.mp4"),))


@pytest.fixture(scope="module")
def detector() -> AudioTranscriptDetector:
    need_audio()
    return AudioTranscriptDetector()


@pytest.fixture(scope="module")
def audio_policy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("audio") / "audio.yaml"
    path.write_text(AUDIO_POLICY, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def moderator(audio_policy: Path) -> Moderator:
    need_audio()
    return Moderator.from_file(audio_policy)


@pytest.fixture(scope="module")
def threat_wav() -> bytes:
    """A greeting, a pause, then the threat."""
    need_espeak()
    return concat(speak(GREETING), silence(0.8, 22_050), speak(THREAT))


# -- decoding and guards ---------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["wav", *ENCODINGS])
def test_every_audio_format_decodes_to_16k_mono(fmt: str) -> None:
    need_audio()
    source = tone(1.5, rate=22_050)
    data = source if fmt == "wav" else encode(source, fmt)
    found = sniff(data)
    assert found is not None and (found.kind, found.format) == (Modality.AUDIO, fmt)
    audio = decode_audio(data, AudioLimits())
    assert audio is not None and audio.samples.dtype == np.int16 and audio.samples.ndim == 1
    assert audio.duration_s == pytest.approx(1.5, abs=0.1)  # codec padding: a few ms
    # the tone survives: its loudness after lossy coding and resampling
    rms = float(np.sqrt(np.mean(audio.samples[1600:-1600].astype(np.float64) ** 2)))
    assert rms == pytest.approx(8000 / np.sqrt(2), rel=0.15)
    assert probe_audio(data, AudioLimits()).format == fmt  # type: ignore[union-attr]


def test_bad_audio_is_an_error_result_and_an_input_error(moderator: Moderator) -> None:
    three_s = tone(3.0)
    lying = claim_duration(encode(concat(tone(1.0), tone(1.0), tone(1.0)), "m4a"))  # header: ~0 s
    cases = {
        "truncated": (three_s[:30], "media[0]: "),
        "garbage": (three_s[:44] + bytes(np.random.default_rng(3).integers(0, 256, 5000, dtype=np.uint8)), ""),
        "not audio": (b"RIFF\x00\x00\x00\x00AVI LIST" + bytes(200), "media[0]: "),
        "too long": (concat(*[tone(5.0)] * 5), "the audio lasts 25.0 s; the limit is 20.0 s (max_duration_s)"),
    }
    lying_limits = AudioLimits(max_duration_s=2)
    with pytest.raises(MediaRejected, match=r"runs past 2\.0 s \(max_duration_s\); its header did not say"):
        decode_audio(lying, lying_limits)
    assert probe_audio(lying, lying_limits) is not None  # the lie passes the header check; decoding stops it
    asr = moderator.detectors["asr"]  # the policy's instance: max_duration_s 20
    for name, (data, message) in cases.items():
        [res] = asr.detect([_audio(data)])
        if name == "garbage":  # random PCM after a valid header is noise, not an error: no speech
            assert res.ok and res.texts == (), res
            continue
        assert not res.ok and res.error.startswith("media[0]: ") and message in res.error, (name, res.error)
        assert moderator.moderate(_audio(data)).missing_signals == ("asr",)
        with pytest.raises(InvalidItem, match=r"media\[0\] \(clip.wav\): "):
            moderator.check_media(_audio(data))


def test_audio_in_a_video_container_is_read_as_audio(detector: AudioTranscriptDetector,
                                                     moderator: Moderator) -> None:
    need_espeak()
    data = video_with_sound([photo("coffee")], speak(THREAT), fps=1)
    item = _audio(data, name="voice.mp4")
    moderator.check_media(item)  # an audio part in an MP4 container: not a kind mismatch
    [res] = detector.detect([item])
    assert res.ok and "kill" in res.texts[0].text


_FUZZ_CODES = {"corrupt", "unsupported_format", "too_long", "too_large", "empty"}


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_fuzz_audio_guards_never_crash(data: st.DataObject) -> None:
    """Random bytes behind an audio signature, and real files of every format with bytes
    flipped, cut or inserted: decoded audio (within the limit) or MediaRejected, nothing else."""
    need_audio()
    kind = data.draw(st.sampled_from(["random", "mutate", "cut"]))
    if kind == "random":
        head = data.draw(st.sampled_from([b"RIFF\x00\x00\x00\x00WAVEfmt ", b"OggS\x00\x02", b"fLaC", b"ID3\x04",
                                          b"\xff\xfb\x90", b"\x00\x00\x00\x1cftypM4A "]))
        blob = head + data.draw(st.binary(max_size=2000))
    else:
        base = _FUZZ_BASE[data.draw(st.sampled_from(sorted(_FUZZ_BASE)))]
        if kind == "mutate":
            mutable = bytearray(base)
            for _ in range(data.draw(st.integers(1, 20))):
                mutable[data.draw(st.integers(0, len(mutable) - 1))] = data.draw(st.integers(0, 255))
            blob = bytes(mutable)
        else:
            at = data.draw(st.integers(0, len(base)))
            blob = base[:at] + data.draw(st.binary(max_size=64)) + base[at + data.draw(st.integers(0, 500)):]
    limits = AudioLimits(max_duration_s=3)
    try:
        probe_audio(blob, limits)  # the edge check: headers and one packet
    except MediaRejected as exc:
        assert exc.code in _FUZZ_CODES, exc.code
    try:
        audio = decode_audio(blob, limits)
    except MediaRejected as exc:
        assert exc.code in _FUZZ_CODES, exc.code
    else:
        assert audio is not None and 0 < audio.duration_s <= 3 + 1


_FUZZ_BASE = {"wav": tone(0.5), **{fmt: encode(tone(0.5, rate=22_050), fmt) for fmt in ENCODINGS}}


# -- speech segments -------------------------------------------------------------------------------
def test_speech_segments_from_window_probabilities() -> None:
    params = AudioTranscriptParams(min_silence_s=0.1, speech_pad_s=0.0, min_speech_s=0.1, max_segment_s=1.0)
    step = 512 / 16_000  # 32 ms windows
    probs = np.array([0.0] * 10 + [0.9] * 10 + [0.1] * 5 + [0.9] * 2 + [0.1] * 5 + [0.9] * 50 + [0.4] * 3)
    segments = speech_segments(probs, duration_s=len(probs) * step, params=params)
    # 10 windows of speech; 2 windows (64 ms < min_speech_s) dropped; 50 windows (1.6 s) cut at max_segment_s;
    # the trailing 0.4s are above the end threshold (0.35): still speech until the end
    assert [(s.start_s, s.end_s) for s in segments] == [
        (0.32, 0.64), (1.024, 2.024), (2.024, round(len(probs) * step, 3))]


def test_silence_noise_and_tones_have_no_speech(detector: AudioTranscriptDetector) -> None:
    params = AudioTranscriptParams()
    for data in (silence(3.0), silence(3.0, noise=300), tone(2.0, 1000.0)):
        audio = decode_audio(data, AudioLimits())
        assert audio is not None
        assert speech_segments(detector._vad.probabilities(audio.samples), audio.duration_s, params) == []
        [res] = detector.detect([_audio(data)])
        assert res.ok and res.texts == ()


def test_speech_is_found_where_it_was_said(detector: AudioTranscriptDetector, threat_wav: bytes) -> None:
    greeting_s = len(samples_of(speak(GREETING))[0]) / 22_050
    [heard] = detector.listen(_audio(threat_wav))
    assert len(heard.segments) == 2
    first, second = heard.segments
    assert first.start_s < 0.3 and first.end_s < second.start_s
    assert greeting_s - 0.3 < first.end_s < greeting_s + 0.3  # the pause is where espeak stopped talking
    assert greeting_s + 0.8 - 0.3 < second.start_s < greeting_s + 0.8 + 0.3


# -- transcripts through the text tiers ------------------------------------------------------------
def test_spoken_threat_is_moderated_with_its_time(moderator: Moderator, threat_wav: bytes) -> None:
    greeting_s = len(samples_of(speak(GREETING))[0]) / 22_050
    result = moderator.moderate_with_signals([_audio(threat_wav)])[0]
    [asr] = [s for s in result.signals if s.detector == "asr"]
    [extracted] = asr.texts
    assert extracted.via == "asr" and extracted.part == 0 and THREAT.lower() in extracted.text
    assert 0.0 < (extracted.confidence or 0.0) <= 1.0
    assert len(extracted.times) == len(extracted.text.split())  # one time range per word
    decision = result.decision.to_dict()
    assert decision["flagged"] == ["harassment/threatening"] and decision["action"] == "remove"
    [reason] = decision["reasons"]
    [evidence] = reason["evidence"]
    assert evidence["rule"] == "direct_threats:i will kill you"
    loc = evidence["location"]
    assert (loc["part"], loc["via"]) == (0, "asr")
    # said after the greeting and the pause, and over by the end of the clip
    assert greeting_s + 0.5 < loc["time_s"] < loc["end_s"] <= len(samples_of(threat_wav)[0]) / 22_050 + 0.05


def test_benign_speech_is_allowed(moderator: Moderator) -> None:
    need_espeak()
    decision = moderator.moderate(_audio(speak("The weather is nice today and we are going to the park")))
    assert decision.action == "allow" and decision.missing_signals == ()


@pytest.mark.parametrize("fmt", list(ENCODINGS))
def test_compressed_speech_is_transcribed(detector: AudioTranscriptDetector, fmt: str) -> None:
    need_espeak()
    [res] = detector.detect([_audio(encode(speak(THREAT), fmt), name=f"clip.{fmt}")])
    assert res.ok and "kill you" in res.texts[0].text, (fmt, res)


def test_video_sound_track_is_moderated(moderator: Moderator, detector: AudioTranscriptDetector) -> None:
    need_espeak()
    frames = [photo("coffee")] * 10
    data = video_with_sound(frames, concat(silence(1.0, 22_050), speak(THREAT)))
    item = _video(data)
    moderator.check_media(item)
    decision = moderator.moderate(item).to_dict()
    assert decision["flagged"] == ["harassment/threatening"]
    [evidence] = decision["reasons"][0]["evidence"]
    assert evidence["location"]["via"] == "asr" and evidence["location"]["time_s"] >= 0.8
    # a video without a sound track: nothing heard, not an error
    silent_film = _video(video_with_sound(frames, None))
    moderator.check_media(silent_film)
    [res] = detector.detect([silent_film])
    assert res.ok and res.texts == ()
    assert moderator.moderate(silent_film).missing_signals == ()


def test_media_policy_moderates_speech(threat_wav: bytes) -> None:
    need_tesseract()
    media = Moderator.from_file(MEDIA_POLICY)
    assert "asr" in media.policy.cascade[0].detectors
    decision = media.moderate(_audio(threat_wav)).to_dict()
    assert "harassment/threatening" in decision["flagged"] and decision["action"] == "remove"
    [reason] = [r for r in decision["reasons"] if r["category"] == "harassment/threatening"]
    assert {"part": 0, "via": "asr"}.items() <= reason["evidence"][0]["location"].items()
    assert reason["evidence"][0]["location"]["time_s"] > 1.0


def test_speech_budget(detector: AudioTranscriptDetector, threat_wav: bytes) -> None:
    strict = AudioTranscriptDetector(AudioTranscriptParams(max_speech_s=1.0))
    [res] = strict.detect([_audio(threat_wav)])
    assert not res.ok and "more than 1.0 s of speech (max_speech_s)" in res.error
    truncating = AudioTranscriptDetector(AudioTranscriptParams(max_speech_s=1.0, over_max_speech="truncate"))
    [heard] = truncating.listen(_audio(threat_wav))
    assert heard.truncated and heard.words and max(w.end_s for w in heard.words) <= 1.0 + 0.05
    [full] = detector.listen(_audio(threat_wav))
    assert not full.truncated and len(full.words) > len(heard.words)


def test_conformance(detector: AudioTranscriptDetector) -> None:
    need_espeak()
    from warden.testing import check_detector

    speech = speak(THREAT)
    samples = [_audio(speech, item_id="speech"), _audio(silence(1.0), item_id="quiet"),
               Content(id="two", text="caption", media=(MediaPart(kind=Modality.AUDIO, data=tone(0.5)),
                                                        MediaPart(kind=Modality.AUDIO, data=encode(speech, "ogg"))))]
    check_detector(detector, samples=samples)
    [res] = detector.detect([samples[2]])
    assert [t.part for t in res.texts] == [1]  # the tone says nothing; the second part's speech is part 1


# -- entry points ----------------------------------------------------------------------------------
def test_classify_cli_reads_audio_paths(audio_policy: Path, tmp_path: Path, threat_wav: bytes) -> None:
    from warden.cli.main import app

    (tmp_path / "speech.wav").write_bytes(threat_wav)
    (tmp_path / "speech.mp3").write_bytes(encode(threat_wav, "mp3"))
    (tmp_path / "cut.wav").write_bytes(threat_wav[:30])
    rows = [{"id": "wav", "media": "speech.wav"}, {"id": "mp3", "text": "listen", "media": ["speech.mp3"]},
            {"id": "cut", "media": "cut.wav"}]
    inp = tmp_path / "rows.jsonl"
    inp.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    out = tmp_path / "out.jsonl"
    result = CliRunner().invoke(app, ["classify", str(inp), "-o", str(out), "--policy", str(audio_policy),
                                      "--no-progress", "--workers", "1"])
    assert result.exit_code == 0, result.output
    lines = {line["id"]: line for line in map(json.loads, out.read_text().splitlines())}
    for key in ("wav", "mp3"):
        assert lines[key]["flagged"] == ["harassment/threatening"], lines[key]
        loc = lines[key]["reasons"][0]["evidence"][0]["location"]
        assert loc["via"] == "asr" and loc["time_s"] > 1.0
    assert lines["cut"]["error"].startswith("row 2: media[0] (cut.wav): ") and "cannot read the wav container" in \
        lines["cut"]["error"]


@pytest.fixture
def api(moderator: Moderator, tmp_path: Path) -> Iterator[tuple[TestClient, dict[str, str]]]:
    from warden.service import ServiceSettings, create_app
    from warden.store import Store

    store = Store.from_url(f"sqlite:///{tmp_path / 'audio.db'}")
    store.upgrade()
    _, key = store.create_api_key("audio", "client")
    client = TestClient(create_app(moderator=moderator, store=store, settings=ServiceSettings()),
                        raise_server_exceptions=False)
    with client:
        yield client, {"Authorization": f"Bearer {key}"}


def test_upload_wav_to_moderate_media(api: Any, threat_wav: bytes) -> None:
    client, headers = api
    # the declared type is not trusted: the WAV is sniffed from its bytes
    resp = client.post("/v1/moderate/media", headers=headers, data={"id": "voice-1"},
                       files=[("media", ("note.bin", threat_wav, "application/octet-stream"))])
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["flagged"] == ["harassment/threatening"] and body["action"] == "remove"
    loc = body["reasons"][0]["evidence"][0]["location"]
    assert loc["part"] == 0 and loc["via"] == "asr" and loc["time_s"] > 1.0
    for data, status, code, message in [
        (threat_wav[:30], 422, "invalid_media", "cannot read the wav container"),
        (concat(*[tone(5.0)] * 5), 422, "invalid_media", "the limit is 20.0 s (max_duration_s)"),
        (wav(np.zeros(0, dtype=np.int16)), 422, "invalid_media", "media[0] (x.wav): the wav file has no audio data"),
    ]:
        resp = client.post("/v1/moderate/media", headers=headers, files=[("media", ("x.wav", data, "audio/wav"))])
        assert resp.status_code == status, resp.text
        err = resp.json()["error"]
        assert err["code"] == code and message in err["message"], err


def test_asr_wer_benchmark_smoke(tmp_path: Path) -> None:
    """benchmarks/asr_wer.py still runs (8 sentences) and writes its JSON; figures come from full runs."""
    need_espeak()
    env = {**os.environ, "WARDEN_BENCH_RESULTS": str(tmp_path)}
    out = subprocess.run([sys.executable, str(REPO / "benchmarks" / "asr_wer.py"), "--quick"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    text = (tmp_path / "asr_wer.quick.json").read_text()
    result = json.loads(text)
    assert result["overall"]["utterances"] == 8 and 0.0 <= result["overall"]["wer"] <= 1.5
    assert result["overall"]["wer_ci95"][0] <= result["overall"]["wer"] <= result["overall"]["wer_ci95"][1]
    assert str(REPO) not in text  # no machine paths in results
