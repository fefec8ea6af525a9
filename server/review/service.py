"""Review rules: which inspection records a reviewer sees, the work queue, one record's evidence,
decisions, and the contact sheets of footage."""
from __future__ import annotations

import logging
import os
import tempfile
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any

from flask import current_app
from sqlalchemy import ColumnElement, exists, func, or_, select
from sqlalchemy.orm import aliased

from server.audit.service import record as audit
from server.auth.policy import Permission, Principal, can
from server.db_types import OFFICE_TIMEZONE, utcnow
from server.directory.models import CheckItem, Department, User
from server.errors import Problem
from server.extensions import db
from server.joint.service import joint_record_for
from server.loading import load_authorized
from server.planning.approval import approve_dispatch, pending_approvals, reject_dispatch
from server.review.models import DecisionKind, ReviewDecision
from server.review.timeline import Clip, Mark, Timeline, gaps_between, lay_out
from server.sync.models import SyncedEntity, SyncConflict
from server.tasks.models import InspectionTask, TaskMember
from server.uploads.models import Media
from server.verification.models import InspectionFlag, InspectionMedia, VerificationReport

log = logging.getLogger(__name__)

# Dates in the queue's filters and on the pages are the city's (China Standard Time, no DST).
PAGE_SIZE = 25
COMMENT_MAX = 4000


class ReviewStatus:
    PENDING = "pending"
    RETURNED = "returned"
    SIGNED_OFF = "signed_off"
    APPROVED = "approved"
    OPEN = "open"  # a filter: everything not yet approved
    ALL = "all"


_STATUS_OF_KIND = {None: ReviewStatus.PENDING, DecisionKind.RETURN: ReviewStatus.RETURNED,
                   DecisionKind.LEGAL_SIGNOFF: ReviewStatus.SIGNED_OFF, DecisionKind.APPROVE: ReviewStatus.APPROVED}
STATUSES = (ReviewStatus.OPEN, ReviewStatus.PENDING, ReviewStatus.RETURNED, ReviewStatus.SIGNED_OFF,
            ReviewStatus.APPROVED, ReviewStatus.ALL)


def _refuse() -> Problem:
    return Problem(403, "forbidden", "您的角色无权执行此操作")


def _not_found() -> Problem:
    return Problem(404, "not-found", "检查记录不存在")


# ---- scope ---------------------------------------------------------------------------------

_LedTask = aliased(InspectionTask)


def _visible(principal: Principal) -> ColumnElement[bool]:
    """Inspections of the caller's department, and of every task their department took part in
    (led it or had someone on the team): the same rule as the task listing."""
    if principal.is_admin:
        return SyncedEntity.id.is_not(None)
    on_team = exists().where(TaskMember.task_id == SyncedEntity.task_id,
                             TaskMember.department_id == principal.department_id)
    led = SyncedEntity.task_id.in_(select(_LedTask.id).where(_LedTask.department_id == principal.department_id))
    return or_(SyncedEntity.department_id == principal.department_id, on_team, led)


def inspection_department(inspection_id: str) -> uuid.UUID | None:
    try:
        key = uuid.UUID(inspection_id)
    except ValueError:
        return None
    return db.session.scalar(select(SyncedEntity.department_id).where(SyncedEntity.id == key))


def get_inspection(principal: Principal, inspection_id: uuid.UUID) -> SyncedEntity:
    """An inspection record the caller may review; 404 for one they may not even know of."""
    if not can(principal, Permission.USE_REVIEW):
        raise _refuse()
    found = db.session.scalar(select(SyncedEntity).where(
        SyncedEntity.id == inspection_id, SyncedEntity.kind == "inspection", SyncedEntity.deleted.is_(False),
        _visible(principal)))
    if found is None:
        raise _not_found()
    return found


def media_of(inspection: SyncedEntity) -> list[Media]:
    """The stored evidence of an inspection: what its record names and the footage attached to it."""
    named = select(SyncedEntity.id).where(SyncedEntity.kind == "media",
                                          SyncedEntity.inspection_id == inspection.id)
    attached = select(InspectionMedia.media_id).where(InspectionMedia.inspection_id == inspection.id)
    return list(db.session.scalars(select(Media).where(or_(Media.id.in_(named), Media.id.in_(attached)))
                                   .order_by(Media.capture_start, Media.uploaded_at)))


