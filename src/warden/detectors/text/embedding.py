"""The embedding tier: MiniLM sentence embeddings (ONNX Runtime, int8) and one calibrated
logistic head per category. Heads live in `<model_dir>/embedding_heads.npz` (W, b, Platt a/b)
with `embedding_heads.json` (categories, which heads are few-shot, thresholds); no pickle.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from warden.core import Content, DetectorResult, Evidence
from warden.detectors.base import Detector, DetectorParams
from warden.detectors.text.normalize import normalize_for_model

HEADS_FORMAT = 1


class EmbeddingHeads:
    def __init__(self, model_dir: Path) -> None:
        model_dir = Path(model_dir)
        spec = json.loads((model_dir / "embedding_heads.json").read_text())
        if spec.get("format") != HEADS_FORMAT:
            raise ValueError(f"{model_dir / 'embedding_heads.json'}: unsupported format {spec.get('format')}")
        z = np.load(model_dir / "embedding_heads.npz", allow_pickle=False)
        self.spec = spec
        self.categories: tuple[str, ...] = tuple(spec["categories"])
        self.few_shot: frozenset[str] = frozenset(spec.get("few_shot", []))
        self.version = spec.get("version", "unknown")
        self.W = z["W"].astype(np.float32)  # (k, 384)
        self.b = z["b"].astype(np.float32)
        self.platt_a = z["platt_a"].astype(np.float32)
        self.platt_b = z["platt_b"].astype(np.float32)

    def predict_proba_from_embeddings(self, emb: np.ndarray) -> np.ndarray:
        # row by row: a batched GEMM may round differently from a single row, and a result must
        # not depend on the batch it came in (conformance: batch == single, bit for bit)
        z = np.stack([row @ self.W.T for row in emb]) + self.b if len(emb) else np.zeros((0, len(self.b)))
        return 1.0 / (1.0 + np.exp(-(self.platt_a * z + self.platt_b)))


_HEADS: dict[Path, EmbeddingHeads] = {}
_LOCK = threading.Lock()


def load_heads(model_dir: Path) -> EmbeddingHeads:
    key = Path(model_dir).resolve()
    with _LOCK:
        h = _HEADS.get(key)
        if h is None:
            h = _HEADS[key] = EmbeddingHeads(key)
        return h


class EmbeddingClassifierParams(DetectorParams):
    model_dir: str = "models/text-v1"
    batch_size: int = 64
    max_tokens: int = 128
    threads: int | None = None


class EmbeddingClassifierDetector(Detector):
    """MiniLM embeddings + calibrated per-category heads (the accurate, slower ML tier)."""

    name = "embedding_classifier"
    Params = EmbeddingClassifierParams
    version = "1"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # Loaded now, so a missing model fails at start-up with the path, not on each item.
        self._loaded = load_heads(self.resolve_path(self.params.model_dir))

    def _heads(self) -> EmbeddingHeads:
        return self._loaded

    @property
    def model_version(self) -> str:
        try:
            return f"{self.name}@{self._heads().version}"
        except Exception:
            return f"{self.name}@{self.version}"

    def _detect(self, batch: Sequence[Content]) -> list[DetectorResult]:
        from warden.detectors.text.encoder import get_encoder

        heads = self._heads()
        enc = get_encoder(self.params.max_tokens, self.params.batch_size, self.params.threads)
        emb = enc.encode([normalize_for_model(c.text or "") for c in batch])
        probs = heads.predict_proba_from_embeddings(emb)
        out = []
        for item, row in zip(batch, probs, strict=True):
            scores = {c: float(row[j]) for j, c in enumerate(heads.categories)}
            ev = tuple(
                Evidence(category=c, rule=f"embedding_classifier:{c}" + (":few_shot" if c in heads.few_shot else ""),
                         detail="few-shot head from policy examples (unmeasured)" if c in heads.few_shot else "",
                         score=scores[c])
                for c in heads.categories if scores[c] >= 0.5
            )
            out.append(self.result(item, scores, ev))
        return out
