"""The enterprise rates a visit or complains, with the visit's inspection code; the supervising office reads and
replies (issue 18, docs/inspection-codes.md "Evaluations and complaints").

The public side (no log-in, the token of ``/public/c/<token>``):

- ``opening(token, now) -> Opening``: whether the code may be used to rate the visit now, and why not.
- ``rate``, ``complain``, ``look_up``: each proves the enterprise by its full unified social credit code (a
  wrong one is counted: per code and per client address, 429 past the budget), and spends one of the client
  address's submissions (``rate``, ``complain``).

The office side (``Principal``): ``task_feedback``, ``inspection_feedback``, ``follow_ups`` and
``close_follow_up``. Who sees what: the offices (supervisor, legal reviewer, head, administrator) of the
departments that took part in the task, never a member of its team; a complainant's contact only the legal
affairs office (``READ_EVALUATION_CONTACTS``). Services flush; the request commits.
"""
from __future__ import annotations

import hmac
import math
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import Flask, current_app
from limits import parse
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter
from sqlalchemy import ColumnElement, exists, func, not_, or_, select, update

from server.audit import service as audit
from server.auth.policy import Permission, Principal, can
from server.auth.throttle import FailureThrottle
from server.codes.service import CODED_STATUSES, CodeCheck, check_code
from server.config import Settings
from server.db_types import OFFICE_TIMEZONE, utcnow
from server.directory.models import User
from server.errors import Problem
from server.evaluations.models import Complaint, Courtesy, EvaluationVersion, FollowUpStatus, VisitEvaluation
from server.extensions import db
from server.loading import load_authorized
from server.pagination import Page, keyset_page
from server.sync import records
from server.sync.entities import inspection_id_for
from server.tasks.models import InspectionTask, TaskMember, TaskStatus

COMMENT_MAX = 1000
TEXT_MAX = 2000
CONTACT_MAX = 100
REPLY_MAX = 2000
#: Complaints one code may lodge: enough for a visit that went wrong in several ways, not a channel for spam.
MAX_COMPLAINTS = 5
#: Versions one evaluation may have (the first rating and its corrections): every one is kept and shown.
MAX_VERSIONS = 10
QUEUE_SHOWN = 100  # follow-ups on one page of the review app

_LIMITS = "inspect_once.evaluation_limits"
_PROOF_SCOPE = "evaluation-proof"


# ---- flooding: wrong credit codes and submissions -------------------------------------------------------

class Limits:
    """Wrong credit codes per inspection code and per client address (the log-in's ``FailureThrottle``), and
    accepted submissions per client address; in the configured ``limits`` storage (memory, or Redis shared by
    the server's processes)."""

    def __init__(self, settings: Settings) -> None:
        self.proofs = FailureThrottle(settings.ratelimit_storage_uri, settings.evaluation_proof_rate_limit,
                                      settings.evaluation_proof_address_rate_limit)
        self._limiter = MovingWindowRateLimiter(storage_from_string(settings.ratelimit_storage_uri))
        self._submissions = parse(settings.evaluation_submit_rate_limit)

    def check_submission(self, address: str) -> None:
        if not self._limiter.test(self._submissions, "evaluation-submit", address):
            stats = self._limiter.get_window_stats(self._submissions, "evaluation-submit", address)
            retry = max(1, math.ceil(stats.reset_time - time.time()))
            raise Problem(429, "too-many-submissions", f"提交过于频繁，请 {_wait_words(retry)}后再试",
                          headers={"Retry-After": str(retry)})

    def spend_submission(self, address: str) -> None:
        self._limiter.hit(self._submissions, "evaluation-submit", address)


def _wait_words(seconds: int) -> str:
    return f"{seconds} 秒" if seconds < 120 else f"{math.ceil(seconds / 60)} 分钟"


def init_limits(app: Flask) -> None:
    app.extensions[_LIMITS] = Limits(app.config["SETTINGS"])


def _limits() -> Limits:
    return current_app.extensions[_LIMITS]  # type: ignore[no-any-return]


def _settings() -> Settings:
    return current_app.config["SETTINGS"]  # type: ignore[no-any-return]


