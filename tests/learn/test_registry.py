"""The model registry and the policy moves of the retraining loop, on small fake artifacts
(no training): round trip, lineage, atomic writes, promotion refusals, promote + rollback;
and how reviewer labels become training rows."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from warden.learn import registry as reg_mod
from warden.learn.registry import (
    DataFingerprint,
    GateRecord,
    Lineage,
    ModelRegistry,
    PromotionRefused,
    RegistryError,
    Status,
    artifact_fingerprint,
    atomic_write_text,
)
from warden.learn.retrain import (
    PolicyText,
    RetrainError,
    ensure_registry,
    policy_version_for,
    promote_policy,
    rollback_policy,
    swap_model,
    write_candidate_policy,
)
from warden.learn.review_data import ReviewerLabel, merge_reviewer_rows, reviewer_rows, rows_fingerprint
from warden.learn.splits import assign_split
from warden.learn.text_data import TextRow
from warden.policy import load_policy

ROOT = Path(__file__).resolve().parents[2]
LIVE_POLICY = ROOT / "policies" / "default.yaml"
LIVE = load_policy(LIVE_POLICY, check_detectors=False).version  # the shipped policy's version


def fake_model(folder: Path, version: str, *, weight: bytes = b"w1") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "linear.json").write_text(json.dumps({"version": version}))
    (folder / "linear.npz").write_bytes(weight)
    (folder / "metrics.json").write_text(json.dumps({
        "per_category": {"spam": {"status": "supervised", "linear": {"n": 10, "positives": 3, "pr_auc": 0.9},
                                  "embedding": {"n": 10, "positives": 3, "pr_auc": 0.8}},
                         "violence/graphic": {"status": "few_shot_unmeasured"}},
        "meta": {"date": "2026-11-22", "seed": 0, "n_rows": 100, "split_sizes": {"train": 70, "cal": 15, "test": 15},
                 "source_split_sizes": {"sms_spam": {"train": 70, "cal": 15, "test": 15}}}}))
    (folder / "MODEL_CARD.md").write_text("card")
    return folder


@pytest.fixture
def world(tmp_path: Path) -> dict[str, Path]:
    """tmp/policies/default.yaml (the real default policy text) -> tmp/models/text-v1 (fake)."""
    shutil.copytree(ROOT / "policies", tmp_path / "policies")
    fake_model(tmp_path / "models" / "text-v1", "text-v1")
    return {"policy": tmp_path / "policies" / "default.yaml", "registry": tmp_path / "models" / "registry",
            "champion": tmp_path / "models" / "text-v1"}


def lineage(parent: str = "text-v1") -> Lineage:
    data = DataFingerprint(sources={"sms_spam": 100, "reviewer": 4}, sha256="ab" * 32, seed=0, max_per_source=50,
                           split_sizes={"train": 70, "cal": 15, "test": 19}, reviewer_labels=5, reviewer_texts=4,
                           reviewer_first="2026-11-01T00:00:00+00:00", reviewer_last="2026-11-20T00:00:00+00:00",
                           reviewer_split={"train": 3, "test": 1}, reviewer_overrides=1)
    return Lineage(parent=parent, code_version="git:abc", command="warden train --with-reviews", created_by="t",
                   data=data)


def candidate(reg: ModelRegistry, world: dict[str, Path], *, weight: bytes = b"w2") -> str:
    version, folder = reg.reserve()
    fake_model(folder / "model", version, weight=weight)
    metrics = json.loads((folder / "model" / "metrics.json").read_text())
    reg.register_candidate(version=version, model_dir=folder / "model", lineage=lineage(), metrics=metrics,
                           actor="tester", policy_path=world["policy"].with_name(f"default.{version}.yaml"))
    return version


def gate(reg: ModelRegistry, version: str, live: PolicyText, cand: PolicyText, *, passed: bool = True) -> GateRecord:
    rec = GateRecord(passed=passed, at="2026-11-23T00:00:00+00:00", by="tester", gate_name="g", gates_file="g.yaml",
                     gates_sha256="0" * 64, champion=reg.champion().version,
                     artifact_sha256=reg.get(version).artifact_sha256, candidate_policy_version=cand.version,
                     candidate_policy_fingerprint=cand.fingerprint, live_policy_path=str(live.path),
                     live_policy_version=live.version, live_policy_fingerprint=live.fingerprint, n_rules=1,
                     failures=() if passed else ("spam: min_pr_auc: PR-AUC 0.4 < limit 0.9",))
    reg.record_gate(version, rec)
    return rec


def gated_candidate(world: dict[str, Path], *, passed: bool = True) -> tuple[ModelRegistry, str]:
    reg = ModelRegistry(world["registry"])
    ensure_registry(reg, world["policy"], actor="tester")
    version = candidate(reg, world)
    cand = write_candidate_policy(reg, reg.get(version), world["policy"])
    gate(reg, version, PolicyText.read(world["policy"]), cand, passed=passed)
    return reg, version


# -- registry ------------------------------------------------------------------------------------

def test_initial_champion_is_registered_in_place_from_the_live_policy(world) -> None:
    reg = ModelRegistry(world["registry"])
    champ = ensure_registry(reg, world["policy"], actor="tester")
    assert champ.version == "text-v1" and champ.status is Status.CHAMPION
    assert reg.resolve(champ) == world["champion"].resolve()  # not copied
    assert not (world["registry"] / "text-v1").exists()
    assert champ.metrics["per_category"]["violence/graphic"] == {"status": "unmeasured"}
    assert champ.lineage.data is not None and champ.lineage.data.sources == {"sms_spam": 100}
    assert ensure_registry(reg, world["policy"], actor="other") == champ  # idempotent
    assert [e.event for e in reg.history()] == ["register"]


def test_round_trip_and_lineage(world) -> None:
    reg = ModelRegistry(world["registry"])
    ensure_registry(reg, world["policy"], actor="tester")
    version = candidate(reg, world)
    assert version == "text-v2"
    again = ModelRegistry(world["registry"]).get(version)  # a fresh reader sees the same record
    assert again == reg.get(version)
    assert again.status is Status.CANDIDATE and again.lineage == lineage()
    assert again.lineage.parent == "text-v1" and again.lineage.data.reviewer_labels == 5
    assert again.metrics["macro_pr_auc"] == {"linear": 0.9, "embedding": 0.8}
    assert again.artifact_sha256 == artifact_fingerprint(world["registry"] / version / "model")
    assert reg.policy_file(again) == world["policy"].with_name("default.text-v2.yaml").resolve()
    assert [(v.version, v.status) for v in reg.versions()] == [("text-v1", Status.CHAMPION),
                                                               ("text-v2", Status.CANDIDATE)]
    with pytest.raises(RegistryError, match="unknown model version 'text-v9'; known: text-v1, text-v2"):
        reg.get("text-v9")


def test_version_ids_are_never_reused(world) -> None:
    reg = ModelRegistry(world["registry"])
    ensure_registry(reg, world["policy"], actor="tester")
    assert reg.reserve()[0] == "text-v2"  # reserved but never registered (a crashed run keeps its folder)
    assert reg.reserve()[0] == "text-v3"


def test_artifact_fingerprint_ignores_docs_only(tmp_path: Path) -> None:
    m = fake_model(tmp_path / "m", "x")
    fp = artifact_fingerprint(m)
    (m / "MODEL_CARD.md").write_text("edited")
    assert artifact_fingerprint(m) == fp
    (m / "linear.npz").write_bytes(b"other")
    assert artifact_fingerprint(m) != fp


def test_atomic_write_keeps_the_old_file_when_the_write_fails(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "registry.json"
    atomic_write_text(path, "old")

    def crash(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(reg_mod.os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_text(path, "new")
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["registry.json"]  # no temp file left behind


def test_history_is_append_only_and_tolerates_a_torn_last_line(world) -> None:
    reg, _ = gated_candidate(world)
    before = reg.history_path.read_text()
    with open(reg.history_path, "a") as f:
        f.write('{"at": "2026-')  # a crash in the middle of an append
    assert [e.event for e in reg.history()] == ["register", "register", "gate"]
    assert reg.history_path.read_text().startswith(before)


# -- promotion refusals -------------------------------------------------------------------------------

def test_promote_refused_without_a_gate(world) -> None:
    reg = ModelRegistry(world["registry"])
    ensure_registry(reg, world["policy"], actor="tester")
    version = candidate(reg, world)
    write_candidate_policy(reg, reg.get(version), world["policy"])
    before = world["policy"].read_text()
    with pytest.raises(PromotionRefused, match=r"no gate has been recorded for it; run `warden models gate text-v2`"):
        promote_policy(registry=reg, version=version, live_policy=world["policy"], actor="tester")
    assert reg.champion().version == "text-v1" and world["policy"].read_text() == before


def test_promote_refused_after_a_failing_gate(world) -> None:
    reg, version = gated_candidate(world, passed=False)
    with pytest.raises(PromotionRefused, match=r"latest gate \(g, .*\) FAILED: spam: min_pr_auc"):
        promote_policy(registry=reg, version=version, live_policy=world["policy"], actor="tester")
    assert reg.champion().version == "text-v1"


def test_promote_refused_when_the_artifact_changed_since_the_gate(world) -> None:
    reg, version = gated_candidate(world)
    (reg.resolve(reg.get(version)) / "linear.npz").write_bytes(b"tampered")
    with pytest.raises(PromotionRefused, match=r"artifact .* changed since it was gated"):
        promote_policy(registry=reg, version=version, live_policy=world["policy"], actor="tester")
    assert reg.champion().version == "text-v1"


def test_promote_refused_when_the_live_policy_or_candidate_policy_changed(world) -> None:
    reg, version = gated_candidate(world)
    cand = reg.policy_file(reg.get(version))
    original = cand.read_text()
    cand.write_text(original.replace("flag: 0.85, review: 0.6}", "flag: 0.5, review: 0.2}", 1))
    with pytest.raises(RetrainError, match="changed since it was gated"):
        promote_policy(registry=reg, version=version, live_policy=world["policy"], actor="tester")
    cand.write_text(original)
    live = world["policy"].read_text()
    world["policy"].write_text(live.replace(f'version: "{LIVE}"', f'version: "{LIVE}-edited"'))
    with pytest.raises(PromotionRefused, match=r"live policy .* changed since the gate"):
        promote_policy(registry=reg, version=version, live_policy=world["policy"], actor="tester")


def test_promote_refused_when_gated_against_another_champion(world) -> None:
    reg, v2 = gated_candidate(world)
    v3 = candidate(reg, world, weight=b"w3")
    cand3 = write_candidate_policy(reg, reg.get(v3), world["policy"])
    gate(reg, v3, PolicyText.read(world["policy"]), cand3)
    promote_policy(registry=reg, version=v2, live_policy=world["policy"], actor="tester")
    with pytest.raises(PromotionRefused, match="gated against text-v1, but the champion is now text-v2"):
        promote_policy(registry=reg, version=v3, live_policy=world["policy"], actor="tester")


# -- promote and rollback --------------------------------------------------------------------------

def test_promote_then_rollback_restores_the_previous_champion_and_policy(world) -> None:
    original = world["policy"].read_text()
    old = load_policy(world["policy"], check_detectors=False)
    reg, version = gated_candidate(world)

    change, pol = promote_policy(registry=reg, version=version, live_policy=world["policy"], actor="alice")
    assert (change.previous.version, change.champion.version) == ("text-v1", "text-v2")
    assert reg.champion().version == "text-v2" and reg.get("text-v1").status is Status.RETIRED
    promoted = load_policy(world["policy"], check_detectors=False)
    assert promoted.version == pol.new_version == policy_version_for(old.version, "text-v2") == f"{LIVE}+text-v2"
    assert promoted.detectors["linear"].params["model_dir"] == "../models/registry/text-v2/model"
    assert {c.path for c in pol.changes} == {"version", "detectors.linear.params.model_dir",
                                             "detectors.minilm.params.model_dir"}
    assert "# Warden default policy." in world["policy"].read_text()  # comments survive the edit

    change, pol = rollback_policy(registry=reg, live_policy=world["policy"], actor="bob")
    assert (change.previous.version, change.champion.version) == ("text-v2", "text-v1")
    assert reg.champion().version == "text-v1" and reg.get("text-v2").status is Status.RETIRED
    rolled = load_policy(world["policy"], check_detectors=False)
    # a new version (decisions made under text-v2 keep theirs), otherwise the original policy
    assert rolled.version == f"{LIVE}+text-v1" and rolled.version not in (old.version, promoted.version)
    assert world["policy"].read_text() == original.replace(f'version: "{LIVE}"',
                                                           f'version: "{LIVE}+text-v1"')
    events = reg.history()
    assert [(e.event, e.version, e.previous, e.actor) for e in events[-2:]] == [
        ("promote", "text-v2", "text-v1", "alice"), ("rollback", "text-v1", "text-v2", "bob")]
    with pytest.raises(RegistryError, match="nothing to roll back to: text-v1 was never promoted"):
        rollback_policy(registry=reg, live_policy=world["policy"], actor="bob")


def test_rollback_refuses_a_tampered_previous_champion(world) -> None:
    reg, version = gated_candidate(world)
    promote_policy(registry=reg, version=version, live_policy=world["policy"], actor="alice")
    (world["champion"] / "linear.npz").write_bytes(b"changed")
    before = world["policy"].read_text()
    with pytest.raises(RegistryError, match=r"cannot roll back to text-v1: its artifact .* changed"):
        rollback_policy(registry=reg, live_policy=world["policy"], actor="bob")
    assert reg.champion().version == "text-v2" and world["policy"].read_text() == before


def test_swap_model_refuses_a_policy_that_does_not_use_the_champion(world, tmp_path: Path) -> None:
    live = PolicyText.read(world["policy"])
    with pytest.raises(RetrainError, match="no detector model_dir points at"):
        swap_model(live, from_dir=tmp_path / "elsewhere", to_dir=tmp_path / "x", version="v")


def test_candidate_policy_sits_beside_the_live_policy(world) -> None:
    reg = ModelRegistry(world["registry"])
    ensure_registry(reg, world["policy"], actor="tester")
    version = candidate(reg, world)
    cand = write_candidate_policy(reg, reg.get(version), world["policy"])
    assert cand.path == world["policy"].with_name("default.text-v2.yaml")
    assert cand.version == f"{LIVE}+text-v2"
    assert set(cand.model_dirs.values()) == {(world["registry"] / "text-v2" / "model").resolve()}
    p = load_policy(cand.path, check_detectors=False)
    assert p.detectors["keywords"].params["path"] == "banks/default.yaml"  # same folder: still the same bank


# -- reviewer labels as training rows ------------------------------------------------------------------

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def label(cid: str, text: str, cat: str, violating: bool, minutes: int = 0) -> ReviewerLabel:
    return ReviewerLabel(content_id=cid, text=text, category=cat, violating=violating, reviewer="r1",
                         policy_version="p1", source="routing", created_at=T0 + timedelta(minutes=minutes))


def test_reviewer_rows_latest_label_wins_and_parents_are_implied() -> None:
    rows, disagreements = reviewer_rows([
        label("c1", "Buy followers now", "spam", False, 0),
        label("c2", "buy FOLLOWERS now ", "spam", True, 5),  # same normalized text, later: wins
        label("c3", "I will find you and hurt you", "harassment/threatening", True),
    ])
    assert disagreements == 1
    by_text = {r.text.lower(): r for r in rows}
    assert by_text["buy followers now"].labels == {"spam": 1}
    assert by_text["buy followers now"].meta["content_ids"] == ["c1", "c2"]
    assert by_text["i will find you and hurt you"].labels == {"harassment/threatening": 1, "harassment": 1}
    assert {r.source for r in rows} == {"reviewer"}


def test_reviewer_labels_override_dataset_labels_for_the_same_text() -> None:
    data = {"sms_spam": [TextRow("Free entry, text WIN now", {"spam": 1, "scam": 0}, "sms_spam"),
                         TextRow("see you at lunch", {"spam": 0, "scam": 0}, "sms_spam")],
            "youtube_spam": [TextRow("FREE ENTRY, text win now", {"spam": 1, "hate": 0}, "youtube_spam")]}
    merge = merge_reviewer_rows(data, [label("c1", "free entry, text win now", "spam", False)])
    assert [r.text for r in merge.rows["sms_spam"]] == ["see you at lunch"] and merge.rows["youtube_spam"] == []
    (rev,) = merge.rows["reviewer"]
    assert rev.labels == {"spam": 0, "scam": 0, "hate": 0}  # reviewer wins; other dataset labels kept
    assert merge.overrides == 2 and merge.labels == 1 and merge.texts == 1
    # the same content-hash split as every other row: it lands where the dataset row would have
    assert merge.split == {assign_split("Free entry, text WIN now").value: 1}
    assert merge.first == merge.last == T0


def test_rows_fingerprint_is_order_independent_and_label_sensitive() -> None:
    a = {"s": [TextRow("one", {"spam": 1}, "s"), TextRow("two", {"spam": 0}, "s")]}
    b = {"s": [TextRow("two", {"spam": 0}, "s"), TextRow("one", {"spam": 1}, "s")]}
    c = {"s": [TextRow("one", {"spam": 0}, "s"), TextRow("two", {"spam": 0}, "s")]}
    assert rows_fingerprint(a) == rows_fingerprint(b) != rows_fingerprint(c)


def test_read_reviewer_labels_from_the_store(tmp_path: Path) -> None:
    from review_labels import add_review
    from warden.learn.review_data import read_reviewer_labels
    from warden.store import Store

    store = Store.from_url(f"sqlite:///{tmp_path / 'w.db'}")
    store.upgrade()
    add_review(store, "c1", "cheap followers at example.biz", {"spam": True, "scam": False}, at=T0)
    add_review(store, "c2", None, {"spam": False}, at=T0 + timedelta(minutes=1))  # text never archived
    add_review(store, "c3", "lovely weather", {"spam": False}, at=T0 + timedelta(minutes=2))
    got = read_reviewer_labels(store)
    assert got.without_text == 1
    assert [(x.content_id, x.category, x.violating) for x in got.labels] == [
        ("c1", "spam", True), ("c1", "scam", False), ("c3", "spam", False)]  # oldest first, then insertion order
    assert got.labels[0].text == "cheap followers at example.biz" and got.labels[0].reviewer == "rev1"
    assert read_reviewer_labels(store, since=T0 + timedelta(minutes=2)).labels[0].content_id == "c3"
    store.close()


def test_code_version_names_the_commit_or_the_package() -> None:
    from warden.learn.registry import code_version

    assert code_version().startswith(("git:", "warden "))
