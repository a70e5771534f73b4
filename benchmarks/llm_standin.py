"""A local stand-in for the LLM tier: a stronger (and slower) classifier behind an
OpenAI-compatible chat-completions server, so the real `openai_chat` adapter (policy-as-prompt,
JSON schema, validation, cache, cost accounting, metrics) runs against it unchanged.

What it is, plainly: not an LLM. Per category, one logistic regression over the *joint*
features of the two local tiers, unpruned: the hashed word 1-2-gram and char 3-5-gram TF-IDF
vector of the linear tier (2 x 2^18 columns, float32) concatenated with the L2-normalised MiniLM
sentence embedding of the embedding tier (384 columns), C = 16 (chosen on the calibration
split), Platt-calibrated on the calibration split. It is trained on the train split of
`warden train` only (the benchmark evaluates on the test split). It is better than the local
tiers because it learns from both feature sets at once instead of taking the maximum of two
separately trained scores, and slower per item because it does both featurizations, a full
dense dot product per category and an HTTP round trip per item.

The server reads the categories from the request's JSON schema (`response_format`) and the
content from the fenced user message, answers every category with a verdict, a confidence
(p or 1 - p), a quote (the content word with the largest weight toward the category, copied
from the content) and a one-line rationale. Token usage is counted with the MiniLM WordPiece
tokenizer (a stand-in for the served model's tokenizer), so the adapter's cost accounting has
real prompt and answer sizes to bill.

Usage (the benchmark does this itself):

    .venv/bin/python benchmarks/llm_standin.py --model /tmp/standin.npz --port 0   # prints "READY <port>"
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import re
import sys
import threading
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np

C_JOINT = 16.0
MIN_TRAIN_POSITIVES = 30
_CONTENT = re.compile(r"<content-([0-9a-f]{12})>\n(.*)\n</content-\1>", re.DOTALL)


# -- training ------------------------------------------------------------------------------------

def features(texts: Sequence[str], E: np.ndarray, idf: np.ndarray) -> Any:
    """Joint sparse features: the linear tier's scaled n-grams + the normalised embedding."""
    import scipy.sparse as sp

    from warden.detectors.text.linear import make_vectorizers, raw_features, scale_rows
    from warden.learn.train import LINEAR_SPEC

    word, char = make_vectorizers(LINEAR_SPEC)
    X = scale_rows(raw_features(word, char, list(texts)), idf)
    En = E / np.maximum(np.linalg.norm(E, axis=1, keepdims=True), 1e-12)
    return sp.hstack([X, sp.csr_matrix(En.astype(np.float32))], format="csr")


