from __future__ import annotations

import marshmallow as ma

from server.schemas import StrictSchema
from server.sync.entities import ENTITY_KINDS
from server.sync.hlc import HLC_PATTERN

MAX_BATCH = 500


class MutationSchema(StrictSchema):
    id = ma.fields.UUID(required=True, metadata={"description": "Client-generated mutation id"})
    entity = ma.fields.String(required=True, validate=ma.validate.OneOf(sorted(ENTITY_KINDS)))
    entity_id = ma.fields.UUID(required=True)
    op = ma.fields.String(required=True, validate=ma.validate.OneOf(["upsert", "delete"]))
    base_version = ma.fields.Integer(required=True, strict=True, validate=ma.validate.Range(min=0, max=2**31))
    hlc = ma.fields.String(required=True, validate=ma.validate.Regexp(HLC_PATTERN, error="Not an HLC stamp (see docs/sync.md)."))
    fields = ma.fields.Dict(keys=ma.fields.String(validate=ma.validate.Length(max=64)), load_default=dict,
                            metadata={"description": "Changed fields; see docs/sync.md for each entity's fields"})


class PushRequest(StrictSchema):
    device_id = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=64))
    mutations = ma.fields.List(ma.fields.Nested(MutationSchema), required=True,
                               validate=ma.validate.Length(min=1, max=MAX_BATCH))


class MutationResultSchema(ma.Schema):
    id = ma.fields.String()
    status = ma.fields.String(metadata={"description": "applied | duplicate | rejected | conflict"})
    version = ma.fields.Integer(allow_none=True)
    code = ma.fields.String(allow_none=True, metadata={"description": "Why it was rejected (machine-readable)"})
    reason = ma.fields.String(allow_none=True)

    @ma.post_dump
    def _omit_empty(self, data: dict[str, object], **_: object) -> dict[str, object]:
        return {k: v for k, v in data.items() if v is not None}


class PushResponse(ma.Schema):
    results = ma.fields.List(ma.fields.Nested(MutationResultSchema))


class PullQuery(StrictSchema):
    cursor = ma.fields.String(load_default=None, validate=ma.validate.Length(max=100))
    limit = ma.fields.Integer(load_default=200, validate=ma.validate.Range(min=1, max=1000))


class ChangeSchema(ma.Schema):
    entity = ma.fields.String()
    entity_id = ma.fields.String()
    op = ma.fields.String()
    version = ma.fields.Integer()
    fields = ma.fields.Dict()
    meta = ma.fields.Dict(allow_none=True)
    updated_at = ma.fields.AwareDateTime(allow_none=True)


class PullResponse(ma.Schema):
    changes = ma.fields.List(ma.fields.Nested(ChangeSchema))
    cursor = ma.fields.String()
    has_more = ma.fields.Boolean()


class ConflictQuery(StrictSchema):
    task_id = ma.fields.UUID(required=True)


class ConflictSchema(ma.Schema):
    id = ma.fields.UUID()
    entity_id = ma.fields.UUID()
    field = ma.fields.String()
    kept_value = ma.fields.Raw(allow_none=True)
    kept_hlc = ma.fields.String()
    lost_value = ma.fields.Raw(allow_none=True)
    lost_hlc = ma.fields.String()
    mutation_id = ma.fields.UUID()
    detected_at = ma.fields.AwareDateTime()
