"""Speech in audio files and in the sound track of videos: a rough transcript with word times.

`audio_transcript` decodes each audio part (WAV, MP3, Ogg/Opus, FLAC, M4A) and the sound track
of each video part with PyAV, resampled to 16 kHz mono, behind guard rails read from the
container headers before decoding (bytes, format sniffed from magic bytes, duration) and a
cap on decoded samples in case the headers lie. Silero VAD (its ONNX file, shipped in the
`silero-vad` wheel, run here with ONNX Runtime: the package itself imports torch, which Warden
never installs) finds the speech; pocketsphinx (its English model ships in its wheel)
transcribes each speech segment with word times. Like OCR, the detector scores nothing: the
transcript is an `ExtractedText(via="asr")` that the Moderator moderates with the policy's
text tiers, and `times` maps each word to [start_s, end_s] so evidence points at when it was
said. The transcript is rough (see docs/media.md for the measured word error rate): good for
spotting threats and keywords, not a record of what was said.

PyAV, numpy, ONNX Runtime and pocketsphinx are imported lazily (`warden[media]`; silero-vad is
installed with `pip install --no-deps silero-vad`, scripts/setup.sh does it).
"""

from __future__ import annotations

import importlib.util
import io
import itertools
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from warden.core import Content, DetectorResult, ExtractedText, MediaPart, Modality, TextTime
from warden.detectors.base import Detector, DetectorParams
from warden.detectors.media.guards import MediaRejected, declared_duration_s, read_part, sniff
from warden.detectors.media.video import ImageVideoLimits

SAMPLE_RATE = 16_000
#: Silero VAD reads 512-sample windows at 16 kHz, each with the previous window's last 64 samples.
VAD_WINDOW = 512
VAD_CONTEXT = 64
#: pocketsphinx frames per second (its default `frate`).
ASR_FRAME_RATE = 100
AudioFormat = Literal["wav", "mp3", "ogg", "flac", "m4a"]
ContainerFormat = Literal["mp4", "mov", "webm", "avi"]
INSTALL = "pip install 'warden[media]' && pip install --no-deps silero-vad (scripts/setup.sh dev does both)"
#: Words pocketsphinx emits that are not speech (sentence marks, silence, noise models).
_FILLERS = frozenset({"<s>", "</s>", "<sil>", "[NOISE]", "[SPEECH]", "[LAUGH]"})


class AudioLimits(DetectorParams):
    """Guard rails of audio parts and of the sound track of video parts (checked from headers
    before decoding; decoding also stops at the duration limit when the headers lie)."""

    max_bytes: int = Field(default=50 * 1024 * 1024, gt=0, description="largest audio file in bytes")
    max_video_bytes: int = Field(default=200 * 1024 * 1024, gt=0, description="largest video file whose sound is read")
    max_duration_s: float = Field(default=600.0, gt=0.0, le=86_400.0, description="longest audio / sound track")
    formats: tuple[AudioFormat, ...] = Field(default=("wav", "mp3", "ogg", "flac", "m4a"), min_length=1,
                                             description="audio formats that may be decoded (sniffed from bytes)")
    video_formats: tuple[ContainerFormat, ...] = Field(
        default=("mp4", "mov", "webm", "avi"),
        description="containers whose sound track is read: video parts, and audio parts in a video container "
                    "(an audio-only MP4 or WebM); empty: video parts are not listened to")


class AudioTranscriptParams(DetectorParams):
    audio: AudioLimits = Field(default_factory=AudioLimits)
    vad_threshold: float = Field(default=0.5, gt=0.0, lt=1.0,
                                 description="Silero speech probability that starts speech (it ends below this - 0.15)")
    min_speech_s: float = Field(default=0.25, ge=0.0, le=10.0, description="shorter speech is dropped (clicks)")
    min_silence_s: float = Field(default=0.3, ge=0.0, le=10.0,
                                 description="a pause at least this long ends a speech segment")
    speech_pad_s: float = Field(default=0.1, ge=0.0, le=2.0, description="kept around each segment (word edges)")
    max_segment_s: float = Field(default=30.0, ge=1.0, le=300.0,
                                 description="longer speech is cut into pieces this long for the recognizer")
    max_speech_s: float = Field(default=120.0, gt=0.0, le=3600.0,
                                description="most seconds of speech transcribed per item (bounds CPU time: "
                                            "pocketsphinx runs at roughly real time on one core)")
    over_max_speech: Literal["truncate", "error"] = Field(
        default="error",
        description="more speech than max_speech_s: 'error' gives an error result (the item goes to review per "
                    "the policy's on_detector_error); 'truncate' moderates the first max_speech_s only")

    @model_validator(mode="after")
    def _segment_fits(self) -> AudioTranscriptParams:
        if self.min_speech_s >= self.max_segment_s:
            raise ValueError("min_speech_s must be below max_segment_s")
        return self