def train(P: Any, out: Path, *, max_train_rows: int | None = None, seed: int = 0) -> dict[str, Any]:
    """Fit the stand-in on `P` (a `warden.learn.train.Prepared`): train split only, Platt on the
    calibration split. Writes `out` (npz) and returns what was fitted."""
    from sklearn.linear_model import LogisticRegression

    from warden.detectors.text.linear import make_vectorizers, raw_features
    from warden.learn.train import LINEAR_SPEC, embed_cached, platt_scaling

    tr = np.where(P.split == 0)[0]
    ca = np.where(P.split == 1)[0]
    rng = np.random.default_rng(seed)
    if max_train_rows is not None and len(tr) > max_train_rows:
        tr = np.sort(rng.choice(tr, max_train_rows, replace=False))
        ca = np.sort(rng.choice(ca, min(len(ca), max_train_rows // 2), replace=False))
    rows = np.concatenate([tr, ca])
    texts = [P.texts[i] for i in rows]
    word, char = make_vectorizers(LINEAR_SPEC)
    raw_tr = raw_features(word, char, [P.texts[i] for i in tr])
    df = np.bincount(raw_tr.indices, minlength=raw_tr.shape[1])
    idf = (np.log((1 + len(tr)) / (1 + df)) + 1.0).astype(np.float32)
    J = features(texts, embed_cached(texts), idf)
    Jtr, Jca = J[: len(tr)], J[len(tr):]
    cats, W, B, A, AB = [], [], [], [], []
    for j, cat in enumerate(P.categories):
        ytr, yca = P.Y[tr, j], P.Y[ca, j]
        ktr, kca = ytr >= 0, yca >= 0
        if ytr[ktr].sum() < MIN_TRAIN_POSITIVES or (ytr[ktr] == 0).sum() < MIN_TRAIN_POSITIVES:
            continue  # too few labels to learn the category: the stand-in does not answer for it
        lr = LogisticRegression(C=C_JOINT, solver="liblinear", class_weight="balanced", max_iter=300)
        lr.fit(Jtr[np.where(ktr)[0]], ytr[ktr].astype(int))
        w, b = lr.coef_[0].astype(np.float32), float(lr.intercept_[0])
        a, ab = platt_scaling(np.asarray(Jca[np.where(kca)[0]] @ w).ravel() + b, yca[kca].astype(int))
        cats.append(cat)
        W.append(w)
        B.append(b)
        A.append(a)
        AB.append(ab)
    np.savez(out, categories=np.array(cats), W=np.stack(W), b=np.array(B, dtype=np.float32),
             platt_a=np.array(A, dtype=np.float32), platt_b=np.array(AB, dtype=np.float32), idf=idf)
    return {"categories": cats, "train_rows": len(tr), "calibration_rows": len(ca), "C": C_JOINT}


# -- the model at serving time -------------------------------------------------------------------

class StandinModel:
    def __init__(self, path: Path) -> None:
        from warden.detectors.text.encoder import get_encoder, model_files
        from warden.detectors.text.linear import make_vectorizers
        from warden.learn.train import LINEAR_SPEC

        z = np.load(path, allow_pickle=False)
        self.categories = [str(c) for c in z["categories"]]
        self.W, self.b, self.a, self.ab, self.idf = z["W"], z["b"], z["platt_a"], z["platt_b"], z["idf"]
        self.encoder = get_encoder(max_tokens=128, batch_size=64)
        self.word, _ = make_vectorizers(LINEAR_SPEC)
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(str(model_files()[1]))
        self.tokenizer.no_truncation()  # the file truncates at the encoder's limit; counts must not
        self.tokenizer.no_padding()
        self._counted: dict[str, int] = {}
        self._lock = threading.Lock()

    def predict(self, text: str) -> tuple[dict[str, float], dict[str, str]]:
        """Probability per category and, per category, the content word that pushed it most."""
        from warden.detectors.text.normalize import normalize_for_model

        norm = normalize_for_model(text)
        J = features([norm], self.encoder.encode([norm]), self.idf)
        z = np.asarray(J @ self.W.T).ravel() + self.b
        p = 1.0 / (1.0 + np.exp(-(self.a * z + self.ab)))
        probs = {c: float(v) for c, v in zip(self.categories, p, strict=True)}
        quotes: dict[str, str] = {}
        words = sorted(set(self.word.tokens(text)))
        if words:
            U = self.word.transform(words)  # one row per word: its unigram column
            contrib = np.asarray(U.multiply(self.idf[: U.shape[1]]).tocsr() @ self.W[:, : U.shape[1]].T)
            for k, c in enumerate(self.categories):
                # Quote the word as the content spells it (tokens are lower-cased), or not at all.
                hit = re.search(re.escape(words[int(np.argmax(contrib[:, k]))]), text, re.IGNORECASE)
                if hit is not None:
                    quotes[c] = hit.group(0)
        return probs, quotes

    def count_tokens(self, text: str, *, cache: bool = False) -> int:
        if cache:
            key = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
            with self._lock:
                if key in self._counted:
                    return self._counted[key]
        n = len(self.tokenizer.encode(text, add_special_tokens=False).ids)
        if cache:
            with self._lock:
                self._counted[key] = n
        return n


def answer(model: StandinModel, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """(HTTP status, JSON body) for one chat-completions request, in the documented shapes."""
    def error(status: int, message: str) -> tuple[int, dict[str, Any]]:
        return status, {"error": {"message": message, "type": "invalid_request_error", "param": None,
                                  "code": None}}

    messages = body.get("messages")
    if not isinstance(body.get("model"), str) or not isinstance(messages, list) or not messages:
        return error(400, "'model' and a non-empty 'messages' are required")
    fmt = body.get("response_format") or {}
    if fmt.get("type") != "json_schema":
        return error(400, "this server answers with response_format json_schema only")
    try:
        wanted = fmt["json_schema"]["schema"]["properties"]["verdicts"]["items"]["properties"]["category"]["enum"]
    except (KeyError, TypeError):
        return error(400, "response_format.json_schema.schema is not a verdicts schema")
    user = next((m.get("content") for m in messages if m.get("role") == "user"), None)
    found = _CONTENT.search(user) if isinstance(user, str) else None
    if found is None:
        return error(400, "no fenced content in the user message")
    text = found.group(2)
    probs, quotes = model.predict(text)
    verdicts = []
    for cat in wanted:
        p = probs.get(cat)
        if p is None:  # a category this model never learned: say so rather than guess
            verdicts.append({"category": cat, "violating": False, "confidence": 0.5, "quotes": [],
                             "rationale": "no training labels for this category"})
            continue
        violating = p >= 0.5
        quote = quotes.get(cat)
        verdicts.append({"category": cat, "violating": violating, "confidence": round(p if violating else 1 - p, 4),
                         "quotes": [quote] if violating and quote else [],
                         "rationale": f"joint n-gram + embedding model: p={p:.3f}"})
    content = json.dumps({"verdicts": verdicts}, ensure_ascii=False)
    prompt_tokens = sum(model.count_tokens(m["content"], cache=m.get("role") == "system")
                        for m in messages if isinstance(m.get("content"), str))
    completion_tokens = model.count_tokens(content)
    return 200, {"id": "chatcmpl-standin", "object": "chat.completion", "created": 0, "model": body["model"],
                 "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                              "finish_reason": "stop"}],
                 "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                           "total_tokens": prompt_tokens + completion_tokens}}


def make_server(model: StandinModel, port: int = 0) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the SDK's connection pool expects

        def log_message(self, *args: Any) -> None:  # quiet
            pass

        def _send(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path.rstrip("/") == "/v1/models":
                self._send(200, {"object": "list", "data": [{"id": "standin", "object": "model"}]})
            else:
                self._send(404, {"error": {"message": f"Invalid URL (GET {self.path})"}})

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("content-length") or 0))
            if self.path != "/v1/chat/completions":
                self._send(404, {"error": {"message": f"Invalid URL (POST {self.path})"}})
                return
            try:
                body = json.loads(raw)
            except ValueError:
                self._send(400, {"error": {"message": "the body is not JSON", "type": "invalid_request_error"}})
                return
            status, payload = answer(model, body if isinstance(body, dict) else {})
            self._send(status, payload)

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    return server


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, required=True, help="npz written by train()")
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args(argv)
    server = make_server(StandinModel(args.model), args.port)
    print(f"READY {server.server_address[1]}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
