"""Azure AI Content Safety (text and images), with httpx.

The official `azure-ai-contentsafety` SDK wraps the same REST calls but brings azure-core's
own retry and transport stack, which would fight Warden's retries, breaker and metrics; the
REST API is small and documented, so httpx it is.

Wire format (Azure AI Content Safety REST reference, api-version 2024-09-01): `POST
{endpoint}/contentsafety/text:analyze?api-version=2024-09-01` with the header
`Ocp-Apim-Subscription-Key` and `{"text", "categories": ["Hate", "SelfHarm", "Sexual",
"Violence"], "outputType": "FourSeverityLevels" | "EightSeverityLevels", "blocklistNames",
"haltOnBlocklistHit"}`; the answer has `categoriesAnalysis[*] = {"category", "severity"}`
(0, 2, 4, 6 or 0-7) and `blocklistsMatch[*] = {"blocklistName", "blocklistItemId",
"blocklistItemText"}`. Images: `POST .../contentsafety/image:analyze` with `{"image":
{"content": <base64>} | {"blobUrl"}, "categories", "outputType": "FourSeverityLevels"}`.
Errors: `{"error": {"code", "message", "innererror"}}`. Text is limited to 10,000 characters.
Warden reports severity / maximum severity as the score.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Literal

from pydantic import Field

from warden.core import Content, Evidence, Modality
from warden.detectors.providers.base import (
    ProviderDetector,
    ProviderParams,
    ProviderVerdict,
    Sent,
    clean_text,
    image_refs,
)
from warden.detectors.providers.resilience import ErrorKind, ProviderError

AZURE_LABELS = frozenset({"Hate", "SelfHarm", "Sexual", "Violence"})
MAX_CHARS = 10_000


class AzureContentSafetyParams(ProviderParams):
    LABELS: ClassVar[frozenset[str]] = AZURE_LABELS
    api_key_env: str | None = "AZURE_CONTENT_SAFETY_KEY"
    api_version: str = Field(default="2024-09-01", pattern=r"^\d{4}-\d{2}-\d{2}(-preview)?$")
    output_type: Literal["FourSeverityLevels", "EightSeverityLevels"] = "FourSeverityLevels"
    blocklist_names: tuple[str, ...] = ()
    blocklist_mapping: dict[str, str] = Field(default_factory=dict,
                                              description="blocklist name -> policy category (a hit scores 1.0)")
    images: bool = Field(default=True, description="also analyze images from metadata image_url / image_urls")


class AzureContentSafetyDetector(ProviderDetector):
    name: ClassVar[str] = "azure_content_safety"
    modalities: ClassVar[frozenset[Modality]] = frozenset({Modality.TEXT, Modality.IMAGE})
    Params: ClassVar[type[ProviderParams]] = AzureContentSafetyParams
    provider_docs: ClassVar[str] = ("Azure AI Content Safety REST API reference, text:analyze and image:analyze, "
                                    "api-version 2024-09-01")
    default_base_url: ClassVar[str] = ""  # your resource's endpoint, e.g. https://<name>.cognitiveservices.azure.com
    default_model: ClassVar[str] = "azure-content-safety"
    max_chars: ClassVar[int | None] = MAX_CHARS
    default_mapping: ClassVar[dict[str, str | tuple[str, ...]]] = {
        "Hate": "hate",
        "SelfHarm": "self-harm",
        "Sexual": "sexual",
        "Violence": "violence",
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        p: AzureContentSafetyParams = self.params  # type: ignore[assignment]
        for name in p.blocklist_mapping:
            if name not in p.blocklist_names:
                raise ValueError(f"detector {self.instance!r}: blocklist_mapping names {name!r}, which is not in "
                                 f"blocklist_names ({list(p.blocklist_names)})")
        for name, cat in p.blocklist_mapping.items():
            if self.context.categories and cat not in self.context.categories:
                raise ValueError(f"detector {self.instance!r}: blocklist_mapping.{name}: {cat!r} is not a category of "
                                 f"the policy; defined: {', '.join(self.context.categories)}")
            self.mapping[f"blocklist:{name}"] = (cat,)

    @property
    def model_version(self) -> str:
        return f"{self.name}@{self.version}:{self.params.api_version}"  # type: ignore[attr-defined]

    def auth_headers(self) -> dict[str, str]:
        return {"Ocp-Apim-Subscription-Key": self._secret.reveal() if self._secret else ""}

    def attachments(self, item: Content) -> tuple[str, ...]:
        return image_refs(item) if self.params.images else ()  # type: ignore[attr-defined]

    def _categories(self) -> list[str]:
        return sorted(label for label in self.mapping if label in AZURE_LABELS)

    def _score(self, items: Sequence[Content]) -> list[ProviderVerdict]:
        return [self._score_one(item) for item in items]

    def _score_one(self, item: Content) -> ProviderVerdict:
        p: AzureContentSafetyParams = self.params  # type: ignore[assignment]
        query = {"api-version": p.api_version}
        scores: dict[str, float] = {}
        evidence: list[Evidence] = []
        text = clean_text(item.text or "")
        if text.strip():
            body: dict[str, Any] = {"text": text, "categories": self._categories(), "outputType": p.output_type}
            if p.blocklist_names:
                body["blocklistNames"] = list(p.blocklist_names)
                body["haltOnBlocklistHit"] = False
            answer = self._send(lambda: Sent(self.post_json("/contentsafety/text:analyze", json=body, query=query)))
            top = 7.0 if p.output_type == "EightSeverityLevels" else 6.0
            s, ev = parse_analysis(answer, max_severity=top, min_score=p.evidence_min_score)
            scores.update(s)
            evidence += ev
        for url in self.attachments(item):
            image = {"content": url.split(",", 1)[1]} if url.startswith("data:") else {"blobUrl": url}
            body = {"image": image, "categories": self._categories(), "outputType": "FourSeverityLevels"}
            answer = self._send(lambda body=body: Sent(self.post_json("/contentsafety/image:analyze", json=body,
                                                                      query=query)))
            s, ev = parse_analysis(answer, max_severity=6.0, min_score=p.evidence_min_score, detail="image")
            for label, v in s.items():
                scores[label] = max(scores.get(label, 0.0), v)
            evidence += ev
        return ProviderVerdict(scores=scores, evidence=tuple(evidence))


def parse_analysis(body: Any, *, max_severity: float, min_score: float,
                   detail: str = "text") -> tuple[dict[str, float], list[Evidence]]:
    try:
        scores: dict[str, float] = {}
        evidence: list[Evidence] = []
        for entry in body["categoriesAnalysis"]:
            label, severity = str(entry["category"]), entry.get("severity")
            if severity is None:
                continue
            score = float(severity) / max_severity
            if not 0.0 <= score <= 1.0:
                raise ValueError(f"severity {severity} outside 0..{max_severity:g}")
            scores[label] = max(scores.get(label, 0.0), score)
            if score >= min_score:
                evidence.append(Evidence(label, f"azure:{label}", detail=f"{detail} severity {severity}", score=score))
        for match in body.get("blocklistsMatch") or []:
            label = f"blocklist:{match['blocklistName']}"
            scores[label] = 1.0
            evidence.append(Evidence(label, f"azure:{label}", detail=f"blocklist item {match.get('blocklistItemId')}",
                                     score=1.0))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ProviderError(ErrorKind.MALFORMED,
                            f"the Content Safety answer is not the documented format ({type(exc).__name__})") from None
    return scores, evidence
