"""Review rules: which inspection records a reviewer sees, the work queue, one record's evidence,
decisions, and the contact sheets of footage."""
from __future__ import annotations

import logging
import os
import tempfile
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from flask import current_app
from sqlalchemy import ColumnElement, Select, String, cast, exists, func, or_, select
from sqlalchemy.orm import aliased

from server.audit.models import AuditEntry
from server.audit.service import list_entries
from server.audit.service import record as audit
from server.auth.policy import Permission, Principal, can
from server.codes.service import IssuedCode, issued_code
from server.db_types import OFFICE_TIMEZONE, utcnow
from server.directory.models import Certificate, CheckItem, Department, User
from server.errors import Problem
from server.extensions import db
from server.joint.service import joint_record_for
from server.loading import load_authorized
from server.planning.approval import approve_dispatch, pending_approvals, reject_dispatch
from server.planning.frequency import VisitCount, frequency_rule, visit_count
from server.review.models import DecisionKind, ReviewDecision
from server.review.paging import Slice, first_of, page_of
from server.review.timeline import Clip, Mark, Timeline, gaps_between, lay_out
from server.sync import records
from server.sync import service as sync
from server.sync.entities import Kind
from server.sync.models import SyncConflict, SyncedEntity
from server.tasks.models import InspectionTask, TaskMember
from server.tasks.service import get_task
from server.uploads.models import Media
from server.verification.models import InspectionFlag, InspectionMedia, VerificationReport

log = logging.getLogger(__name__)

# Dates in the queue's filters and on the pages are the city's (China Standard Time, no DST).
PAGE_SIZE = 25
COMMENT_MAX = 4000


class ReviewStatus:
    PENDING = "pending"
    RETURNED = "returned"
    RESUBMITTED = "resubmitted"  # returned, then finished again by the team: waiting for the next decision
    SIGNED_OFF = "signed_off"
    APPROVED = "approved"
    OPEN = "open"  # a filter: everything not yet approved
    ALL = "all"


_STATUS_OF_KIND = {None: ReviewStatus.PENDING, DecisionKind.RETURN: ReviewStatus.RETURNED,
                   DecisionKind.LEGAL_SIGNOFF: ReviewStatus.SIGNED_OFF, DecisionKind.APPROVE: ReviewStatus.APPROVED}
STATUSES = (ReviewStatus.OPEN, ReviewStatus.PENDING, ReviewStatus.RETURNED, ReviewStatus.RESUBMITTED,
            ReviewStatus.SIGNED_OFF, ReviewStatus.APPROVED, ReviewStatus.ALL)


def _finished_again() -> ColumnElement[bool]:
    """The record's own status is "finished": after a return (which wrote "returned" onto it, with the server's
    stamp, in the decision's transaction) only the team finishing it again makes it so."""
    return SyncedEntity.fields["status"].as_string() == "finished"


def _status_of(kind: DecisionKind | None, fields: dict[str, Any] | None) -> str:
    """The review status shown: the latest decision's, and "resubmitted" for a returned record finished again."""
    if kind == DecisionKind.RETURN and (fields or {}).get("status") == "finished":
        return ReviewStatus.RESUBMITTED
    return _STATUS_OF_KIND.get(kind, ReviewStatus.PENDING)


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
        SyncedEntity.id == inspection_id, records.live(Kind.INSPECTION), _visible(principal)))
    if found is None:
        raise _not_found()
    return found


def get_media_for_review(principal: Principal, media_id: uuid.UUID) -> Media:
    """A media file the caller may watch: evidence of an inspection they may review, or their department's own."""
    if not can(principal, Permission.USE_REVIEW):
        raise _refuse()

    def reviewable(media: Media) -> bool:
        if principal.is_admin or media.department_id == principal.department_id:
            return True
        owners = select(InspectionMedia.inspection_id).where(InspectionMedia.media_id == media.id)
        named = select(SyncedEntity.inspection_id).where(SyncedEntity.id == media.id, SyncedEntity.kind == Kind.MEDIA)
        visible = db.session.scalar(select(SyncedEntity.id).where(
            SyncedEntity.kind == Kind.INSPECTION, _visible(principal),
            or_(SyncedEntity.id.in_(owners), SyncedEntity.id.in_(named))).limit(1))
        if visible is None and media.task_id is not None:
            visible = db.session.scalar(select(SyncedEntity.id).where(
                SyncedEntity.kind == Kind.INSPECTION, SyncedEntity.task_id == media.task_id,
                _visible(principal)).limit(1))
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


