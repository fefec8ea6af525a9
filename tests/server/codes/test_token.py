"""The inspection code's token on its own: signed, checked, and refused when anything in it is changed."""
from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from server.codes.token import BadToken, Claims, key_id, mask_credit_code, sign, verify

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
OTHER = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
KEYS = {key_id(KEY.public_key()): KEY.public_key()}
START = datetime(2026, 12, 3, 0, 30, tzinfo=UTC)


def claims(**changes: object) -> Claims:
    values: dict[str, object] = {
        "key_id": key_id(KEY.public_key()), "task_id": uuid.UUID(int=7), "enterprise_name": "祁阳市浯溪食品有限公司",
        "credit_code_masked": mask_credit_code("91431121MA4L0XYZ3X"), "departments": ("生态环境局", "市场监管局"),
        "window_start": START, "window_end": START + timedelta(hours=8), "issued_at": START - timedelta(days=1)}
    values.update(changes)
    return Claims(**values)  # type: ignore[arg-type]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_a_signed_token_gives_back_what_it_says_and_is_the_same_for_the_same_task() -> None:
    token = sign(KEY, claims())
    assert token == sign(KEY, claims())  # deterministic: a tablet and the server agree on the code
    read = verify(token, KEYS)
    assert read == claims(departments=("市场监管局", "生态环境局"))  # sorted
    assert read.credit_code_masked == "914311********YZ3X"
    assert len(token) < 500  # fits a QR code a phone reads off a tablet screen
    assert token != sign(KEY, claims(window_end=START + timedelta(hours=9)))  # a changed task: a new code


@pytest.mark.parametrize("tamper", ["name", "window", "task"])
def test_a_changed_payload_fails_the_signature(tamper: str) -> None:
    body, signature = sign(KEY, claims()).split(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    payload.update({"name": {"n": "另一家公司"}, "window": {"x": payload["x"] + 86400},
                    "task": {"t": str(uuid.UUID(int=8))}}[tamper])
    body = _b64(json.dumps(payload, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode())
    forged = body + "." + signature
    with pytest.raises(BadToken) as refused:
        verify(forged, KEYS)
    assert refused.value.code == "bad-signature"


def test_a_token_signed_by_another_key_is_refused_whatever_key_id_it_claims() -> None:
    own_id = claims(key_id=key_id(KEY.public_key()))
    with pytest.raises(BadToken) as refused:
        verify(sign(OTHER, own_id), KEYS)  # claims our key id, signed with another key
    assert refused.value.code == "bad-signature"
    with pytest.raises(BadToken) as unknown:
        verify(sign(OTHER, claims(key_id=key_id(OTHER.public_key()))), KEYS)
    assert unknown.value.code == "unknown-key"


@pytest.mark.parametrize("text", ["", "abc", "a.b.c", "!!!.???", "x" * 5000, "eyJ2IjoxfQ.AAAA",
                                  _b64(b"[1,2]") + ".AAAA", _b64(b"\xff\xfe") + ".AAAA"])
def test_malformed_tokens_are_refused_with_a_reason(text: str) -> None:
    with pytest.raises(BadToken) as refused:
        verify(text, KEYS)
    assert refused.value.code in ("malformed", "unknown-key") and str(refused.value)


def test_a_signed_payload_missing_a_field_is_malformed_not_a_crash() -> None:
    body = json.dumps({"v": 1, "k": key_id(KEY.public_key()), "t": "not-a-uuid"}).encode()
    token = _b64(body) + "." + _b64(KEY.sign(body))
    with pytest.raises(BadToken) as refused:
        verify(token, KEYS)
    assert refused.value.code == "malformed"


def test_credit_codes_are_masked_in_the_middle() -> None:
    assert mask_credit_code("91431121MA4L0XYZ3X") == "914311********YZ3X"
    assert mask_credit_code("12345") == "*****"
