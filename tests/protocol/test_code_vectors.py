"""The inspection code's test vectors (tests/protocol/code_vectors.json), made and checked by the server's own code.

    .venv/bin/python -m tests.protocol.test_code_vectors      # rewrites the file

The phone's offline checker (field_client/web/src/public-check/verify.js) runs the same file in
field_client/web/test/public-check.test.js: tokens signed here with ``server.codes.token.sign`` by a fixed key
(from a 32-byte seed), a tampered one, one signed by a key the checker does not hold, malformed ones, each with
what ``server.codes.token.verify`` answers; and the window's states at its edges. A change of the token format
on either side fails one of the two tests.
"""
from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from server.codes.token import BadToken, Claims, key_id, mask_credit_code, raw_public_key, sign, verify

PATH = Path(__file__).with_name("code_vectors.json")
SEED = bytes(range(32))               # the platform's key in these vectors
OTHER_SEED = bytes(range(100, 132))   # a key the checker does not hold
CLAIMS = {
    "task_id": "5e7f0c9a-2b1d-4c3e-9f8a-1b2c3d4e5f60",
    "enterprise_name": "祁阳市浯溪食品有限公司",
    "credit_code": "91431121MA4L8XQ21X",
    "departments": ["市场监督管理局", "生态环境局"],
    "window_start": datetime(2026, 12, 3, 0, 0, tzinfo=UTC),   # 08:00 Beijing time
    "window_end": datetime(2026, 12, 3, 9, 0, tzinfo=UTC),     # 17:00
    "issued_at": datetime(2026, 12, 1, 2, 30, tzinfo=UTC),
}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _claims(key: Ed25519PrivateKey, **changes: Any) -> Claims:
    fields = {**CLAIMS, **changes}
    return Claims(key_id=key_id(key.public_key()), task_id=uuid.UUID(fields["task_id"]),
                  enterprise_name=fields["enterprise_name"],
                  credit_code_masked=mask_credit_code(fields["credit_code"]),
                  departments=tuple(fields["departments"]), window_start=fields["window_start"],
                  window_end=fields["window_end"], issued_at=fields["issued_at"])


def _signed_raw(key: Ed25519PrivateKey, payload: dict[str, Any]) -> str:
    """A payload the server's sign() would never write, signed all the same (version, missing fields)."""
    body = json.dumps(payload, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode("utf-8")
    return f"{_b64(body)}.{_b64(key.sign(body))}"


def _expect(token: str, keys: dict[str, Any]) -> dict[str, Any]:
    """What the server's verify() answers: the claims, or the refusal's code."""
    try:
        claims = verify(token, keys)
    except BadToken as exc:
        return {"ok": False, "code": exc.code}
    return {"ok": True, "claims": {
        "key_id": claims.key_id, "task_id": str(claims.task_id), "enterprise_name": claims.enterprise_name,
        "credit_code_masked": claims.credit_code_masked, "departments": list(claims.departments),
        "window_start": int(claims.window_start.timestamp()), "window_end": int(claims.window_end.timestamp()),
        "issued_at": int(claims.issued_at.timestamp())}}


def build() -> dict[str, Any]:
    key = Ed25519PrivateKey.from_private_bytes(SEED)
    other = Ed25519PrivateKey.from_private_bytes(OTHER_SEED)
    keys = {key_id(key.public_key()): key.public_key()}
    genuine = sign(key, _claims(key))
    body, signature = genuine.split(".")
    payload = json.loads(_unb64(body))
    tampered_body = _b64(json.dumps({**payload, "n": "祁阳市另一家食品有限公司"}, ensure_ascii=False,
                                    sort_keys=True, separators=(",", ":")).encode("utf-8"))
    later = sign(key, _claims(key, window_end=datetime(2026, 12, 3, 10, 0, tzinfo=UTC)))
    cases = [
        ("genuine", genuine),
        ("tampered payload, original signature", f"{tampered_body}.{signature}"),
        ("signature of another token", f"{body}.{later.split('.')[1]}"),
        ("signature cut short", f"{body}.{signature[:40]}"),
        ("signed by a key not held", sign(other, _claims(other))),
        ("signed, unknown format version", _signed_raw(key, {**payload, "v": 2})),
        ("signed, a field missing", _signed_raw(key, {k: v for k, v in payload.items() if k != "d"})),
        ("no signature part", body),
        ("three parts", f"{genuine}.{signature}"),
        ("not base64url", f"{body}+.{signature}"),
        ("payload not JSON", f"{_b64(b'not json')}.{signature}"),
        ("empty", ""),
    ]
    start, end = int(CLAIMS["window_start"].timestamp()), int(CLAIMS["window_end"].timestamp())
    return {
        "about": "Inspection code vectors (server/codes/token.py), made by tests/protocol/test_code_vectors.py "
                 "with the server's sign() and checked with its verify(); the phone's offline checker "
                 "(field_client/web/test/public-check.test.js) must give the same answers. 'keys' is what "
                 "GET /public/code-keys.json serves; the private key is Ed25519 from seed_hex (tests only). "
                 "'window': the state of the genuine token's window at now_ms (the server's check_code "
                 "compares the same way).",
        "seed_hex": SEED.hex(),
        "keys": {"algorithm": "Ed25519", "keys": [{"id": key_id(key.public_key()),
                                                   "public_key": raw_public_key(key.public_key())}]},
        "tokens": [{"name": name, "token": token, "expect": _expect(token, keys)} for name, token in cases],
        "window": [{"now_ms": now_ms, "state": state} for now_ms, state in (
            ((start - 1) * 1000, "not-yet-valid"), (start * 1000, "valid"), ((start + 3600) * 1000, "valid"),
            (end * 1000, "valid"), (end * 1000 + 1, "expired"), ((end + 86400) * 1000, "expired"))],
    }


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, ensure_ascii=False, indent=2) + "\n"


def test_the_file_is_what_the_server_signs_and_verifies() -> None:
    """The vectors are recomputed with server.codes.token: a format change without a rebuild fails here."""
    assert PATH.read_text(encoding="utf-8") == render(build()), "run: python -m tests.protocol.test_code_vectors"


def test_the_vectors_cover_every_answer() -> None:
    document = build()
    answers = [t["expect"]["code"] if not t["expect"]["ok"] else "ok" for t in document["tokens"]]
    assert answers[0] == "ok" and set(answers) == {"ok", "malformed", "unknown-key", "bad-signature"}
    assert {w["state"] for w in document["window"]} == {"not-yet-valid", "valid", "expired"}


if __name__ == "__main__":
    PATH.write_text(render(build()), encoding="utf-8")
    print(f"wrote {PATH}")