def get_media_for_review(principal: Principal, media_id: uuid.UUID) -> Media:
    """A media file the caller may watch: evidence of an inspection they may review, or their department's own."""
    if not can(principal, Permission.USE_REVIEW):
        raise _refuse()

    def reviewable(media: Media) -> bool:
        if principal.is_admin or media.department_id == principal.department_id:
            return True
        owners = select(InspectionMedia.inspection_id).where(InspectionMedia.media_id == media.id)
        named = select(SyncedEntity.inspection_id).where(SyncedEntity.id == media.id, SyncedEntity.kind == "media")
        visible = db.session.scalar(select(SyncedEntity.id).where(
            SyncedEntity.kind == "inspection", _visible(principal),
            or_(SyncedEntity.id.in_(owners), SyncedEntity.id.in_(named))).limit(1))
        if visible is None and media.task_id is not None:
            visible = db.session.scalar(select(SyncedEntity.id).where(
                SyncedEntity.kind == "inspection", SyncedEntity.task_id == media.task_id, _visible(principal)).limit(1))
        return visible is not None

    return load_authorized(principal, Media, media_id, Permission.USE_REVIEW, not_found="证据文件不存在",
                           sees=reviewable)


# ---- the work queue ------------------------------------------------------------------------

def _latest_decision() -> Any:
    return (select(ReviewDecision.kind).where(ReviewDecision.inspection_id == SyncedEntity.id,
                                              ReviewDecision.kind.in_([k for k in _STATUS_OF_KIND if k]))
            .order_by(ReviewDecision.decided_at.desc(), ReviewDecision.id.desc()).limit(1)
            .correlate(SyncedEntity).scalar_subquery())


@dataclass(frozen=True)
class QueueFilters:
    department_id: uuid.UUID | None = None
    date_from: date | None = None
    date_to: date | None = None
    flag: str | None = None
    status: str = ReviewStatus.OPEN
    page: int = 1


@dataclass
class QueueRow:
    inspection: SyncedEntity
    task: InspectionTask
    department: Department
    status: str
    flags: list[Any]


@dataclass
class Queue:
    rows: list[QueueRow]
    flag_counts: list[tuple[str, int, str]]  # code, inspections flagged, gravest severity
    page: int
    has_next: bool
    total: int


def _start_of(day: date) -> datetime:
    return datetime.combine(day, time.min, OFFICE_TIMEZONE).astimezone(timezone.utc)


def _filtered(principal: Principal, filters: QueueFilters, *, with_flag: bool) -> Any:
    latest = _latest_decision()
    query = (select(SyncedEntity.id).join(InspectionTask, InspectionTask.id == SyncedEntity.task_id)
             .where(SyncedEntity.kind == "inspection", SyncedEntity.deleted.is_(False), _visible(principal)))
    if filters.department_id:
        query = query.where(SyncedEntity.department_id == filters.department_id)
    if filters.date_from:
        query = query.where(InspectionTask.window_start >= _start_of(filters.date_from))
    if filters.date_to:
        query = query.where(InspectionTask.window_start < _start_of(filters.date_to + timedelta(days=1)))
    if filters.status == ReviewStatus.OPEN:
        query = query.where(or_(latest.is_(None), latest != DecisionKind.APPROVE))
    elif filters.status == ReviewStatus.PENDING:
        query = query.where(latest.is_(None))
    elif filters.status != ReviewStatus.ALL:
        kind = next(k for k, s in _STATUS_OF_KIND.items() if s == filters.status)
        query = query.where(latest == kind)
    if with_flag and filters.flag:
        query = query.where(exists().where(InspectionFlag.inspection_id == SyncedEntity.id, InspectionFlag.code == filters.flag))
    return query


