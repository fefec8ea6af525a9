"""Inspection tasks: who visits which enterprise, when, checking what."""
from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy import exists, or_, select

from server.audit import service as audit
from server.auth.policy import Permission, Principal, authorize_object, can
from server.db_types import utcnow
from server.directory.models import CheckItem, Enterprise, Role, User
from server.errors import Problem
from server.extensions import db
from server.loading import load_authorized
from server.pagination import Page, keyset_page
from server.planning.visits import schedule_visit
from server.tasks.models import InspectionTask, TaskMember, TaskStatus


def _field_error(field: str, message: str, status: int = 422) -> Problem:
    return Problem(status, "validation-failed" if status == 422 else None, message, errors={field: [message]})


def create_task(principal: Principal, data: Mapping[str, Any]) -> InspectionTask:
    """Plan a visit to one enterprise by a team (inspectors of one or more departments).

    It is dispatched once the head of every participating department approved:
    at once when its creator is the head of its only department, or the
    operator. A request for an enterprise that another department visits soon
    is folded into that visit, and the answer is that task.

    ``data`` may carry ``equivalence_groups``: ``{check_item_id: group}`` for
    check items that ask the same question (the team answers them once), and
    ``late_registration_reason``: why a visit that already began is registered
    only now (planning's ``check_registration`` decides whether it may be).
    """
    authorize_object(principal, Permission.MANAGE_TASKS, None)
    if data["window_end"] <= data["window_start"]:
        raise _field_error("window_end", "结束时间应晚于开始时间")
    enterprise = db.session.get(Enterprise, data["enterprise_id"])
    if enterprise is None:
        raise _field_error("enterprise_id", "检查对象不存在")
    member_ids = list(dict.fromkeys(data["member_ids"]))
    members = {u.id: u for u in db.session.scalars(select(User).where(User.id.in_(member_ids)))}
    for member_id in member_ids:
        user = members.get(member_id)
        if user is None or not user.active or user.role != Role.INSPECTOR:
            raise _field_error("member_ids", f"{member_id} 不是在岗的执法人员")
    departments = {u.department_id for u in members.values()}
    lead = data.get("lead_department_id") or principal.department_id
    if not principal.is_admin and lead != principal.department_id:
        raise _field_error("lead_department_id", "只能以本部门为牵头部门派发任务", 403)
    if lead not in departments:
        raise _field_error("member_ids", "检查组中应至少有一名牵头部门的执法人员")
    item_ids = list(dict.fromkeys(data.get("check_item_ids") or []))
    items = {i.id: i for i in db.session.scalars(select(CheckItem).where(CheckItem.id.in_(item_ids)))}
    for item_id in item_ids:
        item = items.get(item_id)
        if item is None or not item.active or item.department_id not in departments:
            raise _field_error("check_item_ids", f"检查事项 {item_id} 不存在、已停用或不属于检查组的部门")
    # The frequency cap, folding into another department's visit and approval are planning's rules.
    groups = _equivalence_groups(data.get("equivalence_groups") or {}, item_ids)
    visit = schedule_visit(principal, title=data["title"], enterprise_id=enterprise.id, lead_department_id=lead,
                           window_start=data["window_start"], window_end=data["window_end"],
                           members=[members[i] for i in member_ids], check_item_ids=item_ids,
                           equivalence=groups, note=data.get("note"),
                           late_registration_reason=data.get("late_registration_reason"))
    return visit.task


def _equivalence_groups(groups: Mapping[uuid.UUID, str | None], item_ids: list[uuid.UUID]) -> dict[uuid.UUID, str]:
    """Check the optional ``{check_item_id: group}`` declaring items of the task that are one question."""
    cleaned: dict[uuid.UUID, str] = {}
    for item_id, group in groups.items():
        if item_id not in item_ids:
            raise _field_error("equivalence_groups", f"检查事项 {item_id} 不在本任务的检查事项中")
        if group is None:
            continue
        if not isinstance(group, str) or not 0 < len(group) <= 64:
            raise _field_error("equivalence_groups", "等同事项分组名应为 1–64 个字符")
        cleaned[item_id] = group
    return cleaned


# What an inspector sees: a task waiting for approval, or rejected, is not the team's yet; a cancelled
# one is, if the team had received it.
TEAM_VISIBLE = (TaskStatus.DISPATCHED, TaskStatus.CLOSED, TaskStatus.CANCELLED)


