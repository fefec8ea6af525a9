from __future__ import annotations

import re
from typing import Any

import marshmallow as ma

from server.directory.schemas import DEVICE_ID
from server.schemas import StrictSchema

SHA256_HEX = re.compile(r"^[0-9a-fA-F]{64}$")
BASE64URL = re.compile(r"^[A-Za-z0-9_-]+$")


class UploadMetadata(StrictSchema):
    """The decoded ``Upload-Metadata`` of a creation request (docs/uploads.md).

    Keys this server does not use are ignored: stock tus clients add their own
    (``name``, ``relativePath`` …).
    """

    class Meta(StrictSchema.Meta):
        unknown = ma.EXCLUDE

    sha256 = ma.fields.String(required=True, validate=ma.validate.Regexp(SHA256_HEX, error="应为64位十六进制 SHA-256"))
    filename = ma.fields.String(load_default=None, validate=ma.validate.Length(min=1, max=255))
    filetype = ma.fields.String(load_default=None, validate=ma.validate.Length(min=1, max=100))
    media_id = ma.fields.UUID(load_default=None)
    device_id = ma.fields.String(load_default=None, validate=ma.validate.Regexp(DEVICE_ID, error="不是有效的设备编号"))
    capture_start = ma.fields.AwareDateTime(load_default=None, format="iso")
    # The device's signed capture manifest, kept in the upload's metadata and checked at verification
    # (server.provenance, docs/provenance.md).
    manifest = ma.fields.String(load_default=None, validate=[
        ma.validate.Length(max=2000), ma.validate.Regexp(BASE64URL, error="应为 base64url 编码（不含填充）")])
    manifest_signature = ma.fields.String(load_default=None, validate=[
        ma.validate.Length(equal=86, error="应为 64 字节签名的 base64url 编码（86 个字符）"),
        ma.validate.Regexp(BASE64URL, error="应为 base64url 编码（不含填充）")])

    @ma.post_load
    def _normalise(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        data["sha256"] = data["sha256"].lower()
        return data


class VerificationSchema(ma.Schema):
    status = ma.fields.String(metadata={"description": "pending | verified | failed | needs_review"})
    reasons = ma.fields.List(ma.fields.Raw(), metadata={"description": "code, severity, message (Chinese)"})
    measurements = ma.fields.Dict(
        metadata={"description": "Probe and decode figures: kind, duration, frames, errors …"})
    detections = ma.fields.List(ma.fields.Raw(), metadata={
        "description": "certificate QR texts, unreadable codes and covered-lens intervals, in seconds from the start"})
    analyser = ma.fields.String(allow_none=True)
    verified_at = ma.fields.AwareDateTime()


class MediaSchema(ma.Schema):
    id = ma.fields.UUID(metadata={"description": "For tablet uploads, the synced media record's id"})
    sha256 = ma.fields.String()
    size = ma.fields.Integer()
    content_type = ma.fields.String(allow_none=True)
    file_name = ma.fields.String(allow_none=True)
    device_id = ma.fields.String(allow_none=True)
    capture_start = ma.fields.AwareDateTime(allow_none=True)
    uploaded_at = ma.fields.AwareDateTime()
    department_id = ma.fields.UUID()
    task_id = ma.fields.UUID(allow_none=True)
    verification = ma.fields.Nested(VerificationSchema)


class MediaQuery(StrictSchema):
    sha256 = ma.fields.String(required=True, validate=ma.validate.Regexp(SHA256_HEX, error="应为64位十六进制 SHA-256"))


class MediaList(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(MediaSchema))
