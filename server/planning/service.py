"""Planning rules: spot-check plans, joint plans, the double-random draw, frequency control, approval.

Interfaces other capabilities call (the review web app among them):

- ``pending_approvals(principal) -> list[InspectionTask]``: tasks waiting for the
  approval of the caller's department (its head), oldest window first.
- ``approve_dispatch(task_id: uuid.UUID, principal) -> InspectionTask``: the
  caller's department approves; once every participating department has, the
  task is dispatched (tablets of the team receive it in their pull).
- ``reject_dispatch(task_id: uuid.UUID, principal, reason: str) -> InspectionTask``:
  the caller's department refuses, with a reason; the task is never dispatched.
- ``schedule_visit(...)``: the one way a visit is created (draws and direct task
  creation): frequency cap, folding into another department's visit, approvals.
- ``verify_draw(draw_id) -> Verification``: re-run a recorded draw.

``principal`` is always ``server.auth.policy.Principal``.
"""
from __future__ import annotations

import dataclasses
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable, Mapping, TypeVar

from sqlalchemy import exists, func, select

from server.audit import service as audit
from server.auth.policy import Permission, Principal, authorize_object, can, scope_query
from server.db_types import office_day, utcnow
from server.directory.models import (CheckItem, Department, Enterprise, Role, User,
                                     enterprise_department)
from server.directory.service import certificate_valid_throughout
from server.errors import Problem
from server.extensions import db
from server.pagination import Page, keyset_page
from server.planning import draw as drawing
from server.planning.models import (ApprovalStatus, ConflictOfInterest, Draw, EquivalenceGroup, EquivalenceMember,
                                    FrequencyOverride, FrequencyRule, JointPlan, JointPlanParticipant, PlanCheckItem,
                                    SpotCheckPlan, TaskApproval)
from server.tasks.models import InspectionTask, TaskCheckItem, TaskMember, TaskStatus

T = TypeVar("T")

# Inspections are planned in office days: certificates are valid by calendar date in China.

DEFAULT_MAX_INSPECTIONS = 2
DEFAULT_PERIOD_DAYS = 365
DEFAULT_FOLD_WINDOW_DAYS = 30

# Tasks that count as visits for the frequency cap.
COUNTED_STATUSES = (TaskStatus.PENDING_APPROVAL, TaskStatus.DISPATCHED, TaskStatus.CLOSED)


def _field_error(field: str, message: str, status: int = 422, slug: str = "validation-failed") -> Problem:
    return Problem(status, slug, message, errors={field: [message]})


def _not_found(what: str) -> Problem:
    return Problem(404, "not-found", f"{what}不存在")


def check_window(window_start: datetime, window_end: datetime) -> None:
    """A visit window in a plausible range: date arithmetic on year 1 or 9999 would overflow."""
    if window_end <= window_start:
        raise _field_error("window_end", "结束时间应晚于开始时间")
    for field, moment in (("window_start", window_start), ("window_end", window_end)):
        if not 2000 <= moment.year <= 2100:
            raise _field_error(field, "检查时间应在 2000 年至 2100 年之间")


# ---- target filter ----------------------------------------------------------------

def _enterprise_query(target_filter: Mapping[str, Any]) -> Any:
    """Directory entries matching a plan's filter (keys as in schemas.TargetFilter)."""
    query = select(Enterprise.id)
    if target_filter.get("industries"):
        query = query.where(Enterprise.industry.in_(target_filter["industries"]))
    if target_filter.get("risk_levels"):
        query = query.where(Enterprise.risk_level.in_(target_filter["risk_levels"]))
    if target_filter.get("address_contains"):
        # The directory has no district column: the district or street is part of the address.
        pattern = "%" + target_filter["address_contains"].replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        query = query.where(Enterprise.address.like(pattern, escape="\\"))
    if target_filter.get("supervising_department_ids"):
        ids = [uuid.UUID(str(i)) for i in target_filter["supervising_department_ids"]]
        query = query.where(exists().where(enterprise_department.c.enterprise_id == Enterprise.id,
                                           enterprise_department.c.department_id.in_(ids)))
    return query


def matching_enterprises(target_filter: Mapping[str, Any]) -> list[uuid.UUID]:
    return sorted(db.session.scalars(_enterprise_query(target_filter)), key=str)


