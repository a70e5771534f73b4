"""Hive moderation (text and visual), through its synchronous task API with httpx (no official SDK).

Wire format (Hive docs: "Text Moderation API" guide and the text/visual moderation response
references, v2 task API): `POST https://api.thehive.ai/api/v2/task/sync` with the header
`authorization: token <API key>` and a form body: `text_data=<text>` for a text project,
`url=<image url>` for a visual project. A Hive key belongs to one project, so one detector
instance is one project (`project: text | visual`). The answer nests the model output at
`status[0].response.output[*].classes[*] = {"class", "score"}`:
- text: `score` is a severity level 0-3 per head (sexual, hate, violence, bullying, ...;
  -1 when the head does not support the detected language); Warden reports level / 3 and
  leaves out unsupported heads. Profanity and PII pattern matches (`text_filters`) become
  evidence spans. Hive's default input limit is 1,024 characters.
- visual: `score` is a probability per class per frame; Warden takes the maximum over
  frames and images.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal

from pydantic import Field

from warden.core import Content, Evidence, Modality, Span
from warden.detectors.providers.base import (
    ProviderDetector,
    ProviderParams,
    ProviderVerdict,
    Sent,
    clean_text,
    image_refs,
)
from warden.detectors.providers.resilience import ErrorKind, ProviderError

TASK_PATH = "/api/v2/task/sync"

TEXT_MAPPING: dict[str, str | tuple[str, ...]] = {
    "sexual": "sexual",
    "hate": "hate",
    "violence": "violence",
    "bullying": "harassment",
    "child_exploitation": "sexual/minors",
    "self_harm": "self-harm",
    "drugs": "illicit",
    "weapons": "illicit",
    "spam": "spam",
    "promotions": "spam",
}
VISUAL_MAPPING: dict[str, str | tuple[str, ...]] = {
    "general_nsfw": "sexual",
    "yes_sexual_activity": "sexual",
    "yes_sexual_intent": "sexual",
    "yes_female_nudity": "sexual",
    "yes_male_nudity": "sexual",
    "very_bloody": "violence/graphic",
    "human_corpse": "violence/graphic",
    "yes_self_harm": "self-harm",
    "gun_in_hand": "violence",
    "knife_in_hand": "violence",
    "yes_drug_use": "illicit",
    "yes_nazi": "hate",
    "yes_kkk": "hate",
}


class HiveParams(ProviderParams):
    api_key_env: str | None = "HIVE_API_KEY"
    project: Literal["text", "visual"] = Field(default="text", description="the Hive project the key belongs to")
    max_chars: int = Field(default=1024, ge=1, le=1_000_000, description="the project's input limit (default 1,024)")


class HiveDetector(ProviderDetector):
    name: ClassVar[str] = "hive"
    modalities: ClassVar[frozenset[Modality]] = frozenset({Modality.TEXT, Modality.IMAGE})
    Params: ClassVar[type[ProviderParams]] = HiveParams
    provider_docs: ClassVar[str] = ("Hive docs: Text Moderation API guide, text and visual moderation response "
                                    "references (v2 task API, sync), as of 2026-11")
    default_base_url: ClassVar[str] = "https://api.thehive.ai"

    @property
    def project(self) -> str:
        return self.params.project  # type: ignore[attr-defined]

    @property
    def default_model(self) -> str:  # type: ignore[override]
        return f"hive-{self.project}-moderation"

    @property
    def default_mapping(self) -> dict[str, str | tuple[str, ...]]:  # type: ignore[override]
        return TEXT_MAPPING if self.project == "text" else VISUAL_MAPPING

    def auth_headers(self) -> dict[str, str]:
        return {"authorization": f"token {self._secret.reveal()}" if self._secret else "", "accept": "application/json"}

    def attachments(self, item: Content) -> tuple[str, ...]:
        return image_refs(item) if self.project == "visual" else ()

    def item_problem(self, item: Content) -> str | None:
        limit = self.params.max_chars  # type: ignore[attr-defined]
        text = item.text or ""
        if self.project == "text" and len(text) > limit:
            return (f"text has {len(text):,} characters; the Hive text project accepts {limit:,} (params.max_chars). "
                    "Split long documents and moderate each part.")
        return None

    def _score(self, items: Sequence[Content]) -> list[ProviderVerdict]:
        return [self._score_one(item) for item in items]

    def _score_one(self, item: Content) -> ProviderVerdict:
        if self.project == "text":
            text = clean_text(item.text or "")
            body = self._send(lambda: Sent(self.post_json(TASK_PATH, data={"text_data": text})))
            return parse_task(body, text=item.text or "", levels=True)
        scores: dict[str, float] = {}
        for url in self.attachments(item):
            body = self._send(lambda url=url: Sent(self.post_json(TASK_PATH, data={"url": url})))
            for label, s in parse_task(body, text="", levels=False).scores.items():
                scores[label] = max(scores.get(label, 0.0), s)
        return ProviderVerdict(scores=scores)


def parse_task(body: Any, *, text: str, levels: bool) -> ProviderVerdict:
    """Scores (and text-filter spans) from a Hive sync task answer."""
    try:
        status = body["status"][0]
        code = str(status["status"]["code"])
        if code != "0":
            message = status["status"].get("message", "")
            raise ProviderError(ErrorKind.BAD_REQUEST, f"Hive task status {code}: {message}")
        response = status["response"]
        scores: dict[str, float] = {}
        for frame in response["output"]:
            for cls in frame["classes"]:
                label, score = str(cls["class"]), float(cls["score"])
                if levels:
                    if score < 0:  # the head does not support this language: no signal, not "clean"
                        continue
                    score = min(3.0, score) / 3.0
                if not 0.0 <= score <= 1.0:
                    raise ValueError(f"score {score} outside [0, 1]")
                scores[label] = max(scores.get(label, 0.0), score)
        evidence = _filter_spans(response.get("text_filters") or [], text, scores) if levels else ()
    except ProviderError:
        raise
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise ProviderError(ErrorKind.MALFORMED,
                            f"the Hive answer is not the documented format ({type(exc).__name__})") from None
    return ProviderVerdict(scores=scores, evidence=evidence)


def _filter_spans(filters: Sequence[Mapping[str, Any]], text: str, scores: Mapping[str, float]) -> tuple[Evidence, ...]:
    """Profanity matches as evidence spans of the heads that scored; Hive warns its indexes can be
    off on distorted text, so spans that do not match the text are dropped."""
    spans = []
    for f in filters:
        start, end, value = f.get("start_index"), f.get("end_index"), str(f.get("value", ""))
        if isinstance(start, int) and isinstance(end, int):
            for s, e in ((start, end), (start, end + 1)):  # inclusive or exclusive end index
                if 0 <= s < e <= len(text) and text[s:e].lower() == value.lower():
                    spans.append(Span(s, e, text[s:e]))
                    break
    if not spans:
        return ()
    return tuple(Evidence(label, f"hive:{label}", spans=tuple(spans), detail="Hive text filter match", score=s)
                 for label, s in sorted(scores.items()) if s > 0)
