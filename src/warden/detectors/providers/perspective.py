"""Google Jigsaw's Perspective API, with httpx (no maintained official Python SDK).

Wire format (Perspective API reference, `comments:analyze`, v1alpha1): `POST
https://commentanalyzer.googleapis.com/v1alpha1/comments:analyze` with `{"comment": {"text"},
"requestedAttributes": {"TOXICITY": {}, ...}, "languages": [...], "doNotStore": true,
"spanAnnotations": true}`. The answer's `attributeScores.<ATTR>.summaryScore.value` is a
probability; `spanScores[*] = {"begin", "end", "score": {"value"}}` locate the passages,
which Warden keeps as evidence spans. The key goes in the `x-goog-api-key` header (Google
APIs accept it there), never in the URL, so it cannot leak through logged URLs. Errors are
Google-style: `{"error": {"code", "message", "status"}}`; a language an attribute does not
support is a 400. Comments are limited to 20 KB.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from pydantic import Field

from warden.core import Content, Evidence, Span
from warden.detectors.providers.base import ProviderDetector, ProviderParams, ProviderVerdict, Sent, clean_text
from warden.detectors.providers.resilience import ErrorKind, ProviderError

ANALYZE_PATH = "/v1alpha1/comments:analyze"
MAX_BYTES = 20_480

PERSPECTIVE_LABELS = frozenset({
    "TOXICITY", "SEVERE_TOXICITY", "IDENTITY_ATTACK", "INSULT", "PROFANITY", "THREAT",
    # experimental attributes (English only)
    "SEXUALLY_EXPLICIT", "FLIRTATION", "ATTACK_ON_AUTHOR", "ATTACK_ON_COMMENTER", "INCOHERENT", "INFLAMMATORY",
    "LIKELY_TO_REJECT", "OBSCENE", "SPAM", "UNSUBSTANTIAL",
})


class PerspectiveParams(ProviderParams):
    LABELS: ClassVar[frozenset[str]] = PERSPECTIVE_LABELS
    api_key_env: str | None = "PERSPECTIVE_API_KEY"
    languages: tuple[str, ...] | None = Field(default=None, description="ISO 639-1 codes; None: the item's "
                                                                          "language, else auto-detect")
    do_not_store: bool = True


class PerspectiveDetector(ProviderDetector):
    name: ClassVar[str] = "perspective"
    Params: ClassVar[type[ProviderParams]] = PerspectiveParams
    provider_docs: ClassVar[str] = "Perspective API reference (comments:analyze, v1alpha1), as of 2026-11"
    default_base_url: ClassVar[str] = "https://commentanalyzer.googleapis.com"
    default_model: ClassVar[str] = "perspective-v1alpha1"
    default_mapping: ClassVar[dict[str, str | tuple[str, ...]]] = {
        "IDENTITY_ATTACK": "hate",
        "INSULT": "harassment",
        "SEVERE_TOXICITY": "harassment",
        "THREAT": "harassment/threatening",
    }

    def auth_headers(self) -> dict[str, str]:
        return {"x-goog-api-key": self._secret.reveal() if self._secret else ""}

    def item_problem(self, item: Content) -> str | None:
        size = len(clean_text(item.text or "").encode("utf-8"))
        if size > MAX_BYTES:
            return (f"text is {size:,} bytes in UTF-8; Perspective accepts at most {MAX_BYTES:,}. "
                    "Split long documents and moderate each part.")
        return None

    def _score(self, items: Sequence[Content]) -> list[ProviderVerdict]:
        return [self._score_one(item) for item in items]

    def _score_one(self, item: Content) -> ProviderVerdict:
        p: PerspectiveParams = self.params  # type: ignore[assignment]
        text = clean_text(item.text or "")
        body: dict[str, Any] = {
            "comment": {"text": text, "type": "PLAIN_TEXT"},
            "requestedAttributes": {label: {} for label in sorted(self.mapping)},
            "doNotStore": p.do_not_store,
            "spanAnnotations": True,
        }
        languages = p.languages or ((item.language,) if item.language else None)
        if languages:
            body["languages"] = list(languages)
        answer = self._send(lambda: Sent(self.post_json(ANALYZE_PATH, json=body)))
        return parse_analyze(answer, text=item.text or "", min_score=p.evidence_min_score)


def parse_analyze(body: Any, *, text: str, min_score: float) -> ProviderVerdict:
    try:
        attrs: Mapping[str, Any] = body["attributeScores"]
        scores: dict[str, float] = {}
        evidence: list[Evidence] = []
        for label, attr in attrs.items():
            value = float(attr["summaryScore"]["value"])
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{label} score {value} outside [0, 1]")
            scores[str(label)] = value
            if value < min_score:
                continue
            spans = []
            for s in attr.get("spanScores") or []:
                begin, end = s.get("begin"), s.get("end")
                if (isinstance(begin, int) and isinstance(end, int) and 0 <= begin < end <= len(text)
                        and float(s["score"]["value"]) >= min_score):
                    spans.append(Span(begin, end, text[begin:end]))
            evidence.append(Evidence(str(label), f"perspective:{label}", spans=tuple(spans), score=value))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ProviderError(ErrorKind.MALFORMED,
                            f"the Perspective answer is not the documented format ({type(exc).__name__})") from None
    return ProviderVerdict(scores=scores, evidence=tuple(evidence))