def _clean_filter(target_filter: Mapping[str, Any]) -> dict[str, Any]:
    """The filter as stored: JSON-ready, lists sorted, departments checked."""
    departments = sorted({str(i) for i in target_filter.get("supervising_department_ids") or []})
    if departments:
        known = {str(i) for i in db.session.scalars(select(Department.id).where(
            Department.id.in_([uuid.UUID(i) for i in departments])))}
        for department_id in departments:
            if department_id not in known:
                raise _field_error("target_filter.supervising_department_ids", f"部门 {department_id} 不存在")
    return {"industries": sorted(set(target_filter.get("industries") or [])),
            "risk_levels": sorted(set(target_filter.get("risk_levels") or [])),
            "address_contains": target_filter.get("address_contains") or None,
            "supervising_department_ids": departments}


# ---- department plans --------------------------------------------------------------

def create_plan(principal: Principal, data: Mapping[str, Any]) -> SpotCheckPlan:
    """A department's spot-check plan; its supervisor or head writes it for their own department."""
    department_id = data.get("department_id") or principal.department_id
    department = db.session.get(Department, department_id)
    if department is None:
        raise _field_error("department_id", "部门不存在")
    authorize_object(principal, Permission.MANAGE_PLANS, _Owned(department_id), visible=Permission.READ_PLANS)
    if data["period_end"] < data["period_start"]:
        raise _field_error("period_end", "计划结束日期不能早于开始日期")
    item_ids = list(dict.fromkeys(data["check_item_ids"]))
    items = {i.id: i for i in db.session.scalars(select(CheckItem).where(CheckItem.id.in_(item_ids)))}
    for item_id in item_ids:
        item = items.get(item_id)
        if item is None or not item.active or item.department_id != department_id:
            raise _field_error("check_item_ids", f"检查事项 {item_id} 不存在、已停用或不属于本部门")
    plan = SpotCheckPlan(department_id=department_id, title=data["title"], subject_kind=data["subject_kind"],
                         period_start=data["period_start"], period_end=data["period_end"],
                         target_filter=_clean_filter(data.get("target_filter") or {}),
                         sampling_ratio=data["sampling_ratio"], created_by_id=principal.user_id)
    plan.items = [PlanCheckItem(check_item_id=i) for i in sorted(item_ids, key=str)]
    db.session.add(plan)
    db.session.flush()
    return plan


@dataclass(frozen=True)
class _Owned:
    """Something of a department, for authorize_object before the object exists."""

    department_id: uuid.UUID


def _shared(principal: Principal, model: type[T], object_id: uuid.UUID, what: str) -> T:
    """Plans, joint plans and draws are read by every department's office: merging needs them."""
    found = db.session.get(model, object_id)
    if found is None or not can(principal, Permission.READ_PLANS):
        raise _not_found(what)
    return found


def _shared_page(principal: Principal, query: Any, model: Any, limit: int, after: str | None) -> Page[Any]:
    authorize_object(principal, Permission.READ_PLANS, None)
    return keyset_page(query, model.id, limit, after)


def get_plan(principal: Principal, plan_id: uuid.UUID) -> SpotCheckPlan:
    return _shared(principal, SpotCheckPlan, plan_id, "抽查计划")


def list_plans(principal: Principal, department_id: uuid.UUID | None, limit: int, after: str | None) -> Page[SpotCheckPlan]:
    query = select(SpotCheckPlan)
    if department_id is not None:
        query = query.where(SpotCheckPlan.department_id == department_id)
    return _shared_page(principal, query, SpotCheckPlan, limit, after)


# ---- joint plans ---------------------------------------------------------------------

