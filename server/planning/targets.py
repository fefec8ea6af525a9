"""A plan's target filter: which directory entries a plan (or joint plan) draws its targets from."""
from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy import exists, select

from server.directory.models import Department, Enterprise, enterprise_department
from server.extensions import db
from server.planning.common import field_error


def enterprise_query(target_filter: Mapping[str, Any]) -> Any:
    """Directory entries matching a plan's filter (keys as in schemas.TargetFilter)."""
    query = select(Enterprise.id)
    if target_filter.get("industries"):
        query = query.where(Enterprise.industry.in_(target_filter["industries"]))
    if target_filter.get("risk_levels"):
        query = query.where(Enterprise.risk_level.in_(target_filter["risk_levels"]))
    if target_filter.get("address_contains"):
        # The directory has no district column: the district or street is part of the address.
        escaped = target_filter["address_contains"].replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(Enterprise.address.like("%" + escaped + "%", escape="\\"))
    if target_filter.get("supervising_department_ids"):
        ids = [uuid.UUID(str(i)) for i in target_filter["supervising_department_ids"]]
        query = query.where(exists().where(enterprise_department.c.enterprise_id == Enterprise.id,
                                           enterprise_department.c.department_id.in_(ids)))
    return query


def matching_enterprises(target_filter: Mapping[str, Any]) -> list[uuid.UUID]:
    """Ids of the directory entries matching the filter, sorted (the draw's candidates are in this order)."""
    return sorted(db.session.scalars(enterprise_query(target_filter)), key=str)


def clean_filter(target_filter: Mapping[str, Any]) -> dict[str, Any]:
    """The filter as stored: JSON-ready, lists sorted, departments checked."""
    departments = sorted({str(i) for i in target_filter.get("supervising_department_ids") or []})
    if departments:
        known = {str(i) for i in db.session.scalars(select(Department.id).where(
            Department.id.in_([uuid.UUID(i) for i in departments])))}
        for department_id in departments:
            if department_id not in known:
                raise field_error("target_filter.supervising_department_ids", f"部门 {department_id} 不存在")
    return {"industries": sorted(set(target_filter.get("industries") or [])),
            "risk_levels": sorted(set(target_filter.get("risk_levels") or [])),
            "address_contains": target_filter.get("address_contains") or None,
            "supervising_department_ids": departments}
