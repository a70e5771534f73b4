"""Matching images against banks: dihedral variants, decisions, the index cache and the
`hash_bank` detector (conformance kit and a real Moderator)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hashing_support import need_hashing, png_with_size

from warden.core import Action, Content, Modality
from warden.core.content import MediaPart
from warden.detectors.hashing.banks import Bank, BankEntry, export_json
from warden.detectors.hashing.matcher import BankMatcher, HashDecision, HashMatch, MatcherCache

need_hashing()

from PIL import Image  # noqa: E402

from warden.detectors.hashing.crops import CROP_GRID, crop_variant_hashes, trim_border  # noqa: E402
from warden.detectors.hashing.detector import HashBankDetector, HashBankParams  # noqa: E402
from warden.detectors.hashing.images import hash_image, lookup_image  # noqa: E402
from warden.detectors.hashing.pdq import decode_image, pdq_from_bytes  # noqa: E402
from warden.testing import check_detector  # noqa: E402
from warden.testing.images import encode, synthetic_image, transforms  # noqa: E402

VIOLENT = Bank(name="violent", category="violence", action="remove")
CSAM = Bank(name="csam", category="sexual/minors", action="escalate", report=True)


def _matcher(**banked: list[bytes]) -> BankMatcher:
    banks = {VIOLENT: [], CSAM: []}
    n = 0
    for name, images in banked.items():
        bank = VIOLENT if name == "violent" else CSAM
        for data in images:
            h = hash_image(data, dihedral=False)
            banks[bank] += [BankEntry(signal_type="pdq", signal=h.pdq.original, id=n),
                            BankEntry(signal_type="md5", signal=h.md5, id=n + 1)]
            n += 2
    return BankMatcher.from_entries(banks)


def test_rotated_copy_matches_with_its_variant() -> None:
    original = synthetic_image(1)
    matcher = _matcher(violent=[encode(original)])
    rotated = hash_image(encode(original.transpose(Image.ROTATE_90)), exact_dihedral=True)
    matches = lookup_image(matcher, rotated)
    assert [(m.bank, m.signal_type) for m in matches] == [("violent", "pdq")]
    assert (matches[0].variant, matches[0].distance) == ("rotate270", 0)
    # pdqhash's one-pass variants land near (the same variant), not exactly on it
    fast = lookup_image(matcher, hash_image(encode(original.transpose(Image.ROTATE_90))))
    assert fast[0].variant == "rotate270" and 0 < fast[0].distance <= 31
    # the plain hash alone misses it
    assert matcher.match_pdq(rotated.pdq.original) == []


def test_exact_copy_matches_md5_and_pdq_and_the_decision_takes_the_worst_action() -> None:
    a, b = encode(synthetic_image(2)), encode(synthetic_image(3))
    matcher = _matcher(violent=[a], csam=[a, b])
    decision = HashDecision.from_matches(lookup_image(matcher, hash_image(a)))
    assert decision.matched and decision.categories == ("sexual/minors", "violence")
    assert decision.action is Action.ESCALATE and decision.report
    assert {(m.bank, m.signal_type, m.distance) for m in decision.matches} == {
        ("violent", "pdq", 0), ("violent", "md5", 0), ("csam", "pdq", 0), ("csam", "md5", 0)}
    only = lookup_image(matcher, hash_image(a), banks={"violent"})
    assert {m.bank for m in only} == {"violent"}
    assert HashDecision.from_matches([]).to_dict() == {"matched": False, "categories": [], "action": "allow",
                                                       "report": False, "matches": []}


def test_disabled_banks_never_match() -> None:
    data = encode(synthetic_image(4))
    h = hash_image(data, dihedral=False)
    off = Bank(name="off", category="violence", enabled=False)
    matcher = BankMatcher.from_entries({off: [BankEntry(signal_type="pdq", signal=h.pdq.original)]})
    assert lookup_image(matcher, hash_image(data)) == []


def test_low_quality_images_skip_pdq_but_keep_md5() -> None:
    flat = encode(Image.new("RGB", (64, 64), (10, 200, 30)))
    other_flat = encode(Image.new("RGB", (80, 80), (200, 10, 30)))
    matcher = _matcher(violent=[flat])
    assert lookup_image(matcher, hash_image(other_flat)) == []  # no PDQ match between featureless images
    assert [m.signal_type for m in lookup_image(matcher, hash_image(flat))] == ["md5"]


def test_border_trim_recovers_bordered_copies() -> None:
    img = synthetic_image(6)
    bordered = transforms()["border_10"](img)
    rgb = decode_image(encode(bordered))
    trimmed = trim_border(rgb)
    assert trimmed is not None and abs(trimmed.shape[0] - 256) <= 2
    matcher = _matcher(violent=[encode(img)])
    assert lookup_image(matcher, hash_image(encode(bordered)))  # via the trimmed hashes
    assert trim_border(decode_image(encode(img))) is None


def test_crop_windows_cover_the_grid() -> None:
    rgb = decode_image(encode(synthetic_image(8)))
    names = [name for name, _ in crop_variant_hashes(rgb)]
    assert names == [w.name for w in CROP_GRID] and len(set(names)) == 14


def test_matcher_cache_rebuilds_only_when_the_fingerprint_moves() -> None:
    state = {"fp": 1, "loads": 0}
    now = [0.0]
    empty = BankMatcher.from_entries({})

    def load():
        state["loads"] += 1
        return empty, state["fp"]

    cache = MatcherCache(load=load, fingerprint=lambda: state["fp"], refresh_seconds=5, clock=lambda: now[0])
    assert cache.get() is empty and state["loads"] == 1
    state["fp"] = 2
    assert cache.get() is empty and state["loads"] == 1  # within the refresh interval: no check
    now[0] = 6.0
    cache.get()
    assert state["loads"] == 2
    now[0] = 12.0
    cache.get()
    assert state["loads"] == 2  # checked, unchanged
    cache.invalidate()
    state["fp"] = 3
    cache.get()
    assert state["loads"] == 3


def _item(id_: str, *images: bytes, text: str | None = None) -> Content:
    return Content(id=id_, text=text, media=tuple(MediaPart(kind=Modality.IMAGE, data=d) for d in images))


def test_detector_scores_the_bank_category_with_evidence() -> None:
    banked = synthetic_image(9)
    detector = HashBankDetector(HashBankParams(exact_dihedral=True), matcher=_matcher(violent=[encode(banked)]))
    flipped = encode(banked.transpose(Image.FLIP_LEFT_RIGHT))
    results = detector.detect([_item("a", encode(synthetic_image(10)), flipped),
                               _item("b", encode(synthetic_image(11))), _item("c", b"garbage"),
                               _item("t", text="no image")])
    a, b, c, t = results
    assert a.scores == {"violence": 1.0, "sexual/minors": 0.0}
    (ev,) = a.evidence
    assert ev.rule == "hash_bank:violent" and ev.category == "violence"
    assert ev.detail.startswith("part=1 bank=violent signal=pdq distance=") and "variant=" in ev.detail
    assert "action=remove report=false" in ev.detail
    assert b.scores == {"violence": 0.0, "sexual/minors": 0.0} and b.ok
    assert not c.ok and "image 0: not a recognized image" in c.error
    assert not t.ok and "no image/video content" in t.error


def test_a_match_wins_over_a_broken_sibling_image() -> None:
    banked = encode(synthetic_image(12))
    detector = HashBankDetector(matcher=_matcher(csam=[banked]))
    (res,) = detector.detect([_item("x", png_with_size(100_000, 100_000), banked)])
    assert res.ok and res.scores["sexual/minors"] == 1.0


def test_detector_passes_the_conformance_kit() -> None:
    detector = HashBankDetector(matcher=_matcher(violent=[encode(synthetic_image(13))]))
    samples = [_item("i1", encode(synthetic_image(13))), _item("i2", encode(synthetic_image(14)), text="caption"),
               _item("i3", encode(synthetic_image(15)).replace(b"IDAT", b"IDAX"))]
    check_detector(detector, samples=samples)


def test_detector_reads_json_bank_files_and_paths(tmp_path: Path) -> None:
    banked = synthetic_image(16)
    h = hash_image(encode(banked), dihedral=False)
    (tmp_path / "violent.json").write_text(export_json(VIOLENT, [BankEntry(signal_type="pdq",
                                                                           signal=h.pdq.original)]))
    image_path = tmp_path / "upload.png"
    image_path.write_bytes(encode(banked.transpose(Image.ROTATE_180)))
    detector = HashBankDetector.from_config({"files": ["violent.json"]}, context=_context(tmp_path))
    (res,) = detector.detect([Content(id="p", media=(MediaPart(kind=Modality.IMAGE, path=str(image_path)),))])
    assert res.scores == {"violence": 1.0}
    with pytest.raises(FileNotFoundError, match="does not exist"):
        HashBankDetector.from_config({"files": ["missing.json"]}, context=_context(tmp_path))


def _context(base: Path):
    from warden.detectors.base import DetectorContext

    return DetectorContext(base_dir=base)


def test_moderator_turns_a_match_into_the_policy_decision(tmp_path: Path) -> None:
    from warden.moderator import Moderator
    from warden.policy import load_policy_file

    banked = synthetic_image(17)
    h = hash_image(encode(banked), dihedral=False)
    (tmp_path / "known.json").write_text(export_json(VIOLENT, [BankEntry(signal_type="pdq", signal=h.pdq.original,
                                                                         id=41)]))
    (tmp_path / "policy.yaml").write_text("""
