"""`warden hash ...` end to end on a SQLite database."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hashing_support import need_hashing
from typer.testing import CliRunner

from warden.cli.main import app

need_hashing()

from PIL import Image  # noqa: E402

from warden.testing.images import encode, synthetic_image  # noqa: E402


@pytest.fixture
def cli(tmp_path: Path):
    runner = CliRunner()
    db = f"sqlite:///{tmp_path / 'cli.db'}"

    def run(*args: str, code: int = 0):
        result = runner.invoke(app, ["hash", *args, *(["--database-url", db] if args[0] in ("bank", "lookup")
                                                      else [])])
        assert result.exit_code == code, result.output
        return result

    return run


def test_compute_prints_hashes_and_flags_bad_files(cli, tmp_path: Path) -> None:
    good = tmp_path / "a.png"
    good.write_bytes(encode(synthetic_image(1)))
    bad = tmp_path / "b.png"
    bad.write_bytes(b"nope")
    out = cli("compute", str(good), str(bad), str(tmp_path / "missing.png"), "--dihedral", code=1)
    lines = [json.loads(x) for x in out.stdout.splitlines()]
    assert len(lines[0]["pdq"]) == 64 and lines[0]["quality"] >= 50 and len(lines[0]["dihedral"]) == 8
    assert "not a recognized image" in lines[1]["error"] and "cannot read" in lines[2]["error"]


def test_bank_workflow(cli, tmp_path: Path) -> None:
    img = synthetic_image(2)
    banked = tmp_path / "banked.png"
    banked.write_bytes(encode(img))
    cli("bank", "create", "known", "--category", "violence", "--action", "escalate", "--report")
    cli("bank", "create", "known", "--category", "violence", code=1)
    assert "invalid action" in cli("bank", "create", "x", "--category", "violence", "--action", "nuke",
                                   code=2).output
    out = cli("bank", "add", "known", str(banked), "ab" * 32, "--source", "case-9", "--crops")
    assert "added 17, duplicates 0" in out.stdout  # pdq + md5 + 14 crop windows + the hex hash
    assert "known" in cli("bank", "list").stdout
    listed = json.loads(cli("bank", "list", "--json").stdout)
    assert listed["hash_count"] == 17 and listed["report"] is True

    copy = tmp_path / "copy.jpg"
    copy.write_bytes(encode(img.transpose(Image.FLIP_LEFT_RIGHT), "JPEG", quality=60))
    res = json.loads(cli("lookup", str(copy), "--exact-dihedral").stdout)
    assert res["matched"] and res["action"] == "escalate" and res["report"] is True
    assert res["matches"][0]["variant"] not in (None, "original")
    assert json.loads(cli("lookup", "ab" * 32).stdout)["matches"][0]["distance"] == 0
    assert not json.loads(cli("lookup", "cd" * 32).stdout)["matched"]

    export = tmp_path / "known.json"
    cli("bank", "export", "known", "--format", "json", "-o", str(export))
    cli("bank", "import", "restored", str(export))  # created from the file's bank definition
    restored = {b["name"]: b for b in map(json.loads, cli("bank", "list", "--json").stdout.splitlines())}
    assert restored["restored"]["hash_count"] == 17 and restored["restored"]["action"] == "escalate"
    csv_out = cli("bank", "export", "known", "--format", "csv").stdout
    assert csv_out.startswith("signal_type,signal,source") and "case-9" in csv_out
    bad = tmp_path / "bad.csv"
    bad.write_text("signal_type,signal\npdq,xyz\n")
    assert "line 2: invalid PDQ hash" in cli("bank", "import", "known", str(bad), code=1).output
    te = tmp_path / "list.te"
    te.write_text("pdq " + "ef" * 32 + "\n")
    assert "no hash bank named 'nope'" in cli("bank", "import", "nope", str(te), code=1).output
    cli("bank", "remove", "known", "ab" * 32)
    assert not json.loads(cli("lookup", "ab" * 32, "--banks", "known").stdout)["matched"]
    cli("bank", "delete", "known", code=2)
    assert "deleted bank 'known'" in cli("bank", "delete", "known", "--yes").stdout