# ---- the public side: may the code rate the visit now? ---------------------------------------------------

@dataclass(frozen=True)
class Opening:
    """A scanned code as the evaluation page sees it.

    ``state``: open · not-open (before the window) · closed (past the rating period) · cancelled (cancelled
    before anyone visited) · not-approved (sent back for approval before anyone visited) · or, for a token
    that names no task of ours, the code's own state (forged · malformed · unknown-task).
    """

    check: CodeCheck
    state: str
    message: str
    opens_at: datetime | None = None
    closes_at: datetime | None = None

    @property
    def genuine(self) -> bool:
        return self.check.genuine

    @property
    def open(self) -> bool:
        return self.state == "open"

    @property
    def task(self) -> InspectionTask:
        assert self.check.task is not None, "only a genuine code names a task"
        return self.check.task


OPENING_MESSAGES = {
    "open": "可以对本次检查进行评价或投诉",
    "not-open": "本次检查的计划时间尚未开始，检查开始后方可评价",
    "closed": "评价期限已过：计划检查结束 {days} 天后不再受理评价和投诉，如有意见请向司法局（行政执法监督机构）反映",
    "cancelled": "检查任务已取消且未实施检查，无需评价",
    "not-approved": "检查任务尚未批准实施，无需评价",
}


def visited(task: InspectionTask) -> bool:
    """Whether the team recorded the visit (its inspection record exists)."""
    return records.inspection_of_task(task.id) is not None


def opening(token: str, now: datetime) -> Opening:
    """Whether ``token`` may rate its visit at ``now``: from the window's start until ``evaluation_days`` after
    its end; a task cancelled (or sent back for approval) before anyone visited has nothing to rate."""
    check = check_code(token, now)
    task = check.task
    if task is None:
        return Opening(check, check.state, check.message)
    days = _settings().evaluation_days
    opens_at, closes_at = task.window_start, task.window_end + timedelta(days=days)
    if task.status not in CODED_STATUSES and not visited(task):
        state = "cancelled" if task.status == TaskStatus.CANCELLED else "not-approved"
    elif now < opens_at:
        state = "not-open"
    elif now > closes_at:
        state = "closed"
    else:
        state = "open"
    return Opening(check, state, OPENING_MESSAGES[state].format(days=days), opens_at, closes_at)


def _require_open(opened: Opening) -> None:
    if not opened.genuine:
        raise Problem(400, f"code-{opened.state}", opened.message)
    if not opened.open:
        raise Problem(410 if opened.state in ("closed", "cancelled") else 409, f"evaluation-{opened.state}",
                      opened.message)


def normalised_credit_code(entered: str) -> str:
    return "".join(entered.split()).upper()


def _prove(opened: Opening, credit_code: str, address: str) -> None:
    """The enterprise's full unified social credit code, or 403; counted, and 429 once the budget is spent."""
    if not opened.genuine:
        raise Problem(400, f"code-{opened.state}", opened.message)
    task = opened.task
    throttle = _limits().proofs
    throttle.check(_PROOF_SCOPE, str(task.id), address)
    entered = normalised_credit_code(credit_code)
    if not hmac.compare_digest(entered.encode(), task.enterprise.credit_code.encode()):
        throttle.record_failure(_PROOF_SCOPE, str(task.id), address)
        raise Problem(403, "wrong-credit-code", "统一社会信用代码与检查码对应的企业不符，请核对后重新输入",
                      errors={"credit_code": ["请输入本企业完整的 18 位统一社会信用代码"]})


def _admit(opened: Opening, credit_code: str, address: str) -> tuple[InspectionTask, Limits]:
    """A submission may go ahead: the code is open, the address has submissions left, the enterprise proved.

    The task is locked then, so one submission of a code runs at a time (PostgreSQL) and version and complaint
    numbers follow each other."""
    _require_open(opened)
    limits = _limits()
    limits.check_submission(address)
    _prove(opened, credit_code, address)
    task = opened.task
    db.session.execute(select(InspectionTask.id).where(InspectionTask.id == task.id).with_for_update())
    return task, limits


