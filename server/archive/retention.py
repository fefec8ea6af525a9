"""Retention classes and legal holds: what may never be deleted, and the one guard every deletion path asks.

Retention (保管期限) follows the three terms of China's archival retention rules for documentary records
(《文书档案保管期限规定》): ordinary (定期10年) 10 years, long-term (定期30年) 30 years, permanent (永久). A case
takes the longest class any of its enforcement decisions' kinds calls for (``RETENTION_BY_DECISION_KIND``,
configurable with ``ARCHIVE_RETENTION_BY_DECISION_KIND`` / ``INSPECT_ONCE_RETENTION_BY_DECISION_KIND``), counted
from the day the last decision was served (or made); a case without a decision is ordinary, counted from the
upload of each file. Its evidence inherits the case's class.

A legal hold (``LegalHold``) on an inspection covers the whole case (its evidence, its uploads still arriving,
its case file); on a media record, that one file. While a hold is active or a retention term runs, the guard
registered with ``server.uploads.deletion`` refuses every deletion — API, CLI, upload expiry — and the refusal
is audited.
"""
from __future__ import annotations

import enum
import os
import uuid
from dataclasses import dataclass
from datetime import date
from typing import Any

from flask import Flask, current_app
from sqlalchemy import or_, select

from server.archive import sources
from server.archive.models import HeldObject, LegalHold
from server.audit.service import record as audit
from server.auth.policy import Principal
from server.config import ConfigError
from server.db_types import office_day, utcnow
from server.directory.models import User
from server.errors import Problem
from server.extensions import db
from server.sync.entities import inspection_id_for
from server.sync.models import SyncedEntity
from server.tasks.models import InspectionTask, TaskMember
from server.uploads import deletion
from server.uploads.models import Media

HOLDING_ROLES = frozenset({"head", "admin"})
REASON_MAX = 2000


class RetentionClass(str, enum.Enum):
    ORDINARY = "ordinary"    # 定期10年
    LONG_TERM = "long_term"  # 定期30年
    PERMANENT = "permanent"  # 永久


DEFAULT_YEARS: dict[RetentionClass, int | None] = {
    RetentionClass.ORDINARY: 10, RetentionClass.LONG_TERM: 30, RetentionClass.PERMANENT: None}
_RANK = {RetentionClass.ORDINARY: 0, RetentionClass.LONG_TERM: 1, RetentionClass.PERMANENT: 2}

# server.decisions' kinds: a penalty, a licence or a seizure may be litigated for decades; a transfer to the
# judicial authorities belongs to a criminal case.
DEFAULT_BY_DECISION_KIND: dict[str, RetentionClass] = {
    "no_irregularity": RetentionClass.ORDINARY,
    "rectify_order": RetentionClass.ORDINARY,
    "penalty": RetentionClass.LONG_TERM,
    "licensing": RetentionClass.LONG_TERM,
    "seizure": RetentionClass.LONG_TERM,
    "transfer_judicial": RetentionClass.PERMANENT,
}
LABELS = {RetentionClass.ORDINARY: "定期（10年）", RetentionClass.LONG_TERM: "定期（30年）",
          RetentionClass.PERMANENT: "永久"}

_CONFIG = "inspect_once.retention"


@dataclass(frozen=True)
class RetentionRules:
    by_decision_kind: dict[str, RetentionClass]
    years: dict[RetentionClass, int | None]


@dataclass(frozen=True)
class Retention:
    """A case's or a file's retention: its class, from when it counts, and until when (None: forever)."""

    retention_class: RetentionClass
    since: date
    until: date | None

    def runs_on(self, day: date) -> bool:
        return self.until is None or day < self.until

    def to_dict(self) -> dict[str, Any]:
        return {"class": self.retention_class.value, "label": LABELS[self.retention_class],
                "since": self.since.isoformat(), "until": self.until.isoformat() if self.until else None}


def _parse_mapping(text: str) -> dict[str, RetentionClass]:
    """``penalty=permanent,seizure=long_term``: the operator's overrides of the defaults."""
    out: dict[str, RetentionClass] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        kind, sep, value = part.partition("=")
        if not sep or kind.strip() not in DEFAULT_BY_DECISION_KIND:
            raise ConfigError(f"INSPECT_ONCE_RETENTION_BY_DECISION_KIND: {part!r} is not <decision kind>=<class> "
                              f"(kinds: {', '.join(DEFAULT_BY_DECISION_KIND)})")
        try:
            out[kind.strip()] = RetentionClass(value.strip())
        except ValueError:
            raise ConfigError(f"INSPECT_ONCE_RETENTION_BY_DECISION_KIND: {value!r} is not one of "
                              f"{', '.join(c.value for c in RetentionClass)}") from None
    return out


