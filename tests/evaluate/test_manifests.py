"""Dataset manifests: schema errors, checksums, golden pins, agreement with warden.learn.text_data."""

from __future__ import annotations

import textwrap
from collections import Counter
from pathlib import Path

import pytest

from warden.evaluate.manifests import (
    ChecksumState,
    ManifestError,
    dump_manifest,
    file_sha256,
    find_manifest,
    freeze,
    load_examples,
    load_manifest,
    manifest_paths,
    parse_manifest,
    summarize,
    validate,
)
from warden.learn.text_data import data_dir

HAS_DATA = (data_dir() / "davidson_hate_offensive").exists()
needs_data = pytest.mark.skipif(not HAS_DATA, reason="shared datasets not available (WARDEN_DATA)")

TOY = textwrap.dedent("""\
    name: toy
    version: 1
    description: toy set
    license: MIT
    path: toy/data.csv
    format: {type: csv}
    text_field: text
    id_field: id
    labels:
      hate: {column: cls, positive: [h], negative: [n, o]}
      harassment: {column: cls, negative: [n]}
      hate/threatening: {column: score, positive_min: 0.8, negative_max: 0.2}
    groups:
      target: {column: tgt, split: '|', map: {jews: jewish, none: null}}
    split: {scheme: all}
""")
CSV = "id,text,cls,score,tgt\n1,hello there,n,0.1,none\n2,I hate them,h,0.9,jews|women\n3,meh,o,0.5,women\n4, ,n,0,\n"


@pytest.fixture
def toy(tmp_path: Path, monkeypatch):
    (tmp_path / "toy").mkdir()
    (tmp_path / "toy" / "data.csv").write_text(CSV)
    monkeypatch.setenv("WARDEN_DATA", str(tmp_path))
    return tmp_path


def test_toy_examples(toy):
    m = parse_manifest(TOY)
    ex = {e.id: e for e in load_examples(m)}
    assert set(ex) == {"1", "2", "3"}  # the empty text is dropped
    assert ex["1"].labels == {"hate": 0, "harassment": 0, "hate/threatening": 0, "harassment/threatening": 0}
    assert ex["2"].labels == {"hate": 1, "hate/threatening": 1}  # harassment unknown, not negative
    # score 0.5 is between the thresholds (unknown), but the negative parent makes the child negative
    assert ex["3"].labels == {"hate": 0, "hate/threatening": 0}
    assert ex["2"].groups == {"target": ("jewish", "women")}
    assert ex["1"].groups == {"target": ()}
    s = summarize(m, list(ex.values()))
    assert s.label_counts["hate"] == {0: 2, 1: 1} and s.group_counts["target"] == {"women": 2, "jewish": 1}


def test_checksum_mismatch_detected(toy):
    m = parse_manifest(TOY + f"checksum: {file_sha256(toy / 'toy' / 'data.csv')}\n")
    assert validate(m).checksum is ChecksumState.OK and validate(m).ok
    (toy / "toy" / "data.csv").write_text(CSV + "5,new row,n,0,\n")
    res = validate(m)
    assert res.checksum is ChecksumState.MISMATCH and not res.ok
    assert res.problems[0].startswith("checksum mismatch for toy/data.csv: manifest pins sha256:")
    assert validate(parse_manifest(TOY)).checksum is ChecksumState.UNPINNED
    assert validate(parse_manifest(TOY.replace("toy/data.csv", "toy/gone.csv"))).checksum is ChecksumState.MISSING_FILE


def test_golden_pins_rows_and_ids(toy):
    g = freeze(parse_manifest(TOY), name="toy_golden_v1")
    assert g.frozen and g.rows == 3 and validate(g).ok
    again = parse_manifest(dump_manifest(g))
    assert again == g
    (toy / "toy" / "data.csv").write_text(CSV.replace("meh", "meh!"))
    problems = validate(g.model_copy(update={"checksum": file_sha256(toy / "toy" / "data.csv")})).problems
    assert problems == ()  # ids are row ids: an edited text keeps the ids
    (toy / "toy" / "data.csv").write_text(CSV.replace("3,meh,o,0.5,women\n", ""))
    res = validate(g)
    assert "row count changed: manifest pins 3, data gives 2" in res.problems
    assert any(p.startswith("selected ids changed") for p in res.problems)