def create_joint_plan(principal: Principal, data: Mapping[str, Any]) -> JointPlan:
    """Merge plans of several departments for the same kind of subject and overlapping period."""
    lead = data.get("department_id") or principal.department_id
    if not principal.is_admin and lead != principal.department_id:
        raise _field_error("department_id", "只能以本部门为牵头部门合并计划", 403, "forbidden")
    authorize_object(principal, Permission.MANAGE_JOINT_PLANS, None)
    plan_ids = list(dict.fromkeys(data["plan_ids"]))
    plans = {p.id: p for p in db.session.scalars(select(SpotCheckPlan).where(SpotCheckPlan.id.in_(plan_ids)))}
    for plan_id in plan_ids:
        if plan_id not in plans:
            raise _field_error("plan_ids", f"抽查计划 {plan_id} 不存在")
    departments = [p.department_id for p in plans.values()]
    if len(set(departments)) != len(departments):
        raise _field_error("plan_ids", "每个部门只能有一个计划参与联合计划")
    if len(plans) < 2:
        raise _field_error("plan_ids", "联合计划至少合并两个部门的计划")
    if lead not in departments:
        raise _field_error("plan_ids", "牵头部门的计划应在合并之列")
    kinds = {p.subject_kind for p in plans.values()}
    if len(kinds) != 1:
        raise _field_error("plan_ids", "只能合并针对同一类检查对象的计划：" + "、".join(sorted(kinds)))
    start = max(p.period_start for p in plans.values())
    end = min(p.period_end for p in plans.values())
    if end < start:
        raise _field_error("plan_ids", "各计划的时段没有重叠，不能合并")
    joined = db.session.scalar(select(JointPlanParticipant.plan_id).where(JointPlanParticipant.plan_id.in_(plan_ids)).limit(1))
    if joined is not None:
        raise _field_error("plan_ids", f"抽查计划 {joined} 已并入另一个联合计划", 409, "plan-already-joined")
    joint = JointPlan(department_id=lead, title=data["title"], subject_kind=kinds.pop(), period_start=start,
                      period_end=end, target_filter=_clean_filter(data.get("target_filter") or {}),
                      sampling_ratio=data["sampling_ratio"], created_by_id=principal.user_id)
    joint.participants = [JointPlanParticipant(plan_id=p) for p in sorted(plan_ids, key=str)]
    db.session.add(joint)
    db.session.flush()
    joint.groups = _equivalence_groups(joint, list(plans.values()), data.get("equivalences") or [])
    db.session.flush()
    return joint


def _equivalence_groups(joint: JointPlan, plans: list[SpotCheckPlan],
                        declared: list[Mapping[str, Any]]) -> list[EquivalenceGroup]:
    """Items declared to mean the same thing: each of a participating plan, each in one group at most."""
    department_of = {item.check_item_id: plan.department_id for plan in plans for item in plan.items}
    seen: set[uuid.UUID] = set()
    keys: set[str] = set()
    groups = []
    for index, group in enumerate(declared):
        field = f"equivalences.{index}"
        if group["key"] in keys:
            raise _field_error(f"{field}.key", f"等同事项组编号 {group['key']} 重复")
        keys.add(group["key"])
        item_ids = list(dict.fromkeys(group["check_item_ids"]))
        for item_id in item_ids:
            if item_id not in department_of:
                raise _field_error(f"{field}.check_item_ids", f"检查事项 {item_id} 不属于参与合并的任何计划")
            if item_id in seen:
                raise _field_error(f"{field}.check_item_ids", f"检查事项 {item_id} 已属于另一个等同事项组")
            seen.add(item_id)
        if len({department_of[i] for i in item_ids}) < 2:
            raise _field_error(f"{field}.check_item_ids", "等同事项组应包含至少两个不同部门的检查事项")
        groups.append(EquivalenceGroup(joint_plan_id=joint.id, key=group["key"], title=group["title"], members=[
            EquivalenceMember(joint_plan_id=joint.id, check_item_id=i) for i in sorted(item_ids, key=str)]))
    return groups


def get_joint_plan(principal: Principal, joint_plan_id: uuid.UUID) -> JointPlan:
    return _shared(principal, JointPlan, joint_plan_id, "联合抽查计划")


def list_joint_plans(principal: Principal, limit: int, after: str | None) -> Page[JointPlan]:
    return _shared_page(principal, select(JointPlan), JointPlan, limit, after)


# ---- conflicts of interest ---------------------------------------------------------------

def declare_conflict(principal: Principal, data: Mapping[str, Any]) -> ConflictOfInterest:
    """An inspector declares their own conflict; their head (or an admin) may declare one for them."""
    user = db.session.get(User, data["user_id"])
    if user is None or not (principal.is_admin or user.department_id == principal.department_id):
        raise _field_error("user_id", "人员不存在", 404, "not-found")
    if not (principal.is_admin or principal.user_id == user.id or principal.role == Role.HEAD.value):
        raise Problem(403, "forbidden", "利益冲突只能由本人或其部门负责人申报")
    if db.session.get(Enterprise, data["enterprise_id"]) is None:
        raise _field_error("enterprise_id", "检查对象不存在")
    duplicate = db.session.scalar(select(ConflictOfInterest.id).where(
        ConflictOfInterest.user_id == user.id, ConflictOfInterest.enterprise_id == data["enterprise_id"]))
    if duplicate is not None:
        raise _field_error("enterprise_id", "该人员与该检查对象的利益冲突已申报", 409, "already-declared")
    conflict = ConflictOfInterest(user_id=user.id, enterprise_id=data["enterprise_id"], department_id=user.department_id,
                                  reason=data["reason"], declared_by_id=principal.user_id)
    db.session.add(conflict)
    db.session.flush()
    audit.record("conflict_of_interest.declare", object_type="conflict_of_interest", object_id=str(conflict.id),
                 actor=principal, details={"user_id": str(user.id), "enterprise_id": str(conflict.enterprise_id)})
    return conflict