schema_version: 1
name: images
version: "h1"
surfaces: [comment]
categories:
  violence:
    definition: graphic violence
    severity: high
    action: remove
    thresholds: {default: {flag: 0.9}}
detectors:
  known_images:
    type: hash_bank
    params: {files: [known.json], exact_dihedral: true}
""")
    loaded = load_policy_file(tmp_path / "policy.yaml")
    moderator = Moderator(loaded.policy, base_dir=tmp_path)
    copy = encode(banked.transpose(Image.ROTATE_270), "JPEG", quality=70)
    hit, miss = moderator.moderate_batch([_item("m1", copy), _item("m2", encode(synthetic_image(18)))])
    assert hit.action is Action.REMOVE and "violence" in hit.flagged
    assert any("hash_id=41" in (e.detail or "") for r in hit.reasons for e in r.evidence)
    assert miss.action is Action.ALLOW


def test_hash_match_to_dict() -> None:
    m = HashMatch(bank="b", category="hate", action=Action.REMOVE, report=False, entry_id=3, signal_type="pdq",
                  signal="0" * 64, distance=4, variant="flip_x")
    assert m.to_dict()["hash_id"] == 3 and m.to_dict()["variant"] == "flip_x"
    assert pdq_from_bytes(encode(synthetic_image(1))).quality > 50
