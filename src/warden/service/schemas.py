"""Request and response schemas of the HTTP API (OpenAPI documentation and response shapes).

Request bodies of /v1/moderate are validated by `warden.ingest.parse_item` (shared with the
CLI and the stream worker, so every entry point accepts the same input with the same
messages); the request models here document that contract in OpenAPI.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ModerateItem(BaseModel):
    """One item. `text` may be empty (it is moderated like any text, normally `allow`)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"id": "c-123", "text": "hello", "surface": "comment"}]})

    id: str | int | None = Field(
        default=None, description="Your stable id (max 256 chars). Generated (uuid4) when absent."
    )
    text: str = Field(description="The text; at most 200,000 characters (configurable). Empty is allowed.")
    surface: str | None = Field(default=None, description="Selects thresholds; one of the policy's surfaces.")
    actor_id: str | int | None = Field(default=None, description="Who posted it (for strikes and history).")
    language: str | None = Field(default=None, description="Optional language hint.")
    metadata: dict[str, Any] | None = Field(default=None, description="Free-form context (reach, ...).")
    reach: int | None = Field(default=None, ge=0, le=10**12,
                              description="Audience size (views, members); raises the review priority, log-scaled.")


class ModerateBatch(BaseModel):
    items: list[ModerateItem] = Field(description="1 to max_batch_items (default 100) items with distinct ids.")


class EvidenceOut(BaseModel):
    category: str
    rule: str
    spans: list[dict[str, Any]] | None = None
    detail: str | None = None
    score: float | None = None
    location: dict[str, Any] | None = Field(
        default=None, description='Where in the item\'s media: {"part": index, "box": {x, y, width, height}} or '
                                  '{"part": index, "via": "ocr"} (spans then index the text read from that image).')


class ReasonOut(BaseModel):
    category: str
    verdict: str
    detector: str
    score: float
    threshold: float
    surface: str
    rule: str
    evidence: list[EvidenceOut]


class DecisionOut(BaseModel):
    """`Decision.to_dict()`: the wire shape shared by the CLI, the HTTP API and the store."""

    id: str
    decision_id: str
    scores: dict[str, float]
    flagged: list[str]
    uncertain: list[str]
    action: str
    automated: bool
    review_queue: str | None
    qa_sample: bool
    reasons: list[ReasonOut]
    missing_signals: list[str]
    surface: str
    policy: str
    policy_version: str


class StoredDecisionOut(DecisionOut):
    """A stored decision: evidence spans keep offsets but not the matched text."""

    created_at: datetime


class BatchOut(BaseModel):
    decisions: list[DecisionOut] = Field(description="One decision per item, in input order.")


class ErrorInfo(BaseModel):
    code: str = Field(description="Stable machine-readable code, e.g. malformed_json, text_too_long.")
    message: str = Field(description="What is wrong and how to fix it.")
    details: dict[str, Any] = Field(default_factory=dict)


class ErrorOut(BaseModel):
    error: ErrorInfo


class HealthOut(BaseModel):
    status: str
    database: str
    policy: str
    policy_version: str


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "Body is not UTF-8 or not valid JSON"},
    401: {"model": ErrorOut, "description": "Missing, unknown or revoked API key"},
    403: {"model": ErrorOut, "description": "The key's role may not use this route"},
    413: {"model": ErrorOut, "description": "Request body over the size limit"},
    422: {"model": ErrorOut, "description": "Valid JSON of the wrong shape (types, missing fields, limits)"},
}