def _conflicts_visible(principal: Principal, query: Any) -> Any:
    if principal.is_admin:
        return query
    if principal.role == Role.INSPECTOR.value:
        return query.where(ConflictOfInterest.user_id == principal.user_id)
    return query.where(ConflictOfInterest.department_id == principal.department_id)


def get_conflict(principal: Principal, conflict_id: uuid.UUID) -> ConflictOfInterest:
    conflict = db.session.scalar(_conflicts_visible(principal, select(ConflictOfInterest).where(
        ConflictOfInterest.id == conflict_id)))
    if conflict is None:
        raise _not_found("利益冲突申报")
    return conflict


def list_conflicts(principal: Principal, limit: int, after: str | None) -> Page[ConflictOfInterest]:
    return keyset_page(_conflicts_visible(principal, select(ConflictOfInterest)), ConflictOfInterest.id, limit, after)


# ---- frequency control ----------------------------------------------------------------------

@dataclass(frozen=True)
class Frequency:
    max_inspections: int
    period_days: int
    fold_window_days: int


def frequency_rule() -> Frequency:
    row = db.session.get(FrequencyRule, 1)
    if row is None:
        return Frequency(DEFAULT_MAX_INSPECTIONS, DEFAULT_PERIOD_DAYS, DEFAULT_FOLD_WINDOW_DAYS)
    return Frequency(row.max_inspections, row.period_days, row.fold_window_days)


def set_frequency_rule(principal: Principal, data: Mapping[str, Any]) -> Frequency:
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


def _usable_override(enterprise_id: uuid.UUID, department_ids: Iterable[uuid.UUID]) -> FrequencyOverride | None:
    return db.session.scalar(select(FrequencyOverride).where(
        FrequencyOverride.enterprise_id == enterprise_id, FrequencyOverride.department_id.in_(list(department_ids)),
        FrequencyOverride.status == ApprovalStatus.APPROVED, FrequencyOverride.used_by_task_id.is_(None))
        .order_by(FrequencyOverride.decided_at, FrequencyOverride.id).limit(1))


def request_override(principal: Principal, data: Mapping[str, Any]) -> FrequencyOverride:
    """Ask to exceed the cap for one more visit; takes effect once the department's head approves."""
    department_id = data.get("department_id") or principal.department_id
    if db.session.get(Department, department_id) is None:
        raise _field_error("department_id", "部门不存在")
    authorize_object(principal, Permission.REQUEST_FREQUENCY_OVERRIDE, _Owned(department_id),
                     visible=Permission.READ_PLANS)
    if db.session.get(Enterprise, data["enterprise_id"]) is None:
        raise _field_error("enterprise_id", "检查对象不存在")
    override = FrequencyOverride(enterprise_id=data["enterprise_id"], department_id=department_id, reason=data["reason"],
                                 status=ApprovalStatus.PENDING, requested_by_id=principal.user_id)
    db.session.add(override)
    db.session.flush()
    audit.record("frequency_override.request", object_type="frequency_override", object_id=str(override.id),
                 actor=principal, details={"enterprise_id": str(override.enterprise_id), "reason": override.reason})
    return override


def get_override(principal: Principal, override_id: uuid.UUID) -> FrequencyOverride:
    override = db.session.get(FrequencyOverride, override_id)
    if override is None:
        raise _not_found("超频次检查申请")
    authorize_object(principal, Permission.REQUEST_FREQUENCY_OVERRIDE, override)
    return override


def list_overrides(principal: Principal, limit: int, after: str | None) -> Page[FrequencyOverride]:
    query = scope_query(principal, Permission.REQUEST_FREQUENCY_OVERRIDE, select(FrequencyOverride),
                        FrequencyOverride.department_id)
    return keyset_page(query, FrequencyOverride.id, limit, after)


def decide_override(principal: Principal, override_id: uuid.UUID, approve: bool, reason: str | None = None) -> FrequencyOverride:
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


# ---- visits: cap, folding, approvals ------------------------------------------------------

