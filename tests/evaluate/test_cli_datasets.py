"""`warden datasets list|show|validate` (the app is mounted by the lead; tested standalone here)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from warden.cli.datasets import datasets_app
from warden.learn.text_data import data_dir

runner = CliRunner()
needs_data = pytest.mark.skipif(not (data_dir() / "toxigen_seeds").exists(), reason="shared datasets not available")


def test_list():
    res = runner.invoke(datasets_app, ["list"])
    assert res.exit_code == 0, res.output
    assert "sms_spam_golden_v1" in res.output and "golden (775 rows)" in res.output


@needs_data
def test_show_and_validate():
    res = runner.invoke(datasets_app, ["show", "toxigen_seeds"])
    assert res.exit_code == 0, res.output
    assert "checksum ok" in res.output and "target" in res.output
    res = runner.invoke(datasets_app, ["validate", "toxigen_seeds_golden_v1"])
    assert res.exit_code == 0, res.output
    assert "ok" in res.output


def test_validate_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nversion: 1\n")
    res = runner.invoke(datasets_app, ["validate", str(bad)])
    assert res.exit_code == 1
    assert runner.invoke(datasets_app, ["validate"]).exit_code == 1
    assert runner.invoke(datasets_app, ["show", "no_such_dataset"]).exit_code == 1
