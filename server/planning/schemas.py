from __future__ import annotations

from typing import Any

import marshmallow as ma

from server.planning.approval import task_approvals
from server.schemas import PageMeta, PageQuery, StrictSchema
from server.tasks.schemas import TaskSchema

_TEXT_200 = ma.validate.Length(min=1, max=200)


class TargetFilter(StrictSchema):
    """Which directory entries are candidates; an empty list means any."""

    industries = ma.fields.List(ma.fields.String(validate=ma.validate.Length(min=1, max=100)),
                                load_default=list, validate=ma.validate.Length(max=50))
    risk_levels = ma.fields.List(ma.fields.String(validate=ma.validate.Length(min=1, max=10)),
                                 load_default=list, validate=ma.validate.Length(max=10))
    address_contains = ma.fields.String(load_default=None, allow_none=True, validate=ma.validate.Length(min=1, max=100),
                                        metadata={"description": "District or street, matched within the address"})
    supervising_department_ids = ma.fields.List(ma.fields.UUID(), load_default=list,
                                                validate=ma.validate.Length(max=50),
                                                metadata={"description": "Kept in the directory of any of these"})


class TargetFilterOut(ma.Schema):
    industries = ma.fields.List(ma.fields.String())
    risk_levels = ma.fields.List(ma.fields.String())
    address_contains = ma.fields.String(allow_none=True)
    supervising_department_ids = ma.fields.List(ma.fields.String())


_RATIO = ma.validate.Range(min=0, max=1, min_inclusive=False)


class PlanCreate(StrictSchema):
    title = ma.fields.String(required=True, validate=_TEXT_200)
    subject_kind = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=100),
                                    metadata={"description": "Kind of subject, e.g. 食品生产企业"})
    period_start = ma.fields.Date(required=True)
    period_end = ma.fields.Date(required=True)
    target_filter = ma.fields.Nested(TargetFilter, load_default=dict)
    check_item_ids = ma.fields.List(ma.fields.UUID(), required=True, validate=ma.validate.Length(min=1, max=200))
    sampling_ratio = ma.fields.Float(required=True, allow_nan=False, validate=_RATIO)
    department_id = ma.fields.UUID(load_default=None, allow_none=True, metadata={"description": "Defaults to yours"})


class PlanSchema(ma.Schema):
    id = ma.fields.UUID()
    department_id = ma.fields.UUID()
    title = ma.fields.String()
    subject_kind = ma.fields.String()
    period_start = ma.fields.Date()
    period_end = ma.fields.Date()
    target_filter = ma.fields.Nested(TargetFilterOut)
    check_item_ids = ma.fields.List(ma.fields.UUID())
    sampling_ratio = ma.fields.Float()
    created_at = ma.fields.AwareDateTime()


class PlanQuery(PageQuery):
    department_id = ma.fields.UUID(load_default=None)


class PlanPage(PageMeta):
    items = ma.fields.List(ma.fields.Nested(PlanSchema))


class EquivalenceIn(StrictSchema):
    key = ma.fields.String(required=True, validate=[ma.validate.Length(min=1, max=64),
                                                    ma.validate.Regexp(r"^[A-Za-z0-9_.:-]+$")],
                           metadata={"description": "Stable group key, e.g. licence-displayed"})
    title = ma.fields.String(required=True, validate=_TEXT_200)
    check_item_ids = ma.fields.List(ma.fields.UUID(), required=True, validate=ma.validate.Length(min=2, max=20))


class JointPlanCreate(StrictSchema):
    title = ma.fields.String(required=True, validate=_TEXT_200)
    plan_ids = ma.fields.List(ma.fields.UUID(), required=True, validate=ma.validate.Length(min=2, max=20))
    target_filter = ma.fields.Nested(TargetFilter, load_default=dict)
    sampling_ratio = ma.fields.Float(required=True, allow_nan=False, validate=_RATIO)
    equivalences = ma.fields.List(ma.fields.Nested(EquivalenceIn), load_default=list,
                                  validate=ma.validate.Length(max=100))
    department_id = ma.fields.UUID(load_default=None, allow_none=True,
                                   metadata={"description": "Lead department; defaults to yours"})


class EquivalenceOut(ma.Schema):
    key = ma.fields.String()
    title = ma.fields.String()
    check_item_ids = ma.fields.List(ma.fields.UUID())


class JointPlanSchema(ma.Schema):
    id = ma.fields.UUID()
    department_id = ma.fields.UUID(metadata={"description": "Lead department"})
    title = ma.fields.String()
    subject_kind = ma.fields.String()
    period_start = ma.fields.Date()
    period_end = ma.fields.Date()
    target_filter = ma.fields.Nested(TargetFilterOut)
    sampling_ratio = ma.fields.Float()
    plan_ids = ma.fields.Method("_plan_ids")
    equivalences = ma.fields.List(ma.fields.Nested(EquivalenceOut), attribute="groups")
    created_at = ma.fields.AwareDateTime()

    def _plan_ids(self, joint: Any) -> list[str]:
        return [str(p.plan_id) for p in joint.participants]