QUEUE_NAMES = 5  # people named on a queue badge (the rest are counted)


@dataclass
class QueueBadge:
    """One flag code raised on a record: how often, its gravest severity, and whom or what it concerns."""

    code: str
    severity: str
    count: int
    people: list[str]   # the people concerned (certificate flags are raised per person), the first few
    notes: list[str]    # the first few messages, for flags about files or the record


@dataclass
class QueueRow:
    inspection: SyncedEntity
    task: InspectionTask
    department: Department
    status: str
    flags: list[QueueBadge]

    @property
    def started_at(self) -> datetime | None:
        """When the visit began, by the record itself (None: not recorded, the task's window stands in)."""
        return parse_time((self.inspection.fields or {}).get("started_at"))


@dataclass
class Queue:
    rows: list[QueueRow]
    flag_counts: list[tuple[str, int, str]]  # code, inspections flagged, gravest severity
    page: int
    has_next: bool
    total: int


def _start_of(day: date) -> datetime:
    return datetime.combine(day, time.min, OFFICE_TIMEZONE).astimezone(UTC)


def _visit_time() -> ColumnElement[str]:
    """A record's time as sortable UTC text: its own start (ISO 8601, as sync stores it), else its task's window.

    Text on both sides, so one column orders and filters rows with and without a start of their own.
    """
    started = SyncedEntity.fields["started_at"].as_string()
    if db.session.get_bind().dialect.name == "postgresql":
        window = func.to_char(func.timezone("UTC", InspectionTask.window_start), 'YYYY-MM-DD"T"HH24:MI:SS')
        return func.coalesce(started, window).collate("C")  # byte order, as ISO 8601 text needs
    return func.coalesce(started, func.strftime("%Y-%m-%dT%H:%M:%S", InspectionTask.window_start))


def _text_of(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def _filtered(principal: Principal, filters: QueueFilters, *, with_flag: bool) -> Any:
    latest = _latest_decision()
    query = (select(SyncedEntity.id).join(InspectionTask, InspectionTask.id == SyncedEntity.task_id)
             .where(records.live(Kind.INSPECTION), _visible(principal)))
    if filters.department_id:
        query = query.where(SyncedEntity.department_id == filters.department_id)
    if filters.date_from:  # the office days of the visits, as the rows show them
        query = query.where(_visit_time() >= _text_of(_start_of(filters.date_from)))
    if filters.date_to:
        query = query.where(_visit_time() < _text_of(_start_of(filters.date_to + timedelta(days=1))))
    if filters.status == ReviewStatus.OPEN:
        query = query.where(or_(latest.is_(None), latest != DecisionKind.APPROVE))
    elif filters.status == ReviewStatus.PENDING:
        query = query.where(latest.is_(None))
    elif filters.status == ReviewStatus.RETURNED:
        own = SyncedEntity.fields["status"].as_string()
        query = query.where(latest == DecisionKind.RETURN, or_(own.is_(None), own != "finished"))
    elif filters.status == ReviewStatus.RESUBMITTED:
        query = query.where(latest == DecisionKind.RETURN, _finished_again())
    elif filters.status != ReviewStatus.ALL:
        kind = next(k for k, s in _STATUS_OF_KIND.items() if s == filters.status)
        query = query.where(latest == kind)
    if with_flag and filters.flag:
        query = query.where(exists().where(InspectionFlag.inspection_id == SyncedEntity.id,
                                           InspectionFlag.code == filters.flag))
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
        .order_by(_visit_time().desc(), SyncedEntity.id)
        .offset(offset).limit(PAGE_SIZE + 1)).all()
    flags = _badges([entity.id for entity, *_ in rows[:PAGE_SIZE]])
    unflagged = _filtered(principal, filters, with_flag=False).subquery()
    # "error" sorts before "warning": min() is the gravest severity raised under that code.
    counts = [(code, n, severity) for code, n, severity in db.session.execute(
        select(InspectionFlag.code, func.count(func.distinct(InspectionFlag.inspection_id)),
               func.min(InspectionFlag.severity))
        .where(InspectionFlag.inspection_id.in_(select(unflagged.c.id)))
        .group_by(InspectionFlag.code).order_by(InspectionFlag.code))]
    return Queue(
        rows=[QueueRow(entity, task, department, _status_of(kind, entity.fields), flags.get(entity.id, []))
              for entity, task, department, kind in rows[:PAGE_SIZE]],
        flag_counts=counts, page=max(filters.page, 1), has_next=len(rows) > PAGE_SIZE, total=total)


