"""The server's Ed25519 archive key: it signs every case file's tag manifest.

Generated once, on first use, as ``archive-key.pem`` under INSPECT_ONCE_VAR (mode 600, like
``secrets.env``) and never rotated silently: an archive office keeps the public key
(``GET /api/v1/archive-key``) to check case files years later without the server.
"""
from __future__ import annotations

import base64
import hashlib
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from server import keyfiles

KEY_FILE = keyfiles.KEY_FILES["case files"]


def private_key(var_dir: Path) -> Ed25519PrivateKey:
    """The archive key, generated (atomically, mode 600) when the installation has none yet and may make one."""
    return keyfiles.private_key(var_dir / KEY_FILE)


def public_pem(key: Ed25519PublicKey) -> str:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def fingerprint(key: Ed25519PublicKey) -> str:
    """``sha256:`` and the hex SHA-256 of the raw 32-byte public key: short enough to read out on the phone."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def load_public_pem(text: bytes) -> Ed25519PublicKey:
    key = serialization.load_pem_public_key(text)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("not an Ed25519 public key")
    return key


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
