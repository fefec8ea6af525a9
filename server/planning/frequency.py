"""Frequency control: at most so many visits per enterprise in a period, beyond it only by an approved override."""
from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from server.audit import service as audit
from server.auth.policy import Permission, Principal, authorize_object, scope_query
from server.db_types import utcnow
from server.directory.models import Department, Enterprise
from server.errors import Problem
from server.extensions import db
from server.loading import load_authorized
from server.pagination import Page, keyset_page
from server.planning.common import Owned, field_error
from server.planning.models import ApprovalStatus, FrequencyOverride, FrequencyRule
from server.tasks.models import InspectionTask, TaskStatus

DEFAULT_MAX_INSPECTIONS = 2
DEFAULT_PERIOD_DAYS = 365
DEFAULT_FOLD_WINDOW_DAYS = 30

# Tasks that count as visits for the frequency cap.
COUNTED_STATUSES = (TaskStatus.PENDING_APPROVAL, TaskStatus.DISPATCHED, TaskStatus.CLOSED)


@dataclass(frozen=True)
class Frequency:
    """The cap in force: visits per period, and how close another department's visit must be to join it."""

    max_inspections: int
    period_days: int
    fold_window_days: int


def frequency_rule() -> Frequency:
    """The rule an administrator set, or the defaults."""
    row = db.session.get(FrequencyRule, 1)
    if row is None:
        return Frequency(DEFAULT_MAX_INSPECTIONS, DEFAULT_PERIOD_DAYS, DEFAULT_FOLD_WINDOW_DAYS)
    return Frequency(row.max_inspections, row.period_days, row.fold_window_days)


def set_frequency_rule(principal: Principal, data: Mapping[str, Any]) -> Frequency:
    """An administrator sets the cap."""
    authorize_object(principal, Permission.MANAGE_FREQUENCY_RULE, None)
    row = db.session.get(FrequencyRule, 1)
    if row is None:
        row = FrequencyRule(id=1)
        db.session.add(row)
    row.max_inspections = data["max_inspections"]
    row.period_days = data["period_days"]
    row.fold_window_days = data["fold_window_days"]
    row.updated_by_id = principal.user_id
    db.session.flush()
    return frequency_rule()


def inspections_around(enterprise_id: uuid.UUID, moment: datetime, rule: Frequency) -> int:
    """Visits to the enterprise starting less than a period before or after ``moment``."""
    span = timedelta(days=rule.period_days)
    query = select(func.count()).select_from(InspectionTask).where(
        InspectionTask.enterprise_id == enterprise_id, InspectionTask.status.in_(COUNTED_STATUSES),
        InspectionTask.window_start > moment - span, InspectionTask.window_start < moment + span)
    return int(db.session.scalar(query) or 0)


def visits_counted_before(enterprise_id: uuid.UUID, moment: datetime, rule: Frequency,
                          excluding: uuid.UUID | None = None) -> int:
    """Visits to the enterprise starting in the period up to ``moment`` (a joint visit is one task: counted once)."""
    query = select(func.count()).select_from(InspectionTask).where(
        InspectionTask.enterprise_id == enterprise_id, InspectionTask.status.in_(COUNTED_STATUSES),
        InspectionTask.window_start > moment - timedelta(days=rule.period_days), InspectionTask.window_start <= moment)
    if excluding is not None:
        query = query.where(InspectionTask.id != excluding)
    return int(db.session.scalar(query) or 0)


@dataclass(frozen=True)
class VisitCount:
    """Where a visit stands against the cap: the how-manieth visit to its enterprise in the period it is."""

    visit_number: int
    cap: int
    period_days: int

    @property
    def at_cap(self) -> bool:
        """The last visit the cap allows: planners and approvers are warned."""
        return self.visit_number == self.cap

    @property
    def over_cap(self) -> bool:
        """Beyond the cap: only with an approved override (``schedule_visit``)."""
        return self.visit_number > self.cap

    @property
    def warning(self) -> str | None:
        if self.over_cap:
            return (f"该企业近 {self.period_days} 天内第 {self.visit_number} 次检查，超过上限 {self.cap} 次"
                    "（已经批准超频次检查）")
        if self.at_cap:
            return (f"该企业近 {self.period_days} 天内第 {self.visit_number} 次检查，已达上限 {self.cap} 次，"
                    "此后不能再安排")
        return None