def evaluation_of(task_id: uuid.UUID) -> VisitEvaluation | None:
    return db.session.scalar(select(VisitEvaluation).where(VisitEvaluation.task_id == task_id))


def correctable_until(evaluation: VisitEvaluation) -> datetime:
    return evaluation.first_submitted_at + timedelta(days=_settings().evaluation_correction_days)


@dataclass(frozen=True)
class PublicFeedback:
    """What the enterprise reads back once it proved itself: that its rating arrived (not what it said: the
    inspecting team holds the code and can find the credit code), and the office's replies to its complaints."""

    evaluation: VisitEvaluation | None
    correctable_until: datetime | None
    complaints: list[Complaint]
    complaints_left: int


def _public_feedback(task: InspectionTask) -> PublicFeedback:
    evaluation = evaluation_of(task.id)
    complaints = list(db.session.scalars(select(Complaint).where(Complaint.task_id == task.id)
                                         .order_by(Complaint.number)))
    return PublicFeedback(evaluation, correctable_until(evaluation) if evaluation else None, complaints,
                          max(0, MAX_COMPLAINTS - len(complaints)))


def look_up(opened: Opening, credit_code: str, address: str) -> PublicFeedback:
    """What the enterprise gave on this code and the replies it got (any time after, once proved)."""
    _prove(opened, credit_code, address)
    return _public_feedback(opened.task)


def rate(opened: Opening, data: dict[str, Any], address: str, now: datetime) -> tuple[PublicFeedback, bool]:
    """Record the enterprise's rating (version 1), or its correction within the correction period.

    ``data``: credit_code, certificate_shown, courtesy, disturbed_production (booleans and a ``Courtesy``),
    comment. Returns the feedback and whether this was the first rating.
    """
    task, limits = _admit(opened, data["credit_code"], address)
    evaluation = evaluation_of(task.id)
    first = evaluation is None
    if evaluation is None:
        evaluation = VisitEvaluation(task_id=task.id, department_id=task.department_id, first_submitted_at=now,
                                     current_version=1)
        db.session.add(evaluation)
        db.session.flush()
    else:
        until = correctable_until(evaluation)
        if now > until:
            days = _settings().evaluation_correction_days
            raise Problem(409, "evaluation-final",
                          f"本次检查已于 {_office_minute(evaluation.first_submitted_at)} 评价；评价提交后 {days} 天内"
                          "可以修改，修改期限已过，不能再修改。如有意见，可以提出投诉。")
        if evaluation.current_version >= MAX_VERSIONS:
            raise Problem(409, "evaluation-final", f"评价最多可以修改 {MAX_VERSIONS - 1} 次，已达上限，不能再修改。"
                                                   "如有意见，可以提出投诉。")
        evaluation.current_version += 1
    db.session.add(EvaluationVersion(
        evaluation_id=evaluation.id, version=evaluation.current_version, submitted_at=now,
        certificate_shown=data["certificate_shown"], courtesy=data["courtesy"],
        disturbed_production=data["disturbed_production"], comment=data.get("comment") or None))
    db.session.flush()
    db.session.expire(evaluation, ["versions"])
    limits.spend_submission(address)
    audit.record("evaluation.submitted" if first else "evaluation.corrected", object_type="evaluation",
                 object_id=str(evaluation.id), details={"task_id": str(task.id), "version": evaluation.current_version})
    return _public_feedback(task), first


def complain(opened: Opening, data: dict[str, Any], address: str, now: datetime) -> PublicFeedback:
    """Lodge a complaint: it opens a follow-up the supervising office must close with a reply."""
    task, limits = _admit(opened, data["credit_code"], address)
    lodged = db.session.scalar(select(func.count()).select_from(Complaint).where(Complaint.task_id == task.id)) or 0
    if lodged >= MAX_COMPLAINTS:
        raise Problem(409, "too-many-complaints",
                      f"每个检查码最多可以提出 {MAX_COMPLAINTS} 项投诉，已达上限；"
                      "如有其他意见，请向司法局（行政执法监督机构）反映")
    complaint = Complaint(task_id=task.id, number=lodged + 1, department_id=task.department_id, submitted_at=now,
                          text=data["text"], contact=data.get("contact") or None, status=FollowUpStatus.OPEN)
    db.session.add(complaint)
    db.session.flush()
    limits.spend_submission(address)
    # Neither the text nor the contact goes to the log: the department's offices read its entries.
    audit.record("complaint.lodged", object_type="complaint", object_id=str(complaint.id),
                 details={"task_id": str(task.id), "complaint_number": complaint.number})
    return _public_feedback(task)