class ImageVideoAudioLimits(ImageVideoLimits):
    """What an entry point checks before moderation when the policy also listens to audio."""

    audio: AudioLimits | None = Field(default=None, description="limits of audio parts (None: no audio reader)")


def edge_audio_limits(limits: list[AudioLimits]) -> AudioLimits | None:
    """The loosest of several detectors' audio limits (what an entry point accepts)."""
    if not limits:
        return None
    return AudioLimits(max_bytes=max(a.max_bytes for a in limits),
                       max_video_bytes=max(a.max_video_bytes for a in limits),
                       max_duration_s=max(a.max_duration_s for a in limits),
                       formats=tuple(dict.fromkeys(f for a in limits for f in a.formats)),
                       video_formats=tuple(dict.fromkeys(f for a in limits for f in a.video_formats)))


# -- decoding ------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class AudioInfo:
    """What the headers of a part's sound say (duration None when the container does not tell)."""

    format: str
    codec: str
    sample_rate: int
    channels: int
    duration_s: float | None


@dataclass(frozen=True, slots=True)
class DecodedAudio:
    """A sound track as 16 kHz mono 16-bit samples (a numpy int16 array)."""

    info: AudioInfo
    samples: Any

    @property
    def duration_s(self) -> float:
        return len(self.samples) / SAMPLE_RATE


def _open(data: bytes, limits: AudioLimits, kind: Modality) -> tuple[Any, Any | None, str]:
    """The container and its first audio stream (None: a video without sound)."""
    import av

    found = sniff(data)
    allowed = [*limits.formats, *limits.video_formats]
    if found is None or found.kind not in (Modality.AUDIO, Modality.VIDEO) or found.format not in allowed:
        what = "not a known audio or video format" if found is None else f"{found.format} ({found.kind.value})"
        raise MediaRejected("unsupported_format", f"{what}: cannot read its sound; supported: {', '.join(allowed)}")
    limit = limits.max_video_bytes if found.kind is Modality.VIDEO else limits.max_bytes
    if len(data) > limit:
        raise MediaRejected("too_large", f"the file has {len(data):,} bytes; the limit is {limit:,} "
                                         f"({'max_video_bytes' if found.kind is Modality.VIDEO else 'max_bytes'})")
    try:
        container = av.open(io.BytesIO(data), mode="r")
    except Exception as exc:  # av.error.InvalidDataError and friends
        raise MediaRejected("corrupt", f"cannot read the {found.format} container ({type(exc).__name__}: {exc})") \
            from None
    streams = container.streams.audio
    if not streams:
        if kind is Modality.VIDEO:
            return container, None, found.format
        container.close()
        raise MediaRejected("corrupt", f"the {found.format} file has no audio stream")
    return container, streams[0], found.format


def _check(container: Any, stream: Any, fmt: str, limits: AudioLimits, kind: Modality) -> AudioInfo:
    ctx = stream.codec_context
    if ctx is None:  # FFmpeg knows no decoder for the stream's codec id
        raise MediaRejected("corrupt", f"the {fmt} audio stream has an unknown or unsupported codec")
    rate, channels = int(ctx.sample_rate or 0), int(ctx.channels or 0)
    if not 1_000 <= rate <= 768_000 or not 1 <= channels <= 64:
        raise MediaRejected("corrupt", f"the audio stream declares {rate:,} Hz and {channels} channel(s)")
    duration = declared_duration_s(container, stream, what="audio", max_duration_s=limits.max_duration_s)
    if duration is not None and duration <= 0 and kind is Modality.AUDIO:
        raise MediaRejected("empty", "the audio stream is empty (0 s)")
    return AudioInfo(format=fmt, codec=str(ctx.name), sample_rate=rate, channels=channels, duration_s=duration)


def probe_audio(data: bytes, limits: AudioLimits, kind: Modality = Modality.AUDIO) -> AudioInfo | None:
    """Headers only: format, stream and duration within limits (raises MediaRejected). None:
    a video part without a sound track."""
    container, stream, fmt = _open(data, limits, kind)
    try:
        if stream is None:
            return None
        info = _check(container, stream, fmt, limits, kind)
        if kind is Modality.AUDIO and not _has_data(container, stream):
            raise MediaRejected("empty", f"the {fmt} file has no audio data")
        return info
    finally:
        container.close()


