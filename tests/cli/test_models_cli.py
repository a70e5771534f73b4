"""The retraining loop end to end through the real `warden` CLI: reviewer labels in a SQLite
store -> `warden train --with-reviews` (a SMALL candidate) -> `warden models gate` (a small
gate config) -> shadow mode (ShadowRunner) and `warden eval shadow` -> `warden models promote`
(refused until a passing gate) -> `warden models rollback`."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from warden.cli.main import app
from warden.learn import text_data as td
from warden.policy import load_policy

ROOT = Path(__file__).resolve().parents[2]
CHAMPION = ROOT / "models" / "text-v1"
LIVE = load_policy(ROOT / "policies" / "default.yaml", check_detectors=False).version
runner = CliRunner()

pytestmark = [
    pytest.mark.skipif(not td.data_dir().exists(), reason=f"WARDEN_DATA {td.data_dir()} not present"),
    pytest.mark.skipif(not (CHAMPION / "linear.npz").exists(), reason="models/text-v1 not built"),
]

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
REVIEWS = [  # (content id, text, labels): what reviewers decided on the platform's own traffic
    ("r1", "Grow your channel fast, buy 10k subscribers at subs-cheap.example", {"spam": True}),
    ("r2", "sub4sub anyone?? check my channel, I sub back instantly", {"spam": True}),
    ("r3", "Limited offer: followers and likes for $5, DM me now", {"spam": True, "scam": False}),
    ("r4", "Thanks for the tutorial, the part about tuning the bass helped a lot", {"spam": False}),
    ("r5", "Are we still meeting at the station at 6?", {"spam": False}),
    ("r6", "I love this song, it reminds me of summer 2012", {"spam": False}),
    ("r7", "Win a free iPhone, click the link in my profile!!!", {"spam": True}),
    ("r8", "not archived: the text of this one was never kept", {"spam": True}),
]
SMALL_GATES = """
version: 1
name: small-{name}
data:
  - {{source: sms_spam, limit: 80}}
  - {{source: youtube_spam, limit: 80}}
split: test
n_bootstrap: 50
rules:
  spam:
    min_pr_auc: {min_pr_auc}
    max_regression: {{max_pr_auc_drop: 0.5}}