def test_bad_manifest_exact_messages():
    bad = TOY.replace("version: 1", "version: 0").replace("{column: cls, negative: [n]}", "{colum: cls}") \
        .replace("{scheme: all}", "{scheme: hash}")
    with pytest.raises(ManifestError) as exc:
        parse_manifest(bad, file="toy.yaml")
    assert str(exc.value) == (
        "invalid manifest toy.yaml (3 problems):\n"
        "  toy.yaml:2: version: Input should be greater than or equal to 1; got 0\n"
        "  toy.yaml:11: labels.harassment.colum: unknown key (allowed: all, cases, column, negative, "
        "negative_max, otherwise, positive, positive_min, split)\n"
        "  toy.yaml:15: split: scheme 'hash' needs 'part' (train, calibration or test)")


def test_rule_level_message():
    with pytest.raises(ManifestError) as exc:
        parse_manifest(TOY.replace("{column: cls, negative: [n]}", "{otherwise: unknown}"), file="toy.yaml")
    assert str(exc.value) == ("invalid manifest toy.yaml (1 problem):\n"
                              "  toy.yaml:11: labels.harassment: a label rule needs 'column' (or 'cases')")


def test_bad_manifest_more_messages():
    with pytest.raises(ManifestError, match=r"toy.yaml: frozen: .*|a frozen \(golden\) manifest must pin checksum, "
                                            r"rows, ids_sha256"):
        parse_manifest(TOY + "frozen: true\n", file="toy.yaml")
    with pytest.raises(ManifestError, match="path: must be a path relative to WARDEN_DATA"):
        parse_manifest(TOY.replace("toy/data.csv", "../etc/passwd"))
    with pytest.raises(ManifestError, match="a value cannot be both positive and negative"):
        parse_manifest(TOY.replace("negative: [n, o]", "negative: [h]"))
    with pytest.raises(ManifestError, match="YAML syntax error"):
        parse_manifest("name: [")
    with pytest.raises(ManifestError, match=r"format\.type: Input should be 'csv', 'tsv', 'jsonl', 'json' or "):
        parse_manifest(TOY.replace("{type: csv}", "{type: xlsx}"))


def test_missing_column_is_reported(toy):
    m = parse_manifest(TOY.replace("text_field: text", "text_field: body"))
    with pytest.raises(KeyError, match=r"column\(s\) 'body' not in toy/data\.csv"):
        load_examples(m)


def test_shipped_manifests_parse():
    paths = manifest_paths()
    assert len(paths) >= 20
    for name, p in paths.items():
        m = load_manifest(p)
        assert m.name == name
        assert m.checksum is not None
        if p.parent.name == "golden":
            assert m.frozen and m.split.scheme == "hash"


# DATASETS.md: davidson hate 1,430 / offensive 19,190 / neither 4,163; sms_spam ham 4,827 / spam 747;
# toxigen hate 425 / neutral 297; deepset injection 203 / legit 343; youtube spam 1,005 / ham 951
DOCUMENTED = {
    "davidson_hate_offensive": ("hate", 1430, 19190 + 4163),
    "sms_spam": ("spam", 747, 4827),
    "toxigen_seeds": ("hate", 425, 297),
    "deepset_prompt_injections": ("prompt_injection", 203, 343),
    "youtube_spam": ("spam", 1005, 951),
}


@needs_data
@pytest.mark.parametrize("name", sorted(DOCUMENTED))
def test_label_counts_match_datasets_md(name):
    m = find_manifest(name)
    assert validate(m).checksum is ChecksumState.OK
    cat, pos, neg = DOCUMENTED[name]
    counts = Counter(e.labels[cat] for e in load_examples(m, split=False) if cat in e.labels)
    assert (counts[1], counts[0]) == (pos, neg)


@needs_data
@pytest.mark.parametrize("name", ["toxigen_seeds", "olid", "sms_smishing", "threatgram101"])
def test_manifest_agrees_with_text_data(name):
    from warden.learn.text_data import load_source

    m = find_manifest(name)
    mine = Counter((c, v) for e in load_examples(m, split=False) for c, v in e.labels.items())
    ref = Counter((c, v) for r in load_source(m.source) for c, v in r.labels.items())
    assert mine == ref


@needs_data
def test_golden_set_validates():
    res = validate(find_manifest("toxigen_seeds_golden_v1"))
    assert res.ok, res.problems
    assert res.rows == 92