def _badges(inspection_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[QueueBadge]]:
    """Per record, one badge per flag code: its count and the first few flags under it (a bounded read)."""
    if not inspection_ids:
        return {}
    group = (InspectionFlag.inspection_id, InspectionFlag.code)
    ranked = select(InspectionFlag.inspection_id, InspectionFlag.code, InspectionFlag.message, InspectionFlag.details,
                    func.row_number().over(partition_by=group, order_by=(InspectionFlag.raised_at, InspectionFlag.id))
                    .label("n"),
                    func.count().over(partition_by=group).label("total"),
                    # "error" sorts before "warning": min() is the gravest severity raised under that code.
                    func.min(InspectionFlag.severity).over(partition_by=group).label("gravest"),
                    ).where(InspectionFlag.inspection_id.in_(inspection_ids)).subquery()
    rows = db.session.execute(select(ranked).where(ranked.c.n <= QUEUE_NAMES)
                              .order_by(ranked.c.inspection_id, ranked.c.gravest, ranked.c.code, ranked.c.n)).all()
    user_ids: set[uuid.UUID] = set()
    for row in rows:
        details = row.details if isinstance(row.details, dict) else {}
        if details.get("user_id") and not details.get("name"):
            try:
                user_ids.add(uuid.UUID(str(details["user_id"])))
            except ValueError:
                pass
    names = {str(u.id): u.full_name for u in db.session.scalars(select(User).where(User.id.in_(user_ids)))} \
        if user_ids else {}
    badges: dict[uuid.UUID, dict[str, QueueBadge]] = {}
    for row in rows:
        badge = badges.setdefault(row.inspection_id, {}).setdefault(
            row.code, QueueBadge(row.code, row.gravest, row.total, [], []))
        details = row.details if isinstance(row.details, dict) else {}
        person = (details.get("name") or names.get(str(details["user_id"]))) if details.get("user_id") else None
        if person:
            badge.people.append(str(person))
        else:
            badge.notes.append(row.message)
    return {key: list(by_code.values()) for key, by_code in badges.items()}


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
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


# How much of each list the inspection page shows at once. Whatever the record holds (a load test left one
# with 17,000 signatures), the page shows a page of each list and says how many there are in all.
FINDINGS_PAGE = 50
SIGNATURES_PAGE = 50
EVIDENCE_PAGE = 20
FLAGS_PAGE = 30
CONFLICTS_PAGE = 20
DECISIONS_PAGE = 20
AUDIT_PAGE = 50
TEAM_SHOWN = 50          # certificate numbers of the team
SIGHTING_FILES = 50      # files whose certificate readings are looked at
SIGHTINGS_SHOWN = 20
TIMELINE_CLIPS = 60      # recording segments drawn on the timeline
TIMELINE_MARKS = 150     # events and problems drawn on it
JOINT_SHOWN = 30         # merged findings of the joint record
CERTIFICATE_PHOTOS = 6   # photos of the certificate shown (亮证) in the certificate card
AUDIT_IDS_PER_QUERY = 1000


@dataclass(frozen=True)
class InspectionPages:
    """Which page of each of the inspection page's lists to show, and which file to play."""

    findings: int = 1
    signatures: int = 1
    evidence: int = 1
    flags: int = 1
    conflicts: int = 1
    decisions: int = 1
    media: uuid.UUID | None = None


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
    def is_photo(self) -> bool:
        return not self.is_video and (self.media.content_type or "").startswith("image/")

    @property
    def proves(self) -> str | None:
        return self.synced.get("proves")

    @property
    def name(self) -> str:
        return self.media.file_name or self.synced.get("file_name") or str(self.media.id)[:8]


@dataclass
class FindingRow:
    finding: SyncedEntity
    item: CheckItem | None
    department: Department


@dataclass
class Sighting:
    """A certificate number read in a file."""

    text: str
    media: MediaView
    start: float | None
    own: bool  # a team member's certificate


@dataclass
class Sightings:
    shown: list[Sighting]
    total: int                # readings in the files looked at
    unreadable: list[str]     # names of files where a code was seen but not read
    files_not_read: int       # files with readings beyond those looked at


@dataclass
class TimelineView:
    timeline: Timeline | None
    clips_total: int   # recording segments of the inspection
    clips_shown: int
    marks_left_out: int  # at least this many events and problems are not drawn


