"""What the API shows of inspection assessments."""
from __future__ import annotations

import marshmallow as ma

from server.schemas import PageMeta, PageQuery
from server.uploads.schemas import MediaSchema
from server.verification.flags import FLAG_LABELS


class FlagSchema(ma.Schema):
    code = ma.fields.String(metadata={"description": "One of: " + ", ".join(FLAG_LABELS)})
    label = ma.fields.Function(lambda flag: FLAG_LABELS.get(flag.code, flag.code))
    severity = ma.fields.String(metadata={"description": "error | warning"})
    message = ma.fields.String()
    details = ma.fields.Dict(metadata={"description": "Times are ISO 8601 (UTC); intervals as start/end"})
    media_id = ma.fields.UUID(allow_none=True)
    raised_at = ma.fields.AwareDateTime()


class EvidenceSchema(ma.Schema):
    source = ma.fields.String(metadata={"description": "record (synced by a tablet) | bodycam (attached by time)"})
    media = ma.fields.Nested(MediaSchema)


class AssessmentSummarySchema(ma.Schema):
    inspection_id = ma.fields.UUID()
    task_id = ma.fields.UUID()
    assessed_at = ma.fields.AwareDateTime(allow_none=True, metadata={"description": "None: not assessed yet"})
    errors = ma.fields.Integer()
    warnings = ma.fields.Integer()
    pending_media = ma.fields.Integer(metadata={"description": "Evidence files still being verified"})
    flags = ma.fields.List(ma.fields.Nested(FlagSchema))


class AssessmentSchema(AssessmentSummarySchema):
    evidence = ma.fields.List(ma.fields.Nested(EvidenceSchema))


class AssessmentPage(PageMeta):
    items = ma.fields.List(ma.fields.Nested(AssessmentSummarySchema))


class AssessmentQuery(PageQuery):
    flag = ma.fields.String(load_default=None, validate=ma.validate.OneOf(list(FLAG_LABELS)))
    task_id = ma.fields.UUID(load_default=None)
