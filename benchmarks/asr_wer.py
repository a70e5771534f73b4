"""Word error rate and speed of the audio transcript (Silero VAD + pocketsphinx) on generated speech.

Forty sentences (everyday speech, questions, numbers said as words, and eight threats that
the default keyword bank lists) are spoken by Debian's espeak-ng in three voice/speed
settings and run through `audio_transcript`'s own path: PyAV decoding to 16 kHz mono, Silero
VAD, pocketsphinx per speech segment. Reported:

* WER (word-level Levenshtein distance / reference words, over all utterances of a setting),
  with a 95% bootstrap interval (utterances resampled, 2,000 rounds, fixed seed);
* keyword spotting: of the threat sentences, how many transcripts the default keyword bank
  still flags (what the product relies on), and how many benign ones it flags;
* speed: audio seconds processed per wall-clock second (decode + VAD + ASR, one thread), and
  VAD alone.

espeak's formant speech is not real speech: it is cleaner (no noise, no reverberation, exact
timing) but also unnatural, and pocketsphinx's acoustic model was trained on real voices. The
figures say how the plumbing and the recognizer behave on it, not what WER to expect on user
uploads; measure on your own labelled audio for that. Nothing is tuned on these sentences.

    .venv/bin/python benchmarks/asr_wer.py            # writes results/asr_wer.json
    .venv/bin/python benchmarks/asr_wer.py --quick    # 8 sentences, one setting
"""

from __future__ import annotations

import argparse
import random
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C

#: Each contains a term of the default keyword bank's `direct_threats` list.
THREATS = [
    "I will kill you",
    "I'm going to kill you tomorrow",
    "I will find you and kill you",
    "You should go kill yourself",
    "Listen to me, I will hurt your family",
    "Nobody likes you, you deserve to die",
    "If you come back here I will kill you",
    "I know where you live",
]
BENIGN = [
    "Good morning everyone, welcome to the show",
    "The weather is nice today and we are going to the park",
    "Please send me the report by Friday afternoon",
    "My phone number changed last week",
    "We should meet at the station at noon",
    "This movie was really boring",
    "Can you hear me now",
    "I think the meeting starts at three o'clock",
    "Thank you so much for the birthday present",
    "The train to the city leaves every twenty minutes",
    "She bought two apples and a loaf of bread",
    "Do not forget to water the plants",
    "Our team won the game on Saturday",
    "How much does this jacket cost",
    "I will call you back in five minutes",
    "The children are playing in the garden",
    "He reads the newspaper every morning",
    "What time does the library close",
    "We are going on holiday next month",
    "The coffee is too hot to drink",
    "Turn left at the second traffic light",
    "My brother lives in a small town by the sea",
    "Could you open the window please",
    "The price of fuel went up again",
    "I love listening to music in the evening",
    "The doctor said I need more sleep",
    "Let us order pizza for dinner",
    "The new software update fixed the bug",
    "It is raining so take an umbrella",
    "This game is going to kill me, it is so hard",
    "Write your name at the top of the page",
    "There are seven days in a week",
]
SETTINGS = [("en-us+f2", 150), ("en-us+f2", 190), ("en-us", 150)]


def normalize(text: str) -> list[str]:
    """Lower case, words only (apostrophes kept: pocketsphinx's dictionary has "i'm", "o'clock")."""
    return re.findall(r"[a-z']+", text.lower())


def edit_distance(ref: list[str], hyp: list[str]) -> int:
    row = list(range(len(hyp) + 1))
    for i in range(1, len(ref) + 1):
        prev, row[0] = row[:], i
        for j in range(1, len(hyp) + 1):
            row[j] = min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (ref[i - 1] != hyp[j - 1]))
    return row[len(hyp)]


def wer(rows: list[dict[str, Any]]) -> float:
    return sum(r["errors"] for r in rows) / max(1, sum(r["ref_words"] for r in rows))


def bootstrap(rows: list[dict[str, Any]], *, rounds: int = 2000, seed: int = 0) -> tuple[float, float]:
    rng = random.Random(seed)
    stats = sorted(wer([rng.choice(rows) for _ in rows]) for _ in range(rounds))
    return stats[int(0.025 * rounds)], stats[int(0.975 * rounds) - 1]


