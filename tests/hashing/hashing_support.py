"""Helpers for the hashing tests (a uniquely named module: `conftest` names collide across folders)."""

from __future__ import annotations

import struct
import zlib

import pytest


def need_hashing() -> None:
    """Skip (locally) when the hashing extra is absent; CI installs it through the dev extra."""
    pytest.importorskip("PIL", reason="needs Pillow: pip install 'warden[hashing]'")
    pytest.importorskip("pdqhash", reason="needs pdqhash: pip install 'warden[hashing]'")


def png_with_size(width: int, height: int) -> bytes:
    """A syntactically valid PNG whose header declares `width` x `height` (the pixel data is tiny):
    a decompression bomb's header."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
            + chunk(b"IEND", b""))