def _has_data(container: Any, stream: Any) -> bool:
    """Whether the stream has one non-empty packet (reads one packet, decodes nothing)."""
    try:
        return any(packet.size > 0 for packet in itertools.islice(container.demux(stream), 4))
    except Exception as exc:
        raise MediaRejected("corrupt", f"cannot read the audio data ({type(exc).__name__}: {exc})") from None


def decode_audio(data: bytes, limits: AudioLimits, kind: Modality = Modality.AUDIO) -> DecodedAudio | None:
    """The first audio stream as 16 kHz mono int16 (raises MediaRejected). None: a video part
    without a sound track. Decoding stops past `max_duration_s` of decoded sound even when the
    headers said less (or nothing)."""
    import numpy as np

    container, stream, fmt = _open(data, limits, kind)
    try:
        if stream is None:
            return None
        info = _check(container, stream, fmt, limits, kind)
        import av

        resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
        cap = int(limits.max_duration_s * SAMPLE_RATE) + SAMPLE_RATE  # one second of slack for codec padding
        chunks: list[Any] = []
        total = 0

        def keep(frames: list[Any]) -> None:
            nonlocal total
            for out in frames:
                arr = out.to_ndarray().reshape(-1)
                total += len(arr)
                if total > cap:
                    raise MediaRejected("too_long", f"the audio runs past {limits.max_duration_s:,} s "
                                                    "(max_duration_s); its header did not say")
                chunks.append(arr)

        for frame in container.decode(stream):
            keep(resampler.resample(frame))
        keep(resampler.resample(None))
    except MediaRejected:
        raise
    except Exception as exc:
        raise MediaRejected("corrupt", f"cannot decode the {fmt} audio ({type(exc).__name__}: {exc})") from None
    finally:
        container.close()
    if not chunks:
        if kind is Modality.VIDEO:  # an empty sound track: nothing to hear
            return None
        raise MediaRejected("corrupt", f"no audio could be decoded from the {fmt} file")
    return DecodedAudio(info=info, samples=np.concatenate(chunks).astype(np.int16, copy=False))


def load_audio(part: MediaPart, limits: AudioLimits) -> DecodedAudio | None:
    """Read and decode one audio or video part's sound behind every guard (raises MediaRejected)."""
    limit = limits.max_video_bytes if part.kind is Modality.VIDEO else max(limits.max_bytes, limits.max_video_bytes
                                                                          if limits.video_formats else 0)
    if part.size is not None and part.size > limit:
        raise MediaRejected("too_large", f"the file has {part.size:,} bytes; the limit is {limit:,}")
    return decode_audio(read_part(part, max_bytes=limit), limits, part.kind)


# -- speech segments: Silero VAD on ONNX Runtime ---------------------------------------------------
@dataclass(frozen=True, slots=True)
class SpeechSegment:
    """Speech from `start_s` to `end_s` in a part (padded by `speech_pad_s`)."""

    start_s: float
    end_s: float


def silero_model_path() -> Path:
    """`silero_vad/data/silero_vad.onnx` in the installed wheel, found without importing the
    package (its __init__ imports torch)."""
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"audio_transcript needs the silero-vad wheel (its ONNX model): {INSTALL}")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "silero_vad.onnx"
    if not path.is_file():
        raise ImportError(f"silero-vad is installed but {path.name} is missing from it; reinstall: {INSTALL}")
    return path