@dataclass
class Visit:
    """What schedule_visit did: created a task or folded the request into an existing one."""

    task: InspectionTask
    folded: bool
    override: FrequencyOverride | None = None


def _participants(task: InspectionTask) -> set[uuid.UUID]:
    return {task.department_id} | {m.department_id for m in task.members}


def _foldable_task(enterprise_id: uuid.UUID, window_start: datetime, lead: uuid.UUID, rule: Frequency) -> InspectionTask | None:
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
        if lead not in _participants(task):
            return task
    return None


def _approvals_for(task: InspectionTask, principal: Principal) -> None:
    """Add an approval per participating department; the creating head's (or the operator's) is given."""
    have = {a.department_id: a for a in db.session.scalars(select(TaskApproval).where(TaskApproval.task_id == task.id))}
    now = utcnow()
    for department_id in sorted(_participants(task), key=str):
        if department_id in have:
            continue
        given = principal.kind == "system" or (principal.role == Role.HEAD.value and principal.department_id == department_id)
        db.session.add(TaskApproval(task_id=task.id, department_id=department_id,
                                    status=ApprovalStatus.APPROVED if given else ApprovalStatus.PENDING,
                                    decided_by_id=principal.user_id if given else None, decided_at=now if given else None))
    db.session.flush()
    _dispatch_if_approved(task)


def _dispatch_if_approved(task: InspectionTask) -> None:
    statuses = set(db.session.scalars(select(TaskApproval.status).where(TaskApproval.task_id == task.id)))
    if ApprovalStatus.REJECTED in statuses:
        task.status = TaskStatus.REJECTED
    elif ApprovalStatus.PENDING in statuses:
        task.status = TaskStatus.PENDING_APPROVAL
    else:
        task.status = TaskStatus.DISPATCHED
        task.dispatched_at = task.dispatched_at or utcnow()
    db.session.flush()


def schedule_visit(principal: Principal, *, title: str, enterprise_id: uuid.UUID, lead_department_id: uuid.UUID,
                   window_start: datetime, window_end: datetime, members: list[User], check_item_ids: list[uuid.UUID],
                   equivalence: Mapping[uuid.UUID, str] | None = None, note: str | None = None) -> Visit:
    """Create a visit, or fold it into another department's visit to the same enterprise.

    A new visit beyond the frequency cap is refused unless the lead department
    holds an approved, unused override, which it then uses up.
    """
    check_window(window_start, window_end)
    # One scheduling per enterprise at a time (until commit): two requests could otherwise both
    # count the visits below the cap, or both miss the visit to fold into.
    db.session.get(Enterprise, enterprise_id, with_for_update=True)
    rule = frequency_rule()
    equivalence = equivalence or {}
    existing = _foldable_task(enterprise_id, window_start, lead_department_id, rule)
    if existing is not None:
        on_team = {m.user_id for m in existing.members}
        existing.members.extend(TaskMember(user_id=u.id, department_id=u.department_id) for u in members if u.id not in on_team)
        listed = {i.check_item_id for i in existing.check_items}
        existing.check_items.extend(_task_item(i, equivalence) for i in check_item_ids if i not in listed)
        db.session.flush()
        _approvals_for(existing, principal)
        return Visit(existing, folded=True)
    override = None
    if inspections_around(enterprise_id, window_start, rule) >= rule.max_inspections:
        override = _usable_override(enterprise_id, [lead_department_id])
        if override is None:
            raise Problem(409, "frequency-cap-reached",
                          f"该检查对象在 {rule.period_days} 天内已安排 {rule.max_inspections} 次检查，达到频次上限；"
                          "如确需再次检查，请说明理由并经部门负责人批准超频次检查",
                          errors={"enterprise_id": ["检查频次已达上限"]}, extra={"enterprise_id": str(enterprise_id)})
    task = InspectionTask(title=title, enterprise_id=enterprise_id, department_id=lead_department_id,
                          window_start=window_start, window_end=window_end, status=TaskStatus.PENDING_APPROVAL,
                          created_by_id=principal.user_id, note=note)
    task.members = [TaskMember(user_id=u.id, department_id=u.department_id) for u in members]
    task.check_items = [_task_item(i, equivalence) for i in check_item_ids]
    db.session.add(task)
    db.session.flush()
    if override is not None:
        override.used_by_task_id = task.id
        audit.record("frequency_override.use", object_type="frequency_override", object_id=str(override.id),
                     actor=principal, details={"task_id": str(task.id)})
    _approvals_for(task, principal)
    return Visit(task, folded=False, override=override)


