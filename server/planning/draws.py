"""The double-random draw (双随机) as recorded: gather its inputs, run it, create the visits, verify it later.

The draw itself is ``server.planning.drawing`` (pure: no database, no clock).
"""
from __future__ import annotations

import dataclasses
import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from server.audit import service as audit
from server.audit.models import AuditEntry
from server.auth.policy import Permission, Principal, authorize_object
from server.db_types import office_day
from server.directory.models import Department, Enterprise, Role, User
from server.directory.service import certificate_valid_throughout
from server.errors import Problem
from server.extensions import db
from server.pagination import Page
from server.planning import drawing
from server.planning.common import field_error, get_shared, shared_page
from server.planning.frequency import COUNTED_STATUSES, frequency_rule, usable_override
from server.planning.models import ConflictOfInterest, Draw, JointPlan, SpotCheckPlan
from server.planning.targets import enterprise_query, matching_enterprises
from server.planning.visits import check_window, schedule_visit
from server.tasks.models import InspectionTask


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
        raise field_error("plan_id", "请指定且只指定一个抽查计划或联合抽查计划")
    if data.get("plan_id"):
        plan = db.session.get(SpotCheckPlan, data["plan_id"])
        if plan is None:
            raise field_error("plan_id", "抽查计划不存在")
        source = _Source(plan, None)
    else:
        joint = db.session.get(JointPlan, data["joint_plan_id"])
        if joint is None:
            raise field_error("joint_plan_id", "联合抽查计划不存在")
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
            InspectionTask.enterprise_id.in_(enterprise_query(holder.target_filter)),
            InspectionTask.status.in_(COUNTED_STATUSES),
            InspectionTask.window_start > window_start - span, InspectionTask.window_start < window_start + span)
        .group_by(InspectionTask.enterprise_id)).all())
    candidates = []
    for enterprise_id in matching_enterprises(holder.target_filter):
        visits = int(counted.get(enterprise_id, 0))
        override = usable_override(enterprise_id, [source.lead]) if visits >= rule.max_inspections else None
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
            "window_start": window_start.astimezone(UTC).isoformat(),
            "window_end": window_end.astimezone(UTC).isoformat(),
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
        raise field_error("window_start", f"检查时段应在计划期间 {holder.period_start} 至 {holder.period_end} 之内")
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
    task_ids = _tasks_from_draw(principal, source, result, window_start, window_end)
    record.task_ids = [str(task_id) for task_id in task_ids]
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
        members = [users[uuid.UUID(u)] for department_id in sorted(target["team"])
                   for u in target["team"][department_id]]
        visit = schedule_visit(principal, title=f"{source.holder.title}：{enterprise.name}",  # type: ignore[union-attr]
                               enterprise_id=enterprise.id, lead_department_id=source.lead,  # type: ignore[union-attr]
                               window_start=window_start, window_end=window_end, members=members,
                               check_item_ids=item_ids, equivalence=equivalence)
        task_ids.append(visit.task.id)
    return task_ids


def get_draw(principal: Principal, draw_id: uuid.UUID) -> Draw:
    """A draw record, with its seed, inputs, hashes and result; readable by every department's office."""
    return get_shared(principal, Draw, draw_id, "抽取记录")


def list_draws(principal: Principal, limit: int, after: str | None) -> Page[Draw]:
    """Draw records, oldest id first."""
    return shared_page(principal, select(Draw), Draw, limit, after)


def verify_draw(draw_id: uuid.UUID) -> drawing.Verification:
    """Re-run a recorded draw from its stored seed and inputs and compare with its stored result.

    A record rewritten consistently (new seed, inputs, result and hashes) still re-runs; it is caught
    by the hashes the hash-chained audit log took down when the draw ran.
    """
    record = db.session.get(Draw, draw_id)
    if record is None:
        raise Problem(404, "not-found", "抽取记录不存在")
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
    """``verify_draw`` for a caller who may read the draw."""
    get_draw(principal, draw_id)
    return verify_draw(draw_id)
