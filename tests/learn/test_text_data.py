"""Dataset loaders: row counts against DATASETS.md and the label-mapping rules."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from warden.core.policy import DEFAULT_CATEGORIES
from warden.learn import text_data as td

ROOT = td.data_dir()
pytestmark = pytest.mark.skipif(not ROOT.exists(), reason=f"WARDEN_DATA {ROOT} not present")


def _pos(rows, cat):
    return sum(1 for r in rows if r.labels.get(cat) == 1)


def _neg(rows, cat):
    return sum(1 for r in rows if r.labels.get(cat) == 0)


@pytest.fixture(scope="module")
def data() -> dict[str, list[td.TextRow]]:
    return td.load_all(ROOT)


def test_every_loader_yields_rows(data) -> None:
    assert set(td.LOADERS) <= set(data) | {"jailbreak_inthewild"}
    assert set(data) <= set(td.MAPPING) and set(data) <= set(td.LICENSES)
    for name, rows in data.items():
        assert rows, name
        for r in rows[:50]:
            assert r.text.strip() and r.source == name
            assert set(r.labels) <= set(DEFAULT_CATEGORIES) and set(r.labels.values()) <= {0, 1}


def test_counts_match_datasets_md(data) -> None:
    assert len(data["davidson"]) == 24_783 and _pos(data["davidson"], "hate") == 1_430
    assert len(data["hatexplain"]) == 13_456 + 2_884
    assert len(data["sms_spam"]) == 5_574 and _pos(data["sms_spam"], "spam") == 747
    assert _neg(data["sms_spam"], "spam") == 4_827
    assert len(data["youtube_spam"]) == 1_956 and _pos(data["youtube_spam"], "spam") == 1_005
    assert len(data["deepset_injections"]) == 546 and _pos(data["deepset_injections"], "prompt_injection") == 203
    assert len(data["giskard_injections"]) == 35
    assert len(data["jailbreak_inthewild"]) == 666
    assert len(data["forbidden_questions"]) == 390
    assert len(data["toxigen"]) == 722 and _pos(data["toxigen"], "hate") == 425
    assert len(data["ftc_robocalls"]) in range(1_095, 1_102)
    assert len(data["ailuminate"]) == 2_400
    assert len(data["catqa"]) == 1_650
    assert len(data["jigsaw_templates"]) == 76_564
    assert len(data["mlma"]) == 5_647 + 4_014 + 3_353
    assert Counter(r.language for r in data["mlma"]) == {"en": 5_647, "fr": 4_014, "ar": 3_353}
    assert _pos(data["threatgram"], "violence") in range(5_300, 5_394)  # level 2: 5,393 (minus empty replies)
    assert len(data["suicidal_tweets"]) in range(1_780, 1_788)
    assert len(data["suicide_watch"]) == 500 and _pos(data["suicide_watch"], "self-harm") == 252


def test_offensive_is_not_hate(data) -> None:
    off = [r for r in data["davidson"] if r.labels == {"hate": 0, "hate/threatening": 0}]
    assert len(off) == 19_190  # Davidson 'offensive': hate=0, harassment unknown


def test_unknown_is_absent_not_negative(data) -> None:
    # positives-only prompt sets never claim a negative for their own overlapping families
    for r in data["aegis"]:
        if r.labels.get("illicit") == 1:
            assert "violence" not in r.labels and "hate" not in r.labels
    assert all("prompt_injection" not in r.labels for r in data["ailuminate"])  # jailbreak wrappers inside
    assert all(r.labels.get("prompt_injection") == 0 for r in data["forbidden_questions"])


def test_subcategories_imply_parent(data) -> None:
    for rows in data.values():
        for r in rows:
            for child, parent in td.PARENT.items():
                if r.labels.get(child) == 1:
                    assert r.labels.get(parent) == 1, (r.source, r.labels)
                if r.labels.get(parent) == 0:
                    assert r.labels.get(child) in (0, None)


def test_every_positive_category_has_several_sources(data) -> None:
    sources: dict[str, set[str]] = {}
    for name, rows in data.items():
        for r in rows:
            for c, v in r.labels.items():
                if v == 1 and name != "warden_written":
                    sources.setdefault(c, set()).add(name)
    for c in ("sexual", "hate", "harassment", "self-harm", "violence", "illicit", "spam", "prompt_injection"):
        assert len(sources[c]) >= 3, (c, sources.get(c))
    assert sources["scam"] == {"ftc_robocalls", "sms_smishing"}  # thin: documented in the model card


def test_hard_negatives_file() -> None:
    path = td.project_root() / "data" / "hard_negatives.jsonl"
    rows = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    assert len(rows) >= 300
    assert len({r["text"] for r in rows}) == len(rows)
    negs = [r for r in rows if not r.get("hand_written_positive")]
    assert all(set(r["labels"]) == set(DEFAULT_CATEGORIES) and not any(r["labels"].values()) for r in negs)
    pos = [r for r in rows if r.get("hand_written_positive")]
    assert pos and all(any(r["labels"].values()) for r in pos)