def init_app(app: Flask) -> None:
    """Read the retention rules and register the deletion guard with uploads."""
    by_kind = dict(DEFAULT_BY_DECISION_KIND)
    by_kind.update(_parse_mapping(os.environ.get("INSPECT_ONCE_RETENTION_BY_DECISION_KIND", "")))
    by_kind.update({k: RetentionClass(v) for k, v in app.config.get("ARCHIVE_RETENTION_BY_DECISION_KIND", {}).items()})
    years = dict(DEFAULT_YEARS)
    years.update({RetentionClass(k): v for k, v in app.config.get("ARCHIVE_RETENTION_YEARS", {}).items()})
    app.extensions[_CONFIG] = RetentionRules(by_kind, years)
    deletion.register_guard(app, guard)


def _rules() -> RetentionRules:
    return current_app.extensions[_CONFIG]  # type: ignore[no-any-return]


def add_years(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


def _retention(retention_class: RetentionClass, since: date) -> Retention:
    years = _rules().years[retention_class]
    return Retention(retention_class, since, None if years is None else add_years(since, years))


def case_retention(task_id: uuid.UUID) -> Retention | None:
    """The case's retention from its decisions, or None when it has no decision yet (files count their own)."""
    decisions = sources.enforcement_decisions(task_id)
    if not decisions:
        return None
    rules = _rules()
    kinds = [rules.by_decision_kind.get(d["kind"], RetentionClass.ORDINARY) for d in decisions]
    strongest = max(kinds, key=lambda c: _RANK[c])
    days = [date.fromisoformat(d["served_on"] or d["decided_on"]) for d in decisions
            if d.get("served_on") or d.get("decided_on")]
    return _retention(strongest, max(days) if days else office_day(utcnow()))


def media_retention(media: Media) -> Retention:
    """An evidence file's retention: its case's, and never shorter than ordinary from its upload."""
    own = _retention(RetentionClass.ORDINARY, office_day(media.uploaded_at))
    case = case_retention(media.task_id) if media.task_id else None
    if case is None:
        return own
    if case.until is None or (own.until is not None and case.until >= own.until):
        return case
    return own


# ---- legal holds -----------------------------------------------------------------------------


def active_holds(object_type: HeldObject, object_id: uuid.UUID) -> list[LegalHold]:
    return list(db.session.scalars(select(LegalHold).where(
        LegalHold.object_type == object_type, LegalHold.object_id == object_id,
        LegalHold.lifted_at.is_(None)).order_by(LegalHold.placed_at)))


def holds_covering(task_id: uuid.UUID | None, media_id: uuid.UUID | None) -> list[LegalHold]:
    """Active holds on the file itself or on its case (the task's inspection)."""
    clauses = []
    if media_id is not None:
        clauses.append((LegalHold.object_type == HeldObject.MEDIA) & (LegalHold.object_id == media_id))
    if task_id is not None:
        clauses.append((LegalHold.object_type == HeldObject.INSPECTION)
                       & (LegalHold.object_id == inspection_id_for(task_id)))
    if not clauses:
        return []
    return list(db.session.scalars(select(LegalHold).where(or_(*clauses), LegalHold.lifted_at.is_(None))
                                   .order_by(LegalHold.placed_at)))


def guard(candidate: deletion.Candidate) -> deletion.Refusal | None:
    """The archive's answer to "may this be deleted?": never under a hold, never while retention runs."""
    holds = holds_covering(candidate.task_id, candidate.media_id)
    if holds:
        return deletion.Refusal("under-legal-hold",
                                f"该证据处于法律保全（诉讼保全/证据保全）中，不得删除。保全原因：{holds[0].reason}",
                                {"holds": [str(h.id) for h in holds]})
    if candidate.kind != "media":
        return None  # unfinished bytes are not evidence yet: only a hold keeps them
    media = db.session.get(Media, candidate.id)
    if media is None:
        return None
    retention = media_retention(media)
    if retention.runs_on(office_day(utcnow())):
        until = "永久保存" if retention.until is None else f"保管期限至 {retention.until.isoformat()}"
        return deletion.Refusal("under-retention",
                                f"该证据在保管期限内（{LABELS[retention.retention_class]}，{until}），不得删除",
                                {"retention": retention.to_dict()})
    return None


def _participating_departments(task_id: uuid.UUID | None) -> set[uuid.UUID]:
    if task_id is None:
        return set()
    task = db.session.get(InspectionTask, task_id)
    if task is None:
        return set()
    members = set(db.session.scalars(select(TaskMember.department_id).where(TaskMember.task_id == task_id)))
    return members | {task.department_id}


def _held_object(object_type: HeldObject, object_id: uuid.UUID) -> tuple[uuid.UUID, set[uuid.UUID]]:
    """The held object's own department and every department that may hold it (404 when unknown)."""
    if object_type is HeldObject.INSPECTION:
        entity = db.session.get(SyncedEntity, object_id)
        if entity is None or entity.kind != "inspection":
            raise Problem(404, "not-found", "检查记录不存在")
        return entity.department_id, {entity.department_id} | _participating_departments(entity.task_id)
    media = db.session.get(Media, object_id)
    if media is None:
        raise Problem(404, "not-found", "证据文件不存在")
    return media.department_id, {media.department_id} | _participating_departments(media.task_id)


def _name_of(principal: Principal) -> str:
    if principal.user_id is not None:
        user = db.session.get(User, principal.user_id)
        if user is not None:
            return user.username
    return principal.kind


def _may_hold(principal: Principal, departments: set[uuid.UUID]) -> None:
    if principal.role not in HOLDING_ROLES:
        if principal.is_admin or principal.department_id in departments:
            raise Problem(403, "forbidden", "只有部门负责人或系统管理员可以设置或解除法律保全")
        raise Problem(404, "not-found", "对象不存在")
    if not principal.is_admin and principal.department_id not in departments:
        raise Problem(404, "not-found", "对象不存在")


def _reason(text: str | None, field: str = "reason") -> str:
    reason = (text or "").strip()
    if not reason:
        raise Problem(422, "validation-failed", "必须说明理由", errors={field: ["必须填写理由"]})
    if len(reason) > REASON_MAX:
        raise Problem(422, "validation-failed", "理由过长", errors={field: [f"最多 {REASON_MAX} 个字符"]})
    return reason


def place_hold(principal: Principal, object_type: HeldObject, object_id: uuid.UUID, reason: str) -> LegalHold:
    """Place a legal hold (head or administrator of a department the object concerns), audited."""
    department_id, departments = _held_object(object_type, object_id)
    _may_hold(principal, departments)
    hold = LegalHold(object_type=object_type, object_id=object_id, department_id=department_id,
                     reason=_reason(reason), placed_by_id=principal.user_id, placed_by=_name_of(principal),
                     placed_at=utcnow())
    db.session.add(hold)
    db.session.flush()
    audit("legal_hold.place", object_type=object_type.value, object_id=str(object_id), actor=principal,
          details={"hold_id": str(hold.id), "reason": hold.reason})
    return hold


def get_hold(principal: Principal, hold_id: uuid.UUID) -> LegalHold:
    hold = db.session.get(LegalHold, hold_id)
    if hold is None:
        raise Problem(404, "not-found", "法律保全不存在")
    _, departments = _held_object(hold.object_type, hold.object_id)
    if not principal.is_admin and principal.department_id not in departments:
        raise Problem(404, "not-found", "法律保全不存在")
    return hold


def lift_hold(principal: Principal, hold_id: uuid.UUID, reason: str) -> LegalHold:
    """Lift a hold with a reason (head or administrator), audited; a lifted hold stays on record."""
    hold = get_hold(principal, hold_id)
    _, departments = _held_object(hold.object_type, hold.object_id)
    _may_hold(principal, departments)
    if hold.lifted_at is not None:
        raise Problem(409, "hold-already-lifted", f"该法律保全已于 {hold.lifted_at:%Y-%m-%d} 解除")
    hold.lift_reason = _reason(reason)
    hold.lifted_at = utcnow()
    hold.lifted_by_id = principal.user_id
    hold.lifted_by = _name_of(principal)
    db.session.flush()
    audit("legal_hold.lift", object_type=hold.object_type.value, object_id=str(hold.object_id), actor=principal,
          details={"hold_id": str(hold.id), "reason": hold.lift_reason})
    return hold


def list_holds(principal: Principal, *, object_id: uuid.UUID | None, active: bool | None,
               limit: int) -> list[LegalHold]:
    """Holds the caller's department placed or that concern it (all, for an administrator), newest first."""
    query = select(LegalHold)
    if not principal.is_admin:
        query = query.where(LegalHold.department_id == principal.department_id)
    if object_id is not None:
        query = query.where(LegalHold.object_id == object_id)
    if active is not None:
        query = query.where(LegalHold.lifted_at.is_(None) if active else LegalHold.lifted_at.is_not(None))
    return list(db.session.scalars(query.order_by(LegalHold.placed_at.desc(), LegalHold.id).limit(limit)))
