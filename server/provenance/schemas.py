from __future__ import annotations

import marshmallow as ma

from server.directory.schemas import PublicKeyField
from server.schemas import StrictSchema


class KeyRequest(StrictSchema):
    public_key = PublicKeyField(required=True)


class DeviceKeySchema(ma.Schema):
    device_id = ma.fields.String()
    public_key = ma.fields.String()
    registered_at = ma.fields.AwareDateTime()
    revoked_at = ma.fields.AwareDateTime(allow_none=True)