def _office_minute(moment: datetime) -> str:
    return moment.astimezone(OFFICE_TIMEZONE).strftime("%Y-%m-%d %H:%M")


# ---- the office side --------------------------------------------------------------------------------------

def _participating_departments(task: InspectionTask) -> set[uuid.UUID]:
    return {task.department_id} | {m.department_id for m in task.members}


def sees(principal: Principal, task: InspectionTask) -> bool:
    """An office of a department that took part, and not on the team: the inspectors never read what the
    enterprise said of their visit."""
    if not can(principal, Permission.READ_EVALUATIONS):
        return False
    if principal.is_admin:
        return True
    if principal.user_id is not None and any(m.user_id == principal.user_id for m in task.members):
        return False
    return principal.department_id in _participating_departments(task)


def _visible_tasks(principal: Principal) -> ColumnElement[bool]:
    """``sees`` as a condition on ``Complaint.task_id``, for listings."""
    if principal.is_admin:
        return Complaint.id.is_not(None)
    on_team = exists().where(TaskMember.task_id == Complaint.task_id, TaskMember.user_id == principal.user_id)
    took_part = or_(
        Complaint.task_id.in_(select(InspectionTask.id).where(InspectionTask.department_id == principal.department_id)),
        exists().where(TaskMember.task_id == Complaint.task_id, TaskMember.department_id == principal.department_id))
    return took_part & not_(on_team)


@dataclass(frozen=True)
class ComplaintView:
    """A complaint as one caller may read it: ``contact`` only for the legal affairs office."""

    complaint: Complaint
    task: InspectionTask
    inspection_id: uuid.UUID | None
    contact: str | None
    has_contact: bool
    replied_by: str | None


@dataclass(frozen=True)
class TaskFeedback:
    task: InspectionTask
    inspection_id: uuid.UUID | None
    evaluation: VisitEvaluation | None
    correctable_until: datetime | None
    complaints: list[ComplaintView]


def _inspection_id(task_id: uuid.UUID) -> uuid.UUID | None:
    record = records.inspection_of_task(task_id)
    return record.id if record is not None else None


def _views(principal: Principal, complaints: list[Complaint]) -> list[ComplaintView]:
    contacts = can(principal, Permission.READ_EVALUATION_CONTACTS)
    repliers = {c.replied_by_id for c in complaints if c.replied_by_id}
    names = {row.id: row.full_name for row in db.session.execute(
        select(User.id, User.full_name).where(User.id.in_(repliers)))} if repliers else {}
    tasks = {t.id: t for t in db.session.scalars(select(InspectionTask).where(
        InspectionTask.id.in_({c.task_id for c in complaints})))} if complaints else {}
    inspections = {task_id: _inspection_id(task_id) for task_id in tasks}
    return [ComplaintView(c, tasks[c.task_id], inspections[c.task_id], c.contact if contacts else None,
                          c.contact is not None, names.get(c.replied_by_id) if c.replied_by_id else None)
            for c in complaints]


def _feedback_task(principal: Principal, task_id: uuid.UUID) -> InspectionTask:
    return load_authorized(principal, InspectionTask, task_id, Permission.READ_EVALUATIONS,
                           not_found="检查任务不存在", sees=lambda task: sees(principal, task))


def task_feedback(principal: Principal, task_id: uuid.UUID) -> TaskFeedback:
    """The enterprise's rating (every version) and complaints of a task, as the caller may read them."""
    task = _feedback_task(principal, task_id)
    evaluation = evaluation_of(task.id)
    complaints = list(db.session.scalars(select(Complaint).where(Complaint.task_id == task.id)
                                         .order_by(Complaint.number)))
    return TaskFeedback(task, _inspection_id(task.id), evaluation,
                        correctable_until(evaluation) if evaluation else None, _views(principal, complaints))


