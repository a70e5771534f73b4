"""`warden review fill-learning` end to end on SQLite (mounted on a local Typer app, as the lead
merges it into `warden review`); the encoder is stubbed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

import warden.learn.active as active
from support import SMALL_POLICY
from warden.cli.learning import register
from warden.core import Action, CategoryVerdict, Content, Decision, Verdict
from warden.policy import parse_policy
from warden.store import Store
from warden.store.review_repo import ReviewRepository

runner = CliRunner()
POLICY = SMALL_POLICY + """
review:
  default_queue: default
  queues: {default: {sla_hours: 24}, learning: {sla_hours: 168}}
  learning_queue: learning
"""


def _decision(cid: str, hate: float, spam: float) -> Decision:
    return Decision(content_id=cid, policy_name="small", policy_version="t1", surface="comment",
                    action=Action.ALLOW, automated=True,
                    verdicts=(CategoryVerdict("hate", Verdict.CLEAR, hate, 0.8, 0.5, "cheap"),),
                    reasons=(), scores={"hate": hate, "spam": spam})




@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, word_detector_cls) -> dict:
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(POLICY)
    db = f"sqlite:///{tmp_path / 'w.db'}"
    store = Store.from_url(db)
    store.upgrade()
    rng = np.random.default_rng(0)
    contents, decisions = [], []
    for i in range(40):
        # i == 3 sits on hate's flag threshold (0.8); the rest are confident
        hate = 0.8 if i == 3 else float(rng.uniform(0.0, 0.1))
        contents.append(Content(id=f"c{i}", text=f"text number {i}"))
        decisions.append(_decision(f"c{i}", hate, float(rng.uniform(0.0, 0.2)) if i != 5 else 0.9))
    store.save_decisions(decisions)
    store.archive_content(contents)
    calls: list[list[str]] = []

    def embed(texts: list[str]) -> np.ndarray:
        calls.append(list(texts))
        return np.stack([np.random.default_rng(int(t.split()[-1])).normal(size=8) for t in texts])

    monkeypatch.setattr(active, "embed_with_minilm", embed)
    app = typer.Typer()
    app.command("noop")(lambda: None)  # a group with one command would collapse into that command
    register(app)
    return {"app": app, "db": db, "policy": policy_file, "store": store, "calls": calls}


def test_fill_learning_enqueues_the_most_uncertain_into_the_learning_queue(setup: dict) -> None:
    args = ["fill-learning", "--limit", "3", "--policy", str(setup["policy"]), "--database-url", setup["db"]]
    res = runner.invoke(setup["app"], args)
    assert res.exit_code == 0, res.output
    assert "enqueued 3 new task(s) in queue 'learning'" in res.output
    repo = ReviewRepository(setup["store"], policy=parse_policy(POLICY))
    tasks = repo.list_tasks(source="active_learning")
    assert len(tasks) == 3 and {t.queue for t in tasks} == {"learning"}
    keys = {t.content_id for t in tasks}
    assert {"c3", "c5"} <= keys  # on hate's threshold; on spam's threshold (0.9)
    assert setup["calls"] and len(setup["calls"][0]) <= 30  # only the shortlist is embedded
    # idempotent per (model, content): items already queued are not picked again
    res2 = runner.invoke(setup["app"], args)
    assert res2.exit_code == 0, res2.output
    assert len(repo.list_tasks(source="active_learning")) == 6
    assert not keys & {t.content_id for t in repo.list_tasks(source="active_learning")[3:]}


def test_fill_learning_dry_run_enqueues_nothing(setup: dict) -> None:
    res = runner.invoke(setup["app"], ["fill-learning", "--limit", "2", "--dry-run", "--policy", str(setup["policy"]),
                                       "--database-url", setup["db"]])
    assert res.exit_code == 0, res.output
    assert "dry run" in res.output and "c3" in res.output
    assert ReviewRepository(setup["store"]).list_tasks(source="active_learning") == []


def test_fill_learning_rejects_unknown_strategy(setup: dict) -> None:
    res = runner.invoke(setup["app"], ["fill-learning", "--strategy", "entropy", "--policy", str(setup["policy"]),
                                       "--database-url", setup["db"]])
    assert res.exit_code == 2
