"""Parsing untrusted JSON request bodies into exact 4xx errors (never a 500), shared by
every route that takes JSON."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from warden.service.errors import ApiError

M = TypeVar("M", bound=BaseModel)


def _unstorable(value: str) -> str | None:
    if "\x00" in value:
        return "must not contain NUL characters"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid Unicode (it contains unpaired surrogates)"
    return None


class StrictBody(BaseModel):
    """Base of JSON request schemas: strict JSON types, no unknown fields, and every string
    (also inside lists and as mapping keys or values) storable in either database: no NUL,
    valid Unicode."""

    model_config = ConfigDict(extra="forbid", strict=True)

    @field_validator("*", mode="after")
    @classmethod
    def _storable(cls, v: Any) -> Any:
        found = ([v] if isinstance(v, str) else list(v) if isinstance(v, list)
                 else [*v.keys(), *v.values()] if isinstance(v, dict) else [])
        for s in found:
            if isinstance(s, str) and (problem := _unstorable(s)) is not None:
                raise ValueError(problem)
        return v


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_json(body: bytes) -> Any:
    """Any JSON value; 400 `malformed_json` / `invalid_encoding` with the position otherwise
    (NaN, Infinity, absurd nesting and oversized integers included)."""
    if not body.strip():
        raise ApiError(400, "malformed_json", "request body is empty; send a JSON object")
    try:
        decoded = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(400, "invalid_encoding", f"request body is not valid UTF-8 (byte offset {exc.start})",
                       {"offset": exc.start}) from None
    try:
        return json.loads(decoded, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise ApiError(400, "malformed_json",
                       f"request body is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})",
                       {"line": exc.lineno, "column": exc.colno}) from None
    except RecursionError:
        raise ApiError(400, "malformed_json", "request body JSON is nested too deeply") from None
    except ValueError as exc:  # NaN/Infinity, integers beyond the digit limit
        raise ApiError(400, "malformed_json", f"request body is not valid JSON: {str(exc)[:200]}") from None


def validate_model(model: type[M], payload: Any) -> M:
    """422 `invalid_request` naming the first bad field; never echoes the input (it may be content)."""
    if not isinstance(payload, dict):
        raise ApiError(422, "invalid_request", "the body must be a JSON object", {"got": type(payload).__name__})
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        errors = [{"loc": [str(p) for p in e["loc"]], "message": e["msg"], "type": e["type"]}
                  for e in exc.errors(include_input=False, include_url=False)][:50]
        first = errors[0]
        raise ApiError(422, "invalid_request", f"{'.'.join(first['loc']) or 'body'}: {first['message']}",
                       {"errors": errors}) from None


def parse_model(body: bytes, model: type[M]) -> M:
    return validate_model(model, parse_json(body))
