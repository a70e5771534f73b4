"""Log redaction: Warden never logs content text or API keys.

Two layers:

1. By construction: service code logs ids, counts, routes, statuses and timings, never a
   text, a request body or a header value; unexpected exceptions are logged as type + stack
   without the message (messages can quote input).
2. As a safety net, `RedactingFilter` on every handler: rewrites anything shaped like a
   Warden key (`wdn_<prefix>_<secret>` -> `wdn_<prefix>_[redacted]`), `Bearer <token>` and
   `X-API-Key: <value>`, and blanks well-known sensitive `extra=` fields (text, content,
   body, api_key, authorization, ...).
"""

from __future__ import annotations

import copy
import logging
import re
from typing import Any

from warden.store.keys import redact_key

SENSITIVE_FIELDS = frozenset(
    {
        "text",
        "content",
        "body",
        "payload",
        "api_key",
        "apikey",
        "authorization",
        "x_api_key",
        "key",
        "password",
        "secret",
        "token",
    }
)
_BEARER = re.compile(r"(?i)(bearer\s+)[^\s\"',;]+")
_X_API_KEY = re.compile(r"(?i)(x-api-key[\"']?\s*[:=]\s*[\"']?)[^\s\"',;]+")
REDACTED = "[redacted]"


def redact(message: str) -> str:
    message = redact_key(message)
    message = _BEARER.sub(lambda m: m.group(1) + REDACTED, message)
    return _X_API_KEY.sub(lambda m: m.group(1) + REDACTED, message)


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        # Redact the format string and each argument separately, keeping the args' structure
        # (uvicorn's access formatter unpacks record.args as a tuple).
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: redact(v) if isinstance(v, str) else v for k, v in record.args.items()}
        try:
            message = record.getMessage()
        except Exception:  # a broken format string must not break logging
            message = str(record.msg)
        if redact(message) != message:  # a non-string argument rendered a secret: flatten
            record.msg, record.args = redact(message), None
        for name in SENSITIVE_FIELDS & record.__dict__.keys():
            setattr(record, name, REDACTED)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def install_log_redaction(*logger_names: str) -> RedactingFilter:
    """Attach one RedactingFilter to the named loggers and all their handlers (idempotent)."""
    flt = RedactingFilter()
    for name in logger_names or ("", "warden", "uvicorn", "uvicorn.error", "uvicorn.access", "fastapi"):
        logger = logging.getLogger(name)
        targets: list[Any] = [logger, *logger.handlers]
        for t in targets:
            if not any(isinstance(f, RedactingFilter) for f in t.filters):
                t.addFilter(flt)
    return flt


def uvicorn_log_config(level: str = "info") -> dict[str, Any]:
    """uvicorn's default logging config plus the redaction filter on every handler and a
    `warden` logger, for `uvicorn.run(log_config=...)` (applies in every worker process)."""
    from uvicorn.config import LOGGING_CONFIG

    cfg = copy.deepcopy(LOGGING_CONFIG)
    cfg.setdefault("filters", {})["redact"] = {"()": "warden.service.logs.RedactingFilter"}
    for handler in cfg["handlers"].values():
        handler.setdefault("filters", []).append("redact")
    cfg["loggers"]["warden"] = {"handlers": ["default"], "level": level.upper(), "propagate": False}
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        if name in cfg["loggers"]:
            cfg["loggers"][name]["level"] = level.upper()
    return cfg
