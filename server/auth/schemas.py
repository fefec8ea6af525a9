from __future__ import annotations

import marshmallow as ma

from server.schemas import StrictSchema

_secret = ma.validate.Length(min=1, max=256)


class LoginRequest(StrictSchema):
    username = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=64))
    password = ma.fields.String(required=True, validate=_secret, load_only=True)


class RefreshRequest(StrictSchema):
    refresh_token = ma.fields.String(required=True, validate=_secret, load_only=True)


class DeviceTokenRequest(StrictSchema):
    device_id = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=64))
    device_secret = ma.fields.String(required=True, validate=_secret, load_only=True)


class TokenPairSchema(ma.Schema):
    access_token = ma.fields.String(required=True)
    refresh_token = ma.fields.String(required=True)
    token_type = ma.fields.String(required=True)
    expires_in = ma.fields.Integer(required=True, metadata={"description": "Seconds the access token lives"})


class DeviceTokenSchema(ma.Schema):
    access_token = ma.fields.String(required=True)
    token_type = ma.fields.String(required=True)
    expires_in = ma.fields.Integer(required=True)


class MeSchema(ma.Schema):
    kind = ma.fields.String()
    id = ma.fields.String()
    role = ma.fields.String()
    department_id = ma.fields.UUID()
