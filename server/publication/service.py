"""Publishing decisions' results, correcting and withdrawing them, and the deadlines per department.

Services flush; the request (or the CLI command) commits. Every publication, correction and withdrawal
goes to the audit log, with the fields as published.
"""
from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from sqlalchemy import select

from server.audit import service as audit
from server.auth.policy import Permission, Principal, authorize_object, can
from server.db_types import office_day, utcnow
from server.decisions.models import Commitment, DecisionKind, DecisionStatus, EnforcementDecision
from server.directory.models import Department, Enterprise
from server.errors import Problem
from server.extensions import db
from server.planning.models import Draw
from server.publication import calendar
from server.publication.models import Publication, PublicationState
from server.tasks.models import InspectionTask

DECISION_KIND_TEXT = {
    DecisionKind.NO_IRREGULARITY.value: "未发现违法违规",
    DecisionKind.RECTIFY_ORDER.value: "责令限期改正",
    DecisionKind.PENALTY.value: "行政处罚",
    DecisionKind.SEIZURE.value: "查封扣押",
    DecisionKind.TRANSFER_JUDICIAL.value: "移送司法机关",
    DecisionKind.LICENSING.value: "行政许可",
}
#: Published within 7 working days (the seed §1); every other kind within 20.
SEVEN_DAY_KINDS = frozenset({DecisionKind.PENALTY, DecisionKind.LICENSING})
PUBLISHABLE = (DecisionStatus.MADE, DecisionStatus.SERVED)
NOTE_MAX = 2000
LISTED_MAX = 500  # deadlines per page of the review app and per CLI listing
RECENT_MAX = 50   # published results listed in the review app (the public page pages through all)


def calendar_problem(error: calendar.CalendarOutOfRange) -> Problem:
    """The answer where a deadline cannot be counted: 422, never a guess."""
    return Problem(422, "calendar-out-of-range", str(error), title="工作日历未收录该年份",
                   errors={"deadline": [f"{error.day.isoformat()} 超出工作日历收录的年份"
                                        f"（{error.first_year}–{error.last_year}）"]})


def deadline_of(decision: EnforcementDecision) -> date:
    """The last day the decision's result may be published on (raises ``CalendarOutOfRange``)."""
    if decision.decided_on is None:
        raise ValueError("a draft has no publication deadline")
    return calendar.publication_deadline(decision.decided_on, decision.kind in SEVEN_DAY_KINDS)


@dataclass(frozen=True)
class Deadline:
    """One made decision not yet published, and where it stands on the calendar today."""

    decision: EnforcementDecision
    department: Department
    enterprise: Enterprise
    deadline: date | None           # None: the calendar does not reach it (see ``calendar_error``)
    days_left: int | None           # working days from today to the deadline (negative: overdue)
    state: str                      # "overdue", "soon" (within three working days), "due", "unknown"
    calendar_error: str | None = None


def _state(today: date, deadline: date) -> tuple[str, int]:
    left = calendar.working_days_between(today, deadline)
    if deadline < today:
        return "overdue", left
    return ("soon" if left <= calendar.SOON_DAYS else "due"), left


def deadlines(principal: Principal, department_code: str | None = None, today: date | None = None) -> list[Deadline]:
    """Made decisions still to publish, most urgent first; a non-administrator sees their own department."""
    if not can(principal, Permission.USE_REVIEW) and principal.kind != "system":
        raise Problem(403, "forbidden", "您的角色无权查看公开期限")
    today = today or office_day(utcnow())
    published = select(Publication.decision_id)
    query = (select(EnforcementDecision, Department, Enterprise)
             .join(Department, Department.id == EnforcementDecision.department_id)
             .join(Enterprise, Enterprise.id == EnforcementDecision.enterprise_id)
             .where(EnforcementDecision.status.in_(PUBLISHABLE), EnforcementDecision.decided_on.is_not(None),
                    EnforcementDecision.id.not_in(published)))
    if department_code:
        department = db.session.scalar(select(Department).where(Department.code == department_code))
        if department is None:
            raise Problem(404, "not-found", f"部门 {department_code} 不存在")
        query = query.where(EnforcementDecision.department_id == department.id)
    if not principal.is_admin:
        query = query.where(EnforcementDecision.department_id == principal.department_id)
    rows = []
    for decision, department, enterprise in db.session.execute(
            query.order_by(EnforcementDecision.decided_on, EnforcementDecision.id).limit(LISTED_MAX)):
        try:
            deadline = deadline_of(decision)
            state, left = _state(today, deadline)
            rows.append(Deadline(decision, department, enterprise, deadline, left, state))
        except calendar.CalendarOutOfRange as error:
            rows.append(Deadline(decision, department, enterprise, None, None, "unknown", str(error)))
    order = {"overdue": 0, "soon": 1, "unknown": 2, "due": 3}
    return sorted(rows, key=lambda r: (r.department.code, order[r.state], r.deadline or date.max))


