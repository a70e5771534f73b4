"""`warden classify` with image paths: rows name files relative to the input file; a missing,
corrupt or hostile file is an error line for that row and the run goes on."""

from __future__ import annotations

import json
from pathlib import Path

from media_samples import drawing, encode, png_bomb, png_with_text_chunk, truncated_jpeg
from typer.testing import CliRunner

from warden.cli.main import app

runner = CliRunner()


def _files(root: Path) -> None:
    (root / "img").mkdir()
    (root / "img" / "meme.png").write_bytes(png_with_text_chunk("i will kill you"))
    (root / "img" / "house.png").write_bytes(encode(drawing()))
    (root / "img" / "bomb.png").write_bytes(png_bomb())
    (root / "img" / "cut.jpg").write_bytes(truncated_jpeg())


def _run(policy: Path, inp: Path, out: Path, *extra: str) -> list[dict]:
    result = runner.invoke(app, ["classify", str(inp), "-o", str(out), "--policy", str(policy), "--no-progress",
                                 "--workers", "1", *extra])
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in out.read_text().splitlines()]


def test_classify_jsonl_with_image_paths(doubles_policy_path: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    _files(data)
    rows = [
        {"id": "meme", "media": "img/meme.png"},
        {"id": "post", "text": "my house", "media": ["img/house.png"]},
        {"id": "text-only", "text": "hello"},
        {"id": "missing", "text": "x", "media": "img/nope.png"},
        {"id": "bomb", "media": "img/bomb.png"},
        {"id": "cut", "media": [{"path": "img/cut.jpg", "kind": "image"}]},
        {"id": "abs", "media": str(data / "img" / "house.png")},
    ]
    inp = data / "rows.jsonl"
    inp.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    lines = _run(doubles_policy_path, inp, tmp_path / "out.jsonl")
    by_id = {line["id"]: line for line in lines}
    assert [line["id"] for line in lines] == [r["id"] for r in rows]
    assert by_id["meme"]["flagged"] == ["violence"]
    assert by_id["meme"]["reasons"][0]["evidence"][0]["location"] == {"part": 0, "via": "ocr"}
    assert by_id["post"]["action"] == "allow" and by_id["abs"]["action"] == "allow"
    assert by_id["text-only"]["action"] == "allow"
    assert by_id["missing"]["error"].startswith("row 3: media[0]: file not found: ")
    assert "the image has 10,000,000,000 pixels; the limit is" in by_id["bomb"]["error"]
    assert "cannot decode the jpeg data" in by_id["cut"]["error"]


def test_classify_csv_media_column(doubles_policy_path: Path, tmp_path: Path) -> None:
    _files(tmp_path)
    inp = tmp_path / "rows.csv"
    inp.write_text('id,text,media\n'
                   'a,caption,img/meme.png\n'
                   'b,no image,\n'
                   'c,two,"[""img/house.png"", ""img/meme.png""]"\n')
    lines = _run(doubles_policy_path, inp, tmp_path / "out.jsonl")
    assert [(line["id"], line["flagged"]) for line in lines] == [("a", ["violence"]), ("b", []),
                                                                 ("c", ["violence"])]
    ev = lines[2]["reasons"][0]["evidence"][0]
    assert ev["location"]["part"] == 1


def test_default_policy_refuses_images_with_a_clear_row_error(tmp_path: Path) -> None:
    _files(tmp_path)
    inp = tmp_path / "rows.jsonl"
    inp.write_text(json.dumps({"id": "p", "text": "hi", "media": "img/house.png"}) + "\n")
    out = tmp_path / "out.jsonl"
    result = runner.invoke(app, ["classify", str(inp), "-o", str(out), "--no-progress", "--workers", "1"])
    assert result.exit_code == 0, result.output
    [line] = [json.loads(x) for x in out.read_text().splitlines()]
    assert "media[0] is image content, but policy 'default' has no detector that reads image" in line["error"]