def work_queue(principal: Principal, filters: QueueFilters) -> Queue:
    """Inspection records needing review, newest first, a page at a time, with the flag counts."""
    if not can(principal, Permission.USE_REVIEW):
        raise _refuse()
    ids = _filtered(principal, filters, with_flag=True).subquery()
    total = db.session.scalar(select(func.count()).select_from(ids)) or 0
    offset = (max(filters.page, 1) - 1) * PAGE_SIZE
    rows = db.session.execute(
        select(SyncedEntity, InspectionTask, Department, _latest_decision())
        .join(InspectionTask, InspectionTask.id == SyncedEntity.task_id)
        .join(Department, Department.id == SyncedEntity.department_id)
        .where(SyncedEntity.id.in_(select(ids.c.id)))
        .order_by(InspectionTask.window_start.desc(), SyncedEntity.id)
        .offset(offset).limit(PAGE_SIZE + 1)).all()
    flags: dict[uuid.UUID, list[Any]] = {}
    for flag in db.session.scalars(select(InspectionFlag).where(InspectionFlag.inspection_id.in_([r[0].id for r in rows]))
                                   .order_by(InspectionFlag.severity, InspectionFlag.code)):
        flags.setdefault(flag.inspection_id, []).append(flag)
    unflagged = _filtered(principal, filters, with_flag=False).subquery()
    # "error" sorts before "warning": min() is the gravest severity raised under that code.
    counts = [(code, n, severity) for code, n, severity in db.session.execute(
        select(InspectionFlag.code, func.count(func.distinct(InspectionFlag.inspection_id)), func.min(InspectionFlag.severity))
        .where(InspectionFlag.inspection_id.in_(select(unflagged.c.id)))
        .group_by(InspectionFlag.code).order_by(InspectionFlag.code))]
    return Queue(
        rows=[QueueRow(entity, task, department, _STATUS_OF_KIND.get(kind, ReviewStatus.PENDING), flags.get(entity.id, []))
              for entity, task, department, kind in rows[:PAGE_SIZE]],
        flag_counts=counts, page=max(filters.page, 1), has_next=len(rows) > PAGE_SIZE, total=total)


def departments() -> list[Department]:
    """Every department, for the queue's filter (a joint record may involve any of them)."""
    return list(db.session.scalars(select(Department).order_by(Department.code)))


# ---- one inspection ------------------------------------------------------------------------

def needs_legal_review(inspection: SyncedEntity) -> bool:
    """Coercive measures (查封扣押, 强制拆除 …) were taken: a legal reviewer signs off before approval (§2, §4)."""
    return bool((inspection.fields or {}).get("coercive_measures"))


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


@dataclass
class MediaView:
    media: Media
    report: VerificationReport | None
    synced: dict[str, Any]
    duration: float | None
    certificates: list[dict[str, Any]]
    covered: list[dict[str, Any]]
    unreadable: bool

    @property
    def is_video(self) -> bool:
        return (self.media.content_type or "").startswith("video/") or (self.duration or 0) > 0

    @property
    def proves(self) -> str | None:
        return self.synced.get("proves")

    @property
    def name(self) -> str:
        return self.media.file_name or self.synced.get("file_name") or str(self.media.id)[:8]


@dataclass
class DepartmentFindings:
    department: Department
    inspections: list[SyncedEntity]
    findings: list[tuple[SyncedEntity, CheckItem | None]]


@dataclass
class InspectionView:
    inspection: SyncedEntity
    task: InspectionTask
    department: Department
    recorded_by: User | None
    departments: list[DepartmentFindings]
    signatures: list[SyncedEntity]
    media: list[MediaView]
    flags: list[Any]
    conflicts: list[SyncConflict]
    decisions: list[tuple[ReviewDecision, User | None]]
    status: str
    legal_required: bool
    legal_signed: bool
    timeline: Timeline | None
    joint: dict[str, Any] | None
    certificate_numbers: list[str] = field(default_factory=list)

    @property
    def fields(self) -> dict[str, Any]:
        return self.inspection.fields or {}


