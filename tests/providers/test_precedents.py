"""Few-shot precedents by embedding similarity: the policy's examples and reviewer decisions,
shown to the LLM and recorded as evidence."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest
from provider_cases import CONTEXT
from provider_servers import OpenAIChatServer

from warden.core import Content
from warden.detectors import registry
from warden.detectors.base import DetectorContext
from warden.detectors.providers.precedents import (
    Precedent,
    PrecedentIndex,
    load_precedents,
    policy_precedents,
    render_precedents,
)
from warden.testing import check_detector


def _bag_of_words(texts: Sequence[str]) -> np.ndarray:
    """A tiny deterministic encoder for unit tests: hashed word counts, L2-normalized."""
    out = np.zeros((len(texts), 64), dtype=np.float32)
    for i, t in enumerate(texts):
        for w in t.lower().split():
            out[i, sum(map(ord, w)) % 64] += 1
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.where(norms == 0, 1, norms)


def test_nearest_precedents_by_similarity() -> None:
    precedents = [Precedent("buy cheap followers now", "spam", True, "r"),
                  Precedent("I will hurt you badly", "violence", True, "r"),
                  Precedent("lovely weather today", "violence", False, "r")]
    index = PrecedentIndex(precedents, encode=_bag_of_words)
    found = index.nearest("I will hurt them", 2)
    assert len(found) == 2 and found[0].precedent.text == "I will hurt you badly"
    assert found[0].similarity > found[1].similarity
    block = render_precedents(found[:1])
    assert block.splitlines()[1] == '- "I will hurt you badly" -> violence: violating'
    assert PrecedentIndex([], encode=_bag_of_words).nearest("x", 3) == []


def test_policy_examples_are_precedents() -> None:
    found = policy_precedents(CONTEXT.policy, ["hate"])
    hate = CONTEXT.policy.categories["hate"].examples
    assert len(found) == len(hate.violating) + len(hate.benign)
    assert found[0] == Precedent(hate.violating[0], "hate", True, "policy")


@pytest.mark.parametrize(("line", "message"), [
    ("{", "not valid JSON"),
    ('{"text": "", "category": "hate", "violating": true}', "needs a non-empty string 'text'"),
    ('{"text": "x", "category": "spam", "violating": true}', "category 'spam' is not one of the prompt's categories"),
    ('{"text": "x", "category": "hate", "violating": "yes"}', "'violating' must be true or false"),
])
def test_precedent_file_errors_name_the_line(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text('{"text": "ok", "category": "hate", "violating": false}\n' + line + "\n")
    with pytest.raises(ValueError, match=f"p.jsonl:2: .*{message}"):
        load_precedents(path, ["hate"])


@pytest.fixture
def server() -> Iterator[OpenAIChatServer]:
    s = OpenAIChatServer(None).start()
    yield s
    s.stop()


def test_llm_sees_the_nearest_precedents_and_the_decision_records_them(server: OpenAIChatServer,
                                                                      tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    (tmp_path / "reviews.jsonl").write_text("\n".join(json.dumps(x) for x in [
        {"text": "I am going to stab you tonight", "category": "violence", "violating": True, "note": "credible"},
        {"text": "this cake is killer, try it", "category": "violence", "violating": False},
    ]))
    ctx = DetectorContext(base_dir=tmp_path, categories=CONTEXT.categories, policy=CONTEXT.policy)
    try:
        det = registry.get("openai_chat").from_config(
            {"base_url": f"{server.url}/v1", "model": "m", "few_shot_k": 2, "precedents_file": "reviews.jsonl",
             "categories": ["violence", "spam"], "cache_ttl_s": 0}, context=ctx)
        (res,) = det.detect([Content(id="a", text="I will stab you and kill you")])
    except FileNotFoundError as exc:
        pytest.skip(f"MiniLM weights not installed here: {exc}")
    assert res.ok, res.error
    user = next(m["content"] for m in server.requests[0].json()["messages"] if m["role"] == "user")
    assert user.startswith("Similar cases already decided under this policy")
    assert '"I am going to stab you tonight" -> violence: violating (credible)' in user
    precedent_ev = [e for e in res.evidence if e.rule == "precedent:reviews.jsonl"]
    assert precedent_ev and precedent_ev[0].detail.startswith("violating: I am going to stab you tonight")
    assert 0.0 < precedent_ev[0].score <= 1.0
    check_detector(det)
