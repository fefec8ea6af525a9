"""The publication API at the edge: bodies validated here, answers serialised here."""
from __future__ import annotations

import marshmallow as ma

from server.publication.models import PublicationState
from server.schemas import StrictSchema

TEXT_MAX = 2000
STATES = ["overdue", "soon", "due", "unknown"]


def _text(required: bool) -> ma.fields.String:
    options = {"required": True} if required else {}
    return ma.fields.String(validate=ma.validate.Length(min=1, max=TEXT_MAX, error=f"应为 1 到 {TEXT_MAX} 个字符"),
                            **options)


class PublicationSchema(ma.Schema):
    id = ma.fields.UUID()
    decision_id = ma.fields.UUID()
    version = ma.fields.Integer()
    corrects_id = ma.fields.UUID(allow_none=True)
    state = ma.fields.String(attribute="state.value", metadata={"enum": [s.value for s in PublicationState]})
    enforcement_body = ma.fields.String()
    enterprise_name = ma.fields.String()
    credit_code = ma.fields.String()
    inspection_kind = ma.fields.String()
    decision_kind = ma.fields.String()
    conclusion = ma.fields.String()
    decided_on = ma.fields.Date()
    deadline = ma.fields.Date(allow_none=True)
    published_on = ma.fields.Date()
    published_at = ma.fields.AwareDateTime()
    correction_note = ma.fields.String(allow_none=True)
    withdrawn_on = ma.fields.Date(allow_none=True)
    withdrawal_reason = ma.fields.String(allow_none=True)


class StatusSchema(ma.Schema):
    decision_id = ma.fields.UUID(attribute="decision.id")
    decided_on = ma.fields.Date(attribute="decision.decided_on")
    working_days = ma.fields.Integer(metadata={"description": "20, or 7 for licensing and penalty decisions"})
    deadline = ma.fields.Date(metadata={"description": "The last day to publish on (the decision day not counted)"})
    state = ma.fields.String(metadata={"enum": ["overdue", "soon", "due", "published", "withdrawn"]})
    days_left = ma.fields.Integer(metadata={"description": "Working days from today to the deadline"})
    versions = ma.fields.List(ma.fields.Nested(PublicationSchema))


class DeadlineSchema(ma.Schema):
    decision_id = ma.fields.UUID(attribute="decision.id")
    department_code = ma.fields.String(attribute="department.code")
    enterprise_name = ma.fields.String(attribute="enterprise.name")
    kind = ma.fields.String(attribute="decision.kind.value")
    decided_on = ma.fields.Date(attribute="decision.decided_on")
    deadline = ma.fields.Date(allow_none=True)
    days_left = ma.fields.Integer(allow_none=True)
    state = ma.fields.String(metadata={"enum": STATES})
    calendar_error = ma.fields.String(allow_none=True)


class DeadlineList(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(DeadlineSchema))


class DeadlineQuery(StrictSchema):
    department = ma.fields.String(load_default=None, validate=ma.validate.Regexp(r"^[A-Z0-9]{1,20}$",
                                                                                 error="部门代码应为大写字母或数字"))


class CorrectionBody(StrictSchema):
    note = _text(True)
    conclusion = _text(False)


class WithdrawalBody(StrictSchema):
    reason = _text(True)