class JointPlanPage(PageMeta):
    items = ma.fields.List(ma.fields.Nested(JointPlanSchema))


class DrawCreate(StrictSchema):
    plan_id = ma.fields.UUID(load_default=None, allow_none=True)
    joint_plan_id = ma.fields.UUID(load_default=None, allow_none=True)
    window_start = ma.fields.AwareDateTime(required=True)
    window_end = ma.fields.AwareDateTime(required=True)
    inspectors_per_department = ma.fields.Integer(load_default=2, validate=ma.validate.Range(min=2, max=10),
                                                  metadata={"description": "At least two on site per department"})
    seed = ma.fields.String(load_default=None, allow_none=True,
                            validate=[ma.validate.Length(min=8, max=64), ma.validate.Regexp(r"^[A-Za-z0-9_-]+$")],
                            metadata={"description": "Defaults to a fresh random seed; recorded either way"})


class DrawSummary(ma.Schema):
    id = ma.fields.UUID()
    department_id = ma.fields.UUID()
    plan_id = ma.fields.UUID(allow_none=True)
    joint_plan_id = ma.fields.UUID(allow_none=True)
    seed = ma.fields.String()
    input_hash = ma.fields.String(metadata={"description": "SHA-256 of canonical JSON of the seed and every input"})
    result_hash = ma.fields.String()
    task_ids = ma.fields.List(ma.fields.String())
    created_at = ma.fields.AwareDateTime()


class DrawSchema(DrawSummary):
    inputs = ma.fields.Dict(metadata={"description": "Candidates, pools with certificates, conflicts, parameters"})
    result = ma.fields.Dict()


class DrawPage(PageMeta):
    items = ma.fields.List(ma.fields.Nested(DrawSummary))


class DrawVerificationSchema(ma.Schema):
    draw_id = ma.fields.String()
    reproduced = ma.fields.Boolean()
    input_hash_matches = ma.fields.Boolean()
    result_matches = ma.fields.Boolean()
    stored_input_hash = ma.fields.String()
    recomputed_input_hash = ma.fields.String()
    problems = ma.fields.List(ma.fields.String())
    matches_audit_log = ma.fields.Boolean(allow_none=True)


class ReasonIn(StrictSchema):
    reason = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=2000))


class ApprovalSchema(ma.Schema):
    department_id = ma.fields.UUID()
    status = ma.fields.String(attribute="status.value")
    decided_by_id = ma.fields.UUID(allow_none=True)
    decided_at = ma.fields.AwareDateTime(allow_none=True)
    reason = ma.fields.String(allow_none=True)


class TaskWithApprovals(TaskSchema):
    approvals = ma.fields.Method("_approvals")

    def _approvals(self, task: Any) -> list[dict[str, Any]]:
        return ApprovalSchema(many=True).dump(task_approvals(task.id))  # type: ignore[no-any-return]


class TaskList(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(TaskWithApprovals))


class ConflictOfInterestCreate(StrictSchema):
    user_id = ma.fields.UUID(required=True)
    enterprise_id = ma.fields.UUID(required=True)
    reason = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=2000))


class ConflictOfInterestSchema(ma.Schema):
    id = ma.fields.UUID()
    user_id = ma.fields.UUID()
    enterprise_id = ma.fields.UUID()
    department_id = ma.fields.UUID()
    reason = ma.fields.String()
    declared_by_id = ma.fields.UUID(allow_none=True)
    declared_at = ma.fields.AwareDateTime()


class ConflictOfInterestPage(PageMeta):
    items = ma.fields.List(ma.fields.Nested(ConflictOfInterestSchema))


class OverrideCreate(StrictSchema):
    enterprise_id = ma.fields.UUID(required=True)
    reason = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=2000))
    department_id = ma.fields.UUID(load_default=None, allow_none=True, metadata={"description": "Defaults to yours"})


class OverrideSchema(ma.Schema):
    id = ma.fields.UUID()
    enterprise_id = ma.fields.UUID()
    department_id = ma.fields.UUID()
    reason = ma.fields.String()
    status = ma.fields.String(attribute="status.value")
    requested_by_id = ma.fields.UUID(allow_none=True)
    requested_at = ma.fields.AwareDateTime()
    decided_by_id = ma.fields.UUID(allow_none=True)
    decided_at = ma.fields.AwareDateTime(allow_none=True)
    decision_reason = ma.fields.String(allow_none=True)
    used_by_task_id = ma.fields.UUID(allow_none=True)


class OverridePage(PageMeta):
    items = ma.fields.List(ma.fields.Nested(OverrideSchema))


class FrequencyRuleSchema(StrictSchema):
    max_inspections = ma.fields.Integer(required=True, validate=ma.validate.Range(min=1, max=100))
    period_days = ma.fields.Integer(required=True, validate=ma.validate.Range(min=1, max=3660))
    fold_window_days = ma.fields.Integer(required=True, validate=ma.validate.Range(min=0, max=366))
