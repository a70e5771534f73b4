"""Without Java, `warden spark-batch` says what to install instead of failing inside py4j."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import warden.spark as ws
from warden.cli.main import app

ROOT = Path(__file__).resolve().parents[2]


def test_missing_java_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    pytest.importorskip("pyspark", reason="the check after pyspark's import needs pyspark")
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setattr(ws.shutil, "which", lambda name: None)
    with pytest.raises(ws.SparkUnavailable, match="Spark needs Java 17 or newer and none was found"):
        ws.require_spark()
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"id": "a", "text": "hello"}) + "\n")
    res = CliRunner().invoke(app, ["spark-batch", str(src), "-o", str(tmp_path / "out"), "--policy",
                                   str(ROOT / "benchmarks" / "policies" / "banks.yaml")])
    assert res.exit_code == 1 and "apt-get install openjdk-17-jre-headless" in res.stderr
    assert not (tmp_path / "out").exists()
