"""The fast linear tier: hashed word + char n-grams, TF-IDF-like scaling, one calibrated
logistic regression per category. Weights are stored without pickle (`linear.npz` holds the
idf vector and sparse top-k weights in float16; `linear.json` the vectorizer parameters,
Platt calibration and thresholds), so a model directory is plain data.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from warden.core import Content, DetectorResult, Evidence, Span
from warden.detectors.base import Detector, DetectorParams
from warden.detectors.text.normalize import normalize_for_model

LINEAR_FORMAT = 2
SINGLE_ITEM_PATH_MAX = 4  # batches up to this size score item by item (the API's usual case)


class CharWbHasher:
    """Hashed char n-grams inside word boundaries (the `char_wb` scheme of scikit-learn: each
    whitespace-separated lower-cased word padded with one space), vectorized with numpy: a
    polynomial hash over code points, mixed and reduced modulo `n_features`. About 10x faster
    than `HashingVectorizer(analyzer="char_wb")`, which is what makes the tier > 10k texts/s."""

    def __init__(self, ngram_range: tuple[int, int], n_features: int) -> None:
        self.lo, self.hi = ngram_range
        self.n_features = n_features

    def transform(self, texts: Sequence[str]) -> sp.csr_matrix:
        r, c = self.pairs(texts)
        return sp.csr_matrix((np.ones(len(r), np.float32), (r, c)), shape=(len(texts), self.n_features))

    def pairs(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(row, column) of every hashed n-gram occurrence; duplicates count as repeats."""
        padded = []
        for t in texts:
            words = t.lower().split()
            padded.append(" " + "  ".join(words) + " " if words else "")
        lengths = np.fromiter((len(p) for p in padded), dtype=np.int64, count=len(padded))
        total = int(lengths.sum())
        if total == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        codes = np.frombuffer("".join(padded).encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
        row = np.repeat(np.arange(len(padded)), lengths)
        cs = np.concatenate([[0], np.cumsum(codes == 32)])
        rows, cols = [], []
        nf = np.uint64(self.n_features)
        with np.errstate(over="ignore"):
            h = codes.copy()  # running hash of the n-gram starting at each position
            for n in range(2, self.hi + 1):
                m = total - n + 1
                if m <= 0:
                    break
                h = h[:m] * np.uint64(1000003) + codes[n - 1:]
                if n < self.lo:
                    continue
                valid = np.flatnonzero((row[:m] == row[n - 1:]) & (cs[n - 1:n - 1 + m] == cs[1:1 + m]))
                g = h[valid] ^ (np.uint64(n) * np.uint64(0x9E3779B97F4A7C15))
                g ^= g >> np.uint64(31)
                g *= np.uint64(0xBF58476D1CE4E5B9)
                g ^= g >> np.uint64(29)
                rows.append(row[valid])
                cols.append((g % nf).astype(np.int64))
        if not rows:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        return np.concatenate(rows), np.concatenate(cols)


def _mix(h: np.ndarray) -> np.ndarray:
    """splitmix64 finalizer (uint64, wrapping)."""
    h = h ^ (h >> np.uint64(30))
    h = h * np.uint64(0xBF58476D1CE4E5B9)
    h ^= h >> np.uint64(27)
    h *= np.uint64(0x94D049BB133111EB)
    return h ^ (h >> np.uint64(31))


_TOKEN = re.compile(r"\w\w+")  # scikit-learn's default token pattern (words of 2+ characters)
_POS_KEYS = _mix(np.arange(1, 257, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)) | np.uint64(1)


class WordHasher:
    """Hashed word 1-2-grams over lower-cased `\\w\\w+` tokens, vectorized with numpy
    (a position-keyed sum over code points per token, mixed; bigrams combine two token hashes).
    Same features as `HashingVectorizer(analyzer="word", ngram_range=(1, 2))` up to the hash
    function, about 3x faster."""

    def __init__(self, ngram_range: tuple[int, int], n_features: int) -> None:
        self.lo, self.hi = ngram_range
        if not (1 <= self.lo <= self.hi <= 2):
            raise ValueError("WordHasher supports ngram_range within (1, 2)")
        self.n_features = n_features

    @staticmethod
    def tokens(text: str) -> list[str]:
        return _TOKEN.findall(text.lower())

    @staticmethod
    def _token_hashes(flat: list[str]) -> np.ndarray:
        lens = np.fromiter(map(len, flat), dtype=np.int64, count=len(flat))
        codes = np.frombuffer("".join(flat).encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
        starts = np.zeros(len(flat), dtype=np.int64)
        np.cumsum(lens[:-1], out=starts[1:])
        pos = np.arange(len(codes)) - np.repeat(starts, lens)
        with np.errstate(over="ignore"):
            h = np.add.reduceat(codes * _POS_KEYS[np.minimum(pos, 255)], starts)
            return _mix(h ^ lens.astype(np.uint64))

    def _columns(self, th: np.ndarray, row: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
        rows, cols = [], []
        nf = np.uint64(self.n_features)
        with np.errstate(over="ignore"):
            if self.lo == 1:
                rows.append(row)
                cols.append((_mix(th ^ np.uint64(0x1111)) % nf).astype(np.int64))
            if self.hi == 2 and len(th) > 1:
                same = np.flatnonzero(row[:-1] == row[1:])
                bh = th[:-1][same] * np.uint64(0x9E3779B97F4A7C15) + th[1:][same]
                rows.append(row[:-1][same])
                cols.append((_mix(bh ^ np.uint64(0x2222)) % nf).astype(np.int64))
        return rows, cols

    def transform(self, texts: Sequence[str]) -> sp.csr_matrix:
        r, c = self.pairs(texts)
        return sp.csr_matrix((np.ones(len(r), np.float32), (r, c)), shape=(len(texts), self.n_features))

    def pairs(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(row, column) of every hashed n-gram occurrence; duplicates count as repeats."""
        toks = [self.tokens(t) for t in texts]
        counts = np.fromiter(map(len, toks), dtype=np.int64, count=len(toks))
        flat = [w for ts in toks for w in ts]
        if not flat:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        row = np.repeat(np.arange(len(texts)), counts)
        rows, cols = self._columns(self._token_hashes(flat), row)
        return np.concatenate(rows), np.concatenate(cols)

    def ngrams(self, text: str) -> list[tuple[str, int]]:
        """(n-gram, column) pairs of one text, for evidence."""
        toks = self.tokens(text)
        if not toks:
            return []
        th = self._token_hashes(toks)
        out: list[tuple[str, int]] = []
        nf = np.uint64(self.n_features)
        with np.errstate(over="ignore"):
            if self.lo == 1:
                out += list(zip(toks, (_mix(th ^ np.uint64(0x1111)) % nf).astype(np.int64).tolist(), strict=True))
            if self.hi == 2 and len(toks) > 1:
                bh = th[:-1] * np.uint64(0x9E3779B97F4A7C15) + th[1:]
                grams = [f"{a} {b}" for a, b in itertools.pairwise(toks)]
                out += list(zip(grams, (_mix(bh ^ np.uint64(0x2222)) % nf).astype(np.int64).tolist(), strict=True))
        return out


def make_vectorizers(spec: dict):
    w, c = spec["word"], spec["char"]
    return WordHasher(tuple(w["ngram_range"]), w["n_features"]), CharWbHasher(tuple(c["ngram_range"]), c["n_features"])


def raw_features(word, char, texts: Sequence[str]) -> sp.csr_matrix:
    """Sublinear term counts over hashed word and char_wb n-grams (unscaled)."""
    x = sp.hstack([word.transform(texts), char.transform(texts)], format="csr", dtype=np.float32)
    np.log1p(x.data, out=x.data)
    return x


def scale_rows(x: sp.csr_matrix, idf: np.ndarray) -> sp.csr_matrix:
    x = x.copy()
    x.data *= idf[x.indices]
    norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel())
    norms[norms == 0] = 1.0
    x.data /= np.repeat(norms, np.diff(x.indptr))
    return x


class LinearTextModel:
    """Loaded linear model: `predict_proba(texts) -> (n, k)` calibrated probabilities."""

    def __init__(self, model_dir: Path) -> None:
        model_dir = Path(model_dir)
        spec = json.loads((model_dir / "linear.json").read_text())
        if spec.get("format") != LINEAR_FORMAT:
            raise ValueError(f"{model_dir / 'linear.json'}: unsupported format {spec.get('format')}")
        z = np.load(model_dir / "linear.npz", allow_pickle=False)
        self.spec = spec
        self.categories: tuple[str, ...] = tuple(spec["categories"])
        self.version = spec.get("version", "unknown")
        self.n_features = spec["word"]["n_features"] + spec["char"]["n_features"]
        self.idf = z["idf"].astype(np.float32)
        rows, cols, vals = [], [], []
        for j in range(len(self.categories)):
            idx = z[f"idx_{j}"].astype(np.int64)
            rows.append(idx)
            cols.append(np.full(len(idx), j))
            vals.append(z[f"w_{j}"].astype(np.float32))
        self.W = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                               shape=(self.n_features, len(self.categories)), dtype=np.float32)
        # Dense copy (n_features x categories, ~27 MB) for the single-item path: a gather of the
        # item's few hundred rows is ~10x faster than building scipy matrices for one text.
        self.W_dense = self.W.toarray()
        self.bias = z["bias"].astype(np.float32)
        self.platt_a = z["platt_a"].astype(np.float32)
        self.platt_b = z["platt_b"].astype(np.float32)
        self.word, self.char = make_vectorizers(spec)
        self._cols: dict[int, np.ndarray] = {}
        # Imported at load, not on the first request: sklearn's import costs seconds.
        from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

        self._stop_words = frozenset(ENGLISH_STOP_WORDS)

    def decision(self, texts: Sequence[str]) -> np.ndarray:
        if len(texts) <= SINGLE_ITEM_PATH_MAX:
            return np.stack([self._decision_one(t) for t in texts]) if texts else np.zeros((0, len(self.bias)))
        x = scale_rows(raw_features(self.word, self.char, texts), self.idf)
        return (x @ self.W).toarray() + self.bias

    def _decision_one(self, text: str) -> np.ndarray:
        """Same features and arithmetic as the batch path (log1p counts x idf, L2), without scipy."""
        cols = np.concatenate([self.word.pairs([text])[1], self.char.pairs([text])[1] + self.word.n_features])
        if len(cols) == 0:
            return self.bias.copy()
        uniq, counts = np.unique(cols, return_counts=True)
        v = np.log1p(counts.astype(np.float32)) * self.idf[uniq]
        norm = float(np.sqrt(np.dot(v, v)))
        if norm > 0:
            v /= norm
        return v @ self.W_dense[uniq] + self.bias

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        z = self.decision(texts)
        return 1.0 / (1.0 + np.exp(-(self.platt_a * z + self.platt_b)))

    def top_ngrams(self, text: str, cat_index: int, k: int = 3) -> list[tuple[str, float]]:
        """Word n-grams of `text` (normalized) with the largest positive weight for a category."""
        out: dict[str, float] = {}
        col = self.W.getcol(cat_index).toarray().ravel() if cat_index not in self._cols else self._cols[cat_index]
        self._cols[cat_index] = col
        for g, idx in self.word.ngrams(text):
            if all(t in self._stop_words for t in g.split()):
                continue  # "to", "how to": real weight, but no use to a reviewer as evidence
            wv = col[idx]
            if wv > 0:
                out[g] = float(wv)
        return sorted(out.items(), key=lambda t: -t[1])[:k]


_MODELS: dict[Path, LinearTextModel] = {}
_LOCK = threading.Lock()


def load_linear_model(model_dir: Path) -> LinearTextModel:
    key = Path(model_dir).resolve()
    with _LOCK:
        m = _MODELS.get(key)
        if m is None:
            m = _MODELS[key] = LinearTextModel(key)
        return m


def find_span(original: str, ngram: str) -> Span | None:
    """Locate a (lower-cased, space-joined) word n-gram in the original text."""
    parts = [re.escape(p) for p in ngram.split()]
    if not parts:
        return None
    m = re.search(r"(?<!\w)" + r"\W+".join(parts) + r"(?!\w)", original, flags=re.IGNORECASE)
    return Span(m.start(), m.end(), m.group(0)) if m else None


class LinearTextParams(DetectorParams):
    model_dir: str = "models/text-v1"
    evidence_min_score: float = 0.5
    max_evidence: int = 3


class LinearTextDetector(Detector):
    """Hashed n-gram logistic regression per category (the cheap ML tier)."""

    name = "linear_text"
    Params = LinearTextParams
    version = "1"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # Loaded now, so a missing model fails at start-up with the path, not on each item.
        self._loaded = load_linear_model(self.resolve_path(self.params.model_dir))

    def _model(self) -> LinearTextModel:
        return self._loaded

    @property
    def model_version(self) -> str:
        try:
            return f"{self.name}@{self._model().version}"
        except Exception:
            return f"{self.name}@{self.version}"

    def _detect(self, batch: Sequence[Content]) -> list[DetectorResult]:
        model = self._model()
        texts = [normalize_for_model(c.text or "") for c in batch]
        probs = model.predict_proba(texts)
        out = []
        for item, text, row in zip(batch, texts, probs, strict=True):
            scores = {c: float(row[j]) for j, c in enumerate(model.categories)}
            evidence = []
            for j, c in enumerate(model.categories):
                if row[j] < self.params.evidence_min_score:
                    continue
                for g, wv in model.top_ngrams(text, j, self.params.max_evidence):
                    span = find_span(item.text or "", g)
                    evidence.append(Evidence(category=c, rule=f"linear_text:{c}:ngram", detail=g,
                                             spans=(span,) if span else (), score=wv))
            out.append(self.result(item, scores, tuple(evidence)))
        return out
