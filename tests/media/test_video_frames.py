"""Video frame sampling (PyAV) on synthetic videos written with PyAV: frames at the right
times, and every limit enforced before or while decoding."""

from __future__ import annotations

import io

import pytest

from warden.detectors.media.guards import MediaRejected

av = pytest.importorskip("av", reason="PyAV (av) is not installed; video sampling is a later step")

from warden.detectors.media.video import VideoLimits, probe_video, sample_frames  # noqa: E402

COLORS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)]


def synthetic_video(seconds: int = 4, fps: int = 10, size: tuple[int, int] = (160, 120),
                    container_format: str = "mp4") -> bytes:
    """One solid colour per second (red, green, blue, yellow, ...)."""
    import numpy as np

    buf = io.BytesIO()
    with av.open(buf, mode="w", format=container_format) as out:
        stream = out.add_stream("mpeg4", rate=fps)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        for i in range(seconds * fps):
            arr = np.zeros((size[1], size[0], 3), dtype=np.uint8)
            arr[:, :] = COLORS[(i // fps) % len(COLORS)]
            for packet in stream.encode(av.VideoFrame.from_ndarray(arr, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return buf.getvalue()


def test_probe_reads_headers() -> None:
    info = probe_video(synthetic_video(), VideoLimits())
    assert (info.format, info.width, info.height) == ("mp4", 160, 120)
    assert info.duration_s == pytest.approx(4.0, abs=0.2) and info.fps == pytest.approx(10)


def test_one_frame_per_second_with_the_right_content() -> None:
    frames = sample_frames(synthetic_video(), VideoLimits(every_s=1.0))
    assert [f.time_s for f in frames] == pytest.approx([0.0, 1.0, 2.0, 3.0], abs=0.11)
    for frame, color in zip(frames, COLORS, strict=True):
        r, g, b = frame.image.image.getpixel((80, 60))
        assert max(abs(r - color[0]), abs(g - color[1]), abs(b - color[2])) < 40, (frame.time_s, (r, g, b))
    assert len(sample_frames(synthetic_video(), VideoLimits(every_s=0.5, max_frames=3))) == 3


def test_limits_from_headers() -> None:
    data = synthetic_video(seconds=3)
    with pytest.raises(MediaRejected, match=r"lasts 3.0 s; the limit is 2.0 s \(max_duration_s\)") as err:
        probe_video(data, VideoLimits(max_duration_s=2))
    assert err.value.code == "too_long"
    with pytest.raises(MediaRejected, match="frames are 160x120 = 19,200 pixels; the limit is 10,000"):
        sample_frames(data, VideoLimits(max_pixels=10_000))
    with pytest.raises(MediaRejected, match="mp4 videos are not accepted; supported: webm"):
        probe_video(data, VideoLimits(formats=("webm",)))
    with pytest.raises(MediaRejected, match=r"the limit is 1,000 \(max_bytes\)"):
        probe_video(data, VideoLimits(max_bytes=1000))


def test_broken_videos_are_refused_not_crashes() -> None:
    data = synthetic_video()
    for bad in (data[: len(data) // 4], b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 200, b"RIFF\x00\x00\x00\x00AVI "):
        with pytest.raises(MediaRejected) as err:
            sample_frames(bad, VideoLimits())
        assert err.value.code in ("corrupt", "unsupported_format"), err.value
    with pytest.raises(MediaRejected, match="not a supported video format"):
        probe_video(b"\x89PNG\r\n\x1a\n" + b"\x00" * 50, VideoLimits())