@dataclass
class JointSummary:
    """A bounded view of the joint-inspection package's merged record, with the size of each of its lists."""

    merged: Slice[dict[str, Any]]
    counts: dict[str, int]


@dataclass
class InspectionView:
    inspection: SyncedEntity
    task: InspectionTask
    department: Department
    recorded_by: User | None
    findings: Slice[FindingRow]
    finding_counts: list[tuple[Department, int]]
    signatures: Slice[SyncedEntity]
    media: Slice[MediaView]
    flags: Slice[InspectionFlag]
    flag_counts: list[tuple[str, str, int]]  # code, gravest severity, how many
    conflicts: Slice[SyncConflict]
    decisions: Slice[tuple[ReviewDecision, User | None]]
    status: str
    legal_required: bool
    legal_signed: bool
    timeline: TimelineView
    playing: MediaView | None
    sightings: Sightings
    certificate_photos: Slice[MediaView]
    joint: JointSummary | None
    certificate_numbers: Slice[str]

    @property
    def fields(self) -> dict[str, Any]:
        return self.inspection.fields or {}


def _inspection_media(inspection: SyncedEntity) -> Select[Any]:
    """The stored evidence of an inspection: what its record names and the footage attached to it."""
    named = records.part_ids(inspection.id, Kind.MEDIA)
    attached = select(InspectionMedia.media_id).where(InspectionMedia.inspection_id == inspection.id)
    return select(Media).where(or_(Media.id.in_(named), Media.id.in_(attached)))


def _in_capture_order(query: Select[Any]) -> Select[Any]:
    # Files without a capture time last on both databases (their NULLs sort differently).
    return query.order_by(Media.capture_start.is_(None), Media.capture_start, Media.uploaded_at, Media.id)


def media_ids_of(inspection: SyncedEntity) -> list[uuid.UUID]:
    """The ids of all the inspection's evidence (for the audit entries about it)."""
    return list(db.session.scalars(_inspection_media(inspection).with_only_columns(Media.id)))


def _media_views(media: list[Media]) -> list[MediaView]:
    """Views of a page of files, their reports and synced records loaded in one query each."""
    ids = [m.id for m in media]
    reports = {r.media_id: r for r in db.session.scalars(
        select(VerificationReport).where(VerificationReport.media_id.in_(ids)))} if ids else {}
    synced = {e.id: e.fields or {} for e in db.session.scalars(
        select(SyncedEntity).where(SyncedEntity.id.in_(ids), SyncedEntity.kind == Kind.MEDIA))} if ids else {}
    return [_media_view(m, reports.get(m.id), synced.get(m.id, {})) for m in media]


def _media_view(media: Media, report: VerificationReport | None, synced: dict[str, Any]) -> MediaView:
    detections = list(report.detections or []) if report else []
    measurements = (report.measurements or {}) if report else {}
    duration = measurements.get("duration")
    return MediaView(
        media=media, report=report, synced=synced,
        duration=float(duration) if isinstance(duration, (int, float)) and duration > 0 else None,
        certificates=[d for d in detections if isinstance(d, dict) and d.get("kind") == "certificate"],
        covered=[d for d in detections if isinstance(d, dict) and d.get("kind") == "lens-covered"],
        unreadable=any(isinstance(d, dict) and d.get("kind") == "unreadable-code" for d in detections))


def _is_video() -> ColumnElement[bool]:
    return or_(Media.content_type.like("video/%"), VerificationReport.measurements["kind"].as_string() == "video")


def _videos(inspection: SyncedEntity) -> tuple[list[MediaView], int]:
    """The first recording segments (in capture order) and how many there are."""
    query = (_inspection_media(inspection)
             .outerjoin(VerificationReport, VerificationReport.media_id == Media.id).where(_is_video()))
    total = db.session.scalar(select(func.count()).select_from(query.subquery())) or 0
    return _media_views(list(db.session.scalars(_in_capture_order(query).limit(TIMELINE_CLIPS)))), total


def _playing(inspection: SyncedEntity, wanted: uuid.UUID | None, videos: list[MediaView]) -> MediaView | None:
    """The file the player shows: the one asked for when it is this record's recording, else the first."""
    if wanted is not None:
        found = next((v for v in videos if v.media.id == wanted), None)
        if found is not None:
            return found
        media = db.session.scalar(_inspection_media(inspection).where(Media.id == wanted))
        if media is not None:
            [view] = _media_views([media])
            if view.is_video:
                return view
    return videos[0] if videos else None


