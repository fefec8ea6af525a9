"""Assessing an inspection's evidence: attach its files, gather the facts, store the flags.

An assessment is recomputed from scratch whenever something it depends on
changes (the record is synced, a file's verification finishes, a bodycam
segment arrives), so running it twice gives the same flags.
"""
from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import and_, delete, exists, func, or_, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from server.auth.policy import Permission, Principal, can
from server.clocks import ledger as clock_ledger
from server.clocks import service as clocks
from server.codes.service import verify_token
from server.codes.token import BadToken
from server.db_types import office_day, utcnow
from server.directory.models import Certificate, Device, DeviceKind, User
from server.directory.service import certificate_status_on
from server.errors import Problem
from server.extensions import db
from server.pagination import Page, keyset_page
from server.provenance import service as provenance
from server.sync import records
from server.sync.entities import Kind
from server.sync.models import SyncConflict, SyncedEntity
from server.tasks.models import InspectionTask, TaskMember
from server.tasks.service import get_task
from server.uploads.models import Media, Upload, UploadStatus
from server.verification import flags as rules
from server.verification.models import InspectionAssessment, InspectionFlag, InspectionMedia, VerificationReport

# A bodycam segment is looked for this far before an inspection starts (a long segment may begin earlier).
SEGMENT_LOOKBACK = timedelta(hours=2)
# An inspection not yet ended is taken to last at most this long for attaching footage.
OPEN_WINDOW = timedelta(hours=12)
# A capture time is read against the device's clock ledger from this long before the file reached the server
# until this long after.
CLOCK_LEDGER_SPAN = timedelta(days=60)


def _inspection(inspection_id: uuid.UUID) -> SyncedEntity | None:
    return records.get_inspection(inspection_id)


