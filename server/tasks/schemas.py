from __future__ import annotations

import marshmallow as ma

from server.planning.frequency import visit_count
from server.schemas import StrictSchema
from server.tasks.models import InspectionTask


class TaskMemberSchema(ma.Schema):
    user_id = ma.fields.UUID()
    department_id = ma.fields.UUID()
    username = ma.fields.String(attribute="user.username")
    full_name = ma.fields.String(attribute="user.full_name")


class TaskSchema(ma.Schema):
    id = ma.fields.UUID()
    title = ma.fields.String()
    enterprise_id = ma.fields.UUID()
    department_id = ma.fields.UUID(metadata={"description": "Lead department"})
    window_start = ma.fields.AwareDateTime()
    window_end = ma.fields.AwareDateTime()
    status = ma.fields.String(attribute="status.value")
    note = ma.fields.String(allow_none=True)
    late_registration_reason = ma.fields.String(allow_none=True, metadata={
        "description": "Why the visit was registered after it began (a late registration); null otherwise"})
    cancelled_at = ma.fields.AwareDateTime(allow_none=True)
    cancel_reason = ma.fields.String(allow_none=True)
    members = ma.fields.List(ma.fields.Nested(TaskMemberSchema))
    check_item_ids = ma.fields.Method("_items")
    frequency = ma.fields.Method("_frequency", metadata={
        "description": "The visit's place among the visits to its enterprise against the frequency cap: "
                       "{visit_number, cap, period_days, warning}; warning names the last visit the cap allows"})

    def _items(self, task: object) -> list[str]:
        return [str(i.check_item_id) for i in getattr(task, "check_items", [])]

    def _frequency(self, task: InspectionTask) -> dict[str, object]:
        count = visit_count(task)
        return {"visit_number": count.visit_number, "cap": count.cap, "period_days": count.period_days,
                "warning": count.warning}


class TaskCreate(StrictSchema):
    title = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=200))
    enterprise_id = ma.fields.UUID(required=True)
    window_start = ma.fields.AwareDateTime(required=True)
    window_end = ma.fields.AwareDateTime(required=True)
    member_ids = ma.fields.List(ma.fields.UUID(), required=True, validate=ma.validate.Length(min=1, max=30))
    check_item_ids = ma.fields.List(ma.fields.UUID(), load_default=list, validate=ma.validate.Length(max=200))
    lead_department_id = ma.fields.UUID(load_default=None, allow_none=True,
                                        metadata={"description": "Defaults to your department"})
    note = ma.fields.String(load_default=None, allow_none=True, validate=ma.validate.Length(max=2000))
    late_registration_reason = ma.fields.String(
        load_default=None, allow_none=True, validate=ma.validate.Length(max=2000),
        metadata={"description": "Registering a visit that already began (its code could not be fetched "
                                 "in time): why. Allowed within INSPECT_ONCE_LATE_REGISTRATION_DAYS of the "
                                 "window's start; the inspection is flagged late-registration"})


class TaskCancel(StrictSchema):
    reason = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=2000))
