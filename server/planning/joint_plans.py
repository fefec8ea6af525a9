"""Joint plans: several departments' plans merged, with the check items that ask the same question."""
from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select

from server.auth.policy import Permission, Principal, authorize_object
from server.extensions import db
from server.pagination import Page
from server.planning.common import field_error, get_shared, shared_page
from server.planning.models import EquivalenceGroup, EquivalenceMember, JointPlan, JointPlanParticipant, SpotCheckPlan
from server.planning.targets import clean_filter


def create_joint_plan(principal: Principal, data: Mapping[str, Any]) -> JointPlan:
    """Merge plans of several departments for the same kind of subject and overlapping period."""
    lead = data.get("department_id") or principal.department_id
    if not principal.is_admin and lead != principal.department_id:
        raise field_error("department_id", "只能以本部门为牵头部门合并计划", 403, "forbidden")
    authorize_object(principal, Permission.MANAGE_JOINT_PLANS, None)
    plan_ids = list(dict.fromkeys(data["plan_ids"]))
    plans = {p.id: p for p in db.session.scalars(select(SpotCheckPlan).where(SpotCheckPlan.id.in_(plan_ids)))}
    for plan_id in plan_ids:
        if plan_id not in plans:
            raise field_error("plan_ids", f"抽查计划 {plan_id} 不存在")
    departments = [p.department_id for p in plans.values()]
    if len(set(departments)) != len(departments):
        raise field_error("plan_ids", "每个部门只能有一个计划参与联合计划")
    if len(plans) < 2:
        raise field_error("plan_ids", "联合计划至少合并两个部门的计划")
    if lead not in departments:
        raise field_error("plan_ids", "牵头部门的计划应在合并之列")
    kinds = {p.subject_kind for p in plans.values()}
    if len(kinds) != 1:
        raise field_error("plan_ids", "只能合并针对同一类检查对象的计划：" + "、".join(sorted(kinds)))
    start = max(p.period_start for p in plans.values())
    end = min(p.period_end for p in plans.values())
    if end < start:
        raise field_error("plan_ids", "各计划的时段没有重叠，不能合并")
    joined = db.session.scalar(select(JointPlanParticipant.plan_id)
                               .where(JointPlanParticipant.plan_id.in_(plan_ids)).limit(1))
    if joined is not None:
        raise field_error("plan_ids", f"抽查计划 {joined} 已并入另一个联合计划", 409, "plan-already-joined")
    joint = JointPlan(department_id=lead, title=data["title"], subject_kind=kinds.pop(), period_start=start,
                      period_end=end, target_filter=clean_filter(data.get("target_filter") or {}),
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
            raise field_error(f"{field}.key", f"等同事项组编号 {group['key']} 重复")
        keys.add(group["key"])
        item_ids = list(dict.fromkeys(group["check_item_ids"]))
        for item_id in item_ids:
            if item_id not in department_of:
                raise field_error(f"{field}.check_item_ids", f"检查事项 {item_id} 不属于参与合并的任何计划")
            if item_id in seen:
                raise field_error(f"{field}.check_item_ids", f"检查事项 {item_id} 已属于另一个等同事项组")
            seen.add(item_id)
        if len({department_of[i] for i in item_ids}) < 2:
            raise field_error(f"{field}.check_item_ids", "等同事项组应包含至少两个不同部门的检查事项")
        groups.append(EquivalenceGroup(joint_plan_id=joint.id, key=group["key"], title=group["title"], members=[
            EquivalenceMember(joint_plan_id=joint.id, check_item_id=i) for i in sorted(item_ids, key=str)]))
    return groups


def get_joint_plan(principal: Principal, joint_plan_id: uuid.UUID) -> JointPlan:
    """A joint plan, readable by every department's office."""
    return get_shared(principal, JointPlan, joint_plan_id, "联合抽查计划")


def list_joint_plans(principal: Principal, limit: int, after: str | None) -> Page[JointPlan]:
    """Joint plans, oldest id first."""
    return shared_page(principal, select(JointPlan), JointPlan, limit, after)