def inspection_kind(task: InspectionTask, departments: Iterable[uuid.UUID]) -> str:
    """How the enterprise came to be inspected, in the words the public reads."""
    joint = len(set(departments)) > 1
    if db.session.scalar(select(Commitment.id).where(Commitment.task_id == task.id).limit(1)) is not None:
        return "告知承诺核查"
    drawn = any(str(task.id) in (draw.task_ids or []) for draw in db.session.scalars(
        select(Draw).where(Draw.created_at <= task.created_at)))
    if drawn:
        return "双随机联合抽查" if joint else "双随机抽查"
    return "联合检查" if joint else "现场检查"


def _authorize(principal: Principal, obj: EnforcementDecision | Publication) -> None:
    # Their own department's staff may know it exists (403); another department's may not (404).
    visible = Permission.READ_DECISIONS if obj.department_id == principal.department_id else None
    authorize_object(principal, Permission.PUBLISH_RESULTS, obj, visible=visible)


def _decision(principal: Principal, decision_id: uuid.UUID) -> EnforcementDecision:
    decision = db.session.get(EnforcementDecision, decision_id)
    if decision is None:
        raise Problem(404, "not-found", "执法决定不存在")
    _authorize(principal, decision)
    return decision


def _snapshot(decision: EnforcementDecision) -> dict[str, object]:
    department = db.session.get(Department, decision.department_id)
    enterprise = db.session.get(Enterprise, decision.enterprise_id)
    task = db.session.get(InspectionTask, decision.task_id)
    assert department is not None and enterprise is not None and task is not None
    return {"department_id": department.id, "enforcement_body": department.name,
            "enterprise_name": enterprise.name, "credit_code": enterprise.credit_code,
            "inspection_kind": inspection_kind(task, [m.department_id for m in task.members]),
            "decision_kind": DECISION_KIND_TEXT[decision.kind.value], "conclusion": decision.conclusion,
            "decided_on": decision.decided_on}


def _public_fields(publication: Publication) -> dict[str, object]:
    return {"version": publication.version, "enforcement_body": publication.enforcement_body,
            "enterprise_name": publication.enterprise_name, "credit_code": publication.credit_code,
            "inspection_kind": publication.inspection_kind, "decision_kind": publication.decision_kind,
            "conclusion": publication.conclusion, "decided_on": publication.decided_on.isoformat(),
            "deadline": publication.deadline.isoformat() if publication.deadline else None}


def _versions(decision_id: uuid.UUID) -> list[Publication]:
    return list(db.session.scalars(select(Publication).where(Publication.decision_id == decision_id)
                                   .order_by(Publication.version)))


def publish(principal: Principal, decision_id: uuid.UUID) -> Publication:
    """Publish a made decision's result: the first version. A decision is published once (then corrected)."""
    decision = _decision(principal, decision_id)
    if decision.status not in PUBLISHABLE or decision.decided_on is None:
        raise Problem(409, "decision-not-made", "执法决定尚未作出，不能公开")
    if _versions(decision.id):
        raise Problem(409, "already-published", "该执法决定已公开；如需修改请更正，如需撤回请撤销")
    try:
        deadline: date | None = deadline_of(decision)
    except calendar.CalendarOutOfRange:
        deadline = None  # publishing is never refused for the calendar's sake; the deadline is simply unknown
    now = utcnow()
    publication = Publication(decision_id=decision.id, version=1, deadline=deadline, published_at=now,
                              published_on=office_day(now), state=PublicationState.PUBLISHED,
                              published_by_id=principal.user_id, **_snapshot(decision))
    db.session.add(publication)
    db.session.flush()
    late = deadline is not None and publication.published_on > deadline
    audit.record("publication.publish", object_type="publication", object_id=str(publication.id), actor=principal,
                 details={"decision_id": str(decision.id), **_public_fields(publication), "late": late})
    return publication


def _current(principal: Principal, publication_id: uuid.UUID) -> Publication:
    # Locked until the request commits: a correction and a withdrawal of one entry at once are taken one after
    # the other, and the second sees the first's state (the unique version catches two corrections anyway).
    publication = db.session.get(Publication, publication_id, with_for_update=True)
    if publication is None:
        raise Problem(404, "not-found", "公开信息不存在")
    _authorize(principal, publication)
    if publication.state is PublicationState.WITHDRAWN:
        raise Problem(409, "publication-withdrawn", "该公开信息已撤销")
    if publication.state is PublicationState.CORRECTED:
        raise Problem(409, "publication-superseded", "该公开信息已被更正，请对最新版本操作")
    return publication


