"""Content text and API keys never reach the logs."""

from __future__ import annotations

import io
import logging

from fastapi.testclient import TestClient
from svc_helpers import Keys, auth

from warden.service.logs import RedactingFilter, install_log_redaction, redact, uvicorn_log_config


def test_redact_patterns() -> None:
    key = "wdn_0123456789ab_" + "f" * 64
    out = redact(f"auth={key} Authorization: Bearer abc.def-ghi X-API-Key: s3cr3t x-api-key='q'")
    assert key not in out and "abc.def-ghi" not in out and "s3cr3t" not in out and "'q'" not in out
    assert "wdn_0123456789ab_[redacted]" in out


def test_filter_redacts_message_args_extras_and_exceptions() -> None:
    key = "wdn_0123456789ab_" + "e" * 64
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s|%(text)s"))
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger("warden.test.redaction")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("key %s used", key, extra={"text": "VERY PRIVATE POST"})
        try:
            raise ValueError(f"bad key {key}")
        except ValueError:
            logger.exception("failed", extra={"text": "x"})
    finally:
        logger.removeHandler(handler)
    out = stream.getvalue()
    assert key not in out and "VERY PRIVATE POST" not in out
    assert "wdn_0123456789ab_[redacted]" in out and "[redacted]" in out and "ValueError" in out


def test_install_is_idempotent_and_uvicorn_config_has_filter() -> None:
    name = "warden.test.install"
    logging.getLogger(name).addHandler(logging.NullHandler())
    install_log_redaction(name)
    install_log_redaction(name)
    lg = logging.getLogger(name)
    assert sum(isinstance(f, RedactingFilter) for f in lg.filters) == 1
    assert all(sum(isinstance(f, RedactingFilter) for f in h.filters) == 1 for h in lg.handlers)
    cfg = uvicorn_log_config()
    assert all("redact" in h["filters"] for h in cfg["handlers"].values())
    logging.config.dictConfig({**cfg, "disable_existing_loggers": False})  # valid config


def test_requests_never_log_text_or_keys(client: TestClient, keys: Keys, caplog) -> None:
    canary = "CANARY-7f3a secret post buy now"
    with caplog.at_level(logging.DEBUG):
        client.post("/v1/moderate", json={"id": "l1", "text": canary}, headers=auth(keys.client))
        client.post("/v1/moderate", json={"items": [{"text": canary}]}, headers={"X-API-Key": keys.admin})
        client.post("/v1/moderate", json={"text": canary * 100}, headers=auth(keys.client))  # rejected: too long
        client.post("/v1/moderate", json={"text": canary}, headers=auth(keys.reviewer))  # 403
        client.post("/v1/moderate", json={"text": canary}, headers=auth(keys.revoked))  # 401
        client.get("/v1/decisions/l1", headers=auth(keys.reviewer))
    assert any(r.name == "warden.service" for r in caplog.records)  # we do log requests...
    everything = caplog.text + "".join(repr(r.__dict__) for r in caplog.records)
    assert "CANARY-7f3a" not in everything  # ...but not their text
    for key in (keys.client, keys.admin, keys.reviewer, keys.revoked):
        assert key not in everything and key.split("_")[2] not in everything


def test_uvicorn_access_log_stays_formattable() -> None:
    from uvicorn.logging import AccessFormatter

    key = "wdn_0123456789ab_" + "c" * 64
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "POST", f"/v1/moderate?api_key={key}", "1.1", 200),
        None,
    )
    assert RedactingFilter().filter(record)
    out = AccessFormatter('%(client_addr)s - "%(request_line)s" %(status_code)s').format(record)
    assert key not in out and "wdn_0123456789ab_[redacted]" in out and "200" in out
