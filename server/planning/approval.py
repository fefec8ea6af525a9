"""Approval before dispatch: one approval per participating department, given by its head.

Other capabilities call (the review web app among them):

- ``pending_approvals(principal) -> list[InspectionTask]``: tasks waiting for the
  approval of the caller's department (its head), oldest window first.
- ``approve_dispatch(task_id: uuid.UUID, principal) -> InspectionTask``: the
  caller's department approves; once every participating department has, the
  task is dispatched (tablets of the team receive it in their pull).
- ``reject_dispatch(task_id: uuid.UUID, principal, reason: str) -> InspectionTask``:
  the caller's department refuses, with a reason; the task is never dispatched.

``principal`` is always ``server.auth.policy.Principal``.
"""
from __future__ import annotations

import uuid

from sqlalchemy import select

from server.audit import service as audit
from server.auth.policy import Permission, Principal, can
from server.db_types import utcnow
from server.directory.models import Role
from server.errors import Problem
from server.extensions import db
from server.planning.common import field_error
from server.planning.models import ApprovalStatus, TaskApproval
from server.tasks.models import InspectionTask, TaskStatus


def participants(task: InspectionTask) -> set[uuid.UUID]:
    """The departments taking part in a task: its lead and every team member's; each one's head approves."""
    return {task.department_id} | {m.department_id for m in task.members}


def request_approvals(task: InspectionTask, principal: Principal) -> None:
    """Add an approval per participating department; the creating head's (or the operator's) is given."""
    have = {a.department_id: a for a in db.session.scalars(select(TaskApproval).where(TaskApproval.task_id == task.id))}
    now = utcnow()
    for department_id in sorted(participants(task), key=str):
        if department_id in have:
            continue
        given = principal.kind == "system" or (principal.role == Role.HEAD.value
                                               and principal.department_id == department_id)
        db.session.add(TaskApproval(task_id=task.id, department_id=department_id,
                                    status=ApprovalStatus.APPROVED if given else ApprovalStatus.PENDING,
                                    decided_by_id=principal.user_id if given else None,
                                    decided_at=now if given else None))
    db.session.flush()
    dispatch_if_approved(task)


def dispatch_if_approved(task: InspectionTask) -> None:
    """The task's status from its approvals: rejected by any, pending while any waits, else dispatched."""
    statuses = set(db.session.scalars(select(TaskApproval.status).where(TaskApproval.task_id == task.id)))
    if ApprovalStatus.REJECTED in statuses:
        task.status = TaskStatus.REJECTED
    elif ApprovalStatus.PENDING in statuses:
        task.status = TaskStatus.PENDING_APPROVAL
    else:
        task.status = TaskStatus.DISPATCHED
        task.dispatched_at = task.dispatched_at or utcnow()
    db.session.flush()


def pending_approvals(principal: Principal) -> list[InspectionTask]:
    """Tasks waiting for the approval of the caller's department, earliest window first."""
    if not can(principal, Permission.APPROVE_TASKS):
        return []
    query = select(InspectionTask).join(TaskApproval, TaskApproval.task_id == InspectionTask.id).where(
        TaskApproval.status == ApprovalStatus.PENDING, InspectionTask.status == TaskStatus.PENDING_APPROVAL)
    if not principal.is_admin:
        query = query.where(TaskApproval.department_id == principal.department_id)
    return list(db.session.scalars(query.order_by(InspectionTask.window_start, InspectionTask.id)
                                   .distinct().limit(500)))


def _own_approval(task_id: uuid.UUID, principal: Principal) -> tuple[InspectionTask, TaskApproval]:
    task = db.session.get(InspectionTask, task_id)
    approval = None
    if task is not None:
        approval = db.session.scalar(select(TaskApproval).where(TaskApproval.task_id == task_id,
                                                                TaskApproval.department_id == principal.department_id))
    if task is None or approval is None:
        # Not a participant: the task may not even be known to the caller.
        raise Problem(404, "not-found", "待审批的检查任务不存在")
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
    dispatch_if_approved(task)
    audit.record("task.approve", object_type="task", object_id=str(task.id), actor=principal,
                 details={"status": task.status.value})
    return task


def reject_dispatch(task_id: uuid.UUID, principal: Principal, reason: str) -> InspectionTask:
    """The caller's department refuses the task, with a reason; it is not dispatched."""
    if not reason or not reason.strip():
        raise field_error("reason", "驳回应说明理由")
    task, approval = _own_approval(task_id, principal)
    approval.status = ApprovalStatus.REJECTED
    approval.decided_by_id = principal.user_id
    approval.decided_at = utcnow()
    approval.reason = reason.strip()
    db.session.flush()
    dispatch_if_approved(task)
    audit.record("task.reject", object_type="task", object_id=str(task.id), actor=principal,
                 details={"reason": approval.reason})
    return task


def task_approvals(task_id: uuid.UUID) -> list[TaskApproval]:
    """Every department's approval of a task, by department id."""
    return list(db.session.scalars(select(TaskApproval).where(TaskApproval.task_id == task_id)
                                   .order_by(TaskApproval.department_id)))