def video_sizes(inspection: SyncedEntity) -> dict[uuid.UUID, int]:
    """The sizes in bytes of the inspection's recordings (every one: coverage is counted per file)."""
    query = (_inspection_media(inspection)
             .outerjoin(VerificationReport, VerificationReport.media_id == Media.id).where(_is_video()))
    return {media.id: media.size for media in db.session.scalars(query)}


def visited_between(department_id: uuid.UUID, start: datetime, end: datetime) -> list[SyncedEntity]:
    """The department's live inspection records whose visit (as the queue dates it) falls in [start, end)."""
    return list(db.session.scalars(
        select(SyncedEntity).join(InspectionTask, InspectionTask.id == SyncedEntity.task_id)
        .where(records.live(Kind.INSPECTION), SyncedEntity.department_id == department_id,
               _visit_time() >= _text_of(start), _visit_time() < _text_of(end))
        .order_by(SyncedEntity.id)))


def _latest_kind(inspection_id: uuid.UUID, kinds: list[DecisionKind]) -> DecisionKind | None:
    return db.session.scalar(select(ReviewDecision.kind).where(
        ReviewDecision.inspection_id == inspection_id, ReviewDecision.kind.in_(kinds))
        .order_by(ReviewDecision.decided_at.desc(), ReviewDecision.id.desc()).limit(1))


def review_status(inspection_id: uuid.UUID) -> str:
    """The record's review status: its latest decision ("resubmitted" once a returned record is finished again)."""
    entity = db.session.get(SyncedEntity, inspection_id)
    return _status_of(_latest_kind(inspection_id, [k for k in _STATUS_OF_KIND if k]), entity.fields if entity else None)


def legal_signed(inspection_id: uuid.UUID) -> bool:
    """Signed off by a legal reviewer since the record was last returned."""
    return _latest_kind(inspection_id, [DecisionKind.RETURN, DecisionKind.LEGAL_SIGNOFF]) == DecisionKind.LEGAL_SIGNOFF


def _timeline(inspection: SyncedEntity, videos: list[MediaView], clips_total: int) -> TimelineView:
    """The timeline of the first segments and the first events; what is left out is counted, not drawn."""
    clips: list[Clip] = []
    marks: list[Mark] = []
    for view in videos:
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
    left_out = 0
    # The recording department's findings with a time, and the flags with one, the earliest first.
    recorded_at = SyncedEntity.fields["recorded_at"].as_string()
    timed = (select(SyncedEntity).where(SyncedEntity.task_id == inspection.task_id, records.live(Kind.FINDING),
                                        SyncedEntity.department_id == inspection.department_id,
                                        recorded_at.is_not(None)))
    findings = list(db.session.scalars(timed.order_by(recorded_at, SyncedEntity.id).limit(TIMELINE_MARKS)))
    if len(findings) == TIMELINE_MARKS:
        left_out += (db.session.scalar(select(func.count()).select_from(timed.subquery())) or 0) - TIMELINE_MARKS
    titles = _check_items(findings)
    for finding in findings:
        at = parse_time((finding.fields or {}).get("recorded_at"))
        if at:
            item = titles.get(str((finding.fields or {}).get("check_item_id")))
            marks.append(Mark("finding", item.title if item else "", at))
    # Gaps are drawn from the segments themselves; only flags whose details carry a time are looked at.
    flagged = select(InspectionFlag).where(InspectionFlag.inspection_id == inspection.id,
                                           InspectionFlag.code != "recording-gap",
                                           cast(InspectionFlag.details, String).like('%"start"%'))
    flags = list(db.session.scalars(flagged.order_by(InspectionFlag.raised_at, InspectionFlag.id)
                                    .limit(TIMELINE_MARKS)))
    if len(flags) == TIMELINE_MARKS:
        left_out += (db.session.scalar(select(func.count()).select_from(flagged.subquery())) or 0) - TIMELINE_MARKS
    for flag in flags:
        details = flag.details if isinstance(flag.details, dict) else {}
        intervals = details.get("intervals") if isinstance(details.get("intervals"), list) else []
        for interval in [details, *intervals]:
            if not isinstance(interval, dict):
                continue
            begin, end = parse_time(interval.get("start")), parse_time(interval.get("end"))
            if begin:
                marks.append(Mark("flag", flag.message, begin, end if end and end > begin else None))
    marks.sort(key=lambda m: m.start)
    left_out += max(0, len(marks) - TIMELINE_MARKS)
    marks = marks[:TIMELINE_MARKS]
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
    timeline = lay_out(clips, placed, (parse_time(fields.get("started_at")), parse_time(fields.get("ended_at"))))
    return TimelineView(timeline, clips_total, len(clips), left_out)