def espeak_version() -> str:
    out = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True, timeout=10).stdout
    found = re.search(r"eSpeak NG text-to-speech: (\S+)", out)
    return found.group(1) if found else out.strip()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="8 sentences, one voice (smoke run)")
    args = ap.parse_args()

    from warden.core import Content, MediaPart, Modality
    from warden.detectors import registry
    from warden.detectors.base import DetectorContext
    from warden.detectors.media.audio import AudioTranscriptDetector, decode_audio

    start_info = C.machine_info()
    sentences = [(s, True) for s in THREATS] + [(s, False) for s in BENIGN]
    settings = SETTINGS
    if args.quick:
        sentences, settings = sentences[:4] + sentences[-4:], SETTINGS[:1]
    detector = AudioTranscriptDetector()
    bank = registry.get("keyword_bank").from_config({"path": "policies/banks/default.yaml"},
                                                    context=DetectorContext(base_dir=C.ROOT))
    rows: list[dict[str, Any]] = []
    for voice, speed in settings:
        for n, (sentence, threat) in enumerate(sentences):
            data = subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "--stdout", sentence], check=True,
                                  capture_output=True, timeout=60).stdout
            item = Content(id=f"{voice}-{speed}-{n}", text=None, media=(MediaPart(kind=Modality.AUDIO, data=data),))
            t0 = time.perf_counter()
            [heard] = detector.listen(item)
            seconds = time.perf_counter() - t0
            audio = decode_audio(data, detector.params.audio)  # type: ignore[attr-defined]
            assert audio is not None
            t1 = time.perf_counter()
            detector._vad.probabilities(audio.samples)
            vad_seconds = time.perf_counter() - t1
            hyp = " ".join(w.text for w in heard.words)
            ref_words, hyp_words = normalize(sentence), normalize(hyp)
            [flag] = bank.detect([Content(id="t", text=hyp or " ")])
            rows.append({"setting": f"{voice} {speed} wpm", "sentence": sentence, "threat": threat, "transcript": hyp,
                         "ref_words": len(ref_words), "errors": edit_distance(ref_words, hyp_words),
                         "audio_s": round(audio.duration_s, 3), "seconds": round(seconds, 4),
                         "vad_seconds": round(vad_seconds, 4), "segments": len(heard.segments),
                         "bank_flags": flag.ok and flag.scores.get("harassment/threatening", 0.0) >= 0.8})
            print(f"{rows[-1]['setting']:<18} {rows[-1]['errors']:>2}/{len(ref_words):<2} {sentence!r} -> {hyp!r}",
                  flush=True)

    def summary(subset: list[dict[str, Any]]) -> dict[str, Any]:
        lo, hi = bootstrap(subset)
        audio_s, secs = sum(r["audio_s"] for r in subset), sum(r["seconds"] for r in subset)
        threats = [r for r in subset if r["threat"]]
        benign = [r for r in subset if not r["threat"]]
        return {"utterances": len(subset), "reference_words": sum(r["ref_words"] for r in subset),
                "wer": round(wer(subset), 4), "wer_ci95": [round(lo, 4), round(hi, 4)],
                "threats_flagged_by_bank": f"{sum(r['bank_flags'] for r in threats)}/{len(threats)}",
                "benign_flagged_by_bank": f"{sum(r['bank_flags'] for r in benign)}/{len(benign)}",
                "audio_seconds": round(audio_s, 1), "wall_seconds": round(secs, 1),
                "audio_s_per_s": round(audio_s / secs, 2),
                "vad_audio_s_per_s": round(audio_s / sum(r["vad_seconds"] for r in subset), 1)}

    by_setting = {s: summary([r for r in rows if r["setting"] == s]) for s in dict.fromkeys(r["setting"] for r in rows)}
    overall = summary(rows)
    print()
    print(C.table(["setting", "utterances", "WER", "95% CI", "threats flagged", "benign flagged", "audio s/s"],
                  [[s, v["utterances"], v["wer"], f"{v['wer_ci95'][0]:.3f}-{v['wer_ci95'][1]:.3f}",
                    v["threats_flagged_by_bank"], v["benign_flagged_by_bank"], v["audio_s_per_s"]]
                   for s, v in [*by_setting.items(), ("all", overall)]]))
    import pocketsphinx  # noqa: F401  (version recorded through the detector)

    payload = {
        "benchmark": "asr_wer",
        "what": "audio_transcript (PyAV 16 kHz mono -> Silero VAD ONNX -> pocketsphinx en-us) on espeak-ng speech",
        "model_version": detector.model_version,
        "espeak_ng": espeak_version(),
        "settings": [f"{v} {s} wpm" for v, s in settings],
        "sentences": len(sentences),
        "overall": overall,
        "by_setting": by_setting,
        "note": "espeak's synthetic speech is clean but unnatural; WER on real user audio will differ (usually "
                "worse with noise, accents and overlapping voices). Speed: one thread, machine shared; see loadavg.",
        "machine_start": start_info,
        "loadavg_end": C.machine_info()["loadavg_1_5_15"],
        "rows": rows,
    }
    path = C.write_result("asr_wer", payload, quick=args.quick)
    print(f"\nwrote {C.rel(path)}")


if __name__ == "__main__":
    main()
