from __future__ import annotations

import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from support import SMALL_POLICY
from warden.cli.main import app
from warden.moderator import Moderator
from warden.pipelines.classify import classify_file
from warden.pipelines.readers import UnreadableInput, read_rows
from warden.policy import parse_policy


@pytest.fixture(scope="module")
def moderator(word_detector_cls):
    return Moderator(parse_policy(SMALL_POLICY))


def _run(moderator, path: Path, **kw) -> list[dict]:
    out = io.StringIO()
    classify_file(moderator, path, out, progress=False, **kw)
    return [json.loads(line) for line in out.getvalue().split("\n") if line]


def test_jsonl_rows_in_order_with_error_rows(tmp_path: Path, moderator) -> None:
    src = tmp_path / "in.jsonl"
    src.write_bytes(
        b'{"id": "a", "text": "hello"}\n'
        b'{"id": "b", "text": "hateword"}\n'
        b"not json\n"
        b'{"id": "c", "text": 5}\n'
        b'{"id": "d", "text": "caf\xe9"}\n'
        b"\n"
        b'[1, 2]\n'
        b'{"text": "spammy stuff"}\n'
        b'{"id": "e"}\n'
    )
    rows = _run(moderator, src)
    assert len(rows) == 8
    assert [r.get("id") for r in rows] == ["a", "b", None, "c", None, None, "6", "e"]
    assert rows[0]["action"] == "allow" and rows[0]["policy_version"] == "t1"
    assert set(rows[0]) >= {"id", "scores", "flagged", "action", "reasons", "policy_version"}
    assert rows[1]["flagged"] == ["hate"] and rows[1]["reasons"][0]["evidence"][0]["spans"][0]["text"] == "hateword"
    assert "malformed JSON" in rows[2]["error"]
    assert "'text' must be a string" in rows[3]["error"]
    assert "not valid UTF-8" in rows[4]["error"]
    assert "expected a JSON object" in rows[5]["error"]
    assert rows[6]["action"] == "limit"
    assert "missing required field 'text'" in rows[7]["error"]


def test_csv_and_parquet(tmp_path: Path, moderator) -> None:
    csv_path = tmp_path / "in.csv"
    csv_path.write_bytes(b'id,text\n1,hello\n2,"hateword, quoted"\n3,bad \xff byte\n')
    rows = _run(moderator, csv_path)
    assert [r["id"] for r in rows] == ["1", "2", "3"]
    assert rows[1]["flagged"] == ["hate"] and "not valid Unicode" in rows[2]["error"]

    pq_path = tmp_path / "in.parquet"
    pq.write_table(pa.table({"id": [10, 11], "text": ["hello", None]}), pq_path)
    rows = _run(moderator, pq_path)
    assert rows[0]["id"] == "10" and rows[0]["action"] == "allow"
    assert "'text' must be a string, got null" in rows[1]["error"]


def test_surface_applies_and_bad_files_are_clear(tmp_path: Path, moderator) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text('{"id": "a", "text": "maybe"}\n{"id": "b", "text": "maybe", "surface": "comment"}\n')
    rows = _run(moderator, src, surface="chat")
    assert rows[0]["action"] == "hold_for_review"
    with pytest.raises(UnreadableInput, match="cannot tell the format"):
        _run(moderator, tmp_path / "x.txt")
    (tmp_path / "broken.parquet").write_bytes(b"PAR1garbage")
    with pytest.raises(UnreadableInput, match="cannot read Parquet"):
        list(read_rows(tmp_path / "broken.parquet", "parquet"))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(st.one_of(
    st.binary(max_size=60),
    st.dictionaries(st.sampled_from(["id", "text", "surface", "metadata", "x"]),
                    st.one_of(st.none(), st.integers(), st.text(max_size=30), st.booleans(),
                              st.lists(st.integers(), max_size=2)), max_size=4).map(lambda d: json.dumps(d).encode()),
), max_size=12))
def test_fuzz_jsonl_never_crashes_and_keeps_alignment(tmp_path_factory, moderator, lines: list[bytes]) -> None:
    lines = [ln.replace(b"\n", b" ").replace(b"\r", b" ") for ln in lines]
    src = tmp_path_factory.mktemp("fz") / "in.jsonl"
    src.write_bytes(b"\n".join(lines) + b"\n")
    rows = _run(moderator, src)
    expected = sum(1 for ln in lines if ln.strip())
    assert len(rows) == expected
    for r in rows:
        assert ("error" in r) != ("action" in r)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.binary(max_size=300))
def test_fuzz_csv_never_crashes(tmp_path_factory, moderator, body: bytes) -> None:
    src = tmp_path_factory.mktemp("fz") / "in.csv"
    src.write_bytes(b"id,text\n" + body)
    for r in _run(moderator, src):
        assert ("error" in r) != ("action" in r)


def test_cli_classify_end_to_end(tmp_path: Path, word_detector_cls) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text(SMALL_POLICY)
    src = tmp_path / "in.jsonl"
    src.write_text('{"id": "a", "text": "hateword"}\n{"id": "b", "text": "fine"}\n')
    out = tmp_path / "out.jsonl"
    res = CliRunner().invoke(app, ["classify", str(src), "-o", str(out), "--policy", str(policy), "--no-progress"])
    assert res.exit_code == 0, res.output
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["action"] for r in rows] == ["remove", "allow"]
    bad = CliRunner().invoke(app, ["classify", str(src), "-o", str(out), "--policy", str(policy),
                                   "--surface", "nope"])
    assert bad.exit_code == 1 and "unknown surface 'nope'" in bad.output


def test_cli_policy_validate_and_diff(tmp_path: Path, word_detector_cls) -> None:
    a = tmp_path / "a.yaml"
    a.write_text(SMALL_POLICY)
    b = tmp_path / "b.yaml"
    b.write_text(SMALL_POLICY.replace('version: "t1"', 'version: "t2"').replace("flag: 0.9", "flag: 0.95"))
    res = CliRunner().invoke(app, ["policy", "validate", str(a)])
    assert res.exit_code == 0 and "valid policy 'small' version t1" in res.output
    res = CliRunner().invoke(app, ["policy", "diff", str(a), str(b)])
    assert res.exit_code == 0
    assert "! ~ categories.spam.thresholds.default.flag: 0.9 -> 0.95" in res.output
    broken = tmp_path / "c.yaml"
    broken.write_text(SMALL_POLICY.replace("type: test_word_score\n    params", "type: nope\n    params"))
    res = CliRunner().invoke(app, ["policy", "validate", str(broken)])
    assert res.exit_code == 1 and "detectors.cheap.type: unknown detector type 'nope'" in res.output