def _check_items(findings: list[SyncedEntity]) -> dict[str, CheckItem]:
    ids = set()
    for finding in findings:
        try:
            ids.add(uuid.UUID(str((finding.fields or {}).get("check_item_id"))))
        except ValueError:
            continue
    if not ids:
        return {}
    return {str(i.id): i for i in db.session.scalars(select(CheckItem).where(CheckItem.id.in_(ids)))}


def _findings(task: InspectionTask, page: int) -> tuple[Slice[FindingRow], list[tuple[Department, int]]]:
    """A page of the findings of every department of the task, and how many each department recorded."""
    live = (SyncedEntity.task_id == task.id, records.live(Kind.FINDING))
    counts = dict(db.session.execute(select(SyncedEntity.department_id, func.count()).where(*live)
                                     .group_by(SyncedEntity.department_id)).all())
    rows = page_of(select(SyncedEntity, Department).join(Department, Department.id == SyncedEntity.department_id)
                   .where(*live).order_by(Department.code, SyncedEntity.first_received_at, SyncedEntity.id),
                   page, FINDINGS_PAGE, scalars=False)
    items = _check_items([finding for finding, _ in rows.items])
    shown = [FindingRow(finding, items.get(str((finding.fields or {}).get("check_item_id"))), department)
             for finding, department in rows.items]
    departments = {d.id: d for d in db.session.scalars(select(Department).where(Department.id.in_(counts)))}
    per_department = sorted(((departments[i], n) for i, n in counts.items() if i in departments),
                            key=lambda pair: pair[0].code)
    return Slice(shown, rows.total, rows.page, rows.size), per_department


def _sightings(inspection: SyncedEntity, team: set[str]) -> Sightings:
    """Certificate numbers read in the evidence: the files with readings (a bounded number), in capture order."""
    read = (_inspection_media(inspection).join(VerificationReport, VerificationReport.media_id == Media.id)
            .where(or_(cast(VerificationReport.detections, String).like('%"certificate"%'),
                       cast(VerificationReport.detections, String).like('%"unreadable-code"%'))))
    files = _media_views(list(db.session.scalars(_in_capture_order(read).limit(SIGHTING_FILES + 1))))
    not_read = 0
    if len(files) > SIGHTING_FILES:
        files = files[:SIGHTING_FILES]
        not_read = (db.session.scalar(select(func.count()).select_from(read.subquery())) or 0) - SIGHTING_FILES
    readings = [(view, d) for view in files for d in view.certificates]
    texts = {str(d.get("text") or "") for _, d in readings[:SIGHTINGS_SHOWN]}
    own = team | set(db.session.scalars(select(Certificate.number).join(
        TaskMember, TaskMember.user_id == Certificate.holder_id).where(
        TaskMember.task_id == inspection.task_id, Certificate.number.in_(texts)))) if texts else team
    shown = [Sighting(str(d.get("text") or ""), view,
                      float(d["start"]) if isinstance(d.get("start"), (int, float)) else None,
                      str(d.get("text") or "") in own) for view, d in readings[:SIGHTINGS_SHOWN]]
    return Sightings(shown, len(readings), [v.name for v in files if v.unreadable][:SIGHTINGS_SHOWN], not_read)


def _certificate_photos(inspection: SyncedEntity) -> Slice[MediaView]:
    """The first photos the tablet synced as proof that the certificate was shown, and how many there are."""
    proves = SyncedEntity.fields["proves"].as_string()
    photos = (select(Media).join(SyncedEntity, SyncedEntity.id == Media.id)
              .where(records.live(Kind.MEDIA), SyncedEntity.inspection_id == inspection.id,
                     proves == "certificate", Media.content_type.like("image/%")))
    found = page_of(_in_capture_order(photos), 1, CERTIFICATE_PHOTOS)
    return Slice(_media_views(found.items), found.total, found.page, found.size)


