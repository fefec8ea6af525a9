"""Visits: the one way a visit is created (draws and direct task creation).

``schedule_visit(...)`` applies the frequency cap, folds the request into another department's visit to
the same enterprise when one is close, and asks every participating department's approval. A visit
whose window already began may be registered late, with a reason, within
``INSPECT_ONCE_LATE_REGISTRATION_DAYS`` of its start (``check_registration``).
"""
from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import select

from server.audit import service as audit
from server.auth.policy import Principal
from server.db_types import utcnow
from server.directory.models import Enterprise, User
from server.errors import Problem
from server.extensions import db
from server.planning.approval import participants, request_approvals
from server.planning.common import field_error
from server.planning.frequency import Frequency, frequency_rule, inspections_around, usable_override
from server.planning.models import FrequencyOverride
from server.tasks.models import InspectionTask, TaskCheckItem, TaskMember, TaskStatus


def check_window(window_start: datetime, window_end: datetime) -> None:
    """A visit window in a plausible range: date arithmetic on year 1 or 9999 would overflow."""
    if window_end <= window_start:
        raise field_error("window_end", "结束时间应晚于开始时间")
    for field, moment in (("window_start", window_start), ("window_end", window_end)):
        if not 2000 <= moment.year <= 2100:
            raise field_error(field, "检查时间应在 2000 年至 2100 年之间")


def check_registration(principal: Principal, window_start: datetime, late_reason: str | None) -> str | None:
    """The late-registration reason to keep (None: an ordinary registration), or a refusal.

    A window that already began is not late by itself (an office registers today's 8:00 visit at 9:00);
    a reason marks the task as registered late (the visit had to begin before its code could be fetched),
    which its inspection's flags then say. A window that started more than the configured number of days
    ago is refused, with or without a reason, except for the system principal (seed data, fixtures): the
    office records what happened through a user's account, and the rule holds for every account.
    """
    reason = (late_reason or "").strip() or None
    now = utcnow()
    if reason is not None and window_start > now:
        raise field_error("late_registration_reason", "检查时间尚未开始，不是补登记，请删除补登记理由")
    days = current_app.config["SETTINGS"].late_registration_days
    if principal.kind != "system" and window_start < now - timedelta(days=days):
        raise field_error("window_start", f"检查开始时间早于 {days} 天前：补登记只能在检查开始后 {days} 天内办理")
    return reason


@dataclass
class Visit:
    """What schedule_visit did: created a task or folded the request into an existing one."""

    task: InspectionTask
    folded: bool
    override: FrequencyOverride | None = None


def _foldable_task(enterprise_id: uuid.UUID, window_start: datetime, lead: uuid.UUID,
                   rule: Frequency) -> InspectionTask | None:
    """Another department's visit to the same enterprise, not yet started, close enough to join."""
    span = timedelta(days=rule.fold_window_days)
    now = utcnow()
    candidates = db.session.scalars(select(InspectionTask).where(
        InspectionTask.enterprise_id == enterprise_id,
        InspectionTask.status.in_((TaskStatus.PENDING_APPROVAL, TaskStatus.DISPATCHED)),
        InspectionTask.window_start > now,
        InspectionTask.window_start >= window_start - span, InspectionTask.window_start <= window_start + span,
    ).order_by(InspectionTask.window_start, InspectionTask.id))
    for task in candidates:
        if lead not in participants(task):
            return task
    return None


def schedule_visit(principal: Principal, *, title: str, enterprise_id: uuid.UUID, lead_department_id: uuid.UUID,
                   window_start: datetime, window_end: datetime, members: list[User], check_item_ids: list[uuid.UUID],
                   equivalence: Mapping[uuid.UUID, str] | None = None, note: str | None = None,
                   late_registration_reason: str | None = None) -> Visit:
    """Create a visit, or fold it into another department's visit to the same enterprise.

    A new visit beyond the frequency cap is refused unless the lead department
    holds an approved, unused override, which it then uses up. A late registration
    (``check_registration``) is never folded: the visit it records already began.
    """
    check_window(window_start, window_end)
    late_reason = check_registration(principal, window_start, late_registration_reason)
    # One scheduling per enterprise at a time (until commit): two requests could otherwise both
    # count the visits below the cap, or both miss the visit to fold into.
    db.session.get(Enterprise, enterprise_id, with_for_update=True)
    rule = frequency_rule()
    equivalence = equivalence or {}
    existing = None if late_reason else _foldable_task(enterprise_id, window_start, lead_department_id, rule)
    if existing is not None:
        on_team = {m.user_id for m in existing.members}
        existing.members.extend(TaskMember(user_id=u.id, department_id=u.department_id)
                                for u in members if u.id not in on_team)
        listed = {i.check_item_id for i in existing.check_items}
        existing.check_items.extend(_task_item(i, equivalence) for i in check_item_ids if i not in listed)
        db.session.flush()
        request_approvals(existing, principal)
        return Visit(existing, folded=True)
    override = None
    if inspections_around(enterprise_id, window_start, rule) >= rule.max_inspections:
        override = usable_override(enterprise_id, [lead_department_id])
        if override is None:
            raise Problem(409, "frequency-cap-reached",
                          f"该检查对象在 {rule.period_days} 天内已安排 {rule.max_inspections} 次检查，达到频次上限；"
                          "如确需再次检查，请说明理由并经部门负责人批准超频次检查",
                          errors={"enterprise_id": ["检查频次已达上限"]}, extra={"enterprise_id": str(enterprise_id)})
    task = InspectionTask(title=title, enterprise_id=enterprise_id, department_id=lead_department_id,
                          window_start=window_start, window_end=window_end, status=TaskStatus.PENDING_APPROVAL,
                          created_by_id=principal.user_id, note=note, late_registration_reason=late_reason)
    task.members = [TaskMember(user_id=u.id, department_id=u.department_id) for u in members]
    task.check_items = [_task_item(i, equivalence) for i in check_item_ids]
    db.session.add(task)
    db.session.flush()
    if override is not None:
        override.used_by_task_id = task.id
        audit.record("frequency_override.use", object_type="frequency_override", object_id=str(override.id),
                     actor=principal, details={"task_id": str(task.id)})
    if late_reason:
        audit.record("task.late_registration", object_type="task", object_id=str(task.id), actor=principal,
                     details={"reason": late_reason})
    request_approvals(task, principal)
    return Visit(task, folded=False, override=override)


def _task_item(check_item_id: uuid.UUID, equivalence: Mapping[uuid.UUID, str]) -> TaskCheckItem:
    return TaskCheckItem(check_item_id=check_item_id, equivalence_group=equivalence.get(check_item_id))
