"""OpenAI's moderation endpoint (`omni-moderation-latest`): text and images, through the official SDK.

Wire format (API reference, "Moderations", create moderation): `POST /v1/moderations` with
`{"model", "input"}`, where `input` is a string, a list of strings (one result each), or a
list of content parts (`{"type": "text", "text"}`, `{"type": "image_url", "image_url": {"url"}}`)
judged together (one result). Each result has `flagged`, `categories`, `category_scores` and
`category_applied_input_types`. The endpoint is free; `price_per_call_usd` stays 0 unless
you route it through a paid gateway.

Text-only items are sent together (up to 32 per request); an item with images (metadata
`image_url` / `image_urls`, http(s) or data: URLs) is sent alone as content parts.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, ClassVar

from warden.core import Content, Modality
from warden.detectors.providers.base import (
    ProviderDetector,
    ProviderParams,
    ProviderVerdict,
    Sent,
    clean_text,
    image_refs,
    sdk_error,
)
from warden.detectors.providers.resilience import ErrorKind, ProviderError

OPENAI_MODERATION_LABELS = frozenset({
    "sexual", "sexual/minors", "harassment", "harassment/threatening", "hate", "hate/threatening", "illicit",
    "illicit/violent", "self-harm", "self-harm/intent", "self-harm/instructions", "violence", "violence/graphic",
})


class OpenAIModerationParams(ProviderParams):
    LABELS: ClassVar[frozenset[str]] = OPENAI_MODERATION_LABELS
    api_key_env: str | None = "OPENAI_API_KEY"


class OpenAIModerationDetector(ProviderDetector):
    name: ClassVar[str] = "openai_moderation"
    modalities: ClassVar[frozenset[Modality]] = frozenset({Modality.TEXT, Modality.IMAGE})
    Params: ClassVar[type[ProviderParams]] = OpenAIModerationParams
    provider_docs: ClassVar[str] = "OpenAI API reference, Moderations (omni-moderation-latest), as of 2026-11"
    default_base_url: ClassVar[str] = "https://api.openai.com/v1"
    default_model: ClassVar[str] = "omni-moderation-latest"
    max_batch_items: ClassVar[int] = 32
    default_mapping: ClassVar[dict[str, str | tuple[str, ...]]] = {
        "sexual": "sexual",
        "sexual/minors": "sexual/minors",
        "harassment": "harassment",
        "harassment/threatening": "harassment/threatening",
        "hate": "hate",
        "hate/threatening": "hate/threatening",
        "illicit": "illicit",
        "illicit/violent": ("illicit", "violence"),
        "self-harm": "self-harm",
        "self-harm/intent": "self-harm",
        "self-harm/instructions": "self-harm",
        "violence": "violence",
        "violence/graphic": "violence/graphic",
    }

    def attachments(self, item: Content) -> tuple[str, ...]:
        return image_refs(item)

    def sdk(self) -> Any:
        with self._client_lock:
            if self._client is None:
                import openai

                self._client = openai.OpenAI(api_key=self._secret.reveal() if self._secret else "unused",
                                             base_url=self.base_url, timeout=self.params.timeout_s,  # type: ignore[attr-defined]
                                             max_retries=0)  # retries are ours: jittered, counted, breaker-aware
            return self._client

    def _score(self, items: Sequence[Content]) -> list[ProviderVerdict]:
        out: list[ProviderVerdict | None] = [None] * len(items)
        text_only = [i for i, item in enumerate(items) if not self.attachments(item)]
        if text_only:
            answers = self._send(lambda: self._moderate([clean_text(items[i].text or "") for i in text_only]))
            if len(answers) != len(text_only):
                raise ProviderError(ErrorKind.MALFORMED, f"{len(answers)} results for {len(text_only)} inputs")
            for i, a in zip(text_only, answers, strict=True):
                out[i] = a
        for i, item in enumerate(items):
            if out[i] is None:
                parts: list[dict[str, Any]] = []
                if (item.text or "").strip():
                    parts.append({"type": "text", "text": clean_text(item.text or "")})
                parts += [{"type": "image_url", "image_url": {"url": url}} for url in self.attachments(item)]
                answers = self._send(lambda parts=parts: self._moderate(parts))
                if len(answers) != 1:
                    raise ProviderError(ErrorKind.MALFORMED, f"{len(answers)} results for one multimodal input")
                out[i] = answers[0]
        return [v for v in out if v is not None]

    def _moderate(self, inputs: list[Any]) -> Sent[list[ProviderVerdict]]:
        try:
            raw = self.sdk().moderations.with_raw_response.create(model=self.model, input=inputs)
            body = raw.http_response.text
        except Exception as exc:
            raise sdk_error(exc, timeout_s=self.params.timeout_s) from None  # type: ignore[attr-defined]
        return Sent(parse_moderation(body))


def parse_moderation(body: str) -> list[ProviderVerdict]:
    """The verdicts of a moderation response body; MALFORMED when it is not the documented shape."""
    try:
        data = json.loads(body)
        results = data["results"]
        verdicts = []
        for r in results:
            scores = {str(k): float(v) for k, v in r["category_scores"].items() if v is not None}
            if any(not 0.0 <= s <= 1.0 for s in scores.values()):
                raise ValueError("category_scores outside [0, 1]")
            verdicts.append(ProviderVerdict(scores=scores))
        return verdicts
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ProviderError(ErrorKind.MALFORMED,
                            f"the moderation answer is not the documented format ({type(exc).__name__})") from None