def inspection_view(principal: Principal, inspection_id: uuid.UUID,
                    pages: InspectionPages = InspectionPages()) -> InspectionView:
    """Everything a reviewer looks at for one inspection record, each list a bounded page of it."""
    inspection = get_inspection(principal, inspection_id)
    task = db.session.get(InspectionTask, inspection.task_id)
    findings, finding_counts = _findings(task, pages.findings)
    evidence = page_of(_in_capture_order(_inspection_media(inspection)), pages.evidence, EVIDENCE_PAGE)
    media = Slice(_media_views(evidence.items), evidence.total, evidence.page, evidence.size)
    flags = page_of(select(InspectionFlag).where(InspectionFlag.inspection_id == inspection.id)
                    .order_by(InspectionFlag.severity, InspectionFlag.code, InspectionFlag.raised_at,
                              InspectionFlag.id), pages.flags, FLAGS_PAGE)
    flag_counts = [(code, severity, n) for code, severity, n in db.session.execute(
        select(InspectionFlag.code, func.min(InspectionFlag.severity), func.count())
        .where(InspectionFlag.inspection_id == inspection.id).group_by(InspectionFlag.code)
        .order_by(func.min(InspectionFlag.severity), InspectionFlag.code))]
    decided = page_of(select(ReviewDecision).where(ReviewDecision.inspection_id == inspection.id)
                      .order_by(ReviewDecision.decided_at.desc(), ReviewDecision.id.desc()),
                      pages.decisions, DECISIONS_PAGE)
    users = {u.id: u for u in db.session.scalars(select(User).where(
        User.id.in_({d.decided_by_id for d in decided.items} | {inspection.created_by_id})))}
    numbers = page_of(select(Certificate.number).join(TaskMember, TaskMember.user_id == Certificate.holder_id)
                      .where(TaskMember.task_id == task.id).order_by(Certificate.number), 1, TEAM_SHOWN)
    videos, clips_total = _videos(inspection)
    return InspectionView(
        inspection=inspection, task=task, department=db.session.get(Department, inspection.department_id),
        recorded_by=users.get(inspection.created_by_id),
        findings=findings, finding_counts=finding_counts,
        signatures=page_of(select(SyncedEntity).where(
            records.live(Kind.SIGNATURE), SyncedEntity.inspection_id == inspection.id)
            .order_by(SyncedEntity.first_received_at, SyncedEntity.id),
            pages.signatures, SIGNATURES_PAGE),
        media=media, flags=flags, flag_counts=flag_counts,
        conflicts=page_of(select(SyncConflict).where(SyncConflict.task_id == task.id)
                          .order_by(SyncConflict.detected_at, SyncConflict.id), pages.conflicts, CONFLICTS_PAGE),
        decisions=Slice([(d, users.get(d.decided_by_id)) for d in decided.items], decided.total, decided.page,
                        decided.size),
        status=review_status(inspection.id), legal_required=needs_legal_review(inspection),
        legal_signed=legal_signed(inspection.id),
        timeline=_timeline(inspection, videos, clips_total), playing=_playing(inspection, pages.media, videos),
        sightings=_sightings(inspection, set(numbers.items)), certificate_photos=_certificate_photos(inspection),
        joint=_joint_summary(principal, task), certificate_numbers=numbers)


def _joint_summary(principal: Principal, task: InspectionTask) -> JointSummary | None:
    """The joint-inspection package's merged record (it checks the caller's access itself), a bounded part of it."""
    try:
        record = joint_record_for(principal, task.id).to_dict()
    except Problem:
        return None
    except LookupError:  # a record the merge cannot read: the reviewer still sees the rest of the page
        log.exception("joint record of task %s could not be built", task.id)
        return None
    lists = {name: value for name, value in record.items() if isinstance(value, list)}
    counts = {name: len(value) for name, value in lists.items()}
    # Findings come grouped by department: count the findings, not the groups.
    counts["findings"] = sum(len(group.get("findings") or []) for group in lists.get("findings", [])
                             if isinstance(group, dict))
    return JointSummary(first_of(lists.get("merged_findings", []), JOINT_SHOWN), counts)


@dataclass(frozen=True)
class AuditTrail:
    entries: list[AuditEntry]
    older_than: int | None  # the ``before`` of the next (older) page, None on the last one


def audit_trail(principal: Principal, inspection: SyncedEntity, before: int | None) -> AuditTrail | None:
    """The audit log's entries on the record and its evidence, newest first, a page at a time
    (None for a role that may not read the log)."""
    if not can(principal, Permission.READ_AUDIT):
        return None
    pages = [list_entries(principal, {"object_type": "inspection", "object_id": str(inspection.id)},
                          AUDIT_PAGE, before)]
    ids = [str(i) for i in media_ids_of(inspection)]
    for start in range(0, len(ids), AUDIT_IDS_PER_QUERY):
        chunk = ids[start:start + AUDIT_IDS_PER_QUERY]
        pages.append(list_entries(principal, {"object_type": "media", "object_ids": chunk}, AUDIT_PAGE, before))
    entries = sorted((e for page in pages for e in page.items), key=lambda e: e.seq, reverse=True)
    more = len(entries) > AUDIT_PAGE or any(page.next_after for page in pages)
    entries = entries[:AUDIT_PAGE]
    return AuditTrail(entries, entries[-1].seq if more and entries else None)


