"""`warden.spark.moderate` and `warden spark-batch` in PySpark local mode: the schema and rows of
`warden batch`, error rows instead of failed jobs, one Moderator per Python worker process."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from warden.cli.main import app
from warden.pipelines.batch import run_batch
from warden.pipelines.decision_table import OUTPUT_SCHEMA

pytestmark = pytest.mark.spark

ROOT = Path(__file__).resolve().parents[2]
BANKS_POLICY = ROOT / "benchmarks" / "policies" / "banks.yaml"
DECISION_COLUMNS = ("decision_id", "action", "automated", "flagged", "uncertain", "scores", "reasons",
                    "review_queue", "missing_signals", "policy_version")


def _same_schema(table_schema) -> bool:
    return [(f.name, f.type) for f in table_schema] == [(f.name, f.type) for f in OUTPUT_SCHEMA]


def test_moderate_gives_batch_rows_in_the_batch_schema(spark, tmp_path: Path) -> None:
    from warden.spark import moderate

    rows = [
        {"id": "a", "text": "have a nice day", "surface": None},
        {"id": "b", "text": "I will kill you", "surface": None},
        {"id": "c", "text": "buy cheap viagra now", "surface": "chat"},
        {"id": "d", "text": None, "surface": None},
        {"id": "e", "text": "hello", "surface": "nope"},
        {"id": "f", "text": "k i l l yourself", "surface": "profile"},
        {"id": None, "text": "no id here", "surface": None},
    ]
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    df = spark.createDataFrame(rows, schema="id string, text string, surface string").repartition(3)
    moderate(df, policy=BANKS_POLICY, surface_col="surface").write.parquet(str(tmp_path / "spark"))
    run_batch([src], tmp_path / "batch", policy_path=BANKS_POLICY, workers=1)

    got = pq.read_table(tmp_path / "spark")
    assert _same_schema(got.schema), got.schema
    spark_rows = {r["id"]: r for r in got.to_pylist()}
    batch_rows = {r["id"]: r for r in pq.read_table(tmp_path / "batch").to_pylist()}
    assert len(got) == len(rows)
    for key in "abcf":
        assert spark_rows[key]["error"] is None
        for col in DECISION_COLUMNS:
            assert spark_rows[key][col] == batch_rows[key][col], (key, col)
    assert spark_rows["b"]["flagged"]  # the banks ran on the executors
    # the same messages as batch, without a row position Spark does not know
    assert spark_rows["d"]["error"] == "'text' must be a string, got null" == batch_rows["d"]["error"].split(": ", 1)[1]
    assert spark_rows["e"]["error"].startswith("unknown surface 'nope'")
    assert spark_rows[None]["error"] == "missing 'id': Spark rows need one (pass id_col)"
    assert spark_rows[None]["source_row"] is None and spark_rows["a"]["policy_version"] == "2026.11.22-4"


def test_moderate_refuses_wrong_columns_at_once(spark) -> None:
    from warden.spark import moderate

    df = spark.createDataFrame([(1, 2)], schema="id long, text long")
    with pytest.raises(ValueError, match="column 'text' holds bigint, not strings: cast it first"):
        moderate(df, policy=BANKS_POLICY)
    with pytest.raises(ValueError, match=r"id_col='key': no such column; the DataFrame has: id, text\. Spark"):
        moderate(df, policy=BANKS_POLICY, id_col="key")
    with pytest.raises(ValueError, match="unknown surface 'nope'"):
        moderate(df, policy=BANKS_POLICY, surface="nope")


def test_one_moderator_per_python_worker_process(spark) -> None:
    import pandas as pd

    from warden.spark import moderate

    df = spark.createDataFrame([(str(i), f"text number {i}") for i in range(400)], schema="id string, text string")
    assert moderate(df.repartition(8), policy=BANKS_POLICY).filter("error IS NULL").count() == 400

    def probe(batches):
        import os

        import warden.spark as ws

        for _ in batches:
            pass
        yield pd.DataFrame({"pid": [os.getpid()], "loads": [ws._LOADS]})

    seen = spark.range(8).repartition(8).mapInPandas(probe, schema="pid long, loads long").collect()
    loads = {r["pid"]: r["loads"] for r in seen}
    # 8 tasks ran on these reused worker processes; each built its Moderator at most once
    assert max(loads.values()) == 1 and len(loads) < 8, loads


def test_executor_cache_refuses_an_edited_policy(tmp_path: Path) -> None:
    import warden.spark as ws

    policy = tmp_path / "p.yaml"
    policy.write_text(BANKS_POLICY.read_text(encoding="utf-8").replace("../../policies/banks/",
                                                                        str(ROOT / "policies" / "banks") + "/"))
    with pytest.raises(RuntimeError, match="changed after the Spark job was planned"):
        ws.executor_moderator(str(policy), "0" * 64)


def test_cli_spark_batch(spark, tmp_path: Path) -> None:
    data = tmp_path / "in"
    data.mkdir()
    (data / "a.jsonl").write_text('{"id": "a1", "text": "hello"}\nnot json\n{"id": "a2", "text": "I will kill you"}\n',
                                  encoding="utf-8")
    (data / "b.csv").write_text('id,text\nb1,"hi, there"\nb2,buy cheap viagra now\n', encoding="utf-8")
    out = tmp_path / "out"
    runner = CliRunner()
    args = ["spark-batch", str(data), "-o", str(out), "--policy", str(BANKS_POLICY), "--master", "local[2]"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "5 rows, 1 errors" in res.stderr
    table = pq.read_table(out)
    assert _same_schema(table.schema)
    rows = {r["id"]: r for r in table.to_pylist()}
    assert set(rows) == {"a1", "a2", "b1", "b2", None}
    assert rows[None]["error"] == "malformed record: the reader could not parse it"
    assert rows["b1"]["source_file"] == str(data / "b.csv") and rows["a2"]["flagged"]
    res = runner.invoke(app, args)
    assert res.exit_code == 1 and "exists: pass --overwrite" in res.stderr
    res = runner.invoke(app, [*args, "--overwrite", "--id-col", "key"])
    assert res.exit_code == 1 and "id_col='key': no such column" in res.stderr
