"""The evaluations at the edge: the public page's forms, and the office API's bodies and answers."""
from __future__ import annotations

from typing import Any

import marshmallow as ma

from server.evaluations.models import Courtesy, FollowUpStatus
from server.evaluations.service import COMMENT_MAX, CONTACT_MAX, REPLY_MAX, TEXT_MAX
from server.schemas import PageMeta, PageQuery, StrictSchema

YES_NO = {"yes": True, "no": False}
CREDIT_CODE_WANTED = "请输入本企业完整的 18 位统一社会信用代码"


# ---- the public page's forms (HTML form fields; the CSRF token and the button are not ours to read) ----------

def _required(message: str) -> dict[str, str]:
    return {"required": message, "null": message}


class _Form(StrictSchema):
    class Meta(StrictSchema.Meta):
        unknown = ma.EXCLUDE

    credit_code = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=40, error=CREDIT_CODE_WANTED),
                                   error_messages=_required(CREDIT_CODE_WANTED))

    @ma.pre_load
    def _trimmed(self, data: Any, **_: Any) -> Any:
        # A field left empty is a field not given; text is kept as typed, less the blanks around it.
        if not hasattr(data, "items"):
            return data
        return {key: value.strip() for key, value in data.items() if isinstance(value, str) and value.strip()}


class _YesNo(ma.fields.Field):
    default_error_messages = {"invalid": "请选择“是”或“否”"}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if value not in YES_NO:
            raise self.make_error("invalid")
        return YES_NO[value]


class RatingForm(_Form):
    certificate_shown = _YesNo(required=True, error_messages=_required("请选择检查人员是否出示了执法证件"))
    courtesy = ma.fields.Enum(Courtesy, by_value=True, required=True, error_messages={
        **_required("请选择对检查人员文明规范的评价"), "unknown": "请选择满意、基本满意或不满意"})
    disturbed_production = _YesNo(required=True, error_messages=_required("请选择本次检查是否影响了正常生产经营"))
    comment = ma.fields.String(load_default=None, validate=ma.validate.Length(
        max=COMMENT_MAX, error=f"其他意见最多 {COMMENT_MAX} 个字"))


class ComplaintForm(_Form):
    text = ma.fields.String(required=True, error_messages=_required("请填写投诉内容"),
                            validate=ma.validate.Length(max=TEXT_MAX, error=f"投诉内容最多 {TEXT_MAX} 个字"))
    contact = ma.fields.String(load_default=None, validate=ma.validate.Length(
        max=CONTACT_MAX, error=f"联系方式最多 {CONTACT_MAX} 个字"))


class LookUpForm(_Form):
    pass


# ---- the office API -----------------------------------------------------------------------------------

class VersionSchema(ma.Schema):
    version = ma.fields.Integer()
    submitted_at = ma.fields.AwareDateTime()
    certificate_shown = ma.fields.Boolean(metadata={"description": "是否亮证: the team showed their certificates"})
    courtesy = ma.fields.String(attribute="courtesy.value", metadata={
        "enum": [c.value for c in Courtesy], "description": "文明规范: 满意 / 基本满意 / 不满意"})
    disturbed_production = ma.fields.Boolean(metadata={"description": "是否影响正常生产经营"})
    comment = ma.fields.String(allow_none=True)


class EvaluationSchema(ma.Schema):
    id = ma.fields.UUID()
    first_submitted_at = ma.fields.AwareDateTime()
    version = ma.fields.Integer(attribute="current_version", metadata={"description": "The current version"})
    current = ma.fields.Nested(VersionSchema)
    versions = ma.fields.List(ma.fields.Nested(VersionSchema), metadata={"description": "Every version, oldest first"})


class ComplaintSchema(ma.Schema):
    id = ma.fields.UUID(attribute="complaint.id")
    task_id = ma.fields.UUID(attribute="task.id")
    task_title = ma.fields.String(attribute="task.title")
    enterprise_name = ma.fields.String(attribute="task.enterprise.name")
    inspection_id = ma.fields.UUID(allow_none=True)
    number = ma.fields.Integer(attribute="complaint.number", metadata={"description": "1 for the code's first"})
    submitted_at = ma.fields.AwareDateTime(attribute="complaint.submitted_at")
    text = ma.fields.String(attribute="complaint.text")
    has_contact = ma.fields.Boolean(metadata={"description": "The enterprise left a contact for the reply"})
    contact = ma.fields.String(allow_none=True, metadata={
        "description": "Shown to legal reviewers and administrators only; null for everyone else"})
    status = ma.fields.String(attribute="complaint.status.value", metadata={"enum": [s.value for s in FollowUpStatus]})
    reply = ma.fields.String(attribute="complaint.reply", allow_none=True)
    replied_at = ma.fields.AwareDateTime(attribute="complaint.replied_at", allow_none=True)
    replied_by = ma.fields.String(allow_none=True)


class FeedbackSchema(ma.Schema):
    task_id = ma.fields.UUID(attribute="task.id")
    inspection_id = ma.fields.UUID(allow_none=True)
    evaluation = ma.fields.Nested(EvaluationSchema, allow_none=True)
    correctable_until = ma.fields.AwareDateTime(allow_none=True, metadata={
        "description": "Until when the enterprise may still correct its rating"})
    complaints = ma.fields.List(ma.fields.Nested(ComplaintSchema))


class FollowUpQuery(PageQuery):
    status = ma.fields.Enum(FollowUpStatus, by_value=True, load_default=FollowUpStatus.OPEN, metadata={
        "description": "open (the default: the follow-up queue) or closed"})


class ComplaintPage(PageMeta):
    items = ma.fields.List(ma.fields.Nested(ComplaintSchema))


class ReplyBody(StrictSchema):
    reply = ma.fields.String(required=True, validate=ma.validate.Length(
        min=1, max=REPLY_MAX, error=f"应为 1 到 {REPLY_MAX} 个字符"))
