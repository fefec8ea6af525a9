from __future__ import annotations

import uuid

import marshmallow as ma

from server.schemas import StrictSchema
from server.sync.entities import Kind
from server.sync.hlc import HLC_PATTERN

MAX_BATCH = 500


class MutationSchema(StrictSchema):
    id = ma.fields.UUID(required=True, metadata={"description": "Client-generated mutation id"})
    entity = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=64), metadata={
        "description": "One of " + ", ".join(k.value for k in Kind) + "; a kind this server does not know "
                       "(a newer app) is refused for that mutation alone (unknown-entity-kind)"})
    entity_id = ma.fields.UUID(required=True)
    op = ma.fields.String(required=True, validate=ma.validate.OneOf(["upsert", "delete"]))
    base_version = ma.fields.Integer(required=True, strict=True, validate=ma.validate.Range(min=0, max=2**31))
    hlc = ma.fields.String(required=True,
                           validate=ma.validate.Regexp(HLC_PATTERN, error="Not an HLC stamp (see docs/sync.md)."))
    fields = ma.fields.Dict(keys=ma.fields.String(validate=ma.validate.Length(max=64)), load_default=dict,
                            metadata={"description": "Changed fields; see docs/sync.md for each entity's fields"})


_MUTATION_KEYS = frozenset(MutationSchema().fields)
_REQUIRED_KEYS = frozenset(name for name, f in MutationSchema().fields.items() if f.required)


class MutationField(ma.fields.Nested):
    """Documented as ``MutationSchema``; loaded by a hand-written check of the same rules.

    A push carries up to 500 mutations and a generic nested load costs more
    than the whole merge. tests/server/sync/test_schemas.py holds both to the
    same verdict on good and bad input.
    """

    def __init__(self, **kwargs: object) -> None:
        super().__init__(MutationSchema, **kwargs)  # type: ignore[arg-type]

    def _deserialize(self, value: object, attr: str | None, data: object, **kwargs: object) -> dict[str, object]:
        if not isinstance(value, dict):
            raise ma.ValidationError({"_schema": ["Invalid input type."]})
        errors: dict[str, list[str]] = {}
        for key in value.keys() - _MUTATION_KEYS:
            errors[str(key).encode("utf-8", "backslashreplace").decode()] = ["Unknown field."]
        for key in _REQUIRED_KEYS - value.keys():
            errors[key] = ["Missing data for required field."]
        out: dict[str, object] = {}
        for key in ("id", "entity_id"):
            if key in value:
                try:
                    out[key] = uuid.UUID(value[key]) if isinstance(value[key], str) else _bad()
                except (ValueError, TypeError):
                    errors[key] = ["Not a valid UUID."]
        entity = value.get("entity")
        # Which kinds exist is the merge's business: an unknown one is refused per mutation, so that a
        # tablet running a newer app (or one damaged outbox row) never blocks the rest of its outbox.
        if "entity" in value and not (isinstance(entity, str) and 1 <= len(entity) <= 64):
            errors["entity"] = ["Must be a kind of record, 1 to 64 characters."]
        op = value.get("op")
        if "op" in value and op not in ("upsert", "delete"):
            errors["op"] = ["Must be one of: upsert, delete."]
        base = value.get("base_version")
        if "base_version" in value and (type(base) is not int or not 0 <= base <= 2**31):
            errors["base_version"] = ["Must be an integer between 0 and 2147483648."]
        stamp = value.get("hlc")
        if "hlc" in value and not (isinstance(stamp, str) and HLC_PATTERN.match(stamp)):
            errors["hlc"] = ["Not an HLC stamp (see docs/sync.md)."]
        fields = value.get("fields", {})
        if not isinstance(fields, dict) or any(not isinstance(k, str) or len(k) > 64 for k in fields):
            errors["fields"] = ["Must be an object whose keys are field names."]
        if errors:
            raise ma.ValidationError(errors)
        out.update(entity=entity, op=op, base_version=base, hlc=stamp, fields=fields)
        return out


def _bad() -> uuid.UUID:
    raise ValueError


class PushRequest(StrictSchema):
    device_id = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=64))
    mutations = ma.fields.List(MutationField(), required=True, validate=ma.validate.Length(min=1, max=MAX_BATCH))


class MutationResultSchema(ma.Schema):
    id = ma.fields.String()
    status = ma.fields.String(metadata={"description": "applied | duplicate | rejected | conflict"})
    version = ma.fields.Integer(allow_none=True)
    code = ma.fields.String(allow_none=True, metadata={"description": "Why it was rejected (machine-readable)"})
    reason = ma.fields.String(allow_none=True)

    @ma.post_dump
    def _omit_empty(self, data: dict[str, object], **_: object) -> dict[str, object]:
        return {k: v for k, v in data.items() if v is not None}


class ResultField(ma.fields.Nested):
    """Documented as ``MutationResultSchema``; written directly (500 per answer)."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(MutationResultSchema, **kwargs)  # type: ignore[arg-type]

    def _serialize(self, value: object, attr: str | None, obj: object, **kwargs: object) -> dict[str, object]:
        return {k: v for k, v in vars(value).items() if v is not None}


class PushResponse(ma.Schema):
    results = ma.fields.List(ResultField())


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