def visit_count(task: InspectionTask, rule: Frequency | None = None) -> VisitCount:
    """The task's place among the visits to its enterprise in the period up to its window start."""
    rule = rule or frequency_rule()
    return VisitCount(visits_counted_before(task.enterprise_id, task.window_start, rule, task.id) + 1,
                      rule.max_inspections, rule.period_days)


def usable_override(enterprise_id: uuid.UUID, department_ids: Iterable[uuid.UUID]) -> FrequencyOverride | None:
    """The oldest approved, unused override of one of the departments for one more visit to the enterprise."""
    return db.session.scalar(select(FrequencyOverride).where(
        FrequencyOverride.enterprise_id == enterprise_id, FrequencyOverride.department_id.in_(list(department_ids)),
        FrequencyOverride.status == ApprovalStatus.APPROVED, FrequencyOverride.used_by_task_id.is_(None))
        .order_by(FrequencyOverride.decided_at, FrequencyOverride.id).limit(1))


def request_override(principal: Principal, data: Mapping[str, Any]) -> FrequencyOverride:
    """Ask to exceed the cap for one more visit; takes effect once the department's head approves."""
    department_id = data.get("department_id") or principal.department_id
    if db.session.get(Department, department_id) is None:
        raise field_error("department_id", "部门不存在")
    authorize_object(principal, Permission.REQUEST_FREQUENCY_OVERRIDE, Owned(department_id),
                     visible=Permission.READ_PLANS)
    if db.session.get(Enterprise, data["enterprise_id"]) is None:
        raise field_error("enterprise_id", "检查对象不存在")
    override = FrequencyOverride(enterprise_id=data["enterprise_id"], department_id=department_id,
                                 reason=data["reason"], status=ApprovalStatus.PENDING,
                                 requested_by_id=principal.user_id)
    db.session.add(override)
    db.session.flush()
    audit.record("frequency_override.request", object_type="frequency_override", object_id=str(override.id),
                 actor=principal, details={"enterprise_id": str(override.enterprise_id), "reason": override.reason})
    return override


def get_override(principal: Principal, override_id: uuid.UUID) -> FrequencyOverride:
    """A request of the caller's department (any department's, for an administrator)."""
    return load_authorized(principal, FrequencyOverride, override_id, Permission.REQUEST_FREQUENCY_OVERRIDE,
                           not_found="超频次检查申请不存在")


def list_overrides(principal: Principal, limit: int, after: str | None) -> Page[FrequencyOverride]:
    """The requests of the caller's department, oldest id first."""
    query = scope_query(principal, Permission.REQUEST_FREQUENCY_OVERRIDE, select(FrequencyOverride),
                        FrequencyOverride.department_id)
    return keyset_page(query, FrequencyOverride.id, limit, after)


def decide_override(principal: Principal, override_id: uuid.UUID, approve: bool,
                    reason: str | None = None) -> FrequencyOverride:
    """The head of the requesting department approves or refuses; who and when are recorded."""
    override = get_override(principal, override_id)
    authorize_object(principal, Permission.APPROVE_FREQUENCY_OVERRIDE, override,
                     visible=Permission.REQUEST_FREQUENCY_OVERRIDE)
    if override.status != ApprovalStatus.PENDING:
        raise Problem(409, "already-decided", f"该申请已处理（{override.status.value}）")
    override.status = ApprovalStatus.APPROVED if approve else ApprovalStatus.REJECTED
    override.decided_by_id = principal.user_id
    override.decided_at = utcnow()
    override.decision_reason = reason
    db.session.flush()
    audit.record(f"frequency_override.{'approve' if approve else 'reject'}", object_type="frequency_override",
                 object_id=str(override.id), actor=principal, details={"reason": reason} if reason else None)
    return override
