"""The multi-process runner gives exactly the in-process output, in input order, bad rows included."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from warden.moderator import Moderator
from warden.pipelines.classify import classify_file
from warden.pipelines.parallel import AUTO_PARALLEL_MIN_ROWS, resolve_workers

ROOT = Path(__file__).resolve().parents[2]
BANKS_POLICY = ROOT / "benchmarks" / "policies" / "banks.yaml"  # shipped detectors only: loadable by spawned workers


def _lines(moderator: Moderator | None, path: Path, **kw) -> list[dict]:
    out = io.StringIO()
    classify_file(moderator, path, out, progress=False, **kw)
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_two_workers_match_in_process_output_exactly(tmp_path: Path) -> None:
    texts = ["have a nice day", "I will kill you", "buy cheap viagra now", "k i l l yourself", "", "hello"]
    with (tmp_path / "in.jsonl").open("w", encoding="utf-8") as f:
        for i in range(300):
            f.write(json.dumps({"id": f"r{i}", "text": texts[i % len(texts)]}) + "\n")
            if i % 50 == 7:
                f.write("not json\n")
                f.write(json.dumps({"id": f"bad{i}", "text": 5}) + "\n")
    src = tmp_path / "in.jsonl"
    single = _lines(Moderator.from_file(BANKS_POLICY), src, workers=1, batch_size=16)
    parallel = _lines(None, src, workers=2, batch_size=16, policy_path=BANKS_POLICY)
    assert len(single) == 300 + 2 * 6
    assert parallel == single
    assert sum("error" in line for line in parallel) == 12
    assert any(line.get("flagged") for line in parallel)  # the banks really ran in the workers


def test_parallel_needs_a_policy_path(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text('{"text": "x"}\n')
    with pytest.raises(ValueError, match="policy_path"):
        _lines(None, src, workers=2)


def test_resolve_workers() -> None:
    assert resolve_workers(3, total_rows=10) == 3
    assert resolve_workers(0, total_rows=AUTO_PARALLEL_MIN_ROWS - 1) == 1
    assert resolve_workers(0, total_rows=AUTO_PARALLEL_MIN_ROWS) >= 1
    with pytest.raises(ValueError, match="workers must be >= 0"):
        resolve_workers(-1, total_rows=None)


def test_a_worker_that_cannot_load_the_policy_stops_the_run_with_the_cause(tmp_path: Path) -> None:
    from warden.pipelines.parallel import WorkerStartError

    policy = tmp_path / "p.yaml"
    policy.write_text(BANKS_POLICY.read_text().replace("banks/default.yaml", "banks/missing.yaml"))
    src = tmp_path / "in.jsonl"
    src.write_text('{"id": "a", "text": "x"}\n' * 3)
    with pytest.raises(WorkerStartError, match="could not load the policy"):
        _lines(None, src, workers=2, policy_path=policy)
