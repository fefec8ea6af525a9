from __future__ import annotations

from typing import Any

from flask import current_app, request

from server.api import BEARER, Blueprint
from server.auth import service
from server.auth.policy import Permission, current_principal, requires
from server.auth.schemas import (
    DeviceTokenRequest,
    DeviceTokenSchema,
    LoginRequest,
    MeSchema,
    RefreshRequest,
    TokenPairSchema,
)

blp = Blueprint("auth", __name__, url_prefix="/api/v1/auth", description="Log-in, token refresh and device tokens")


def _settings() -> Any:
    return current_app.config["SETTINGS"]


@blp.post("/token")
@blp.arguments(LoginRequest)
@blp.response(200, TokenPairSchema)
@blp.alt_response(401, description="Wrong username or password; or the tablet is unknown, retired or its secret "
                                    "wrong (device-unknown)")
@blp.alt_response(403, description="The tablet belongs to another department (device-not-allowed)")
@blp.alt_response(429, description="Too many failed attempts")
def token(body: dict[str, Any]) -> Any:
    """Log in with username and password; on an enrolled tablet, with its id and secret too (a bound session)"""
    return service.login(_settings(), body["username"], body["password"], request.remote_addr or "unknown",
                         device_id=body.get("device_id"), device_secret=body.get("device_secret"))


@blp.post("/refresh")
@blp.arguments(RefreshRequest)
@blp.response(200, TokenPairSchema)
@blp.alt_response(401, description="Refresh token invalid, expired, revoked or reused")
def refresh(body: dict[str, str]) -> Any:
    """Rotate a refresh token; the old one stops working"""
    return service.refresh(_settings(), body["refresh_token"])


@blp.post("/logout")
@blp.arguments(RefreshRequest)
@blp.response(204)
@blp.alt_response(401, description="Refresh token invalid")
def logout(body: dict[str, str]) -> None:
    """Revoke the session (the refresh token's whole family)"""
    service.logout(body["refresh_token"])


@blp.post("/device-token")
@blp.arguments(DeviceTokenRequest)
@blp.response(200, DeviceTokenSchema)
@blp.alt_response(401, description="Unknown device or wrong secret")
@blp.alt_response(429, description="Too many failed attempts")
def device_token(body: dict[str, str]) -> Any:
    """Exchange device credentials for a token that may only upload and look up media"""
    return service.device_token(_settings(), body["device_id"], body["device_secret"], request.remote_addr or "unknown")


@blp.get("/me")
@requires(Permission.READ_DIRECTORY)
@blp.doc(security=BEARER)
@blp.response(200, MeSchema)
@blp.alt_response(401, description="Not authenticated")
def me() -> Any:
    """Who the access token speaks for"""
    return current_principal()