# manifests for the harmful-prompt, injection, scam and list-text sets: text_data source -> manifests
# (text_data reads several files or languages where the manifests split them)
SOURCE_MANIFESTS = {
    "hatexplain": ["hatexplain_train", "hatexplain_dev"], "reddit_cssrs": ["reddit_cssrs_500"],
    "aegis": ["aegis2_unsafe_sample900"], "ailuminate": ["ailuminate_demo_en", "ailuminate_demo_fr"],
    "catqa": ["catqa_english"], "harmbench": ["harmbench_behaviors"], "strongreject": ["strongreject"],
    "forbidden_questions": ["forbidden_questions"], "jailbreak_inthewild": ["jailbreak_llms_inthewild"],
    "giskard_injections": ["giskard_prompt_injections"], "ftc_robocalls": ["ftc_robocall_scam_transcripts"],
}


@needs_data
@pytest.mark.parametrize("source", sorted(SOURCE_MANIFESTS))
def test_new_manifests_agree_with_text_data(source):
    from warden.learn.text_data import load_all

    mine: Counter = Counter()
    texts: list[str] = []
    for name in SOURCE_MANIFESTS[source]:
        m = find_manifest(name)
        assert m.source == source
        assert validate(m).checksum is ChecksumState.OK
        examples = load_examples(m, split=False)
        texts += [e.text for e in examples]
        mine.update((c, v) for e in examples for c, v in e.labels.items())
    rows = load_all(sources=[source])[source]
    if source == "catqa":  # the manifest covers the English file only
        rows = [r for r in rows if r.language == "en"]
    assert mine == Counter((c, v) for r in rows for c, v in r.labels.items())
    assert sorted(texts) == sorted(r.text for r in rows)


def test_text_join_nested_and_limit(tmp_path: Path, monkeypatch):
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "a.csv").write_text('toks,lab\n"[\'you\', \'are\', \'ok\']",n\n"not a list",h\n'
                                          '"[\'x\', \'y\']",h\n')
    (tmp_path / "t" / "q.json").write_text('{"Crime": {"Drugs": ["q1", "q2"]}, "Advice": {"Money": ["q3"]}}')
    monkeypatch.setenv("WARDEN_DATA", str(tmp_path))
    base = ("name: t\nversion: 1\ndescription: d\nlicense: MIT\npath: t/a.csv\nformat: {type: csv}\n"
            "text_field: toks\ntext_join: ' '\ntext_max_chars: 5\nlabels: {hate: {column: lab, positive: [h], "
            "negative: [n]}}\n")
    ex = load_examples(parse_manifest(base))
    assert [e.text for e in ex] == ["you a", "not a", "x y"]
    assert len(load_examples(parse_manifest(base + "limit: 2\n"))) == 2
    assert len(load_examples(parse_manifest(base + "limit: 2\n"), split=False)) == 3
    nested = ("name: q\nversion: 1\ndescription: d\nlicense: MIT\npath: t/q.json\n"
              "format: {type: json, nested: [category, sub, question]}\ntext_field: question\n"
              "labels: {illicit: {cases: [{where: {category: [Crime], sub: [Drugs]}, label: 1}], "
              "otherwise: negative}}\n")
    ex = load_examples(parse_manifest(nested))
    assert [(e.text, e.labels["illicit"]) for e in ex] == [("q1", 1), ("q2", 1), ("q3", 0)]
    with pytest.raises(ManifestError, match="'nested' applies to json only"):
        parse_manifest(nested.replace("type: json", "type: csv"))


GATE_CATEGORIES = ("sexual", "sexual/minors", "hate", "hate/threatening", "harassment", "harassment/threatening",
                   "self-harm", "violence", "illicit", "spam", "scam", "prompt_injection")


@needs_data
def test_golden_sets_cover_every_measured_category():
    from warden.evaluate.gates import load_gates

    root = Path(__file__).resolve().parents[2]
    cfg = load_gates(root / "gates" / "default.yaml")
    pos: Counter = Counter()
    neg: Counter = Counter()
    for spec in cfg.data:
        assert spec.manifest is not None, "the default gate reads golden manifests only"
        m = find_manifest(spec.manifest)
        assert m.frozen
        res = validate(m)
        assert res.ok, res.problems
        for e in load_examples(m):
            for c, v in e.labels.items():
                (pos if v == 1 else neg)[c] += 1
    for c in GATE_CATEGORIES:
        assert pos[c] >= 20 and neg[c] >= 100, (c, pos[c], neg[c])
