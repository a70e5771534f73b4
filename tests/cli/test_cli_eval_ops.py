"""`warden eval backtest|shadow|online` end to end (mounted on a local Typer app, as the
lead merges `eval_ops_app` into `warden eval`)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from support import SMALL_POLICY
from warden.cli.eval_ops import eval_ops_app, parse_when, register
from warden.core import Content
from warden.moderator import Moderator
from warden.policy import parse_policy
from warden.store import ReviewOutcome, Store

runner = CliRunner()
CANDIDATE = SMALL_POLICY.replace('version: "t1"', 'version: "t2"').replace(
    "flag: 0.9, review: 0.6", "flag: 0.999, review: 0.6")
ITEMS = [("i1", "hello"), ("i2", "spammy deal"), ("i3", "hateword x"), ("i4", "spammy again"), ("i5", "maybe")]


@pytest.fixture
def files(tmp_path: Path, word_detector_cls) -> dict[str, Path]:
    base, cand = tmp_path / "policy.yaml", tmp_path / "candidate.yaml"
    base.write_text(SMALL_POLICY)
    cand.write_text(CANDIDATE)
    items = tmp_path / "past.jsonl"
    items.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in ITEMS))
    labels = tmp_path / "labels.jsonl"
    labels.write_text("".join(json.dumps(r) + "\n" for r in [
        {"id": "i1", "spam": 0, "hate": 0}, {"id": "i2", "spam": 1, "hate": 0}, {"id": "i3", "spam": 0, "hate": 1},
        {"id": "i4", "spam": 0, "hate": 0}]))
    return {"base": base, "cand": cand, "items": items, "labels": labels, "db": tmp_path / "w.db"}


def test_backtest_from_files(files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    r = runner.invoke(eval_ops_app, ["backtest", "--candidate", str(files["cand"]), "--baseline", str(files["base"]),
                                     "--items", str(files["items"]), "--labels", str(files["labels"]),
                                     "--out", str(out), "--bootstrap", "50"])
    assert r.exit_code == 0, r.output
    assert "changed actions: 2" in r.stdout and "Action transitions" in r.stdout
    rep = json.loads(out.read_text())
    assert rep["kind"] == "backtest" and rep["n_items"] == 5 and rep["changed"] == 2
    assert rep["transitions"]["limit"]["hold_for_review"] == 2
    assert rep["old_policy_versions"] == ["t1"] and rep["new_policy_versions"] == ["t2"]
    spam = next(d for d in rep["label_deltas"] if d["category"] == "spam")
    # baseline flags i2 (TP) and i4 (FP): precision 0.5, recall 1; the candidate flags nothing
    assert spam["old_precision"]["value"] == 0.5 and spam["old_recall"]["value"] == 1.0
    assert spam["new_precision"]["value"] is None and spam["new_recall"]["value"] == 0.0
    assert spam["recall_delta"]["value"] == -1.0


def test_backtest_from_store_uses_archive_and_stored_decisions(files: dict[str, Path], tmp_path: Path) -> None:
    url = f"sqlite:///{files['db']}"
    store = Store.from_url(url)
    store.upgrade()
    contents = [Content(id=i, text=t) for i, t in ITEMS]
    store.archive_content(contents)
    store.save_decisions(Moderator(parse_policy(SMALL_POLICY)).moderate_batch(contents[:4]))  # i5 never decided
    store.close()
    out = tmp_path / "r.json"
    r = runner.invoke(eval_ops_app, ["backtest", "--candidate", str(files["cand"]), "--from-store",
                                     "--database-url", url, "--out", str(out), "--bootstrap", "0"])
    assert r.exit_code == 0, r.output
    rep = json.loads(out.read_text())
    assert rep["baseline"] == "stored decisions" and rep["items"] == "content archive"
    assert rep["n_items"] == 4 and rep["only_new"] == 1 and rep["changed"] == 2


def test_backtest_needs_sources(files: dict[str, Path]) -> None:
    r = runner.invoke(eval_ops_app, ["backtest", "--candidate", str(files["cand"]), "--items", str(files["items"])])
    assert r.exit_code == 2 and "--baseline" in r.output
    r = runner.invoke(eval_ops_app, ["backtest", "--candidate", str(files["cand"]), "--baseline", str(files["base"])])
    assert r.exit_code == 2 and "--items" in r.output


def test_shadow_report(files: dict[str, Path], tmp_path: Path) -> None:
    url = f"sqlite:///{files['db']}"
    store = Store.from_url(url)
    store.upgrade()
    contents = [Content(id=i, text=t) for i, t in ITEMS]
    live = Moderator(parse_policy(SMALL_POLICY)).moderate_batch(contents)
    shadow = Moderator(parse_policy(CANDIDATE)).moderate_batch(contents)
    store.save_decisions(live)
    store.save_shadow_decisions(zip(live, shadow, strict=True))
    store.close()
    out = tmp_path / "shadow.json"
    r = runner.invoke(eval_ops_app, ["shadow", "--since", "1d", "--database-url", url, "--labels",
                                     str(files["labels"]), "--out", str(out), "--bootstrap", "20"])
    assert r.exit_code == 0, r.output
    assert "Shadow: candidate t2 vs live on 5 items" in r.stdout
    rep = json.loads(out.read_text())
    assert rep["candidate_version"] == "t2" and rep["changed"] == 2 and rep["agreement_rate"] == pytest.approx(0.6)
    r = runner.invoke(eval_ops_app, ["shadow", "--until", "1d", "--database-url", url])
    assert r.exit_code == 1 and "no shadow decisions" in r.output


def test_online_report(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'o.db'}"
    store = Store.from_url(url)
    store.upgrade()
    base = {"decision_id": "d", "content_id": "c", "category": "hate", "surface": "comment", "policy_version": "v1",
            "reviewer": "r"}
    for verdict in ["upheld"] * 8 + ["overturned"] * 2:
        store.record_review_outcome(ReviewOutcome(**base, action="remove", verdict=verdict, source="qa_sample",
                                                  sample_rate=0.1))
    for verdict in ["overturned", "upheld", "upheld"]:
        store.record_review_outcome(ReviewOutcome(**base, action="remove", verdict=verdict, source="appeal"))
    store.close()
    out = tmp_path / "online.json"
    r = runner.invoke(eval_ops_app, ["online", "--since", "30d", "--database-url", url, "--out", str(out)],
                      env={"COLUMNS": "250"})
    assert r.exit_code == 0, r.output
    assert "0.800 [0.490, 0.943]" in r.stdout  # 8/10 upheld, Wilson 95%
    rep = json.loads(out.read_text())
    hc = next(x for x in rep["qa_precision"] if (x["category"], x["surface"]) == ("hate", "comment"))
    assert hc["hits"] == 8 and hc["estimated_decisions"] == pytest.approx(100)
    appeal = next(x for x in rep["appeal_overturn_rate"] if x["category"] == "*" and x["surface"] == "*")
    assert appeal["n"] == 3 and appeal["hits"] == 1


def test_parse_when_and_register() -> None:
    now = datetime(2025, 1, 10, tzinfo=UTC)
    assert parse_when("7d", now=now) == now - timedelta(days=7)
    assert parse_when("2025-01-01") == datetime(2025, 1, 1, tzinfo=UTC)
    assert parse_when(None) is None
    with pytest.raises(ValueError):
        parse_when("yesterday")
    app = typer.Typer()
    register(app)
    assert {c.name for c in app.registered_commands} == {"backtest", "shadow", "online"}


def test_serve_loads_a_shadow_policy(files: dict[str, Path], monkeypatch) -> None:
    from warden.cli.serve import serve

    runs: list[dict] = []
    monkeypatch.setattr("uvicorn.run", lambda app, **kw: runs.append({"app": app, **kw}))
    serve_app = typer.Typer()
    serve_app.command("serve")(serve)
    serve_app.command("noop")(lambda: None)
    url = f"sqlite:///{files['db']}"
    r = runner.invoke(serve_app, ["serve", "--policy", str(files["base"]), "--shadow-policy", str(files["cand"]),
                                  "--database-url", url, "--archive-content"])
    assert r.exit_code == 0, r.output
    app = runs[0]["app"]
    assert app.state.shadow is not None and app.state.shadow.policy_version == "t2"
    assert app.state.settings.archive_content is True
    # from the environment too
    monkeypatch.setenv("WARDEN_SHADOW_POLICY", str(files["cand"]))
    r = runner.invoke(serve_app, ["serve", "--policy", str(files["base"]), "--database-url", url])
    assert r.exit_code == 0 and runs[1]["app"].state.shadow.policy_version == "t2"
    r = runner.invoke(serve_app, ["serve", "--policy", str(files["base"]), "--database-url", url,
                                  "--shadow-policy", str(files["db"].parent / "missing.yaml")])
    assert r.exit_code == 1 and "cannot load shadow policy" in r.output