class SileroVad:
    """Silero VAD v5/v6 (ONNX): speech probability per 32 ms window of 16 kHz audio. Inputs:
    `input` (1, 64 + 512) float32 in [-1, 1] (the previous window's last 64 samples, then the
    window), `state` (2, 1, 128), `sr`; outputs the probability and the next state."""

    def __init__(self, path: Path | None = None) -> None:
        import onnxruntime as ort

        self.path = path or silero_model_path()
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1  # tiny windows: threads cost more than they give
        opts.inter_op_num_threads = 1
        self._session = ort.InferenceSession(str(self.path), opts, providers=["CPUExecutionProvider"])

    def probabilities(self, samples: Any) -> Any:
        """Speech probability of each 512-sample window of int16 16 kHz audio (the last one zero-padded)."""
        import numpy as np

        x = samples.astype(np.float32) / 32768.0
        n = -(-len(x) // VAD_WINDOW)
        x = np.pad(x, (0, n * VAD_WINDOW - len(x)))
        state = np.zeros((2, 1, 128), dtype=np.float32)
        context = np.zeros((1, VAD_CONTEXT), dtype=np.float32)
        sr = np.array(SAMPLE_RATE, dtype=np.int64)
        out = np.empty(n, dtype=np.float32)
        for i in range(n):  # a recurrent model: one window after the other
            window = np.concatenate([context, x[None, i * VAD_WINDOW:(i + 1) * VAD_WINDOW]], axis=1)
            prob, state = self._session.run(None, {"input": window, "state": state, "sr": sr})
            out[i] = prob[0, 0]
            context = window[:, -VAD_CONTEXT:]
        return out


def speech_segments(probs: Any, duration_s: float, params: AudioTranscriptParams) -> list[SpeechSegment]:
    """Speech segments from window probabilities, as silero-vad's `get_speech_timestamps` does:
    speech starts at `vad_threshold`, ends after `min_silence_s` below `vad_threshold - 0.15`;
    segments shorter than `min_speech_s` are dropped, the rest padded by `speech_pad_s` and cut
    into pieces of at most `max_segment_s`."""
    step = VAD_WINDOW / SAMPLE_RATE
    high, low = params.vad_threshold, max(params.vad_threshold - 0.15, 0.01)
    raw: list[tuple[float, float]] = []
    start: float | None = None
    silent_since: float | None = None
    for i, p in enumerate(probs):
        t = i * step
        if p >= high:
            silent_since = None
            if start is None:
                start = t
        elif start is not None and p < low:
            silent_since = t if silent_since is None else silent_since
            if t + step - silent_since >= params.min_silence_s:
                raw.append((start, silent_since))
                start, silent_since = None, None
    if start is not None:
        raw.append((start, silent_since if silent_since is not None else len(probs) * step))
    out: list[SpeechSegment] = []
    for s, e in raw:
        if e - s < params.min_speech_s:
            continue
        s, e = max(0.0, s - params.speech_pad_s), min(duration_s, e + params.speech_pad_s)
        if out and s <= out[-1].end_s:  # padding made neighbours touch
            s = out[-1].end_s
        while e - s > params.max_segment_s:
            out.append(SpeechSegment(round(s, 3), round(s + params.max_segment_s, 3)))
            s += params.max_segment_s
        if e > s:
            out.append(SpeechSegment(round(s, 3), round(e, 3)))
    return out


# -- transcription: pocketsphinx ------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Word:
    """One recognised word with its time in the part and pocketsphinx's posterior (0-1)."""

    text: str
    start_s: float
    end_s: float
    confidence: float


class SphinxRecognizer:
    """pocketsphinx 5 with its bundled US English model (acoustic model, 3-gram LM, CMU dict).
    A decoder is not thread-safe and loading one takes ~1 s, so each detector keeps one behind a lock."""

    def __init__(self) -> None:
        try:
            import pocketsphinx
        except ImportError as exc:
            raise ImportError(f"audio_transcript needs pocketsphinx: {INSTALL} ({exc})") from exc
        self.version = getattr(pocketsphinx, "__version__", None) or _dist_version("pocketsphinx")
        self._decoder = pocketsphinx.Decoder(samprate=SAMPLE_RATE, loglevel="FATAL")
        self._lock = threading.Lock()

    def words(self, samples: Any, offset_s: float) -> list[Word]:
        """The words of one speech segment (int16, 16 kHz), timed from `offset_s`."""
        import numpy as np

        # A little fixed-seed dither: digital silence (exact zeros, as synthetic and gated audio
        # have) breaks the recognizer's log-energy features; measured WER 0.84 -> ~0.35 on espeak
        # speech. Seeded per segment, so the transcript does not depend on what was decoded before.
        noise = np.random.default_rng(0).integers(-1, 2, size=len(samples), dtype=np.int32)
        pcm = np.clip(samples.astype(np.int32) + noise, -32768, 32767).astype(np.int16)
        with self._lock:
            dec = self._decoder
            dec.start_utt()
            dec.process_raw(pcm.tobytes(), no_search=False, full_utt=True)
            dec.end_utt()
            segs = [(s.word, s.start_frame, s.end_frame, s.prob) for s in dec.seg()] if dec.hyp() is not None else []
        out: list[Word] = []
        for word, start, end, prob in segs:
            if word in _FILLERS or word.startswith("++") or word.startswith("["):
                continue
            text = word.split("(", 1)[0]  # "the(2)": the second pronunciation of "the"
            if text:
                out.append(Word(text, round(offset_s + start / ASR_FRAME_RATE, 3),
                                round(offset_s + (end + 1) / ASR_FRAME_RATE, 3), float(min(max(prob, 0.0), 1.0))))
        return out


def _dist_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "unknown"


def transcript(part: int, words: list[Word]) -> ExtractedText | None:
    """Words as one text (single spaces) with each word's characters mapped to its time."""
    if not words:
        return None
    times: list[TextTime] = []
    offset = 0
    for w in words:
        times.append(TextTime(start=offset, end=offset + len(w.text), start_s=w.start_s, end_s=w.end_s))
        offset += len(w.text) + 1
    confidence = round(sum(w.confidence for w in words) / len(words), 4)
    return ExtractedText(part=part, text=" ".join(w.text for w in words), via="asr", confidence=confidence,
                         times=tuple(times))


@dataclass(frozen=True, slots=True)
class PartTranscript:
    """What was heard in one part: its speech segments and words (None when a video has no sound)."""

    part: int
    audio: DecodedAudio | None
    segments: tuple[SpeechSegment, ...]
    words: tuple[Word, ...]
    truncated: bool = False


class AudioTranscriptDetector(Detector):
    """Transcribes speech in audio parts and in videos' sound; the Moderator sends the text
    through the text tiers (source "asr", evidence with `time_s`/`end_s`)."""

    name: ClassVar[str] = "audio_transcript"
    modalities = frozenset({Modality.AUDIO, Modality.VIDEO})
    Params = AudioTranscriptParams
    version = "1"
    extracts_text = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        try:
            import av  # noqa: F401
        except ImportError as exc:
            raise ImportError(f"audio_transcript needs PyAV: {INSTALL} ({exc})") from exc
        self._vad = SileroVad()
        self._asr = SphinxRecognizer()

    @property
    def model_version(self) -> str:
        return f"{self.name}@{self.version}+silero-vad-{_dist_version('silero-vad')}+pocketsphinx-{self._asr.version}"

    def listen(self, item: Content) -> list[PartTranscript]:
        """Each audio / video part's speech segments and words, in part order, at most
        `max_speech_s` of speech per item (raises MediaRejected for a part that cannot be read)."""
        params: Any = self.params
        budget = params.max_speech_s
        out: list[PartTranscript] = []
        for i, media in enumerate(item.media):
            if media.kind not in (Modality.AUDIO, Modality.VIDEO):
                continue
            if media.kind is Modality.VIDEO and not params.audio.video_formats:
                continue
            try:
                audio = load_audio(media, params.audio)
            except MediaRejected as exc:
                raise MediaRejected(exc.code, f"media[{i}]: {exc}") from None
            if audio is None:  # a video without a sound track: nothing to hear
                out.append(PartTranscript(i, None, (), ()))
                continue
            segments = speech_segments(self._vad.probabilities(audio.samples), audio.duration_s, params)
            words: list[Word] = []
            truncated = False
            for seg in segments:
                length = seg.end_s - seg.start_s
                if length > budget:
                    if params.over_max_speech == "error":
                        raise MediaRejected("too_much_speech", f"media[{i}]: the item has more than "
                                                               f"{params.max_speech_s:,} s of speech (max_speech_s)")
                    truncated = True
                    length = budget
                if length > 0:
                    a, b = round(seg.start_s * SAMPLE_RATE), round((seg.start_s + length) * SAMPLE_RATE)
                    words += self._asr.words(audio.samples[a:b], seg.start_s)
                    budget -= length
                if truncated:
                    break
            out.append(PartTranscript(i, audio, tuple(segments), tuple(words), truncated))
        return out

    def _detect(self, batch: Sequence[Content]) -> list[DetectorResult]:
        results: list[DetectorResult] = []
        for item in batch:
            try:
                heard = self.listen(item)
            except MediaRejected as exc:
                results.append(self.failed(item, str(exc)))
                continue
            texts = tuple(t for h in heard if (t := transcript(h.part, list(h.words))) is not None)
            results.append(self.result(item, {}, (), texts=texts))
        return results


__all__ = [
    "AudioInfo",
    "AudioLimits",
    "AudioTranscriptDetector",
    "AudioTranscriptParams",
    "DecodedAudio",
    "ImageVideoAudioLimits",
    "PartTranscript",
    "SileroVad",
    "SpeechSegment",
    "SphinxRecognizer",
    "Word",
    "decode_audio",
    "edge_audio_limits",
    "load_audio",
    "probe_audio",
    "silero_model_path",
    "speech_segments",
    "transcript",
]
