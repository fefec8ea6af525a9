"""Streaming SHA-256: the capture-time hash checked on arrival, in constant memory."""
from __future__ import annotations

import hashlib
import os
import re

_CHUNK = 1 << 20
_HEX64 = re.compile(r"[0-9a-f]{64}")


def sha256_file(path: str | os.PathLike[str], *, chunk_size: int = _CHUNK) -> str:
    """The lowercase hex SHA-256 of the file at ``path``, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def normalise_sha256(value: str) -> str:
    """``value`` as 64 lowercase hex digits (an optional ``sha256:`` prefix is dropped).

    Raises :class:`ValueError` for anything that is not a SHA-256.
    """
    text = value.strip().lower()
    if text.startswith("sha256:"):
        text = text[len("sha256:"):]
    if not _HEX64.fullmatch(text):
        raise ValueError(f"not a SHA-256 hex digest: {value!r}")
    return text
