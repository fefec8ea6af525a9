"""JWT access tokens for users and devices.

The algorithm is pinned to HS256 on decode, so ``alg: none`` and algorithm
confusion (an RS256/HS512 header) are refused by construction; issuer,
audience, expiry, not-before, issued-at and our own ``typ`` claim are required.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt

from server.errors import Problem

ALGORITHM = "HS256"
ISSUER = "inspect-once"
AUDIENCE = "inspect-once-api"
USER_ACCESS = "access"
DEVICE_ACCESS = "device"
TOKEN_TYPES = (USER_ACCESS, DEVICE_ACCESS)
_REQUIRED = ["exp", "iat", "nbf", "iss", "aud", "sub", "typ", "jti"]
LEEWAY_SECONDS = 30


@dataclass(frozen=True)
class IssuedToken:
    token: str
    expires_in: int


def issue(key: str, subject: str, token_type: str, lifetime_seconds: int, claims: dict[str, Any],
          now: datetime | None = None) -> IssuedToken:
    if token_type not in TOKEN_TYPES:
        raise ValueError(f"unknown token type {token_type}")
    now = now or datetime.now(UTC)
    payload = {
        "iss": ISSUER, "aud": AUDIENCE, "sub": subject, "typ": token_type,
        "iat": now, "nbf": now, "exp": now + timedelta(seconds=lifetime_seconds),
        "jti": uuid.uuid4().hex, **claims,
    }
    return IssuedToken(jwt.encode(payload, key, algorithm=ALGORITHM), lifetime_seconds)


def _unauthenticated(slug: str, detail: str) -> Problem:
    return Problem(401, slug, detail,
                   headers={"WWW-Authenticate": f'Bearer error="invalid_token", error_description="{slug}"'})


def decode(key: str, token: str, allowed_types: tuple[str, ...]) -> dict[str, Any]:
    """Verify ``token`` and return its claims, or raise a 401 Problem."""
    try:
        claims = jwt.decode(
            token, key, algorithms=[ALGORITHM], audience=AUDIENCE, issuer=ISSUER,
            leeway=LEEWAY_SECONDS, options={"require": _REQUIRED},
        )
    except jwt.ExpiredSignatureError:
        raise _unauthenticated("token-expired", "访问令牌已过期，请刷新或重新登录") from None
    except jwt.ImmatureSignatureError:
        raise _unauthenticated("token-not-yet-valid", "访问令牌尚未生效") from None
    except jwt.InvalidAudienceError:
        raise _unauthenticated("token-invalid", "访问令牌的受众（aud）不正确") from None
    except jwt.InvalidIssuerError:
        raise _unauthenticated("token-invalid", "访问令牌的签发者（iss）不正确") from None
    except jwt.InvalidAlgorithmError:
        raise _unauthenticated("token-invalid", "访问令牌使用了不被接受的签名算法") from None
    except jwt.PyJWTError:
        raise _unauthenticated("token-invalid", "访问令牌无效") from None
    if claims.get("typ") not in allowed_types:
        raise _unauthenticated("token-wrong-type", "此处不接受该类型的令牌")
    return claims
