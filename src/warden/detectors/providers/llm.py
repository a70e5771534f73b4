"""The shared part of LLM policy-as-prompt detectors (Claude, any OpenAI-compatible chat server).

The prompt is rendered once from the policy the detector is built with (`prompt.py`), so the
model reads the same definitions, examples and severities as reviewers. Each item is one
request; an answer that fails validation (schema, ranges, quotes absent from the content)
gets exactly one repair request listing its problems, and if that fails too the item gets
an error result (`invalid_answer`), which the Decision reports under `missing_signals`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import Field, model_validator

from warden.core import Content, Evidence, Span
from warden.detectors.base import DetectorContext, DetectorParams
from warden.detectors.providers.base import (
    ProviderDetector,
    ProviderNotConfigured,
    ProviderParams,
    ProviderVerdict,
    clean_text,
)
from warden.detectors.providers.precedents import (
    PrecedentIndex,
    Retrieved,
    load_precedents,
    policy_precedents,
    render_precedents,
)
from warden.detectors.providers.prompt import AnswerCheck, PolicyPrompt, parse_answer, render_policy_prompt
from warden.detectors.providers.resilience import ErrorKind, ProviderError


class LlmParams(ProviderParams):
    """Policy-as-prompt parameters. The categories come from the policy, so `mapping` is unused."""

    categories: tuple[str, ...] | None = Field(default=None, description="policy categories in the prompt; "
                                                                         "None: all")
    max_examples: int = Field(default=3, ge=0, le=50, description="violating and benign examples per category")
    instructions: str = Field(default="", max_length=20_000, description="appended to the rendered policy")
    max_output_tokens: int = Field(default=2048, ge=64, le=64_000)
    temperature: float | None = Field(default=0.0, ge=0.0, le=2.0, description="None: the model's default")
    max_input_chars: int = Field(default=50_000, ge=1, le=2_000_000)
    timeout_s: float = Field(default=60.0, gt=0, le=600)
    few_shot_k: int = Field(default=0, ge=0, le=20, description="precedents retrieved per item by embedding "
                                                                  "similarity (0: none)")
    precedents_file: str | None = Field(default=None, min_length=1,
                                        description="JSONL of reviewer decisions, added to the policy's examples")

    @model_validator(mode="after")
    def _no_mapping(self) -> LlmParams:
        if self.mapping is not None:
            raise ValueError("mapping is not used by policy-as-prompt detectors: the model answers in the policy's "
                             "categories; use 'categories' to choose which ones go into the prompt")
        return self


@dataclass(frozen=True, slots=True)
class LlmTurn:
    """One model reply: the answer to validate, and what to echo back in a repair request."""

    answer: str | Mapping[str, Any] | None
    echo: Any = None  # provider-specific: the assistant message / content blocks
    tool_use_id: str | None = None


class PolicyPromptDetector(ProviderDetector):
    Params: ClassVar[type[ProviderParams]] = LlmParams
    auto_evidence: ClassVar[bool] = False

    def __init__(self, params: DetectorParams | None = None, *, instance: str | None = None,
                 context: DetectorContext | None = None) -> None:
        super().__init__(params, instance=instance, context=context)
        policy = self.context.policy
        if policy is None:
            raise ProviderNotConfigured(f"detector {self.instance!r} ({self.name}) renders the policy into its prompt "
                                        "and needs it: build it through Moderator, or pass "
                                        "DetectorContext(policy=...)")
        p: LlmParams = self.params  # type: ignore[assignment]
        self.prompt: PolicyPrompt = render_policy_prompt(policy, categories=p.categories,
                                                         max_examples=p.max_examples, instructions=p.instructions)
        self.mapping = {c: (c,) for c in self.prompt.categories}
        self.precedents: PrecedentIndex | None = None
        if p.few_shot_k:
            found = policy_precedents(policy, self.prompt.categories)
            if p.precedents_file:
                found += load_precedents(self.resolve_path(p.precedents_file), self.prompt.categories)
            self.precedents = PrecedentIndex(found)

    @property
    def model_version(self) -> str:
        fingerprint = getattr(getattr(self, "prompt", None), "fingerprint", "")
        return f"{self.name}@{self.version}:{self.model}:prompt-{fingerprint[:12]}"

    def item_problem(self, item: Content) -> str | None:
        limit = self.params.max_input_chars  # type: ignore[attr-defined]
        text = item.text or ""
        if len(text) > limit:
            return (f"text has {len(text):,} characters; this detector sends at most {limit:,} "
                    "(params.max_input_chars). Split long documents and moderate each part.")
        return None

    def _score(self, items: Sequence[Content]) -> list[ProviderVerdict]:
        return [self._judge(item) for item in items]

    def _judge(self, item: Content) -> ProviderVerdict:
        original = item.text or ""
        text = clean_text(original)
        retrieved = self.precedents.nearest(text, self.params.few_shot_k) if self.precedents else []  # type: ignore[attr-defined]
        context = render_precedents(retrieved)
        first = self._send(lambda: self._complete(text, None, context))
        check = parse_answer(first.answer, prompt=self.prompt, text=text)
        if not check.ok:
            second = self._send(lambda: self._complete(text, (first, check.problems), context))
            repaired = parse_answer(second.answer, prompt=self.prompt, text=text)
            self.metrics.repairs.labels(**self._labels, outcome="fixed" if repaired.ok else "failed").inc()
            if not repaired.ok:
                shown = "; ".join(repaired.problems[:3]) + (" ..." if len(repaired.problems) > 3 else "")
                raise ProviderError(ErrorKind.INVALID_ANSWER, f"the answer failed validation after one repair: {shown}")
            check = repaired
        return self._verdict(check, original, retrieved)

    def _verdict(self, check: AnswerCheck, original: str, retrieved: Sequence[Retrieved] = ()) -> ProviderVerdict:
        scores = {v.category: v.score for v in check.verdicts}
        evidence = []
        for v in check.verdicts:
            if not v.violating:
                continue
            # Spans were located in the sent text, which has the original's offsets.
            spans = tuple(Span(s.start, s.end, original[s.start:s.end]) for s in v.spans)
            evidence.append(Evidence(v.category, f"{self.name}:{self.model}", spans=spans, detail=v.rationale,
                                     score=v.score))
        for r in retrieved:  # what the model was shown, so a reviewer can weigh it
            p = r.precedent
            evidence.append(Evidence(p.category, f"precedent:{p.source}",
                                     detail=f"{'violating' if p.violating else 'not violating'}: {p.text[:200]}",
                                     score=max(0.0, min(1.0, r.similarity))))
        return ProviderVerdict(scores=scores, evidence=tuple(evidence))

    def _complete(self, text: str, repair: tuple[LlmTurn, tuple[str, ...]] | None, context: str = "") -> Any:
        """Send the classification request (or, with `repair`, the repair request); return Sent[LlmTurn]."""
        raise NotImplementedError
