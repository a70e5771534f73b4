"""Webhook signatures: HMAC-SHA256 over `<timestamp>.<body>` (the Stripe scheme).

Every webhook Warden sends carries

    Warden-Signature: t=1732300000,v1=5257a869e7...

where `v1` is the hex HMAC-SHA256 of the bytes `b"1732300000." + body` under the shared
secret. Signing the timestamp with the body lets a receiver reject replays of an old,
captured request (the tolerance window) without keeping state; the receiver deduplicates
retries of the same action by the `Idempotency-Key` header.

A platform receiving webhooks verifies with `verify_signature` (this module has no warden
dependencies beyond the standard library, so it can be copied into the receiver):

    from warden.enforce.signing import SignatureError, verify_signature

    def handle(request):
        try:
            verify_signature(request.body, request.headers["Warden-Signature"], secret=WEBHOOK_SECRET)
        except (KeyError, SignatureError):
            return 400
        event = json.loads(request.body)
        if already_processed(request.headers["Idempotency-Key"]):
            return 200  # a retry of an action already applied
        ...

Verify the raw body bytes as received, before any JSON parsing or re-serialization. To
rotate a secret, pass both the new and the old secret to `verify_signature` until every
sender uses the new one; `sign` can emit several `v1` entries for the same purpose.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Sequence
from dataclasses import dataclass

SIGNATURE_HEADER = "Warden-Signature"
SCHEME = "v1"
#: Default window in which a signed timestamp is accepted, either side of the receiver's clock.
DEFAULT_TOLERANCE_SECONDS = 300


class SignatureError(ValueError):
    """The signature header is missing a part, too old or new, or does not match the body.

    `reason` is one of `malformed`, `stale`, `mismatch` (safe to log; the message never
    contains the secret or the body).
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ParsedSignature:
    timestamp: int
    signatures: tuple[str, ...]


def _as_bytes(secret: str | bytes) -> bytes:
    key = secret.encode("utf-8") if isinstance(secret, str) else secret
    if not key:
        raise ValueError("empty webhook secret")
    return key


def compute_signature(body: bytes, *, secret: str | bytes, timestamp: int) -> str:
    """Hex HMAC-SHA256 of `b"<timestamp>." + body`."""
    return hmac.new(_as_bytes(secret), str(int(timestamp)).encode("ascii") + b"." + body, hashlib.sha256).hexdigest()


def sign(body: bytes, *, secret: str | bytes | Sequence[str | bytes], timestamp: int | None = None) -> str:
    """The `Warden-Signature` header value for `body`: `t=<unix>,v1=<hex>[,v1=<hex>...]`.

    Several secrets give several `v1` entries (during a secret rotation).
    """
    ts = int(time.time()) if timestamp is None else int(timestamp)
    secrets = [secret] if isinstance(secret, str | bytes) else list(secret)
    if not secrets:
        raise ValueError("no webhook secret")
    parts = [f"t={ts}", *(f"{SCHEME}={compute_signature(body, secret=s, timestamp=ts)}" for s in secrets)]
    return ",".join(parts)


def parse_signature_header(header: str) -> ParsedSignature:
    """Split `t=...,v1=...` into its timestamp and `v1` signatures (other schemes are ignored,
    so a future `v2` can be added beside `v1`)."""
    timestamp: int | None = None
    sigs: list[str] = []
    for item in (header or "").split(","):
        key, sep, value = item.strip().partition("=")
        if not sep:
            continue
        if key == "t":
            try:
                timestamp = int(value)
            except ValueError:
                raise SignatureError("malformed", "signature header has a non-integer timestamp") from None
        elif key == SCHEME and value:
            sigs.append(value.strip().lower())
    if timestamp is None:
        raise SignatureError("malformed", "signature header has no timestamp (t=...)")
    if not sigs:
        raise SignatureError("malformed", f"signature header has no {SCHEME} signature")
    return ParsedSignature(timestamp=timestamp, signatures=tuple(sigs))


def verify_signature(
    body: bytes,
    header: str,
    *,
    secret: str | bytes | Sequence[str | bytes],
    tolerance_seconds: float = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> int:
    """Check a `Warden-Signature` header against the raw `body`; returns the signed timestamp.

    Raises `SignatureError` when the header is malformed (`reason="malformed"`), its timestamp
    is more than `tolerance_seconds` away from `now` (`"stale"`: a replayed or badly delayed
    request) or no `v1` signature matches under any of the secrets (`"mismatch"`: a forged or
    tampered body, or the wrong secret). Comparisons are constant-time (`hmac.compare_digest`).
    """
    parsed = parse_signature_header(header)
    current = time.time() if now is None else now
    if abs(current - parsed.timestamp) > tolerance_seconds:
        raise SignatureError("stale", f"signature timestamp is {int(current - parsed.timestamp)} s away from now "
                                      f"(tolerance {tolerance_seconds:g} s)")
    secrets = [secret] if isinstance(secret, str | bytes) else list(secret)
    if not secrets:
        raise ValueError("no webhook secret")
    matched = False
    for s in secrets:
        expected = compute_signature(body, secret=s, timestamp=parsed.timestamp)
        for candidate in parsed.signatures:
            # No early exit: the time taken does not depend on which entry matched.
            matched |= hmac.compare_digest(expected.encode("ascii"), candidate.encode("utf-8"))
    if not matched:
        raise SignatureError("mismatch", "no signature matches the body")
    return parsed.timestamp


__all__ = [
    "DEFAULT_TOLERANCE_SECONDS",
    "SIGNATURE_HEADER",
    "ParsedSignature",
    "SignatureError",
    "compute_signature",
    "parse_signature_header",
    "sign",
    "verify_signature",
]