def _media_view(media: Media, synced: dict[str, Any]) -> MediaView:
    report = db.session.get(VerificationReport, media.id)
    detections = list(report.detections or []) if report else []
    measurements = (report.measurements or {}) if report else {}
    duration = measurements.get("duration")
    return MediaView(
        media=media, report=report, synced=synced,
        duration=float(duration) if isinstance(duration, (int, float)) and duration > 0 else None,
        certificates=[d for d in detections if d.get("kind") == "certificate"],
        covered=[d for d in detections if d.get("kind") == "lens-covered"],
        unreadable=any(d.get("kind") == "unreadable-code" for d in detections))


def _decisions(inspection_id: uuid.UUID) -> list[ReviewDecision]:
    return list(db.session.scalars(select(ReviewDecision).where(ReviewDecision.inspection_id == inspection_id)
                                   .order_by(ReviewDecision.decided_at, ReviewDecision.id)))


def _signed_since_return(decisions: list[ReviewDecision]) -> bool:
    signed = False
    for decision in decisions:
        if decision.kind == DecisionKind.RETURN:
            signed = False
        elif decision.kind == DecisionKind.LEGAL_SIGNOFF:
            signed = True
    return signed


def _status(decisions: list[ReviewDecision]) -> str:
    kinds = [d.kind for d in decisions if d.kind in _STATUS_OF_KIND]
    return _STATUS_OF_KIND[kinds[-1] if kinds else None]


def _timeline(inspection: SyncedEntity, media: list[MediaView], flags: list[Any],
              findings: list[tuple[SyncedEntity, CheckItem | None]]) -> Timeline | None:
    clips: list[Clip] = []
    marks: list[Mark] = []
    for view in media:
        start = view.media.capture_start or parse_time(view.synced.get("capture_start"))
        if start is None or not view.is_video or not view.duration:
            continue
        media_id = str(view.media.id)
        clips.append(Clip(media_id, view.name, start, view.duration))
        for detection, kind in [(d, "certificate") for d in view.certificates] + [(d, "covered") for d in view.covered]:
            begin, end = detection.get("start"), detection.get("end")
            if not isinstance(begin, (int, float)):
                continue
            marks.append(Mark(kind, str(detection.get("text") or ""), start + timedelta(seconds=begin),
                              start + timedelta(seconds=end) if isinstance(end, (int, float)) and end > begin else None,
                              media_id, float(begin)))
    clips.sort(key=lambda c: c.start)
    marks += gaps_between(clips)
    for finding, item in findings:
        at = parse_time((finding.fields or {}).get("recorded_at"))
        if at:
            marks.append(Mark("finding", item.title if item else "", at))
    for flag in flags:
        for interval in (flag.details or {}).get("intervals", []) if isinstance(flag.details, dict) else []:
            begin, end = parse_time(interval.get("start")), parse_time(interval.get("end"))
            if begin and flag.code != "recording-gap":  # gaps are drawn from the segments themselves
                marks.append(Mark("flag", flag.message, begin, end if end and end > begin else None))
        if isinstance(flag.details, dict) and flag.code != "recording-gap":
            begin, end = parse_time(flag.details.get("start")), parse_time(flag.details.get("end"))
            if begin:
                marks.append(Mark("flag", flag.message, begin, end if end and end > begin else None))
    fields = inspection.fields or {}
    # A clip points the player at the moment a mark shows, when that moment is in a segment.
    placed: list[Mark] = []
    for mark in marks:
        if mark.media_id is None:
            for clip in clips:
                offset = (mark.start - clip.start).total_seconds()
                if 0 <= offset <= clip.duration:
                    mark = Mark(mark.kind, mark.label, mark.start, mark.end, clip.media_id, offset)
                    break
        placed.append(mark)
    return lay_out(clips, placed, (parse_time(fields.get("started_at")), parse_time(fields.get("ended_at"))))