def _team_visible(task: InspectionTask) -> bool:
    return task.status in TEAM_VISIBLE and (task.status != TaskStatus.CANCELLED or task.dispatched_at is not None)


def _participates(principal: Principal, task: InspectionTask) -> bool:
    if principal.is_admin:
        return True
    if principal.role == "inspector" and not _team_visible(task):
        return False
    if principal.user_id is not None and any(m.user_id == principal.user_id for m in task.members):
        return True
    return principal.role != "inspector" and (
        task.department_id == principal.department_id
        or any(m.department_id == principal.department_id for m in task.members))


def get_task(principal: Principal, task_id: uuid.UUID) -> InspectionTask:
    """A task the caller takes part in (see ``_participates``); any other answers 404, as an unknown id does."""
    return load_authorized(principal, InspectionTask, task_id, Permission.READ_TASKS, not_found="检查任务不存在",
                           sees=lambda task: _participates(principal, task))


def list_tasks(principal: Principal, limit: int, after: str | None) -> Page[InspectionTask]:
    query = select(InspectionTask)
    if not principal.is_admin:
        mine = exists().where(TaskMember.task_id == InspectionTask.id, TaskMember.user_id == principal.user_id)
        if principal.role == "inspector":
            query = query.where(mine, InspectionTask.status.in_(TEAM_VISIBLE), or_(
                InspectionTask.status != TaskStatus.CANCELLED, InspectionTask.dispatched_at.is_not(None)))
        else:
            department = exists().where(TaskMember.task_id == InspectionTask.id,
                                        TaskMember.department_id == principal.department_id)
            query = query.where(or_(InspectionTask.department_id == principal.department_id, department))
    return keyset_page(query, InspectionTask.id, limit, after)


def _led_task(principal: Principal, task_id: uuid.UUID, what: str) -> InspectionTask:
    """A task the caller's department leads (or any, for the operator), for managing it; 403 for a participant."""
    task = get_task(principal, task_id)
    if not can(principal, Permission.MANAGE_TASKS) or not (
            principal.is_admin or task.department_id == principal.department_id):
        raise Problem(403, "forbidden", f"只有牵头部门可以{what}检查任务")
    return task


def close_task(principal: Principal, task_id: uuid.UUID) -> InspectionTask:
    """Close a task: tablets can no longer change its records."""
    task = _led_task(principal, task_id, "关闭")
    if task.status != TaskStatus.DISPATCHED:
        raise Problem(409, "task-not-open", f"检查任务已处于 {task.status.value} 状态")
    task.status = TaskStatus.CLOSED
    task.closed_at = utcnow()
    db.session.flush()
    audit.record("task.close", object_type="task", object_id=str(task.id), actor=principal)
    return task


#: A task may be cancelled until its visit is over: while it waits for approval or is dispatched.
CANCELLABLE = (TaskStatus.PENDING_APPROVAL, TaskStatus.DISPATCHED)


def cancel_task(principal: Principal, task_id: uuid.UUID, reason: str) -> InspectionTask:
    """Cancel a task (its lead department's supervisor or head, or the operator), with a reason.

    Its code then answers "cancelled" to whoever scans it, tablets receive it as a removal, and the
    team can no longer record on it. A closed, rejected or already cancelled task is not cancelled (409).
    """
    task = _led_task(principal, task_id, "取消")
    cleaned = (reason or "").strip()
    if not cleaned:
        raise _field_error("reason", "取消检查任务应说明理由")
    if task.status not in CANCELLABLE:
        raise Problem(409, "task-not-cancellable", f"检查任务处于 {task.status.value} 状态，不能取消")
    was = task.status
    task.status = TaskStatus.CANCELLED
    task.cancelled_at = utcnow()
    task.cancel_reason = cleaned
    db.session.flush()
    audit.record("task.cancel", object_type="task", object_id=str(task.id), actor=principal,
                 details={"reason": cleaned, "status": was.value})
    return task


def member_task_ids(user_id: uuid.UUID) -> list[uuid.UUID]:
    return list(db.session.scalars(select(TaskMember.task_id).where(TaskMember.user_id == user_id)))


def is_task_member(task_id: uuid.UUID, user_id: uuid.UUID) -> bool:
    """Whether the user is on the task's team."""
    return db.session.scalar(select(TaskMember.id).where(TaskMember.task_id == task_id,
                                                         TaskMember.user_id == user_id).limit(1)) is not None
