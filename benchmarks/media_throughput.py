"""Images per second of each media detector on this machine, and of the whole media policy.

Images are generated (never committed): scikit-image's safe photographs (astronaut, coffee,
chelsea, rocket) as JPEG at their own size and upscaled to 1600 px, plus text-on-image memes
and a drawing as PNG. Each detector is built from `policies/media.yaml`'s parameters with
ONNX Runtime pinned to 1 thread (the policy's setting: the other core serves other requests)
and with 2 threads, and scores the same images `--rounds` times in-process after a warm-up; the
full policy (`Moderator`, caption + one image per item) is measured the same way. The guard
rails' cost on a decompression bomb (refused from its header) is timed too.

Video: a generated 640x360, 25 fps MPEG-4 video (`--video-seconds`, 45 s by default: slow pans
across the safe photographs, a cut every 4.5 s, a few text cards) is timed as video seconds
processed per wall-clock second: decode + sampling alone (with and without the scene-cut
test), each video-reading detector on its own (decoding included: the frame cache is cleared
before each round) and the whole media policy (one decode shared by all its detectors).
`--video-only` runs just that part and updates the `video` entry of the existing results.

Speed figures depend on the machine's load: the script refuses to run when the 1-minute load
average is 1.5 or more (`--force` overrides; the load is recorded in the JSON either way).

    .venv/bin/python benchmarks/media_throughput.py            # writes results/media_throughput.json
    .venv/bin/python benchmarks/media_throughput.py --quick    # smoke run
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import contextlib

import _common as C

MEDIA_POLICY = C.ROOT / "policies" / "media.yaml"


def _images(quick: bool) -> list[tuple[str, bytes]]:
    import numpy as np
    from PIL import Image, ImageDraw, ImageFont
    from skimage import data

    out: list[tuple[str, bytes]] = []
    for name in ("astronaut", "coffee", "chelsea", "rocket"):
        img = Image.fromarray(np.asarray(getattr(data, name)())).convert("RGB")
        for side in ((None,) if quick else (None, 1600)):
            im = img if side is None else img.resize((side, round(side * img.height / img.width)))
            buf = io.BytesIO()
            im.save(buf, "JPEG", quality=90)
            out.append((f"{name}_{im.width}x{im.height}.jpg", buf.getvalue()))
    for text in ("I will kill you", "Free bitcoin, click the link", "Have a nice day"):
        im = Image.new("RGB", (900, 300), (255, 255, 255))
        d = ImageDraw.Draw(im)
        d.text((40, 110), text, font=ImageFont.load_default(size=64), fill=(0, 0, 0))
        buf = io.BytesIO()
        im.save(buf, "PNG")
        out.append((f"meme_{text[:10].replace(' ', '_')}.png", buf.getvalue()))
    return out


def _detector(type_name: str, params: dict[str, Any], threads: int | None) -> Any:
    from warden.core import DEFAULT_CATEGORIES
    from warden.detectors import registry
    from warden.detectors.base import DetectorContext

    p = dict(params)
    if threads is not None:
        p["threads"] = threads
    return registry.get(type_name).from_config(p, instance=type_name,
                                               context=DetectorContext(base_dir=MEDIA_POLICY.parent,
                                                                       categories=DEFAULT_CATEGORIES))


def _time(fn: Any, n_items: int, rounds: int) -> dict[str, Any]:
    fn()  # warm-up (sessions, caches)
    per_round = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        per_round.append(time.perf_counter() - start)
    total = sum(per_round)
    return {"items": n_items * rounds, "seconds": round(total, 3), "items_per_s": round(n_items * rounds / total, 2),
            "ms_per_item_median_round": round(statistics.median(per_round) * 1000 / n_items, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="one round, fewer images (smoke test)")
    ap.add_argument("--force", action="store_true", help="run even when the machine is busy")
    ap.add_argument("--video-seconds", type=float, default=45.0, help="length of the generated test video")
    ap.add_argument("--video-only", action="store_true", help="only the video figures (updates the results file)")
    args = ap.parse_args()
    load1 = os.getloadavg()[0]
    if load1 >= 1.5 and not args.force and not args.quick:
        sys.exit(f"1-minute load average is {load1:.2f} (>= 1.5): figures would be skewed; retry later or --force")
    rounds = 1 if args.quick else args.rounds
    if args.video_only:
        import json

        existing = C.RESULTS / ("media_throughput.quick.json" if args.quick else "media_throughput.json")
        results = json.loads(existing.read_text(encoding="utf-8")) if existing.is_file() else {}
        results["video"] = _video_figures(10.0 if args.quick else args.video_seconds, rounds)
        path = C.write_result("media_throughput", results, quick=args.quick)
        print(f"wrote {C.rel(path)}")
        return

    from warden import Moderator
    from warden.core import Content, MediaPart, Modality
    from warden.detectors.media.guards import ImageLimits, MediaRejected, check_image_header
    from warden.policy import load_policy

    policy = load_policy(MEDIA_POLICY)
    images = _images(args.quick)
    items = [Content(id=f"i{i}", text="look at this", media=(MediaPart(kind=Modality.IMAGE, data=b, name=n),))
             for i, (n, b) in enumerate(images)]
    results: dict[str, Any] = {"machine": C.machine_info(), "images": [n for n, _ in images], "rounds": rounds,
                               "detectors": {}}
    for inst in ("nudity", "nsfw", "ocr"):
        spec = policy.detectors[inst]
        for threads in ((None,) if inst == "ocr" else (1, 2)):
            det = _detector(spec.type, spec.params, threads)
            key = f"{inst}" + (f"_threads{threads}" if threads else "")
            res = _time(lambda det=det: det.detect(items), len(items), rounds)
            res["errors"] = sum(1 for r in det.detect(items) if not r.ok)
            results["detectors"][key] = res
            print(f"{key:18s} {res['items_per_s']:8.2f} images/s  {res['ms_per_item_median_round']:8.1f} ms/image",
                  flush=True)
    moderator = Moderator.from_file(MEDIA_POLICY)
    res = _time(lambda: moderator.moderate_batch(items), len(items), rounds)
    results["moderator_media_policy"] = res
    print(f"{'media policy':18s} {res['items_per_s']:8.2f} items/s   {res['ms_per_item_median_round']:8.1f} ms/item")

    bomb = _bomb()
    start = time.perf_counter()
    n = 200
    for _ in range(n):
        with contextlib.suppress(MediaRejected):
            check_image_header(bomb, ImageLimits())
    results["bomb_refusal_us"] = round((time.perf_counter() - start) / n * 1e6, 1)
    print(f"decompression bomb refused in {results['bomb_refusal_us']} us (header only)")
    results["video"] = _video_figures(10.0 if args.quick else args.video_seconds, rounds)
    results["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    path = C.write_result("media_throughput", results, quick=args.quick)
    print(f"wrote {C.rel(path)}")


def _test_video(seconds: float, fps: int = 25, size: tuple[int, int] = (640, 360)) -> bytes:
    """Slow pans across safe photographs (every frame differs, as in real footage), a cut
    every 4.5 s, and a text card every fourth shot."""
    import av
    import numpy as np
    from PIL import Image, ImageDraw, ImageFont
    from skimage import data

    w, h = size
    shots = []
    for name in ("astronaut", "coffee", "chelsea", "rocket"):
        img = Image.fromarray(np.asarray(getattr(data, name)())).convert("RGB")
        scale = 1.4 * max(w / img.width, h / img.height)
        shots.append(np.asarray(img.resize((round(img.width * scale), round(img.height * scale)))))
    card = Image.new("RGB", size, (255, 255, 255))
    ImageDraw.Draw(card).text((60, 150), "See you at the meeting tomorrow", font=ImageFont.load_default(size=36),
                              fill=(0, 0, 0))
    card_arr = np.asarray(card)
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mp4") as out:
        stream = out.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.bit_rate = 1_500_000
        n = round(seconds * fps)
        per_shot = round(4.5 * fps)  # cuts off the 1 s grid: the scene test samples them
        for i in range(n):
            shot, k = divmod(i, per_shot)
            if shot % 4 == 3:
                arr = card_arr
            else:
                src = shots[shot % len(shots)]
                x = round((src.shape[1] - w) * k / per_shot)
                y = round((src.shape[0] - h) * k / per_shot / 2)
                arr = np.ascontiguousarray(src[y:y + h, x:x + w])
            for packet in stream.encode(av.VideoFrame.from_ndarray(arr, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return buf.getvalue()


def _video_figures(seconds: float, rounds: int) -> dict[str, Any]:
    from warden import Moderator
    from warden.core import Content, MediaPart, Modality
    from warden.detectors.hashing import BankMatcher
    from warden.detectors.hashing.detector import HashBankDetector
    from warden.detectors.media.video import FRAME_CACHE, VideoLimits, sample_video
    from warden.policy import load_policy

    load_before = [round(x, 2) for x in os.getloadavg()]
    data = _test_video(seconds)
    sample = sample_video(data, VideoLimits())
    length = sample.info.duration_s or seconds
    item = Content(id="video", media=(MediaPart(kind=Modality.VIDEO, data=data, name="test.mp4"),))
    out: dict[str, Any] = {"video": {"seconds": round(length, 2), "size": "640x360", "fps": 25, "codec": "mpeg4",
                                     "bytes": len(data), "sampled_frames": len(sample.frames),
                                     "scene_frames": sum(f.reason == "scene" for f in sample.frames),
                                     "decoded_frames": sample.decoded},
                           "loadavg_before": load_before, "video_seconds_per_s": {}}

    def measure(key: str, fn: Any) -> None:
        def run() -> None:
            FRAME_CACHE.clear()  # each round decodes again: the figure includes decoding
            fn()

        timed = _time(run, 1, rounds)
        rate = round(length * timed["items"] / timed["seconds"], 2)
        out["video_seconds_per_s"][key] = rate
        print(f"video {key:28s} {rate:8.2f} video s/s  ({timed['ms_per_item_median_round']:.0f} ms per "
              f"{length:.0f} s video)", flush=True)

    measure("decode_sample", lambda: sample_video(data, VideoLimits()))
    measure("decode_sample_no_scene_test", lambda: sample_video(data, VideoLimits(scene_threshold=None)))
    policy = load_policy(MEDIA_POLICY)
    for inst in ("nudity", "nsfw", "ocr"):
        spec = policy.detectors[inst]
        det = _detector(spec.type, spec.params, None)
        measure(f"decode_sample+{inst}", lambda det=det: det.detect([item]))
    hashing = HashBankDetector(matcher=BankMatcher.from_entries({}))
    measure("decode_sample+hash_bank", lambda: hashing.detect([item]))
    moderator = Moderator.from_file(MEDIA_POLICY)
    measure("media_policy", lambda: moderator.moderate_batch([item]))
    out["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    return out


def _bomb() -> bytes:
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    idat = chunk(b"IDAT", zlib.compress(b"\x00" * 200))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + idat + chunk(b"IEND", b"")


if __name__ == "__main__":
    main()
