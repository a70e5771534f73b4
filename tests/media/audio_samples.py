"""Generated test audio: speech from Debian's espeak-ng, silence, tones, the same sound in every
container the audio detector reads (PyAV encoders), and videos with a sound track."""

from __future__ import annotations

import io
import shutil
import subprocess
import wave
from typing import Any

import numpy as np
from media_samples import need_media_extra

from support import skip_or_fail

#: The voice and speed of the test speech (espeak-ng's US English, a female variant: pocketsphinx
#: recognises it better than the default male voice; see benchmarks/asr_wer.py).
VOICE = "en-us+f2"
SPEED = 150


def need_audio() -> None:
    """Skip (locally) or fail (CI) when the audio detector's packages (av, pocketsphinx,
    silero-vad) are missing: `need_media_extra` checks them with the rest of warden[media]."""
    need_media_extra()


def need_espeak() -> None:
    need_audio()
    if shutil.which("espeak-ng") is None:
        skip_or_fail("Debian's espeak-ng is not installed (test speech): apt-get install -y espeak-ng")


def speak(text: str, *, voice: str = VOICE, speed: int = SPEED) -> bytes:
    """`text` spoken by espeak-ng, as a WAV file (22,050 Hz mono)."""
    return subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "--stdout", text], check=True,
                          capture_output=True, timeout=60).stdout


def wav(samples: np.ndarray, rate: int = 16_000) -> bytes:
    """16-bit mono samples as a WAV file."""
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.asarray(samples, dtype=np.int16).tobytes())
    return buf.getvalue()


def silence(seconds: float, rate: int = 16_000, *, noise: int = 0) -> bytes:
    """Digital silence, or quiet white noise of amplitude `noise` (fixed seed)."""
    n = round(seconds * rate)
    samples = np.random.default_rng(1).integers(-noise, noise + 1, n) if noise else np.zeros(n)
    return wav(samples.astype(np.int16), rate)


def tone(seconds: float, hz: float = 440.0, rate: int = 16_000) -> bytes:
    t = np.arange(round(seconds * rate)) / rate
    return wav((np.sin(2 * np.pi * hz * t) * 8000).astype(np.int16), rate)


def samples_of(data: bytes) -> tuple[np.ndarray, int]:
    """The samples and rate of a 16-bit mono WAV."""
    with wave.open(io.BytesIO(data)) as w:
        return np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16), w.getframerate()


def concat(*wavs: bytes) -> bytes:
    """WAV files of the same rate, one after the other."""
    parts = [samples_of(w) for w in wavs]
    return wav(np.concatenate([s for s, _ in parts]), parts[0][1])


#: container format -> (PyAV muxer, codec, sample rate the codec takes)
ENCODINGS: dict[str, tuple[str, str, int]] = {
    "flac": ("flac", "flac", 22_050),
    "ogg": ("ogg", "libopus", 48_000),
    "mp3": ("mp3", "libmp3lame", 22_050),
    "m4a": ("ipod", "aac", 22_050),
}


def encode(data: bytes, fmt: str) -> bytes:
    """A WAV re-encoded as FLAC, Ogg/Opus, MP3 or M4A (AAC) with PyAV."""
    import av

    muxer, codec, rate = ENCODINGS[fmt]
    buf = io.BytesIO()
    with av.open(io.BytesIO(data)) as src, av.open(buf, mode="w", format=muxer) as out:
        stream: Any = out.add_stream(codec, rate=rate, layout="mono")
        resampler = av.AudioResampler(format=stream.codec_context.format.name, layout="mono", rate=rate)
        for frame in src.decode(audio=0):
            for f in resampler.resample(frame):
                for packet in stream.encode(f):
                    out.mux(packet)
        for f in resampler.resample(None):
            for packet in stream.encode(f):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()


def video_with_sound(frames: list[np.ndarray], sound: bytes | None, *, fps: int = 5, audio_codec: str = "aac",
                     container_format: str = "mp4") -> bytes:
    """An MPEG-4 video of `frames` with the WAV `sound` as its AAC sound track (None: no sound)."""
    import av

    buf = io.BytesIO()
    with av.open(buf, mode="w", format=container_format) as out:
        video: Any = out.add_stream("mpeg4", rate=fps)
        video.height, video.width = frames[0].shape[:2]
        video.pix_fmt = "yuv420p"
        audio: Any = out.add_stream(audio_codec, rate=22_050, layout="mono") if sound is not None else None
        for arr in frames:
            for packet in video.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(arr), format="rgb24")):
                out.mux(packet)
        for packet in video.encode():
            out.mux(packet)
        if audio is not None and sound is not None:
            resampler = av.AudioResampler(format=audio.codec_context.format.name, layout="mono", rate=22_050)
            with av.open(io.BytesIO(sound)) as src:
                for frame in src.decode(audio=0):
                    for f in resampler.resample(frame):
                        for packet in audio.encode(f):
                            out.mux(packet)
            for f in resampler.resample(None):
                for packet in audio.encode(f):
                    out.mux(packet)
            for packet in audio.encode(None):
                out.mux(packet)
    return buf.getvalue()