def inspection_feedback(principal: Principal, inspection_id: uuid.UUID) -> TaskFeedback:
    """``task_feedback`` of the inspection record's task (404 for a record that is not there or not theirs)."""
    record = records.get_inspection(inspection_id)
    if record is None or record.id != inspection_id_for(record.task_id):
        raise Problem(404, "not-found", "检查记录不存在")
    try:
        return task_feedback(principal, record.task_id)
    except Problem as refused:
        if refused.code == 404:
            raise Problem(404, "not-found", "检查记录不存在") from None
        raise


def follow_ups(principal: Principal, status: FollowUpStatus | None, limit: int, after: str | None
               ) -> Page[ComplaintView]:
    """Complaints of the tasks the caller sees (``sees``), a keyset page; ``status`` open: the follow-up queue."""
    if not can(principal, Permission.READ_EVALUATIONS):
        raise Problem(403, "forbidden", "您的角色无权执行此操作")
    query = select(Complaint).where(_visible_tasks(principal))
    if status is not None:
        query = query.where(Complaint.status == status)
    page = keyset_page(query, Complaint.id, limit, after)
    return Page(_views(principal, page.items), page.next_after)


def open_follow_ups(principal: Principal, limit: int = QUEUE_SHOWN) -> tuple[list[ComplaintView], int]:
    """The open follow-ups the caller sees, oldest first (the review app's queue), and how many there are."""
    if not can(principal, Permission.READ_EVALUATIONS):
        raise Problem(403, "forbidden", "您的角色无权执行此操作")
    where = (_visible_tasks(principal), Complaint.status == FollowUpStatus.OPEN)
    total = db.session.scalar(select(func.count()).select_from(Complaint).where(*where)) or 0
    rows = list(db.session.scalars(select(Complaint).where(*where)
                                   .order_by(Complaint.submitted_at, Complaint.id).limit(limit)))
    return _views(principal, rows), total


def _complaint(principal: Principal, complaint_id: uuid.UUID) -> Complaint:
    return load_authorized(principal, Complaint, complaint_id, Permission.READ_EVALUATIONS, not_found="投诉不存在",
                           sees=lambda c: sees(principal, db.session.get(InspectionTask, c.task_id)))


def complaint_view(principal: Principal, complaint_id: uuid.UUID) -> ComplaintView:
    return _views(principal, [_complaint(principal, complaint_id)])[0]


def close_follow_up(principal: Principal, complaint_id: uuid.UUID, reply: str) -> ComplaintView:
    """Close a complaint's follow-up with the office's reply, which the enterprise reads on the evaluation page."""
    complaint = _complaint(principal, complaint_id)
    if not can(principal, Permission.REPLY_COMPLAINTS):
        raise Problem(403, "forbidden", "只有法制审核人员和部门负责人可以答复投诉")
    text = (reply or "").strip()
    if not text or len(text) > REPLY_MAX:
        raise Problem(422, "validation-failed", "请填写答复", errors={"reply": [f"答复应为 1 到 {REPLY_MAX} 个字符"]})
    # Only an open follow-up closes (two replies at once: the second finds it closed).
    closed = db.session.execute(
        update(Complaint).where(Complaint.id == complaint.id, Complaint.status == FollowUpStatus.OPEN)
        .values(status=FollowUpStatus.CLOSED, reply=text, replied_at=utcnow(), replied_by_id=principal.user_id)
        .execution_options(synchronize_session=False))
    if closed.rowcount != 1:  # type: ignore[attr-defined]
        raise Problem(409, "follow-up-closed", "该投诉已经答复，跟进已关闭")
    db.session.refresh(complaint)
    audit.record("complaint.closed", object_type="complaint", object_id=str(complaint.id), actor=principal,
                 details={"task_id": str(complaint.task_id), "complaint_number": complaint.number})
    return _views(principal, [complaint])[0]


COURTESY_WORDS = {Courtesy.SATISFIED: "满意", Courtesy.BASICALLY_SATISFIED: "基本满意",
                  Courtesy.DISSATISFIED: "不满意"}
