"""`warden batch`: one Parquet dataset from many files, the rows `warden classify` gives, on one
or two processes with identical bytes, resumable after a kill, refusing changed inputs."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from warden.cli.main import app
from warden.moderator import Moderator
from warden.pipelines.batch import (
    MANIFEST,
    BatchError,
    BatchIncomplete,
    OutputConflict,
    collect_inputs,
    part_name,
    run_batch,
)
from warden.pipelines.classify import classify_file
from warden.pipelines.decision_table import OUTPUT_SCHEMA

ROOT = Path(__file__).resolve().parents[2]
BANKS_POLICY = ROOT / "benchmarks" / "policies" / "banks.yaml"  # shipped detectors only: loadable by spawned workers
TEXTS = ["have a nice day", "I will kill you", "buy cheap viagra now", "k i l l yourself", "", "hello",
         "you are a worthless idiot", "great match last night"]


@pytest.fixture(scope="module")
def banks() -> Moderator:
    return Moderator.from_file(BANKS_POLICY)


def _jsonl(path: Path, n: int, *, bad_every: int = 0, prefix: str = "r") -> Path:
    with path.open("w", encoding="utf-8") as f:
        for i in range(n):
            f.write(json.dumps({"id": f"{prefix}{i}", "text": TEXTS[i % len(TEXTS)]}) + "\n")
            if bad_every and i % bad_every == 3:
                f.write("not json\n")
                f.write(json.dumps({"id": f"{prefix}bad{i}", "text": 5}) + "\n")
    return path


def _mixed_inputs(folder: Path) -> Path:
    folder.mkdir()
    _jsonl(folder / "a.jsonl", 40, bad_every=15)
    (folder / "b.csv").write_bytes(b'id,text\n1,hello\n2,"I will kill you, quoted"\n3,bad \xff byte\n,no id here\n')
    pq.write_table(pa.table({"id": [10, 11, 12], "text": ["buy cheap viagra now", None, "fine"]}), folder / "c.parquet")
    (folder / "d.jsonl").write_text("")
    (folder / "notes.txt").write_text("not an input")
    (folder / "_ignored.jsonl").write_text('{"text": "skipped"}\n')
    return folder


def _read(out: Path) -> list[dict]:
    return pq.read_table(out).to_pylist()


def _parts(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.glob("part-*.parquet"))}


def test_folder_of_mixed_files_becomes_one_dataset_with_classify_rows(tmp_path: Path, banks: Moderator) -> None:
    src = _mixed_inputs(tmp_path / "in")
    out = tmp_path / "out"
    result = run_batch([src], out, policy_path=BANKS_POLICY, moderator=banks, workers=1, chunk_size=7)

    table = pq.read_table(out)
    assert table.schema.equals(OUTPUT_SCHEMA, check_metadata=False)
    rows = table.to_pylist()
    files = [f.path for f in collect_inputs([src])]
    assert [p.name for p in files] == ["a.jsonl", "b.csv", "c.parquet", "d.jsonl"]
    # the parts read back in input order: file by file, row by row
    assert [(r["source_file"], r["source_row"]) for r in rows] == sorted(
        ((r["source_file"], r["source_row"]) for r in rows), key=lambda k: ([str(f) for f in files].index(k[0]), k[1]))
    expected = []
    for f in files:
        buf = io.StringIO()
        classify_file(banks, f, buf, progress=False)
        expected += [json.loads(line) for line in buf.getvalue().splitlines()]
    assert len(rows) == len(expected) == result.rows == 40 + 2 * 3 + 4 + 3
    for got, want in zip(rows, expected, strict=True):
        if "error" in want:
            assert got["error"] == want["error"] and got["decision_id"] is None and got["scores"] is None
            assert got["id"] == (None if want["id"] is None else str(want["id"]))
            assert got["policy_version"] == banks.policy.version
        else:
            assert got["error"] is None
            for key in ("id", "decision_id", "action", "automated", "flagged", "uncertain", "review_queue",
                        "missing_signals", "policy_version"):
                assert got[key] == want[key], key
            assert dict(got["scores"]) == want["scores"]
            assert json.loads(got["reasons"]) == want["reasons"]
    by_id = {r["id"]: r for r in rows}
    assert by_id["r1"]["flagged"] and by_id["r1"]["action"] != "allow"  # the banks really ran
    assert "malformed JSON" in rows[4]["error"] and rows[4]["source_row"] == 4
    csv_rows = [r for r in rows if r["source_file"].endswith("b.csv")]
    assert "not valid Unicode" in csv_rows[2]["error"]
    assert csv_rows[3]["id"] == "3" and csv_rows[3]["error"] is None  # no id: its row position, as classify
    assert by_id["11"]["error"] == "row 1: 'text' must be a string, got null"
    assert result.errors == sum(r["error"] is not None for r in rows) == 2 * 3 + 1 + 1
    assert sum(result.actions.values()) == result.rows - result.errors
    # 40 + 6 rows in 7-row units, one unit each for b.csv and c.parquet, one empty part for d.jsonl
    assert sorted(_parts(out)) == [part_name(0, k) for k in range(7)] + [part_name(i, 0) for i in (1, 2, 3)]
    assert pq.read_table(out / part_name(3, 0)).num_rows == 0
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["complete"] and manifest["rows"] == result.rows and manifest["plan"]["chunk_size"] == 7
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def test_two_workers_write_the_same_bytes_as_one(tmp_path: Path, banks: Moderator) -> None:
    src = _jsonl(tmp_path / "in.jsonl", 900, bad_every=100)
    one = run_batch([src], tmp_path / "one", policy_path=BANKS_POLICY, moderator=banks, workers=1, chunk_size=100,
                    batch_size=32)
    two = run_batch([src], tmp_path / "two", policy_path=BANKS_POLICY, workers=2, chunk_size=100, batch_size=32,
                    progress=True)
    assert two.workers == 2 and one.workers == 1
    assert _parts(tmp_path / "one") == _parts(tmp_path / "two")
    assert (one.rows, one.errors, one.actions) == (two.rows, two.errors, two.actions) and one.rows == 918


def _wait_for_parts(out: Path, proc: subprocess.Popen, at_least: int, timeout: float = 60.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        n = len(list(out.glob("part-*.parquet"))) if out.is_dir() else 0
        if n >= at_least:
            return n
        time.sleep(0.005)
    return -1


def test_a_killed_run_resumes_to_byte_identical_output(tmp_path: Path, banks: Moderator) -> None:
    src = _jsonl(tmp_path / "in.jsonl", 6000, bad_every=500)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "warden.cli.main", "batch", str(src), "-o", str(out), "--policy", str(BANKS_POLICY),
           "--workers", "1", "--chunk-size", "100", "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        seen = _wait_for_parts(out, proc, at_least=3)
        if seen < 0:
            pytest.fail(f"the run ended before 3 parts existed (exit {proc.poll()}): "
                        f"{proc.stderr.read().decode(errors='replace')[-1000:] if proc.stderr else ''}")
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
        if proc.stderr:
            proc.stderr.close()
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("part-*.parquet")}
    assert 3 <= len(before) < 61, "interrupted after some parts, before the last"
    assert not json.loads((out / MANIFEST).read_text())["complete"]

    resumed = run_batch([src], out, policy_path=BANKS_POLICY, moderator=banks, workers=1, chunk_size=100)
    assert resumed.resumed_parts == len(before) and resumed.rows == 6000 + 2 * 12
    assert resumed.new_rows == resumed.rows - resumed.resumed_rows
    # finished parts were skipped, not rewritten; no temp file is left behind
    assert all((out / n).stat().st_mtime_ns == t for n, t in before.items())
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]

    fresh = run_batch([src], tmp_path / "fresh", policy_path=BANKS_POLICY, moderator=banks, workers=1,
                      chunk_size=100)
    assert _parts(out) == _parts(tmp_path / "fresh")
    assert (out / MANIFEST).read_bytes() == (tmp_path / "fresh" / MANIFEST).read_bytes()
    assert (resumed.rows, resumed.errors, resumed.actions) == (fresh.rows, fresh.errors, fresh.actions)


def test_a_worker_dying_keeps_finished_parts_and_a_rerun_finishes(tmp_path: Path) -> None:
    import multiprocessing

    src = _jsonl(tmp_path / "in.jsonl", 20_000)
    out = tmp_path / "out"
    killed: list[int] = []

    def kill_a_worker() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not killed:
            if out.is_dir() and any(out.glob("part-*.parquet")):
                for child in multiprocessing.active_children():
                    if child.pid and child.name.startswith("SpawnProcess"):
                        os.kill(child.pid, signal.SIGKILL)
                        killed.append(child.pid)
                        return
            time.sleep(0.005)

    killer = threading.Thread(target=kill_a_worker, daemon=True)
    killer.start()
    with pytest.raises(BatchIncomplete, match="rerun the same command to resume"):
        run_batch([src], out, policy_path=BANKS_POLICY, workers=2, chunk_size=200)
    killer.join(timeout=5)
    assert killed
    kept = len(list(out.glob("part-*.parquet")))
    assert 1 <= kept < 100
    result = run_batch([src], out, policy_path=BANKS_POLICY, workers=2, chunk_size=200)
    assert result.resumed_parts == kept and result.rows == 20_000 and result.parts == 100


def _policy_copy(tmp_path: Path, version: str) -> Path:
    pol = yaml.safe_load(BANKS_POLICY.read_text(encoding="utf-8"))
    pol["version"] = version
    for spec in pol["detectors"].values():
        p = (spec.get("params") or {}).get("path")
        if p:
            spec["params"]["path"] = str((BANKS_POLICY.parent / p).resolve())
    dst = tmp_path / "policy.yaml"
    dst.write_text(yaml.safe_dump(pol, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return dst


def test_rerun_is_a_no_op_and_changes_are_refused_unless_restart(tmp_path: Path, banks: Moderator) -> None:
    src = _jsonl(tmp_path / "in.jsonl", 50)
    out = tmp_path / "out"
    first = run_batch([src], out, policy_path=BANKS_POLICY, moderator=banks, workers=1, chunk_size=20)
    parts = _parts(out)
    again = run_batch([src], out, policy_path=BANKS_POLICY, moderator=banks, workers=1, chunk_size=20)
    assert again.already_complete and (again.rows, again.actions) == (first.rows, first.actions)
    assert _parts(out) == parts

    with pytest.raises(OutputConflict, match=r"chunk-size: 20 -> 25(.|\n)*--restart"):
        run_batch([src], out, policy_path=BANKS_POLICY, moderator=banks, workers=1, chunk_size=25)
    changed = _policy_copy(tmp_path, "changed-1")
    with pytest.raises(OutputConflict, match=r"policy: default-bench-banks .* -> default-bench-banks changed-1"):
        run_batch([src], out, policy_path=changed, workers=1, chunk_size=20)
    with src.open("a", encoding="utf-8") as f:
        f.write(json.dumps({"id": "late", "text": "hello"}) + "\n")
    with pytest.raises(OutputConflict, match=r"input changed: .*in\.jsonl \(size, modified\)"):
        run_batch([src], out, policy_path=BANKS_POLICY, moderator=banks, workers=1, chunk_size=20)
    other = _jsonl(tmp_path / "other.jsonl", 3, prefix="o")
    with pytest.raises(OutputConflict, match=r"new input: .*other\.jsonl"):
        run_batch([src, other], out, policy_path=BANKS_POLICY, moderator=banks, workers=1, chunk_size=20)
    assert _parts(out) == parts  # refusals touch nothing

    redone = run_batch([src], out, policy_path=changed, workers=1, chunk_size=20, restart=True)
    assert redone.rows == 51 and redone.resumed_parts == 0
    assert {r["policy_version"] for r in _read(out)} == {"changed-1"}


def test_bad_outputs_and_inputs_are_clear(tmp_path: Path, banks: Moderator) -> None:
    src = _jsonl(tmp_path / "in.jsonl", 5)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("mine")
    with pytest.raises(OutputConflict, match=r"not empty and holds no _warden_batch\.json"):
        run_batch([src], foreign, policy_path=BANKS_POLICY, moderator=banks, workers=1)
    with pytest.raises(OutputConflict, match="is a file"):
        run_batch([src], src, policy_path=BANKS_POLICY, moderator=banks, workers=1)
    with pytest.raises(BatchError, match="unknown surface 'nope'"):
        run_batch([src], tmp_path / "o", policy_path=BANKS_POLICY, moderator=banks, workers=1, surface="nope")
    from warden.pipelines.readers import UnreadableInput

    with pytest.raises(UnreadableInput, match="input not found"):
        run_batch([tmp_path / "missing.jsonl"], tmp_path / "o", policy_path=BANKS_POLICY, moderator=banks)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UnreadableInput, match="no input files"):
        run_batch([empty], tmp_path / "o", policy_path=BANKS_POLICY, moderator=banks)


def test_output_inside_the_input_folder_is_not_read_back(tmp_path: Path, banks: Moderator) -> None:
    src = tmp_path / "data"
    src.mkdir()
    _jsonl(src / "a.jsonl", 10)
    run_batch([src], src / "out", policy_path=BANKS_POLICY, moderator=banks, workers=1)
    again = run_batch([src], src / "out", policy_path=BANKS_POLICY, moderator=banks, workers=1)
    assert again.already_complete and again.rows == 10


def test_an_unreadable_file_is_an_error_row_not_a_failed_batch(tmp_path: Path, banks: Moderator) -> None:
    good = _jsonl(tmp_path / "good.jsonl", 5)
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1 this is not parquet at all")
    result = run_batch([good, broken], tmp_path / "out", policy_path=BANKS_POLICY, moderator=banks, workers=1)
    rows = _read(tmp_path / "out")
    assert result.rows == 6 and result.errors == 1
    assert rows[-1]["source_file"] == str(broken) and rows[-1]["source_row"] == 0
    assert rows[-1]["error"].startswith(
        "cannot read broken.parquet from row 0 on: UnreadableInput: cannot read Parquet")


def test_cli_batch(tmp_path: Path) -> None:
    src = _jsonl(tmp_path / "in.jsonl", 30, bad_every=10)
    out = tmp_path / "out"
    runner = CliRunner()
    args = ["batch", str(src), "-o", str(out), "--policy", str(BANKS_POLICY), "--workers", "1", "--chunk-size", "10"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "36 rows in 4 parts, 6 errors; actions:" in res.stderr
    res = runner.invoke(app, [*args, "--no-progress"])
    assert res.exit_code == 0 and "already complete (36 rows in 4 parts)" in res.stderr
    res = runner.invoke(app, [*args[:-1], "12"])
    assert res.exit_code == 1 and "chunk-size: 10 -> 12" in res.stderr and "--restart" in res.stderr
    res = runner.invoke(app, [*args[:-1], "12", "--restart", "--no-progress"])
    assert res.exit_code == 0 and "36 rows in 3 parts" in res.stderr
    res = runner.invoke(app, ["batch", str(tmp_path / "nope.jsonl"), "-o", str(out), "--policy", str(BANKS_POLICY)])
    assert res.exit_code == 1 and "input not found" in res.stderr


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(st.one_of(st.binary(max_size=40), st.text(max_size=40).map(str.encode),
                                st.builds(lambda i, t: json.dumps({"id": i, "text": t}).encode(),
                                          st.one_of(st.none(), st.integers(), st.text(max_size=5)), st.text())),
                      max_size=25))
def test_any_bytes_give_one_row_per_line_and_never_fail(banks: Moderator, lines: list[bytes]) -> None:
    lines = [line.replace(b"\n", b" ").replace(b"\r", b" ") for line in lines]
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "in.jsonl"
        src.write_bytes(b"\n".join(lines) + b"\n")
        result = run_batch([src], Path(tmp) / "out", policy_path=BANKS_POLICY, moderator=banks, workers=1,
                           chunk_size=4)
        assert result.rows == sum(1 for line in lines if line.strip())
        rows = _read(Path(tmp) / "out")
        assert len(rows) == result.rows
        assert all((r["error"] is None) != (r["decision_id"] is None) for r in rows)
