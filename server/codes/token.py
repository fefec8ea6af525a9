"""The inspection code's signed token: what it says, how it is signed, how anyone checks it.

A token is ``base64url(payload) "." base64url(signature)`` (no padding), the signature Ed25519 over the
payload's bytes. The payload is compact JSON with sorted keys::

    {"v": 1,                       format version
     "k": "3f1c…",                 key id: the first 16 hex digits of SHA-256 of the raw public key
     "t": "<task uuid>",           the task (one visit)
     "n": "祁阳市某某食品有限公司",   the enterprise's name
     "c": "914311********123X",    its unified social credit code, masked (the full code is the
                                   enterprise's proof when it rates the visit)
     "d": ["市场监督管理局", …],     the departments taking part, sorted
     "s": 1764547200,              window start, Unix seconds (UTC)
     "x": 1764576000,              window end: the code expires with it
     "i": 1764460800}              issued: when the task was first dispatched

Nothing else: no person, no certificate number. Ed25519 signatures are deterministic, so the same task
state always gives the same token; a task whose window or departments change gets a new one, and the
old token no longer matches it (superseded). Pure functions: no Flask, no database.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

FORMAT_VERSION = 1
#: Longest token accepted: a real one is some 400 characters; anything far longer is not ours.
MAX_TOKEN_LENGTH = 2048


class BadToken(ValueError):
    """The token is not one this server signed: malformed, unknown key, or a signature that fails."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Claims:
    """What a verified token states."""

    key_id: str
    task_id: uuid.UUID
    enterprise_name: str
    credit_code_masked: str
    departments: tuple[str, ...]
    window_start: datetime
    window_end: datetime
    issued_at: datetime


def key_id(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def raw_public_key(public_key: Ed25519PublicKey) -> str:
    """The 32-byte public key, base64url without padding (what the offline checker embeds)."""
    return _b64(public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))


def mask_credit_code(code: str) -> str:
    """Keep the registering authority and region (first 6) and the last 4; the rest is the proof."""
    if len(code) <= 10:
        return "*" * len(code)
    return code[:6] + "*" * (len(code) - 10) + code[-4:]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    if not text or any(ch not in _B64_ALPHABET for ch in text):
        raise BadToken("malformed", "检查码格式不正确")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise BadToken("malformed", "检查码格式不正确") from None


_B64_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def _epoch(moment: datetime) -> int:
    return int(moment.astimezone(UTC).timestamp())


def sign(key: Ed25519PrivateKey, claims: Claims) -> str:
    payload = {
        "v": FORMAT_VERSION, "k": claims.key_id, "t": str(claims.task_id), "n": claims.enterprise_name,
        "c": claims.credit_code_masked, "d": sorted(claims.departments),
        "s": _epoch(claims.window_start), "x": _epoch(claims.window_end), "i": _epoch(claims.issued_at),
    }
    body = json.dumps(payload, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode("utf-8")
    return f"{_b64(body)}.{_b64(key.sign(body))}"


def verify(token: str, keys: Mapping[str, Ed25519PublicKey]) -> Claims:
    """The claims of a token signed by one of ``keys`` (by key id); BadToken otherwise."""
    if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH or token.count(".") != 1:
        raise BadToken("malformed", "检查码格式不正确")
    body_text, signature_text = token.split(".")
    body, signature = _unb64(body_text), _unb64(signature_text)
    try:
        payload = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise BadToken("malformed", "检查码格式不正确") from None
    if not isinstance(payload, dict) or payload.get("v") != FORMAT_VERSION:
        raise BadToken("malformed", "检查码格式不正确或版本不受支持")
    key = keys.get(payload.get("k")) if isinstance(payload.get("k"), str) else None
    if key is None:
        raise BadToken("unknown-key", "检查码不是本系统签发的（签名密钥不符），可能系伪造")
    try:
        key.verify(signature, body)
    except InvalidSignature:
        raise BadToken("bad-signature", "检查码签名无效，可能被伪造或篡改") from None
    return _claims(payload)


def _claims(payload: dict[str, object]) -> Claims:
    try:
        departments = payload["d"]
        if not isinstance(departments, list) or not all(isinstance(d, str) for d in departments):
            raise TypeError
        name, masked = payload["n"], payload["c"]
        if not isinstance(name, str) or not isinstance(masked, str):
            raise TypeError
        moments = [payload[k] for k in ("s", "x", "i")]
        if not all(isinstance(m, int) and not isinstance(m, bool) and 0 <= m < 2**33 for m in moments):
            raise TypeError
        start, end, issued = (datetime.fromtimestamp(m, UTC) for m in moments)  # type: ignore[arg-type]
        return Claims(str(payload["k"]), uuid.UUID(str(payload["t"])), name, masked, tuple(departments),
                      start, end, issued)
    except (KeyError, TypeError, ValueError):
        # Signed by us yet unreadable: only a bug of an earlier version could make one.
        raise BadToken("malformed", "检查码内容不完整") from None