def _task_item(check_item_id: uuid.UUID, equivalence: Mapping[uuid.UUID, str]) -> TaskCheckItem:
    return TaskCheckItem(check_item_id=check_item_id, equivalence_group=equivalence.get(check_item_id))


# ---- approval -----------------------------------------------------------------------------------

def pending_approvals(principal: Principal) -> list[InspectionTask]:
    """Tasks waiting for the approval of the caller's department, earliest window first."""
    if not can(principal, Permission.APPROVE_TASKS):
        return []
    query = select(InspectionTask).join(TaskApproval, TaskApproval.task_id == InspectionTask.id).where(
        TaskApproval.status == ApprovalStatus.PENDING, InspectionTask.status == TaskStatus.PENDING_APPROVAL)
    if not principal.is_admin:
        query = query.where(TaskApproval.department_id == principal.department_id)
    return list(db.session.scalars(query.order_by(InspectionTask.window_start, InspectionTask.id).distinct().limit(500)))


def _own_approval(task_id: uuid.UUID, principal: Principal) -> tuple[InspectionTask, TaskApproval]:
    task = db.session.get(InspectionTask, task_id)
    approval = None
    if task is not None:
        approval = db.session.scalar(select(TaskApproval).where(TaskApproval.task_id == task_id,
                                                                TaskApproval.department_id == principal.department_id))
    if task is None or approval is None:
        # Not a participant: the task may not even be known to the caller.
        raise _not_found("待审批的检查任务")
    if not can(principal, Permission.APPROVE_TASKS):
        raise Problem(403, "forbidden", "只有部门负责人可以审批检查任务")
    if task.status != TaskStatus.PENDING_APPROVAL:
        raise Problem(409, "task-not-pending", f"检查任务不在待审批状态（{task.status.value}）")
    if approval.status != ApprovalStatus.PENDING:
        raise Problem(409, "already-decided", "本部门已审批过该检查任务")
    return task, approval


def approve_dispatch(task_id: uuid.UUID, principal: Principal) -> InspectionTask:
    """The caller's department approves; the task is dispatched once every department has."""
    task, approval = _own_approval(task_id, principal)
    approval.status = ApprovalStatus.APPROVED
    approval.decided_by_id = principal.user_id
    approval.decided_at = utcnow()
    db.session.flush()
    _dispatch_if_approved(task)
    audit.record("task.approve", object_type="task", object_id=str(task.id), actor=principal,
                 details={"status": task.status.value})
    return task


def reject_dispatch(task_id: uuid.UUID, principal: Principal, reason: str) -> InspectionTask:
    """The caller's department refuses the task, with a reason; it is not dispatched."""
    if not reason or not reason.strip():
        raise _field_error("reason", "驳回应说明理由")
    task, approval = _own_approval(task_id, principal)
    approval.status = ApprovalStatus.REJECTED
    approval.decided_by_id = principal.user_id
    approval.decided_at = utcnow()
    approval.reason = reason.strip()
    db.session.flush()
    _dispatch_if_approved(task)
    audit.record("task.reject", object_type="task", object_id=str(task.id), actor=principal,
                 details={"reason": approval.reason})
    return task


def task_approvals(task_id: uuid.UUID) -> list[TaskApproval]:
    return list(db.session.scalars(select(TaskApproval).where(TaskApproval.task_id == task_id)
                                   .order_by(TaskApproval.department_id)))


# ---- the draw ---------------------------------------------------------------------------------------

@dataclass
class _Source:
    """What a draw draws for: a department plan or a joint plan."""

    plan: SpotCheckPlan | None
    joint: JointPlan | None

    @property
    def lead(self) -> uuid.UUID:
        return self.joint.department_id if self.joint else self.plan.department_id  # type: ignore[union-attr]

    @property
    def plans(self) -> list[SpotCheckPlan]:
        return self.joint.plans if self.joint else [self.plan]  # type: ignore[list-item]

    @property
    def holder(self) -> Any:
        return self.joint or self.plan


