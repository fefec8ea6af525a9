"""Departments' spot-check plans (抽查计划): written by a department's own office, read by every office."""
from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select

from server.auth.policy import Permission, Principal, authorize_object
from server.directory.models import CheckItem, Department
from server.extensions import db
from server.pagination import Page
from server.planning.common import Owned, field_error, get_shared, shared_page
from server.planning.models import PlanCheckItem, SpotCheckPlan
from server.planning.targets import clean_filter


def create_plan(principal: Principal, data: Mapping[str, Any]) -> SpotCheckPlan:
    """A department's spot-check plan; its supervisor or head writes it for their own department."""
    department_id = data.get("department_id") or principal.department_id
    department = db.session.get(Department, department_id)
    if department is None:
        raise field_error("department_id", "部门不存在")
    authorize_object(principal, Permission.MANAGE_PLANS, Owned(department_id), visible=Permission.READ_PLANS)
    if data["period_end"] < data["period_start"]:
        raise field_error("period_end", "计划结束日期不能早于开始日期")
    item_ids = list(dict.fromkeys(data["check_item_ids"]))
    items = {i.id: i for i in db.session.scalars(select(CheckItem).where(CheckItem.id.in_(item_ids)))}
    for item_id in item_ids:
        item = items.get(item_id)
        if item is None or not item.active or item.department_id != department_id:
            raise field_error("check_item_ids", f"检查事项 {item_id} 不存在、已停用或不属于本部门")
    plan = SpotCheckPlan(department_id=department_id, title=data["title"], subject_kind=data["subject_kind"],
                         period_start=data["period_start"], period_end=data["period_end"],
                         target_filter=clean_filter(data.get("target_filter") or {}),
                         sampling_ratio=data["sampling_ratio"], created_by_id=principal.user_id)
    plan.items = [PlanCheckItem(check_item_id=i) for i in sorted(item_ids, key=str)]
    db.session.add(plan)
    db.session.flush()
    return plan


def get_plan(principal: Principal, plan_id: uuid.UUID) -> SpotCheckPlan:
    """A spot-check plan of any department."""
    return get_shared(principal, SpotCheckPlan, plan_id, "抽查计划")


def list_plans(principal: Principal, department_id: uuid.UUID | None, limit: int,
               after: str | None) -> Page[SpotCheckPlan]:
    """Spot-check plans, of one department when ``department_id`` is given."""
    query = select(SpotCheckPlan)
    if department_id is not None:
        query = query.where(SpotCheckPlan.department_id == department_id)
    return shared_page(principal, query, SpotCheckPlan, limit, after)
