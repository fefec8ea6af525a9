from __future__ import annotations

from datetime import UTC, datetime

import marshmallow as ma

from server.audit.models import Outcome
from server.schemas import StrictSchema

_SHORT = ma.validate.Length(min=1, max=150)
# Far dates with an offset cannot be converted to UTC (year 1 at +01:00): refuse them as input errors.
_WHEN = ma.validate.Range(min=datetime(1970, 1, 1, tzinfo=UTC), max=datetime(9000, 1, 1, tzinfo=UTC),
                          error="时间超出范围")


class AuditQuery(StrictSchema):
    action = ma.fields.String(load_default=None, validate=ma.validate.Length(min=1, max=64),
                              metadata={"description": "e.g. auth.login_failed, media.stream"})
    object_type = ma.fields.String(load_default=None, validate=ma.validate.Length(min=1, max=40))
    object_id = ma.fields.String(load_default=None, validate=ma.validate.Length(min=1, max=64))
    actor = ma.fields.String(load_default=None, validate=_SHORT,
                             metadata={"description": "Username or id of the actor"})
    outcome = ma.fields.String(load_default=None, validate=ma.validate.OneOf([o.value for o in Outcome]))
    since = ma.fields.AwareDateTime(load_default=None, format="iso", validate=_WHEN,
                                    metadata={"description": "From this time (inclusive)"})
    until = ma.fields.AwareDateTime(load_default=None, format="iso", validate=_WHEN,
                                    metadata={"description": "Before this time"})
    limit = ma.fields.Integer(load_default=50, validate=ma.validate.Range(min=1, max=200))
    after = ma.fields.Integer(load_default=None, validate=ma.validate.Range(min=1, max=2**62),
                              metadata={"description": "next_after of the previous page (entries are newest first)"})


class ActorSchema(ma.Schema):
    kind = ma.fields.String(attribute="actor_kind.value",
                            metadata={"description": "user | device | system | anonymous"})
    id = ma.fields.String(attribute="actor_id", allow_none=True)
    username = ma.fields.String(attribute="actor_username", allow_none=True)
    department_id = ma.fields.UUID(attribute="actor_department_id", allow_none=True)


class AuditEntrySchema(ma.Schema):
    seq = ma.fields.Integer()
    occurred_at = ma.fields.AwareDateTime()
    actor = ma.fields.Nested(ActorSchema, attribute="actor")
    department_id = ma.fields.UUID(allow_none=True, metadata={"description": "The object's department"})
    action = ma.fields.String()
    object_type = ma.fields.String(allow_none=True)
    object_id = ma.fields.String(allow_none=True)
    outcome = ma.fields.String(attribute="outcome.value", metadata={"description": "success | denied | failed"})
    details = ma.fields.Dict()
    client_ip = ma.fields.String(allow_none=True)
    prev_hash = ma.fields.String()
    hash = ma.fields.String()


class AuditPage(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(AuditEntrySchema))
    next_after = ma.fields.String(allow_none=True)