def _source(principal: Principal, data: Mapping[str, Any]) -> _Source:
    if bool(data.get("plan_id")) == bool(data.get("joint_plan_id")):
        raise _field_error("plan_id", "请指定且只指定一个抽查计划或联合抽查计划")
    if data.get("plan_id"):
        plan = db.session.get(SpotCheckPlan, data["plan_id"])
        if plan is None:
            raise _field_error("plan_id", "抽查计划不存在")
        source = _Source(plan, None)
    else:
        joint = db.session.get(JointPlan, data["joint_plan_id"])
        if joint is None:
            raise _field_error("joint_plan_id", "联合抽查计划不存在")
        source = _Source(None, joint)
    if not principal.is_admin and source.lead != principal.department_id:
        raise Problem(403, "forbidden", "只有计划的（牵头）部门可以组织抽取")
    return source


def _draw_inputs(source: _Source, window_start: datetime, window_end: datetime, per_department: int) -> dict[str, Any]:
    """Everything the draw depends on, as plain JSON, sorted by id."""
    holder = source.holder
    first_day, last_day = office_day(window_start), office_day(window_end)
    rule = frequency_rule()
    departments = sorted({str(p.department_id) for p in source.plans})
    span = timedelta(days=rule.period_days)
    counted = dict(db.session.execute(
        select(InspectionTask.enterprise_id, func.count()).where(
            InspectionTask.enterprise_id.in_(_enterprise_query(holder.target_filter)),
            InspectionTask.status.in_(COUNTED_STATUSES),
            InspectionTask.window_start > window_start - span, InspectionTask.window_start < window_start + span)
        .group_by(InspectionTask.enterprise_id)).all())
    candidates = []
    for enterprise_id in matching_enterprises(holder.target_filter):
        visits = int(counted.get(enterprise_id, 0))
        override = _usable_override(enterprise_id, [source.lead]) if visits >= rule.max_inspections else None
        candidates.append({"enterprise_id": str(enterprise_id), "inspections_in_period": visits,
                           "override_id": str(override.id) if override else None,
                           "eligible": visits < rule.max_inspections or override is not None})
    pools: dict[str, list[dict[str, Any]]] = {}
    user_ids: list[uuid.UUID] = []
    for department_id in departments:
        inspectors = db.session.scalars(select(User).where(
            User.department_id == uuid.UUID(department_id), User.role == Role.INSPECTOR, User.active.is_(True)))
        pool = []
        for user in sorted(inspectors, key=lambda u: str(u.id)):
            user_ids.append(user.id)
            pool.append({"user_id": str(user.id), "certificates": [
                {"number": c.number, "valid_from": c.valid_from.isoformat(), "valid_until": c.valid_until.isoformat(),
                 "status": c.status.value, "valid_for_window": certificate_valid_throughout(c, first_day, last_day)}
                for c in sorted(user.certificates, key=lambda c: c.number)]})
        pools[department_id] = pool
    enterprise_ids = [uuid.UUID(c["enterprise_id"]) for c in candidates]
    conflicts = sorted(({"user_id": str(u), "enterprise_id": str(e)} for u, e in db.session.execute(
        select(ConflictOfInterest.user_id, ConflictOfInterest.enterprise_id).where(
            ConflictOfInterest.user_id.in_(user_ids), ConflictOfInterest.enterprise_id.in_(enterprise_ids)))),
        key=lambda c: (c["user_id"], c["enterprise_id"])) if user_ids and enterprise_ids else []
    return {
        "parameters": {
            "source": {"kind": "joint_plan" if source.joint else "plan", "id": str(holder.id)},
            "window_start": window_start.astimezone(timezone.utc).isoformat(),
            "window_end": window_end.astimezone(timezone.utc).isoformat(),
            "sampling_ratio": holder.sampling_ratio, "target_filter": holder.target_filter,
            "inspectors_per_department": per_department, "department_ids": departments,
            "frequency": {"max_inspections": rule.max_inspections, "period_days": rule.period_days},
        },
        "candidates": candidates, "pools": pools, "conflicts": conflicts,
    }