def inspection_view(principal: Principal, inspection_id: uuid.UUID) -> InspectionView:
    """Everything a reviewer looks at for one inspection record."""
    inspection = get_inspection(principal, inspection_id)
    task = db.session.get(InspectionTask, inspection.task_id)
    entities = list(db.session.scalars(select(SyncedEntity).where(
        SyncedEntity.task_id == inspection.task_id, SyncedEntity.deleted.is_(False))
        .order_by(SyncedEntity.first_received_at, SyncedEntity.id)))
    departments = {d.id: d for d in db.session.scalars(select(Department).where(
        Department.id.in_({e.department_id for e in entities} | {task.department_id})))}
    items = {str(i.id): i for i in db.session.scalars(select(CheckItem).where(CheckItem.id.in_(
        [uuid.UUID(e.fields["check_item_id"]) for e in entities if e.kind == "finding" and e.fields.get("check_item_id")])))}
    by_department: dict[uuid.UUID, DepartmentFindings] = {}
    for entity in entities:
        if entity.kind in ("inspection", "finding"):
            group = by_department.setdefault(entity.department_id,
                                             DepartmentFindings(departments[entity.department_id], [], []))
            if entity.kind == "inspection":
                group.inspections.append(entity)
            else:
                group.findings.append((entity, items.get(str(entity.fields.get("check_item_id")))))
    synced_media = {e.id: e.fields or {} for e in entities if e.kind == "media"}
    media = [_media_view(m, synced_media.get(m.id, {})) for m in media_of(inspection)]
    flags = list(db.session.scalars(select(InspectionFlag).where(InspectionFlag.inspection_id == inspection.id)
                                    .order_by(InspectionFlag.severity, InspectionFlag.code)))
    decisions = _decisions(inspection.id)
    users = {u.id: u for u in db.session.scalars(select(User).where(
        User.id.in_({d.decided_by_id for d in decisions} | {inspection.created_by_id})))}
    joint = _joint_dict(principal, task)
    own = by_department.get(inspection.department_id)
    numbers = [c.number for member in task.members for c in member.user.certificates]
    return InspectionView(
        inspection=inspection, task=task, department=departments[inspection.department_id],
        recorded_by=users.get(inspection.created_by_id),
        departments=list(by_department.values()),
        signatures=[e for e in entities if e.kind == "signature" and e.inspection_id == inspection.id],
        media=media, flags=flags,
        conflicts=list(db.session.scalars(select(SyncConflict).where(SyncConflict.task_id == task.id)
                                          .order_by(SyncConflict.detected_at))),
        decisions=[(d, users.get(d.decided_by_id)) for d in decisions],
        status=_status(decisions), legal_required=needs_legal_review(inspection),
        legal_signed=_signed_since_return(decisions),
        timeline=_timeline(inspection, media, flags, own.findings if own else []),
        joint=joint, certificate_numbers=numbers)


def _joint_dict(principal: Principal, task: InspectionTask) -> dict[str, Any] | None:
    """The joint-inspection package's merged record (it checks the caller's access itself)."""
    try:
        return joint_record_for(principal, task.id).to_dict()
    except Problem:
        return None
    except LookupError:  # a record the merge cannot read: the reviewer still sees the rest of the page
        log.exception("joint record of task %s could not be built", task.id)
        return None


# ---- decisions -----------------------------------------------------------------------------

