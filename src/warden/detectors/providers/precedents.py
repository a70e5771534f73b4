"""Retrieval-augmented classification: few-shot precedents chosen by embedding similarity.

An LLM applies a written policy better when it sees how similar cases were decided. The
candidates are the policy's own examples (violating and benign, per category) and, when the
policy names a file, past reviewer decisions (JSONL, one per line: `{"text", "category",
"violating", "note"?}`, e.g. exported from the review queue). For each item the `k` most
similar candidates (cosine over MiniLM sentence embeddings, the bundled ONNX encoder) are
shown to the model with their verdicts, and recorded as evidence in the Decision so a
reviewer sees which precedents shaped the answer.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from warden.core import Policy

MAX_PRECEDENT_CHARS = 500


@dataclass(frozen=True, slots=True)
class Precedent:
    text: str
    category: str
    violating: bool
    source: str  # "policy" or the precedents file name
    note: str = ""


@dataclass(frozen=True, slots=True)
class Retrieved:
    precedent: Precedent
    similarity: float


def policy_precedents(policy: Policy, categories: Sequence[str]) -> list[Precedent]:
    out = []
    for cat in categories:
        ex = policy.categories[cat].examples
        out += [Precedent(t, cat, True, "policy") for t in ex.violating]
        out += [Precedent(t, cat, False, "policy") for t in ex.benign]
    return out


def load_precedents(path: Path, categories: Sequence[str]) -> list[Precedent]:
    """Reviewer decisions from JSONL; every problem names the file and line."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ValueError(f"precedents file {str(path)!r} cannot be read ({type(exc).__name__})") from None
    out: list[Precedent] = []
    for no, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}:{no}"
        try:
            obj: Any = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{where}: not valid JSON ({exc.msg})") from None
        if not isinstance(obj, dict) or not isinstance(obj.get("text"), str) or not obj["text"].strip():
            raise ValueError(f"{where}: needs a non-empty string 'text'")
        if obj.get("category") not in categories:
            raise ValueError(f"{where}: category {obj.get('category')!r} is not one of the prompt's categories "
                             f"({', '.join(categories)})")
        if not isinstance(obj.get("violating"), bool):
            raise ValueError(f"{where}: 'violating' must be true or false")
        out.append(Precedent(obj["text"][:MAX_PRECEDENT_CHARS], obj["category"], obj["violating"], path.name,
                             str(obj.get("note") or "")[:200]))
    return out


class PrecedentIndex:
    """Candidates embedded once (lazily, on first use); `nearest` is one encode + a dot product.
    `encode` maps texts to L2-normalized rows (the MiniLM encoder by default)."""

    def __init__(self, precedents: Sequence[Precedent], *, encode: Callable[[Sequence[str]], np.ndarray] | None = None
                 ) -> None:
        self.precedents = tuple(precedents)
        self._encode = encode
        self._matrix: np.ndarray | None = None
        self._lock = threading.Lock()

    def _encoder(self) -> Callable[[Sequence[str]], np.ndarray]:
        if self._encode is None:
            from warden.detectors.text.encoder import get_encoder

            self._encode = get_encoder(threads=1).encode
        return self._encode

    def nearest(self, text: str, k: int) -> list[Retrieved]:
        if not self.precedents or k <= 0:
            return []
        with self._lock:
            if self._matrix is None:
                self._matrix = np.asarray(self._encoder()([p.text for p in self.precedents]), dtype=np.float32)
        query = np.asarray(self._encoder()([text]), dtype=np.float32)[0]
        sims = self._matrix @ query
        # Stable order: by similarity, ties by position, so the prompt is deterministic.
        order = sorted(range(len(sims)), key=lambda i: (-round(float(sims[i]), 6), i))[:k]
        return [Retrieved(self.precedents[i], float(sims[i])) for i in order]


def render_precedents(found: Sequence[Retrieved]) -> str:
    """The block placed before the content in the user message."""
    if not found:
        return ""
    lines = ["Similar cases already decided under this policy (precedents; follow the policy where they differ):"]
    for r in found:
        p = r.precedent
        verdict = "violating" if p.violating else "not violating"
        note = f" ({p.note})" if p.note else ""
        lines.append(f"- {json.dumps(p.text, ensure_ascii=False)} -> {p.category}: {verdict}{note}")
    return "\n".join(lines)