# ---- decisions -----------------------------------------------------------------------------

def decide(principal: Principal, inspection_id: uuid.UUID, kind: DecisionKind, comment: str | None) -> ReviewDecision:
    """Approve, return with comments, or sign off (legal review) an inspection record."""
    inspection = get_inspection(principal, inspection_id)
    permission = Permission.LEGAL_SIGNOFF if kind == DecisionKind.LEGAL_SIGNOFF else Permission.DECIDE_REVIEW
    if kind == DecisionKind.RETURN and can(principal, Permission.LEGAL_SIGNOFF):
        permission = Permission.LEGAL_SIGNOFF  # a legal reviewer may send a record back too
    decidable = (DecisionKind.APPROVE, DecisionKind.RETURN, DecisionKind.LEGAL_SIGNOFF)
    if kind not in decidable or not can(principal, permission):
        raise _refuse()
    if not principal.is_admin and inspection.department_id != principal.department_id:
        raise Problem(403, "forbidden", "只能审核本部门的检查记录")
    comment = (comment or "").strip() or None
    if comment and len(comment) > COMMENT_MAX:
        raise Problem(422, "validation-failed", f"意见不能超过 {COMMENT_MAX} 个字符", errors={"comment": ["too long"]})
    if review_status(inspection.id) == ReviewStatus.APPROVED:
        raise Problem(409, "already-approved", "该检查记录已批准，不能再作决定")
    if kind == DecisionKind.RETURN and not comment:
        raise Problem(422, "validation-failed", "退回时必须填写意见", errors={"comment": ["required"]})
    if kind == DecisionKind.LEGAL_SIGNOFF:
        if not needs_legal_review(inspection):
            raise Problem(409, "legal-review-not-required", "该检查记录无需法制审核")
        if legal_signed(inspection.id):
            raise Problem(409, "already-signed-off", "法制审核已签署")
    if kind == DecisionKind.APPROVE and needs_legal_review(inspection) and not legal_signed(inspection.id):
        raise Problem(409, "legal-review-required", "该记录采取了强制措施，须经法制审核签署后才能批准")
    decision = ReviewDecision(inspection_id=inspection.id, task_id=inspection.task_id,
                              department_id=inspection.department_id, kind=kind, comment=comment,
                              decided_by_id=principal.user_id, decided_at=utcnow())
    db.session.add(decision)
    db.session.flush()
    if kind in (DecisionKind.RETURN, DecisionKind.APPROVE):
        # Back to the team: the decision goes onto the record itself, for the tablets' next pull.
        decider = db.session.get(User, principal.user_id) if principal.user_id else None
        sync.record_review(inspection.id, {
            "status": "returned" if kind == DecisionKind.RETURN else "approved", "comment": comment,
            "decided_at": decision.decided_at.isoformat(),
            "decided_by": {"id": str(principal.user_id) if principal.user_id else None,
                           "full_name": decider.full_name if decider else None}},
            status="returned" if kind == DecisionKind.RETURN else None)
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
    audit(f"review.{kind.value}", object_type="task", object_id=str(task_id), details={"reason": reason},
          actor=principal)


APPROVALS_PAGE = 25


def pending_dispatches(principal: Principal, page: int = 1) -> Slice[InspectionTask]:
    """A page of the tasks waiting for the approval of this head's department (the planning service decides)."""
    return first_of(pending_approvals(principal), APPROVALS_PAGE, page)


def task_code(principal: Principal, task_id: uuid.UUID) -> tuple[InspectionTask, IssuedCode | None]:
    """A task the caller's department takes part in, and its inspection code (None unless dispatched or closed)."""
    task = get_task(principal, task_id)
    return task, issued_code(task)


def visit_counts(tasks: Iterable[InspectionTask]) -> dict[uuid.UUID, VisitCount]:
    """Each task's place among the visits to its enterprise against the cap: the head is warned at dispatch."""
    rule = frequency_rule()
    return {task.id: visit_count(task, rule) for task in tasks}


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

