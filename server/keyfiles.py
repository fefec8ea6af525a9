"""Ed25519 private keys kept as PEM files under the installation's var folder.

Each key is generated once, on first use (atomically, mode 600, like ``secrets.env``) and never
rotated silently: what it signed (case files, inspection codes) is checked years later with its
public key, without the server. App servers on several machines must sign with the same keys: with
``INSPECT_ONCE_KEYS=provided`` none is generated on first use; ``flask --app server make-keys`` makes
them once, and they are copied to every machine (README, "Running on several machines").
"""
from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

#: Every signing key of an installation: what it signs, and its file under the var folder.
KEY_FILES = {"inspection codes": "code-key.pem", "case files": "archive-key.pem"}


class KeyMissing(RuntimeError):
    """A signing key that is to be provided (``INSPECT_ONCE_KEYS=provided``) is not there."""


def missing_keys(var_dir: Path) -> list[Path]:
    """The installation's key files that do not exist under ``var_dir``."""
    return [var_dir / name for name in KEY_FILES.values() if not (var_dir / name).exists()]


def refusal(missing: list[Path]) -> str:
    """What an operator is told when provided keys are missing (English: operators' text)."""
    return (f"INSPECT_ONCE_KEYS=provided, but {', '.join(str(p) for p in missing)} "
            f"{'is' if len(missing) == 1 else 'are'} missing: run `flask --app server make-keys` on one machine "
            "and copy the key files (mode 600) into every app server's and worker's INSPECT_ONCE_VAR")


def fingerprint(path: Path) -> str:
    """``sha256:`` and the hex SHA-256 of the key's raw public key, to compare machines by."""
    import hashlib

    raw = _load(path).public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def _load(path: Path) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} holds no Ed25519 private key")
    return key


def private_key(path: Path, *, create: bool | None = None) -> Ed25519PrivateKey:
    """The key in ``path``, generated there when the installation has none yet, if it may ``create`` one
    (by default: unless the app's settings say the keys are provided)."""
    if path.exists():
        return _load(path)
    if create is None:
        from flask import current_app, has_app_context

        create = not has_app_context() or current_app.config["SETTINGS"].keys == "generate"
    if not create:
        raise KeyMissing(refusal([path]))
    path.parent.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, pem)
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        # Two workers starting at once: the first key linked wins, the other process loads it.
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return _load(path)
