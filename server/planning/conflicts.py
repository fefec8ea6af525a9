"""Declared conflicts of interest (利益冲突): an inspector is never drawn for that enterprise."""
from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select

from server.audit import service as audit
from server.auth.policy import Principal
from server.directory.models import Enterprise, Role, User
from server.errors import Problem
from server.extensions import db
from server.pagination import Page, keyset_page
from server.planning.common import field_error
from server.planning.models import ConflictOfInterest


def declare_conflict(principal: Principal, data: Mapping[str, Any]) -> ConflictOfInterest:
    """An inspector declares their own conflict; their head (or an admin) may declare one for them."""
    user = db.session.get(User, data["user_id"])
    if user is None or not (principal.is_admin or user.department_id == principal.department_id):
        raise field_error("user_id", "人员不存在", 404, "not-found")
    if not (principal.is_admin or principal.user_id == user.id or principal.role == Role.HEAD.value):
        raise Problem(403, "forbidden", "利益冲突只能由本人或其部门负责人申报")
    if db.session.get(Enterprise, data["enterprise_id"]) is None:
        raise field_error("enterprise_id", "检查对象不存在")
    duplicate = db.session.scalar(select(ConflictOfInterest.id).where(
        ConflictOfInterest.user_id == user.id, ConflictOfInterest.enterprise_id == data["enterprise_id"]))
    if duplicate is not None:
        raise field_error("enterprise_id", "该人员与该检查对象的利益冲突已申报", 409, "already-declared")
    conflict = ConflictOfInterest(user_id=user.id, enterprise_id=data["enterprise_id"],
                                  department_id=user.department_id, reason=data["reason"],
                                  declared_by_id=principal.user_id)
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
    """A declaration the caller may see: their own (inspectors) or their department's."""
    conflict = db.session.scalar(_conflicts_visible(principal, select(ConflictOfInterest).where(
        ConflictOfInterest.id == conflict_id)))
    if conflict is None:
        raise Problem(404, "not-found", "利益冲突申报不存在")
    return conflict


def list_conflicts(principal: Principal, limit: int, after: str | None) -> Page[ConflictOfInterest]:
    """The declarations the caller may see, oldest id first."""
    return keyset_page(_conflicts_visible(principal, select(ConflictOfInterest)), ConflictOfInterest.id, limit, after)