def run_draw(principal: Principal, data: Mapping[str, Any]) -> Draw:
    """Draw targets and teams, record the draw, and create (or join) a visit per target for approval."""
    authorize_object(principal, Permission.RUN_DRAWS, None)
    source = _source(principal, data)
    holder = source.holder
    window_start, window_end = data["window_start"], data["window_end"]
    check_window(window_start, window_end)
    if office_day(window_start) < holder.period_start or office_day(window_end) > holder.period_end:
        raise _field_error("window_start", f"检查时段应在计划期间 {holder.period_start} 至 {holder.period_end} 之内")
    per_department = data["inspectors_per_department"]
    seed = data.get("seed") or secrets.token_hex(16)
    inputs = _draw_inputs(source, window_start, window_end, per_department)
    try:
        result = drawing.compute_draw(seed, inputs)
    except drawing.DrawInfeasible as exc:
        department = db.session.get(Department, uuid.UUID(exc.department_id))
        name = f"{department.name}（{department.code}）" if department else exc.department_id
        where = "对部分抽中对象（利益冲突回避后）" if exc.enterprise_id else ""
        raise Problem(422, "not-enough-inspectors",
                      f"{name}{where}持有在整个检查时段内有效执法证的执法人员只有 {exc.available} 名，"
                      f"每个检查组需要 {exc.needed} 名",
                      errors={"inspectors_per_department": [f"{name} 可抽取的执法人员不足"]},
                      extra={"department_id": exc.department_id, "enterprise_id": exc.enterprise_id}) from None
    record = Draw(department_id=source.lead, plan_id=source.plan.id if source.plan else None,
                  joint_plan_id=source.joint.id if source.joint else None, seed=seed, inputs=inputs,
                  input_hash=drawing.input_digest(seed, inputs), result=result,
                  result_hash=drawing.result_digest(result), task_ids=[], created_by_id=principal.user_id)
    db.session.add(record)
    db.session.flush()
    record.task_ids = [str(task_id) for task_id in _tasks_from_draw(principal, source, result, window_start, window_end)]
    db.session.flush()
    audit.record("draw.run", object_type="draw", object_id=str(record.id), actor=principal, details={
        "seed": seed, "input_hash": record.input_hash, "result_hash": record.result_hash,
        "targets": len(result["targets"]), "task_ids": record.task_ids})
    return record


def _tasks_from_draw(principal: Principal, source: _Source, result: Mapping[str, Any], window_start: datetime,
                     window_end: datetime) -> list[uuid.UUID]:
    item_ids = sorted({i for plan in source.plans for i in plan.check_item_ids}, key=str)
    equivalence = {m.check_item_id: g.key for g in (source.joint.groups if source.joint else []) for m in g.members}
    user_ids = [uuid.UUID(u) for target in result["targets"] for team in target["team"].values() for u in team]
    users = {u.id: u for u in db.session.scalars(select(User).where(User.id.in_(user_ids)))} if user_ids else {}
    task_ids = []
    for target in result["targets"]:
        enterprise = db.session.get(Enterprise, uuid.UUID(target["enterprise_id"]))
        members = [users[uuid.UUID(u)] for department_id in sorted(target["team"]) for u in target["team"][department_id]]
        visit = schedule_visit(principal, title=f"{source.holder.title}：{enterprise.name}",  # type: ignore[union-attr]
                               enterprise_id=enterprise.id, lead_department_id=source.lead,  # type: ignore[union-attr]
                               window_start=window_start, window_end=window_end, members=members,
                               check_item_ids=item_ids, equivalence=equivalence)
        task_ids.append(visit.task.id)
    return task_ids


def get_draw(principal: Principal, draw_id: uuid.UUID) -> Draw:
    return _shared(principal, Draw, draw_id, "抽取记录")


def list_draws(principal: Principal, limit: int, after: str | None) -> Page[Draw]:
    return _shared_page(principal, select(Draw), Draw, limit, after)


def verify_draw(draw_id: uuid.UUID) -> drawing.Verification:
    """Re-run a recorded draw from its stored seed and inputs and compare with its stored result.

    A record rewritten consistently (new seed, inputs, result and hashes) still re-runs; it is caught
    by the hashes the hash-chained audit log took down when the draw ran.
    """
    from server.audit.models import AuditEntry

    record = db.session.get(Draw, draw_id)
    if record is None:
        raise _not_found("抽取记录")
    report = drawing.verify_record(str(record.id), record.seed, record.inputs, record.input_hash,
                                   record.result, record.result_hash)
    logged = db.session.scalars(select(AuditEntry.details).where(
        AuditEntry.action == "draw.run", AuditEntry.object_id == str(record.id))).first()
    stamp = {"seed": record.seed, "input_hash": record.input_hash, "result_hash": record.result_hash}
    matches = logged is not None and all(logged.get(k) == v for k, v in stamp.items())
    problems = report.problems if matches else [*report.problems, "抽取记录的种子或摘要与审计日志中的记载不一致"]
    return dataclasses.replace(report, matches_audit_log=matches, problems=problems,
                               reproduced=report.reproduced and matches)


def verify_draw_as(principal: Principal, draw_id: uuid.UUID) -> drawing.Verification:
    get_draw(principal, draw_id)
    return verify_draw(draw_id)