def _moment(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return None
    return moment if moment.tzinfo else None


def _window(inspection: SyncedEntity) -> tuple[datetime | None, datetime | None]:
    started = _moment(inspection.fields.get("started_at"))
    ended = _moment(inspection.fields.get("ended_at"))
    return started, ended


def _footage_window(inspection: SyncedEntity) -> tuple[datetime, datetime] | None:
    """The time footage of the inspection falls in: its window, an unfinished one taken as OPEN_WINDOW long."""
    started, ended = _window(inspection)
    if started is None:
        return None
    return started, ended if ended and ended >= started else started + OPEN_WINDOW


def _duration(report: VerificationReport | None) -> float | None:
    if report is None or not report.measurements:
        return None
    value = report.measurements.get("duration")
    return float(value) if isinstance(value, (int, float)) else None


def _bodycam_segments(task_id: uuid.UUID, started: datetime, ended: datetime) -> list[uuid.UUID]:
    """Media from bodycams assigned to the task's team whose recording overlaps [started, ended]."""
    candidates = db.session.execute(
        select(Media.id, Media.capture_start, VerificationReport.measurements)
        .join(Device, Device.id == Media.device_id)
        .join(TaskMember, and_(TaskMember.user_id == Device.inspector_id, TaskMember.task_id == task_id))
        .outerjoin(VerificationReport, VerificationReport.media_id == Media.id)
        .where(Device.kind != DeviceKind.TABLET, Media.capture_start.is_not(None),
               Media.capture_start >= started - SEGMENT_LOOKBACK, Media.capture_start <= ended))
    found = []
    for media_id, capture_start, measurements in candidates:
        duration = (measurements or {}).get("duration")
        # Until verification measured it, a segment counts from its start only.
        end = (capture_start + timedelta(seconds=float(duration)) if isinstance(duration, (int, float))
               else capture_start)
        if end >= started and capture_start <= ended:
            found.append(media_id)
    return found


def attach_evidence(inspection: SyncedEntity) -> dict[uuid.UUID, str]:
    """Link the inspection to the media its record names and to overlapping bodycam segments."""
    recorded = set(db.session.scalars(
        select(Media.id).where(Media.id.in_(records.part_ids(inspection.id, Kind.MEDIA)))))
    wanted = dict.fromkeys(recorded, "record")
    window = _footage_window(inspection)
    if window is not None:
        for media_id in _bodycam_segments(inspection.task_id, *window):
            wanted.setdefault(media_id, "bodycam")
    existing = {link.media_id: link for link in db.session.scalars(
        select(InspectionMedia).where(InspectionMedia.inspection_id == inspection.id))}
    for media_id, link in existing.items():
        if wanted.get(media_id) != link.source:
            db.session.delete(link)
    db.session.flush()
    now = utcnow()
    missing = [{"inspection_id": inspection.id, "media_id": media_id, "task_id": inspection.task_id,
                "source": source, "attached_at": now}
               for media_id, source in wanted.items()
               if existing.get(media_id) is None or existing[media_id].source != source]
    if missing:
        # Idempotent: a link another assessment made meanwhile is the same link.
        db.session.execute(_insert_ignoring_duplicates(InspectionMedia), missing)
    return wanted


def _sightings(report: VerificationReport | None) -> tuple[tuple[rules.Sighting, ...], bool, tuple[Any, ...]]:
    sightings, unreadable, covered = [], False, []
    for detection in (report.detections if report else None) or []:
        kind = detection.get("kind")
        if kind == "certificate" and detection.get("text"):
            sightings.append(rules.Sighting(str(detection["text"]).strip(), detection.get("start"),
                                            detection.get("end")))
        elif kind == "unreadable-code":
            unreadable = True
        elif kind == "lens-covered":
            covered.append((detection.get("start"), detection.get("end")))
    return tuple(sightings), unreadable, tuple(covered)


def _provenance(report: VerificationReport | None) -> tuple[tuple[str, str], ...]:
    """The file's provenance reasons that bear on it (not a legacy unsigned file's note)."""
    if report is None or report.status is None:
        return ()
    return tuple((r["code"], r.get("message", "")) for r in report.reasons or []
                 if r.get("code") in provenance.CODES and not (r.get("details") or {}).get("legacy"))


def _evidence(inspection: SyncedEntity, links: dict[uuid.UUID, str]) -> list[rules.EvidenceFacts]:
    media = {m.id: m for m in db.session.scalars(select(Media).where(Media.id.in_(links)))} if links else {}
    reports = {r.media_id: r for r in db.session.scalars(
        select(VerificationReport).where(VerificationReport.media_id.in_(links)))} if links else {}
    entities = {e.id: e for e in records.parts(inspection.id, Kind.MEDIA)}
    quarantined = set(db.session.scalars(
        select(Upload.media_id).where(Upload.media_id.in_(entities), Upload.status == UploadStatus.QUARANTINED))) \
        if entities else set()
    found = []
    for media_id, source in sorted(links.items(), key=lambda item: str(item[0])):
        row, report = media[media_id], reports.get(media_id)
        entity = entities.get(media_id)
        fields = entity.fields if entity else {}
        sightings, unreadable, covered = _sightings(report)
        measurements = (report.measurements if report else None) or {}
        found.append(rules.EvidenceFacts(
            media_id=media_id, source=source, status=row.verification_status.value,
            kind=measurements.get("kind"), proves=fields.get("proves"),
            start=(row.capture_start or _moment(fields.get("capture_start"))
                   or _moment(measurements.get("creation_time"))),
            duration=_duration(report), device_id=row.device_id,
            reason_codes=tuple(r.get("code", "") for r in row.verification_reasons or []),
            provenance=_provenance(report),
            sightings=sightings, unreadable_code=unreadable, covered=covered,
            name=row.file_name or fields.get("file_name")))
    for entity_id, entity in sorted(entities.items(), key=lambda item: str(item[0])):
        if entity_id not in media:  # synced, but the file never completed
            found.append(rules.EvidenceFacts(
                media_id=None, source="record", status="quarantined" if entity_id in quarantined else "missing",
                proves=entity.fields.get("proves"), name=entity.fields.get("file_name") or str(entity_id)))
    return found


def _members(task_id: uuid.UUID) -> tuple[rules.MemberFacts, ...]:
    rows = db.session.execute(
        select(User.id, User.full_name, User.username).join(TaskMember, TaskMember.user_id == User.id)
        .where(TaskMember.task_id == task_id).order_by(User.username))
    numbers: dict[uuid.UUID, list[str]] = {}
    for holder_id, number in db.session.execute(
            select(Certificate.holder_id, Certificate.number)
            .join(TaskMember, TaskMember.user_id == Certificate.holder_id).where(TaskMember.task_id == task_id)):
        numbers.setdefault(holder_id, []).append(number)
    return tuple(rules.MemberFacts(user_id, name or username, tuple(sorted(numbers.get(user_id, []))))
                 for user_id, name, username in rows)


def _certificates(texts: Iterable[str], started: datetime | None) -> dict[str, rules.CertificateFacts]:
    texts = set(texts)
    if not texts:
        return {}
    day = rules.inspection_day(started) or office_day(utcnow())
    known = {}
    for certificate in db.session.scalars(select(Certificate).where(Certificate.number.in_(texts))):
        holder = certificate.holder
        known[certificate.number] = rules.CertificateFacts(
            number=certificate.number, holder_id=certificate.holder_id,
            holder_name=holder.full_name or holder.username, status_on_day=certificate_status_on(certificate, day))
    return known


def _conflicts(inspection_id: uuid.UUID) -> int:
    children = select(SyncedEntity.id).where(SyncedEntity.inspection_id == inspection_id)
    return db.session.scalar(select(func.count()).select_from(SyncConflict).where(
        or_(SyncConflict.entity_id == inspection_id, SyncConflict.entity_id.in_(children)))) or 0


def _task_facts(task: InspectionTask) -> rules.TaskFacts:
    return rules.TaskFacts(window_start=task.window_start, window_end=task.window_end,
                           dispatched_at=task.dispatched_at, late_registration_reason=task.late_registration_reason)


def _code_facts(inspection: SyncedEntity) -> rules.CodeFacts:
    """The code the tablet recorded on the inspection, checked against this server's keys and the task."""
    token = inspection.fields.get("inspection_code")
    if not isinstance(token, str) or not token.strip():
        return rules.CodeFacts("absent")
    try:
        claims = verify_token(token.strip())
    except BadToken as exc:
        return rules.CodeFacts("not-ours", exc.code)
    if claims.task_id != inspection.task_id:
        return rules.CodeFacts("other-task")
    return rules.CodeFacts("valid", window_start=claims.window_start, window_end=claims.window_end)


def _recorders(inspection_id: uuid.UUID) -> tuple[rules.RecorderFacts, ...]:
    """Who created the inspection's records (deleted ones too: they were recorded), by user."""
    rows = db.session.execute(
        select(SyncedEntity.created_by_id, User.full_name, User.username, SyncedEntity.kind, func.count())
        .join(User, User.id == SyncedEntity.created_by_id)
        .where(or_(SyncedEntity.id == inspection_id, SyncedEntity.inspection_id == inspection_id))
        .group_by(SyncedEntity.created_by_id, User.full_name, User.username, SyncedEntity.kind))
    found: dict[uuid.UUID, tuple[str, dict[str, int]]] = {}
    for user_id, full_name, username, kind, count in rows:
        found.setdefault(user_id, (full_name or username, {}))[1][str(kind)] = count
    return tuple(rules.RecorderFacts(user_id, name, tuple(sorted(kinds)), sum(kinds.values()))
                 for user_id, (name, kinds) in found.items())


def _capturing_device(row: Media | None, entity: SyncedEntity | None) -> str | None:
    """The device whose clock dated the file: the upload's recording device, the tablet the record names, or
    the tablet that created the record (the node of its immutable ``sha256``'s HLC)."""
    if row is not None and row.device_id:
        return row.device_id
    if entity is None:
        return None
    named = entity.fields.get("device_id")
    if isinstance(named, str) and named:
        return named
    stamp = (entity.clocks or {}).get("sha256")
    return stamp.split("-", 2)[2] if isinstance(stamp, str) and stamp.count("-") >= 2 else None


def _clock_facts(inspection: SyncedEntity, links: dict[uuid.UUID, str]) -> tuple[rules.ClockFacts, ...]:
    """Each capture time (of a stored file, or of a synced record whose file has not arrived) against its
    device's clock ledger; nothing for a device the ledger never heard from."""
    rows = {m.id: m for m in db.session.scalars(select(Media).where(Media.id.in_(links)))} if links else {}
    entities = {e.id: e for e in records.parts(inspection.id, Kind.MEDIA)}
    captures = []
    for media_id in sorted(set(rows) | set(entities), key=str):
        row, entity = rows.get(media_id), entities.get(media_id)
        fields = entity.fields if entity else {}
        moment = (row.capture_start if row else None) or _moment(fields.get("capture_start"))
        device = _capturing_device(row, entity)
        arrivals = [t for t in (entity.first_received_at if entity else None, row.uploaded_at if row else None) if t]
        if moment is not None and device and arrivals:
            name = (row.file_name if row else None) or fields.get("file_name") or str(media_id)
            captures.append((media_id if row else None, name, device, moment, min(arrivals)))
    if not captures:
        return ()
    ledgers = clocks.ledgers({c[2] for c in captures}, min(c[4] for c in captures) - CLOCK_LEDGER_SPAN,
                             max(c[4] for c in captures) + CLOCK_LEDGER_SPAN)
    found = []
    for media_id, name, device, moment, arrived in captures:
        readings = ledgers.get(device) or []
        if not readings:
            continue
        before, after = clock_ledger.around(readings, moment)
        jump = clock_ledger.jump_around(readings, moment, arrived)
        if jump is not None:  # the time was read on one side of the jump or the other: show both sides
            before, after = jump.earlier, jump.later
        behind = clock_ledger.clock_behind(readings, moment, arrived)
        found.append(rules.ClockFacts(
            media_id=media_id, name=name, device_id=device, captured_at=moment,
            before=before.offset if before else None, after=after.offset if after else None,
            jumped_back_by=jump.by if jump else None,
            behind_by=moment - behind.device_clock if behind else None))
    return tuple(found)


def _clock_offset_limit() -> timedelta:
    settings = current_app.config.get("SETTINGS")
    seconds = getattr(settings, "clock_offset_limit_seconds", None)
    return timedelta(seconds=seconds) if seconds else rules.CLOCK_OFFSET_LIMIT


def gather_facts(inspection: SyncedEntity, links: dict[uuid.UUID, str]) -> rules.InspectionFacts:
    started, ended = _window(inspection)
    evidence = _evidence(inspection, links)
    task = db.session.get(InspectionTask, inspection.task_id)
    return rules.InspectionFacts(
        inspection_id=inspection.id, started_at=started, ended_at=ended,
        first_received_at=inspection.first_received_at, members=_members(inspection.task_id),
        certificates=_certificates((s.text for e in evidence for s in e.sightings), started),
        coercive_measures=len(inspection.fields.get("coercive_measures") or []),
        evidence=tuple(evidence), conflicts=_conflicts(inspection.id),
        task=_task_facts(task) if task is not None else None, code=_code_facts(inspection),
        recorders=_recorders(inspection.id), clocks=_clock_facts(inspection, links),
        clock_offset_limit=_clock_offset_limit())


def _insert_ignoring_duplicates(model: type[Any]) -> Any:
    """``INSERT … ON CONFLICT DO NOTHING`` in the dialect of the session's database (SQLite or PostgreSQL)."""
    if db.session.get_bind().dialect.name == "postgresql":
        return postgresql_insert(model).on_conflict_do_nothing()
    return sqlite_insert(model).on_conflict_do_nothing()


def _claim(inspection: SyncedEntity, now: datetime) -> None:
    """Take the inspection's assessment for this transaction: a second assessment of the same inspection
    (a push and a finished verification on two worker threads) waits here until this one commits, then
    works from what it wrote. The assessment row is created if missing; the row lock serialises them on
    PostgreSQL, and the write itself takes SQLite's single writer lock."""
    db.session.execute(_insert_ignoring_duplicates(InspectionAssessment).values(
        inspection_id=inspection.id, task_id=inspection.task_id, assessed_at=now, errors=0, warnings=0,
        pending_media=0))
    db.session.execute(select(InspectionAssessment.inspection_id)
                       .where(InspectionAssessment.inspection_id == inspection.id).with_for_update())


def assess_inspection(inspection_id: uuid.UUID) -> list[InspectionFlag] | None:
    """Re-assess one inspection and store its flags; None if it no longer exists.

    Safe to run twice at once for one inspection: the second waits for the first (``_claim``)."""
    inspection = _inspection(inspection_id)
    if inspection is None:
        return None
    _claim(inspection, utcnow())
    links = attach_evidence(inspection)
    facts = gather_facts(inspection, links)
    found = rules.assess(facts)
    now = utcnow()
    db.session.execute(delete(InspectionFlag).where(InspectionFlag.inspection_id == inspection.id))
    stored = [InspectionFlag(inspection_id=inspection.id, task_id=inspection.task_id, code=flag.code,
                             severity=flag.severity, message=flag.message, details=flag.details,
                             media_id=flag.media_id, raised_at=now) for flag in found]
    db.session.add_all(stored)
    assessment = db.session.get(InspectionAssessment, inspection.id, populate_existing=True)
    assert assessment is not None  # made by _claim
    assessment.assessed_at = now
    assessment.errors = sum(1 for f in found if f.severity == "error")
    assessment.warnings = len(found) - assessment.errors
    assessment.pending_media = sum(1 for e in facts.evidence if e.status == "pending")
    assessment.rules_version = rules.RULES_VERSION
    db.session.flush()
    return stored


def inspections_touching_media(media_id: uuid.UUID) -> list[uuid.UUID]:
    """Inspections whose assessment may change now that this file's verification is known."""
    found = set(db.session.scalars(select(InspectionMedia.inspection_id).where(InspectionMedia.media_id == media_id)))
    entity = db.session.get(SyncedEntity, media_id)
    if entity is not None and entity.inspection_id is not None:
        found.add(entity.inspection_id)
    media = db.session.get(Media, media_id)
    if media is not None and media.device_id and media.capture_start:
        device = db.session.get(Device, media.device_id)
        if device is not None and device.inspector_id is not None:
            # Inspections of the wearer's tasks that might cover the segment; the assessment decides.
            candidates = db.session.scalars(
                records.inspections().join(TaskMember, TaskMember.task_id == SyncedEntity.task_id)
                .where(TaskMember.user_id == device.inspector_id))
            for inspection in candidates:
                window = _footage_window(inspection)
                if window is not None and window[0] - SEGMENT_LOOKBACK <= media.capture_start <= window[1]:
                    found.add(inspection.id)
    return sorted(found, key=str)


def inspections_of_holder_since(user_id: uuid.UUID, moment: datetime) -> list[uuid.UUID]:
    """Inspections of the user's tasks on or after the office-time day of ``moment`` (or not yet started)."""
    day = office_day(moment)
    found = []
    for inspection in db.session.scalars(
            records.inspections().join(TaskMember, TaskMember.task_id == SyncedEntity.task_id)
            .where(TaskMember.user_id == user_id)):
        started = rules.inspection_day(_window(inspection)[0])
        if started is None or started >= day:
            found.append(inspection.id)
    return found


def inspections_needing_assessment(limit: int = 200) -> list[uuid.UUID]:
    """Inspections never assessed, changed (themselves, a child record, a file's report) since, or assessed
    by older rules (``rules.RULES_VERSION``: after an upgrade, the sweeper brings every assessment up to date)."""
    child_changed = exists().where(SyncedEntity.inspection_id == InspectionAssessment.inspection_id,
                                   SyncedEntity.updated_at > InspectionAssessment.assessed_at)
    report_changed = exists().where(InspectionMedia.inspection_id == InspectionAssessment.inspection_id,
                                    VerificationReport.media_id == InspectionMedia.media_id,
                                    VerificationReport.finished_at > InspectionAssessment.assessed_at)
    inspection = SyncedEntity.__table__.alias("inspection")
    query = (select(inspection.c.id)
             .outerjoin(InspectionAssessment, InspectionAssessment.inspection_id == inspection.c.id)
             .where(inspection.c.kind == Kind.INSPECTION, inspection.c.deleted.is_(False),
                    or_(InspectionAssessment.inspection_id.is_(None),
                        inspection.c.updated_at > InspectionAssessment.assessed_at,
                        InspectionAssessment.rules_version < rules.RULES_VERSION,
                        child_changed, report_changed))
             .order_by(inspection.c.updated_at).limit(limit))
    return list(db.session.scalars(query))


# ---- reading ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class AssessmentView:
    inspection_id: uuid.UUID
    task_id: uuid.UUID
    assessed_at: datetime | None
    errors: int
    warnings: int
    pending_media: int
    flags: list[InspectionFlag]
    evidence: list[dict[str, Any]]


def _visible_inspection(principal: Principal, inspection_id: uuid.UUID) -> SyncedEntity:
    inspection = _inspection(inspection_id)
    if inspection is None or not can(principal, Permission.READ_TASKS):
        raise Problem(404, "not-found", "检查记录不存在")
    try:
        get_task(principal, inspection.task_id)
    except Problem:
        raise Problem(404, "not-found", "检查记录不存在") from None
    return inspection


def get_assessment(principal: Principal, inspection_id: uuid.UUID) -> AssessmentView:
    """An inspection's flags and evidence, for the team and the offices of its departments."""
    inspection = _visible_inspection(principal, inspection_id)
    assessment = db.session.get(InspectionAssessment, inspection.id)
    stored = list(db.session.scalars(select(InspectionFlag).where(InspectionFlag.inspection_id == inspection.id)
                                     .order_by(InspectionFlag.severity, InspectionFlag.code, InspectionFlag.id)))
    rows = db.session.execute(
        select(InspectionMedia.source, Media).join(Media, Media.id == InspectionMedia.media_id)
        .where(InspectionMedia.inspection_id == inspection.id).order_by(Media.capture_start, Media.id))
    evidence = [{"source": source, "media": media} for source, media in rows]
    return AssessmentView(inspection.id, inspection.task_id, assessment.assessed_at if assessment else None,
                          assessment.errors if assessment else 0, assessment.warnings if assessment else 0,
                          assessment.pending_media if assessment else 0, stored, evidence)


def list_assessments(principal: Principal, flag: str | None, task_id: uuid.UUID | None,
                     limit: int, after: str | None) -> Page[AssessmentView]:
    """Assessed inspections the caller may see, with their flags; optionally only those with ``flag``."""
    if not can(principal, Permission.READ_TASKS):
        raise Problem(403, "forbidden", "无权查看检查记录")
    query = select(InspectionAssessment)
    if not principal.is_admin:
        mine = exists().where(TaskMember.task_id == InspectionAssessment.task_id,
                              TaskMember.user_id == principal.user_id)
        if principal.role == "inspector":
            query = query.where(mine)
        else:
            department = exists().where(TaskMember.task_id == InspectionAssessment.task_id,
                                        TaskMember.department_id == principal.department_id)
            lead = exists().where(InspectionTask.id == InspectionAssessment.task_id,
                                  InspectionTask.department_id == principal.department_id)
            query = query.where(or_(department, lead))
    if flag is not None:
        query = query.where(exists().where(InspectionFlag.inspection_id == InspectionAssessment.inspection_id,
                                           InspectionFlag.code == flag))
    if task_id is not None:
        query = query.where(InspectionAssessment.task_id == task_id)
    page = keyset_page(query, InspectionAssessment.inspection_id, limit, after)
    flags = _flags_of([a.inspection_id for a in page.items])
    return Page([AssessmentView(a.inspection_id, a.task_id, a.assessed_at, a.errors, a.warnings, a.pending_media,
                                flags[a.inspection_id], []) for a in page.items], page.next_after)


def _flags_of(inspection_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[InspectionFlag]]:
    found: dict[uuid.UUID, list[InspectionFlag]] = {i: [] for i in inspection_ids}
    if inspection_ids:
        for flag in db.session.scalars(select(InspectionFlag).where(InspectionFlag.inspection_id.in_(inspection_ids))
                                       .order_by(InspectionFlag.severity, InspectionFlag.code)):
            found[flag.inspection_id].append(flag)
    return found
