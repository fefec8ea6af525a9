"""Device keys: a tablet sends its public key with its enrolment, a docking station registers its own."""
from __future__ import annotations

from typing import Any

from flask import request

from server.api import BEARER, Blueprint
from server.auth.policy import Permission, current_principal, requires
from server.directory import schemas as directory_schemas
from server.provenance import schemas as s
from server.provenance import service

blp = Blueprint("device_keys", __name__, url_prefix="/api/v1/devices",
                description="Enrolment and device signing keys (capture provenance, docs/provenance.md)")


@blp.post("/enrol")
@blp.arguments(directory_schemas.EnrolRequest)
@blp.response(201, directory_schemas.Enrolled)
@blp.alt_response(400, description="Wrong or revoked code (enrolment-code-invalid)")
@blp.alt_response(409, description="The public key is already registered (duplicate)")
@blp.alt_response(410, description="Code already used (enrolment-code-used) or expired (enrolment-code-expired)")
@blp.alt_response(429, description="Too many failed attempts")
def enrol(body: dict[str, Any]) -> Any:
    """Enrol a tablet with a one-time code (no log-in) and its signing key; the answer carries its secret, once"""
    return service.enrol(body["code"], request.remote_addr or "unknown", body.get("public_key"))


@blp.post("/key")
@requires(Permission.UPLOAD_MEDIA)
@blp.doc(security=BEARER)
@blp.arguments(s.KeyRequest)
@blp.response(201, s.DeviceKeySchema)
@blp.alt_response(401, description="Not authenticated")
@blp.alt_response(403, description="Not a device token, or the device is retired")
@blp.alt_response(409, description="The device has a key already (device-key-registered), or the key is taken")
@blp.alt_response(422, description="Invalid input")
def register_key(body: dict[str, Any]) -> Any:
    """Register the calling device's Ed25519 public key (a docking station, with its device token; once)"""
    return service.register_own_key(current_principal(), body["public_key"])


@blp.delete("/<string:device_id>/key")
@requires(Permission.MANAGE_DEVICES)
@blp.doc(security=BEARER)
@blp.response(204)
@blp.alt_response(401, description="Not authenticated")
@blp.alt_response(403, description="Role not allowed")
@blp.alt_response(404, description="No such device, outside your department, or it has no key")
def clear_key(device_id: str) -> Any:
    """Clear a device's signing key (revoked from now), so that it may register a new one"""
    service.clear_key(current_principal(), device_id)
    return None
