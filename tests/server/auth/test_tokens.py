"""Bearer tokens: every forged, stale or misdirected token is refused with 401."""
from __future__ import annotations

import base64
import json
import warnings
from datetime import UTC, datetime, timedelta

import jwt
import pytest

from server.auth import tokens
from tests.conftest import World, assert_problem

KEY = "dev-only-insecure-secret-change-me-jwt"  # the testing key (config.DEV_SECRET + "-jwt")


def _claims(world: World, **overrides: object) -> dict[str, object]:
    now = datetime.now(UTC)
    user = world.people["admin"]
    claims: dict[str, object] = {
        "iss": tokens.ISSUER, "aud": tokens.AUDIENCE, "sub": str(user.id), "typ": tokens.USER_ACCESS,
        "iat": now, "nbf": now, "exp": now + timedelta(minutes=5), "jti": "x", "role": "admin",
        "dept": str(user.department_id),
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _b64(data: dict[str, object]) -> str:
    raw = json.dumps(data, default=lambda d: int(d.timestamp())).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _get_me(client, token: str):  # type: ignore[no-untyped-def]
    return client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})


@pytest.mark.around_office_midnight
def test_a_well_formed_token_is_accepted(client, world: World) -> None:
    token = jwt.encode(_claims(world), KEY, algorithm="HS256")
    assert _get_me(client, token).status_code == 200


@pytest.mark.parametrize("case, slug", [
    ("alg-none", "token-invalid"),
    ("hs512", "token-invalid"),
    ("wrong-key", "token-invalid"),
    ("wrong-audience", "token-invalid"),
    ("wrong-issuer", "token-invalid"),
    ("expired", "token-expired"),
    ("not-yet-valid", "token-not-yet-valid"),
    ("missing-exp", "token-invalid"),
    ("missing-typ", "token-invalid"),
    ("refresh-typ", "token-wrong-type"),
    ("unknown-subject", "token-invalid"),
    ("garbage", "token-invalid"),
])
def test_forged_and_stale_tokens_are_refused(client, world: World, case: str, slug: str) -> None:
    now = datetime.now(UTC)
    if case == "alg-none":
        token = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(_claims(world))}."
    elif case == "hs512":
        # Same key, another HMAC: the algorithm is pinned, so this must not pass.
        with warnings.catch_warnings():  # PyJWT warns the test key is short for SHA-512
            warnings.simplefilter("ignore")
            token = jwt.encode(_claims(world), KEY, algorithm="HS512")
    elif case == "wrong-key":
        token = jwt.encode(_claims(world), "another-key-entirely-0123456789abcdef", algorithm="HS256")
    elif case == "wrong-audience":
        token = jwt.encode(_claims(world, aud="some-other-service"), KEY, algorithm="HS256")
    elif case == "wrong-issuer":
        token = jwt.encode(_claims(world, iss="evil"), KEY, algorithm="HS256")
    elif case == "expired":
        token = jwt.encode(_claims(world, iat=now - timedelta(hours=2), nbf=now - timedelta(hours=2),
                                   exp=now - timedelta(hours=1)), KEY, algorithm="HS256")
    elif case == "not-yet-valid":
        token = jwt.encode(_claims(world, nbf=now + timedelta(hours=1), exp=now + timedelta(hours=2)), KEY,
                           algorithm="HS256")
    elif case == "missing-exp":
        claims = _claims(world)
        del claims["exp"]
        token = jwt.encode(claims, KEY, algorithm="HS256")
    elif case == "missing-typ":
        claims = _claims(world)
        del claims["typ"]
        token = jwt.encode(claims, KEY, algorithm="HS256")
    elif case == "refresh-typ":
        token = jwt.encode(_claims(world, typ="refresh"), KEY, algorithm="HS256")
    elif case == "unknown-subject":
        token = jwt.encode(_claims(world, sub="00000000-0000-0000-0000-000000000001"), KEY, algorithm="HS256")
    else:
        token = "not.a.jwt"
    response = _get_me(client, token)
    assert_problem(response, 401, slug)
    assert "Bearer" in response.headers["WWW-Authenticate"]


def test_algorithm_confusion_with_an_rsa_public_key_is_refused(client, world: World) -> None:
    """An RS256 header whose 'public key' is used as HMAC secret cannot pass a pinned HS256 verifier."""
    header = _b64({"alg": "RS256", "typ": "JWT"})
    body = _b64(_claims(world))
    token = f"{header}.{body}.c2lnbmF0dXJl"
    assert_problem(_get_me(client, token), 401, "token-invalid")


def test_device_tokens_only_upload(client, world: World) -> None:
    created = world.devices["m-cam"]
    response = client.post("/api/v1/auth/device-token",
                           json={"device_id": created.device.id, "device_secret": created.secret})
    assert response.status_code == 200
    device_token = response.get_json()["access_token"]
    # A device token is the wrong type for anything but uploads.
    for path in ("/api/v1/auth/me", "/api/v1/users/", "/api/v1/devices/", "/api/v1/enterprises/"):
        assert_problem(client.get(path, headers={"Authorization": f"Bearer {device_token}"}), 401, "token-wrong-type")


@pytest.mark.parametrize("header", ["", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Token abc"])
def test_missing_or_malformed_authorization_header(client, world: World, header: str) -> None:
    headers = {"Authorization": header} if header else {}
    assert_problem(client.get("/api/v1/users/", headers=headers), 401, "unauthenticated")


def test_a_deactivated_account_loses_access_immediately(client, world: World, auth) -> None:
    from server.extensions import db
    headers = auth.headers("m-insp")
    world.people["m-insp"].active = False
    db.session.commit()
    assert_problem(client.get("/api/v1/auth/me", headers=headers), 401, "token-invalid")