"""


def invoke(*args: str):
    result = runner.invoke(app, [str(a) for a in args])
    return result, result.output  # stdout and stderr, interleaved (click >= 8.2)


@pytest.fixture
def world(tmp_path: Path):
    from review_labels import add_review
    from warden.store import Store

    shutil.copytree(ROOT / "policies", tmp_path / "policies")
    live = tmp_path / "policies" / "default.yaml"
    live.write_text(live.read_text().replace("model_dir: ../models/text-v1", f"model_dir: {CHAMPION}"))
    url = f"sqlite:///{tmp_path / 'warden.db'}"
    store = Store.from_url(url)
    store.upgrade()
    for i, (cid, text, labels) in enumerate(REVIEWS):
        add_review(store, cid, None if cid == "r8" else text, labels, at=T0 + timedelta(minutes=i))
    store.close()
    for name, limit in (("pass", 0.5), ("fail", 0.9999)):
        (tmp_path / f"gates-{name}.yaml").write_text(SMALL_GATES.format(name=name, min_pr_auc=limit))
    return {"tmp": tmp_path, "policy": live, "url": url, "registry": tmp_path / "registry"}


def test_retrain_gate_shadow_promote_rollback(world) -> None:
    from warden.learn.registry import ModelRegistry, Status
    from warden.policy import load_policy
    from warden.store import Store

    policy, registry, url = world["policy"], world["registry"], world["url"]
    common = ["--policy", policy, "--registry", registry]
    original = policy.read_text()

    # 1. a small candidate with the reviewer labels
    res, out = invoke("train", "--with-reviews", "--database-url", url, "--sources", "sms_spam,youtube_spam",
                      "--max-per-source", "100", "--quick", *common)
    assert res.exit_code == 0, out
    assert "1 reviewer label(s) skipped" in out and "candidate text-v2 (parent text-v1)" in out
    reg = ModelRegistry(registry)
    rec = reg.get("text-v2")
    assert rec.status is Status.CANDIDATE and rec.lineage.parent == "text-v1"
    data = rec.lineage.data
    assert data.reviewer_labels == 8 and data.reviewer_texts == 7  # r8 has no archived text
    assert data.reviewer_first == T0.isoformat() and sum(data.reviewer_split.values()) == 7
    assert data.sources["reviewer"] == 7 and data.sha256 and rec.lineage.code_version != ""
    assert "--with-reviews" in rec.lineage.command and rec.metrics["per_category"]["spam"]["status"] == "supervised"
    model_dir = reg.resolve(rec)
    assert json.loads((model_dir / "linear.json").read_text())["version"] == "text-v2"
    assert "| reviewer |" in (model_dir / "MODEL_CARD.md").read_text()
    cand_policy = policy.with_name("default.text-v2.yaml")
    assert load_policy(cand_policy, check_detectors=False).version == f"{LIVE}+text-v2"

    # 2. no gate yet: promotion refused, nothing changes
    res, out = invoke("models", "promote", "text-v2", *common)
    assert res.exit_code == 1 and "no gate has been recorded" in out, out
    assert policy.read_text() == original

    # 3. a failing gate is recorded and still blocks promotion
    res, out = invoke("models", "gate", "text-v2", "--gates", world["tmp"] / "gates-fail.yaml", *common)
    assert res.exit_code == 1, out
    assert "gate small-fail FAILED for text-v2 against text-v1" in out
    res, out = invoke("models", "promote", "text-v2", *common)
    assert res.exit_code == 1 and "FAILED: spam: min_pr_auc" in out, out

    # 4. a passing gate
    res, out = invoke("models", "gate", "text-v2", "--gates", world["tmp"] / "gates-pass.yaml", *common)
    assert res.exit_code == 0, out
    gate = ModelRegistry(registry).get("text-v2").latest_gate
    assert gate.passed and gate.champion == "text-v1" and gate.candidate_policy_version == f"{LIVE}+text-v2"

    # 5. shadow mode: the candidate policy beside the live one, compared by `warden eval shadow`
    from warden.core import Content
    from warden.moderator import Moderator
    from warden.service.metrics import ServiceMetrics
    from warden.service.shadow import ShadowRunner

    store = Store.from_url(url)
    live_mod, cand_mod = Moderator.from_file(policy), Moderator.from_file(cand_policy)
    items = [Content(id=f"s{i}", text=t) for i, t in enumerate(
        ["free ringtones, text TONE to 80808", "see you at dinner", "subscribe to my channel pls", "nice video"])]
    live_decisions = live_mod.moderate_batch(items)
    store.save_decisions(live_decisions)
    shadow = ShadowRunner(cand_mod, store, ServiceMetrics())
    assert shadow.submit(items, live_decisions)
    assert shadow.drain(timeout=60)
    shadow.stop()
    pairs = store.shadow_comparisons(policy_version=f"{LIVE}+text-v2")
    assert len(pairs) == 4 and {sh.policy_version for _, sh in pairs} == {f"{LIVE}+text-v2"}
    assert {lv.policy_version for lv, _ in pairs} == {LIVE}
    store.close()
    res, out = invoke("eval", "shadow", "--database-url", url, "--candidate-version", f"{LIVE}+text-v2",
                      "--bootstrap", "10")
    assert res.exit_code == 0, out
    assert f"{LIVE}+text-v2" in out and "4 items" in out

    # 6. promote: the gated candidate policy becomes the live policy; audit event written
    res, out = invoke("models", "promote", "text-v2", "--database-url", url, *common)
    assert res.exit_code == 0, out
    assert f"{LIVE} -> {LIVE}+text-v2" in out and "detectors.linear.params.model_dir" in out
    assert policy.read_text() == cand_policy.read_text()
    assert ModelRegistry(registry).champion().version == "text-v2"

    # 7. rollback: text-v1 again, under a new policy version
    res, out = invoke("models", "rollback", "--database-url", url, *common)
    assert res.exit_code == 0, out
    assert "rolled back to text-v1 (was text-v2)" in out
    assert policy.read_text() == original.replace(f'version: "{LIVE}"', f'version: "{LIVE}+text-v1"')
    reg = ModelRegistry(registry)
    assert reg.champion().version == "text-v1" and reg.get("text-v2").status is Status.RETIRED

    store = Store.from_url(url)
    events = [(e.event, e.subject, e.details["policy_version_new"]) for e in store.audit_events()
              if e.event.startswith("model.")]
    store.close()
    assert events == [("model.promote", "model:text-v2", f"{LIVE}+text-v2"),
                      ("model.rollback", "model:text-v1", f"{LIVE}+text-v1")]
    res, out = invoke("models", "list", "--json", *common)
    assert res.exit_code == 0, out
    assert [(v["version"], v["status"]) for v in json.loads(res.stdout)] == [("text-v1", "champion"),
                                                                             ("text-v2", "retired")]
    res, out = invoke("models", "history", *common)
    assert [line.split()[1] for line in res.stdout.splitlines()] == [
        "register", "register", "gate", "gate", "promote", "rollback"]


def test_train_without_reviews_rejects_review_only_options(tmp_path: Path) -> None:
    res, out = invoke("train", "--out", tmp_path / "m", "--quick")
    assert res.exit_code == 1 and "apply to --with-reviews only" in out
    res, out = invoke("train", "--with-reviews", "--out", tmp_path / "m")
    assert res.exit_code == 1 and "--out cannot be combined with --with-reviews" in out


def test_gate_refuses_an_unknown_version(world) -> None:
    res, out = invoke("models", "gate", "text-v7", "--policy", world["policy"], "--registry", world["registry"])
    assert res.exit_code == 2 and "unknown model version 'text-v7'; known: text-v1" in out


def test_read_commands_never_create_a_registry(world) -> None:
    for args in (["list"], ["history"], ["show", "text-v1"]):
        res, out = invoke("models", *args, "--policy", world["policy"], "--registry", world["registry"])
        assert res.exit_code == 2 and "no model registry at" in out and "warden train --with-reviews" in out
    assert not world["registry"].exists()