def _text(value: str | None, field: str, what: str) -> str:
    text = (value or "").strip()
    if not text:
        raise Problem(422, "validation-failed", f"请填写{what}", errors={field: [f"请填写{what}"]})
    if len(text) > NOTE_MAX:
        raise Problem(422, "validation-failed", f"{what}不能超过 {NOTE_MAX} 字",
                      errors={field: [f"不能超过 {NOTE_MAX} 字"]})
    return text


def correct(principal: Principal, publication_id: uuid.UUID, note: str | None,
            conclusion: str | None = None) -> Publication:
    """Publish a corrected version (更新): the earlier one stays on the page, marked corrected."""
    earlier = _current(principal, publication_id)
    why = _text(note, "note", "更正说明")
    decision = db.session.get(EnforcementDecision, earlier.decision_id)
    assert decision is not None
    fields = _snapshot(decision)
    if conclusion is not None:
        fields["conclusion"] = _text(conclusion, "conclusion", "执法结论")
    now = utcnow()
    earlier.state = PublicationState.CORRECTED
    corrected = Publication(decision_id=earlier.decision_id, version=earlier.version + 1, corrects_id=earlier.id,
                            deadline=earlier.deadline, published_at=now, published_on=office_day(now),
                            correction_note=why, state=PublicationState.PUBLISHED,
                            published_by_id=principal.user_id, **fields)
    db.session.add(corrected)
    db.session.flush()
    audit.record("publication.correct", object_type="publication", object_id=str(corrected.id), actor=principal,
                 details={"decision_id": str(decision.id), "corrects": str(earlier.id), "note": why,
                          **_public_fields(corrected)})
    return corrected


def withdraw(principal: Principal, publication_id: uuid.UUID, reason: str | None) -> Publication:
    """Withdraw a publication (撤销): it stays listed as withdrawn, with the reason."""
    publication = _current(principal, publication_id)
    why = _text(reason, "reason", "撤销理由")
    now = utcnow()
    publication.state = PublicationState.WITHDRAWN
    publication.withdrawn_at, publication.withdrawn_on = now, office_day(now)
    publication.withdrawal_reason, publication.withdrawn_by_id = why, principal.user_id
    db.session.flush()
    audit.record("publication.withdraw", object_type="publication", object_id=str(publication.id), actor=principal,
                 details={"decision_id": str(publication.decision_id), "version": publication.version,
                          "reason": why})
    return publication


def publications_of(decision_id: uuid.UUID) -> list[Publication]:
    """Every version published for a decision, first first."""
    return _versions(decision_id)


@dataclass(frozen=True)
class Status:
    """A decision's publication: its deadline and where it stands, and every version published."""

    decision: EnforcementDecision
    working_days: int
    deadline: date
    state: str          # "overdue", "soon", "due" (not yet published), "published", "withdrawn"
    days_left: int      # working days from today to the deadline (negative: past it)
    versions: list[Publication]


def publication_status(principal: Principal, decision_id: uuid.UUID, today: date | None = None) -> Status:
    """The deadline of a made decision and its publications; a deadline the calendar cannot count is 422."""
    from server.decisions.service import get_decision

    decision = get_decision(principal, decision_id)
    if decision.status not in PUBLISHABLE or decision.decided_on is None:
        raise Problem(409, "decision-not-made", "执法决定尚未作出，没有公开期限")
    today = today or office_day(utcnow())
    try:
        deadline = deadline_of(decision)
        state, left = _state(today, deadline)
    except calendar.CalendarOutOfRange as error:
        raise calendar_problem(error) from None
    versions = _versions(decision.id)
    if versions:
        state = "withdrawn" if versions[-1].state is PublicationState.WITHDRAWN else "published"
    return Status(decision, calendar.deadline_days(decision.kind in SEVEN_DAY_KINDS), deadline, state, left,
                  versions)


def recent_publications(principal: Principal, department_code: str | None = None) -> list[Publication]:
    """Current versions (published or withdrawn) of the caller's department (admin: all), newest first."""
    query = select(Publication).where(Publication.state != PublicationState.CORRECTED)
    if department_code:
        department = db.session.scalar(select(Department).where(Department.code == department_code))
        if department is None:
            raise Problem(404, "not-found", f"部门 {department_code} 不存在")
        query = query.where(Publication.department_id == department.id)
    if not principal.is_admin:
        query = query.where(Publication.department_id == principal.department_id)
    return list(db.session.scalars(query.order_by(Publication.published_at.desc(), Publication.id.desc())
                                   .limit(RECENT_MAX)))
