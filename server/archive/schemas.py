"""Request and response shapes of the archive's API."""
from __future__ import annotations

import marshmallow as ma

from server.archive.models import HeldObject
from server.archive.retention import REASON_MAX
from server.schemas import StrictSchema


class PlaceHold(StrictSchema):
    object_type = ma.fields.Enum(HeldObject, by_value=True, required=True,
                                 metadata={"description": "inspection (the whole case) or media (one file)"})
    object_id = ma.fields.UUID(required=True)
    reason = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=REASON_MAX))


class LiftHold(StrictSchema):
    reason = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=REASON_MAX))


class HoldQuery(StrictSchema):
    object_id = ma.fields.UUID(load_default=None)
    active = ma.fields.Boolean(load_default=None)
    limit = ma.fields.Integer(load_default=100, validate=ma.validate.Range(min=1, max=500))


class HoldSchema(ma.Schema):
    id = ma.fields.UUID()
    object_type = ma.fields.Enum(HeldObject, by_value=True)
    object_id = ma.fields.UUID()
    department_id = ma.fields.UUID()
    reason = ma.fields.String()
    placed_by = ma.fields.String()
    placed_at = ma.fields.DateTime()
    active = ma.fields.Boolean()
    lifted_by = ma.fields.String(allow_none=True)
    lifted_at = ma.fields.DateTime(allow_none=True)
    lift_reason = ma.fields.String(allow_none=True)


class HoldList(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(HoldSchema))


class DeleteEvidence(StrictSchema):
    reason = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=REASON_MAX))


class ArchiveKeyQuery(StrictSchema):
    format = ma.fields.String(load_default="json", validate=ma.validate.OneOf(["json", "pem"]), metadata={
        "description": "json (default) or pem: the PEM file itself, to save for case-file-verify --public-key"})


class ArchiveKeySchema(ma.Schema):
    algorithm = ma.fields.String(metadata={"description": "Ed25519"})
    public_key_pem = ma.fields.String(metadata={"description": "SubjectPublicKeyInfo PEM"})
    fingerprint = ma.fields.String(metadata={"description": "sha256: and the hex SHA-256 of the raw public key"})
