"""MD5 of the exact file bytes: matches only byte-identical copies, but costs nothing to compute
and is what many hash-sharing programs (ThreatExchange's `video_md5`, NCMEC lists) exchange."""

from __future__ import annotations

import hashlib
import re

MD5_HEX_CHARS = 32
_MD5_HEX = re.compile(r"^[0-9a-fA-F]{32}$")


def md5_hex(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def validate_md5_hex(value: object) -> str:
    """The hash as 32 lowercase hex characters, or ValueError saying what is wrong."""
    if not isinstance(value, str):
        raise ValueError(f"an MD5 hash must be a string of 32 hexadecimal characters, got {type(value).__name__}")
    text = value.strip()
    if not _MD5_HEX.match(text):
        shown = text[:80].encode("ascii", "backslashreplace").decode()
        raise ValueError(f"invalid MD5 hash {shown!r}: expected 32 hexadecimal characters, got {len(text)} characters")
    return text.lower()


__all__ = ["MD5_HEX_CHARS", "md5_hex", "validate_md5_hex"]