def decide(principal: Principal, inspection_id: uuid.UUID, kind: DecisionKind, comment: str | None) -> ReviewDecision:
    """Approve, return with comments, or sign off (legal review) an inspection record."""
    inspection = get_inspection(principal, inspection_id)
    permission = Permission.LEGAL_SIGNOFF if kind == DecisionKind.LEGAL_SIGNOFF else Permission.DECIDE_REVIEW
    if kind == DecisionKind.RETURN and can(principal, Permission.LEGAL_SIGNOFF):
        permission = Permission.LEGAL_SIGNOFF  # a legal reviewer may send a record back too
    if kind not in (DecisionKind.APPROVE, DecisionKind.RETURN, DecisionKind.LEGAL_SIGNOFF) or not can(principal, permission):
        raise _refuse()
    if not principal.is_admin and inspection.department_id != principal.department_id:
        raise Problem(403, "forbidden", "只能审核本部门的检查记录")
    comment = (comment or "").strip() or None
    if comment and len(comment) > COMMENT_MAX:
        raise Problem(422, "validation-failed", f"意见不能超过 {COMMENT_MAX} 个字符", errors={"comment": ["too long"]})
    decisions = _decisions(inspection.id)
    status = _status(decisions)
    if status == ReviewStatus.APPROVED:
        raise Problem(409, "already-approved", "该检查记录已批准，不能再作决定")
    if kind == DecisionKind.RETURN and not comment:
        raise Problem(422, "validation-failed", "退回时必须填写意见", errors={"comment": ["required"]})
    if kind == DecisionKind.LEGAL_SIGNOFF:
        if not needs_legal_review(inspection):
            raise Problem(409, "legal-review-not-required", "该检查记录无需法制审核")
        if _signed_since_return(decisions):
            raise Problem(409, "already-signed-off", "法制审核已签署")
    if kind == DecisionKind.APPROVE and needs_legal_review(inspection) and not _signed_since_return(decisions):
        raise Problem(409, "legal-review-required", "该记录采取了强制措施，须经法制审核签署后才能批准")
    decision = ReviewDecision(inspection_id=inspection.id, task_id=inspection.task_id,
                              department_id=inspection.department_id, kind=kind, comment=comment,
                              decided_by_id=principal.user_id, decided_at=utcnow())
    db.session.add(decision)
    db.session.flush()
    audit(f"review.{kind.value}", object_type="inspection", object_id=str(inspection.id),
          details={"decision_id": str(decision.id), "comment": comment}, actor=principal)
    return decision


def record_dispatch_decision(principal: Principal, task_id: uuid.UUID, approve: bool, reason: str | None) -> None:
    """A head approves or rejects a task's dispatch through the planning service; stored and audited here too."""
    reason = (reason or "").strip() or None
    if not approve and not reason:
        raise Problem(422, "validation-failed", "驳回时必须填写理由", errors={"reason": ["required"]})
    if approve:
        approve_dispatch(task_id, principal)
    else:
        reject_dispatch(task_id, principal, reason or "")
    task = db.session.get(InspectionTask, task_id)
    kind = DecisionKind.DISPATCH_APPROVE if approve else DecisionKind.DISPATCH_REJECT
    db.session.add(ReviewDecision(inspection_id=None, task_id=task_id,
                                  department_id=principal.department_id if task is None else task.department_id,
                                  kind=kind, comment=reason, decided_by_id=principal.user_id, decided_at=utcnow()))
    db.session.flush()
    audit(f"review.{kind.value}", object_type="task", object_id=str(task_id), details={"reason": reason}, actor=principal)


def pending_dispatches(principal: Principal) -> list[InspectionTask]:
    """Tasks waiting for the approval of this head's department (the planning service decides)."""
    return pending_approvals(principal)


# ---- contact sheets ------------------------------------------------------------------------

CONTACT_SHEET_INTERVAL = 10.0


def contact_sheet(media: Media) -> Path | None:
    """The contact sheet of a stored video or photo, made once and kept under the var dir by its SHA-256."""
    from media import MediaError, make_contact_sheet
    from server.uploads.service import uploads
    from server.verification.service import local_file, object_key_of

    cache = Path(current_app.config["SETTINGS"].var_dir) / "review-cache" / "contact-sheets"
    # Keyed by content (and the sheet's layout), never by a file name a device chose.
    target = cache / f"{media.sha256}-i{int(CONTACT_SHEET_INTERVAL)}.jpg"
    if target.exists():
        return target
    stored = object_key_of(media)
    if stored is None:
        return None
    with local_file(uploads().store, stored[1]) as path:
        if path is None:
            return None
        try:
            picture = make_contact_sheet(path, interval=CONTACT_SHEET_INTERVAL)
        except (MediaError, OSError, ValueError):
            return None
    cache.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=cache, suffix=".part")
    with os.fdopen(handle, "wb") as out:
        out.write(picture.jpeg)
    os.replace(temporary, target)  # readers see a whole sheet or none
    return target


def parse_uuid(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise _not_found() from None

