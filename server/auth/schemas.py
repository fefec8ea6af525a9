from __future__ import annotations

from typing import Any

import marshmallow as ma

from server.schemas import StrictSchema

_secret = ma.validate.Length(min=1, max=256)


class LoginRequest(StrictSchema):
    username = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=64))
    password = ma.fields.String(required=True, validate=_secret, load_only=True)
    device_id = ma.fields.String(load_default=None, validate=ma.validate.Length(min=1, max=64), metadata={
        "description": "An enrolled tablet: the tokens are bound to it (``dev`` claim); sync needs such a log-in"})
    device_secret = ma.fields.String(load_default=None, validate=_secret, load_only=True,
                                     metadata={"description": "The tablet's secret from its enrolment"})

    @ma.validates_schema
    def _device_pair(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data.get("device_id") is not None and data.get("device_secret") is None:
            raise ma.ValidationError("登录平板时须同时提供设备密钥", "device_secret")
        if data.get("device_secret") is not None and data.get("device_id") is None:
            raise ma.ValidationError("提供设备密钥时须同时提供设备编号", "device_id")


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
    device_id = ma.fields.String(allow_none=True, metadata={"description": "The tablet this log-in is bound to"})
