"""Enforcement decisions, their legal review and commitment checks: the rules, as plain functions.

Routes, the review app and the CLI call these; they flush and never commit (the request commits once).
Every change is written to the audit log in the same transaction.
"""
from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from flask import current_app, has_app_context
from sqlalchemy import Select, select

from server.audit import service as audit
from server.auth.policy import Permission, Principal, can
from server.db_types import office_day, utcnow
from server.decisions.models import (
    Circumstance,
    Commitment,
    CommitmentResult,
    DecisionKind,
    DecisionRule,
    DecisionStatus,
    EnforcementDecision,
    LegalReview,
    ReviewOutcome,
)
from server.directory.models import Department, Enterprise, User
from server.errors import Problem
from server.extensions import db
from server.loading import load_authorized
from server.pagination import Page, keyset_page
from server.sync import records
from server.tasks.models import InspectionTask
from server.tasks.service import get_task

DEFAULT_MAJOR_PENALTY_YUAN = Decimal("10000")
CONFIG_MAJOR_PENALTY = "DECISIONS_MAJOR_PENALTY_YUAN"
ALWAYS_MAJOR = (DecisionKind.SEIZURE, DecisionKind.TRANSFER_JUDICIAL)
ALL_CIRCUMSTANCES = frozenset(c.value for c in Circumstance)
# The fields of a draft whose change asks for a new legal review.
REVIEWED_FIELDS = ("kind", "conclusion", "legal_basis", "rectify_by", "amount_yuan", "circumstances")


def _field_error(field: str, message: str, status: int = 422, slug: str = "validation-failed") -> Problem:
    return Problem(status, slug, message, errors={field: [message]})


def _today() -> date:
    return office_day(utcnow())


# ---- what is major (§4) ----------------------------------------------------------------------

@dataclass(frozen=True)
class MajorRule:
    """A department's rule: a penalty above ``penalty_above`` is major, and so is any of ``circumstances``."""

    penalty_above: Decimal
    circumstances: frozenset[str]


def major_assessment(kind: DecisionKind, amount_yuan: Decimal | None, circumstances: Iterable[str],
                     rule: MajorRule) -> tuple[bool, list[str]]:
    """Whether a decision is major (重大执法决定) and why; no database, no HTTP."""
    reasons: list[str] = []
    if kind in ALWAYS_MAJOR:
        reasons.append(f"kind:{kind.value}")
    if kind == DecisionKind.PENALTY and amount_yuan is not None and amount_yuan > rule.penalty_above:
        reasons.append(f"penalty_above:{rule.penalty_above:.2f}")
    reasons.extend(f"circumstance:{c}" for c in sorted(set(circumstances)) if c in rule.circumstances)
    return bool(reasons), reasons


def default_penalty_threshold() -> Decimal:
    """The configured amount above which a penalty is major (Flask config ``DECISIONS_MAJOR_PENALTY_YUAN``)."""
    value = current_app.config.get(CONFIG_MAJOR_PENALTY) if has_app_context() else None
    return DEFAULT_MAJOR_PENALTY_YUAN if value is None else Decimal(str(value))


def rule_for(department_id: uuid.UUID) -> MajorRule:
    """The department's own rule, or the configured default (every §4 circumstance counts)."""
    row = db.session.get(DecisionRule, department_id)
    if row is None:
        return MajorRule(default_penalty_threshold(), ALL_CIRCUMSTANCES)
    threshold = row.major_penalty_above_yuan
    return MajorRule(default_penalty_threshold() if threshold is None else Decimal(threshold),
                     frozenset(row.circumstances or []))


@dataclass(frozen=True)
class RuleView:
    department_id: uuid.UUID
    major_penalty_above_yuan: Decimal
    circumstances: list[str]
    configured: bool  # False: the department has no rule of its own, the defaults apply


def _department(principal: Principal, department_id: uuid.UUID, permission: Permission) -> Department:
    found = db.session.get(Department, department_id)
    if found is None:
        raise Problem(404, "not-found", "部门不存在")
    if not can(principal, permission):
        raise Problem(403, "forbidden", "您的角色无权执行此操作")
    if not principal.is_admin and found.id != principal.department_id:
        raise Problem(403, "forbidden", "只能设置本部门的重大执法决定标准")
    return found


def get_rule(principal: Principal, department_id: uuid.UUID) -> RuleView:
    if db.session.get(Department, department_id) is None:
        raise Problem(404, "not-found", "部门不存在")
    if not can(principal, Permission.READ_DECISIONS):
        raise Problem(403, "forbidden", "您的角色无权执行此操作")
    rule = rule_for(department_id)
    return RuleView(department_id, rule.penalty_above, sorted(rule.circumstances),
                    db.session.get(DecisionRule, department_id) is not None)


def set_rule(principal: Principal, department_id: uuid.UUID, data: Mapping[str, Any]) -> RuleView:
    """A head (or an administrator) sets what makes the department's decisions major."""
    department = _department(principal, department_id, Permission.MANAGE_DECISION_RULES)
    row = db.session.get(DecisionRule, department.id) or DecisionRule(department_id=department.id)
    row.major_penalty_above_yuan = data.get("major_penalty_above_yuan")
    row.circumstances = sorted(set(data["circumstances"]))
    row.updated_by_id, row.updated_at = principal.user_id, utcnow()
    db.session.add(row)
    db.session.flush()
    # Drafts are judged by the rule in force: one that becomes major waits for a legal review from now on.
    for draft in db.session.scalars(select(EnforcementDecision).where(
            EnforcementDecision.department_id == department.id, EnforcementDecision.status == DecisionStatus.DRAFT)):
        _assess(draft)
    db.session.flush()
    audit.record("decision_rule.set", object_type="department", object_id=str(department.id), actor=principal,
                 details={"major_penalty_above_yuan": None if row.major_penalty_above_yuan is None
                          else str(row.major_penalty_above_yuan), "circumstances": row.circumstances})
    return get_rule(principal, department.id)


# ---- reading decisions ------------------------------------------------------------------------

def _task_departments(task: InspectionTask) -> set[uuid.UUID]:
    return {task.department_id, *(m.department_id for m in task.members)}


def _visible_task(principal: Principal, task_id: uuid.UUID, not_found: str) -> InspectionTask:
    """The task if the caller takes part in it (the tasks' own rule), else 404 with ``not_found``."""
    try:
        return get_task(principal, task_id)
    except Problem as refused:
        raise Problem(404, "not-found", not_found) from refused


def get_decision(principal: Principal, decision_id: uuid.UUID) -> EnforcementDecision:
    """A decision of a task the caller takes part in; any other answers 404, as an unknown id does."""
    decision = db.session.get(EnforcementDecision, decision_id)
    if decision is None or not can(principal, Permission.READ_DECISIONS):
        raise Problem(404, "not-found", "执法决定不存在")
    _visible_task(principal, decision.task_id, "执法决定不存在")
    return decision


def _visible_inspection(principal: Principal, inspection_id: uuid.UUID) -> tuple[Any, InspectionTask]:
    inspection = records.get_inspection(inspection_id)
    if inspection is None or inspection.task_id is None:
        raise Problem(404, "not-found", "检查记录不存在")
    return inspection, _visible_task(principal, inspection.task_id, "检查记录不存在")


def decisions_of_inspection(principal: Principal, inspection_id: uuid.UUID) -> list[EnforcementDecision]:
    """The inspection's decisions, one per department, in department order."""
    if not can(principal, Permission.READ_DECISIONS):
        raise Problem(403, "forbidden", "您的角色无权执行此操作")
    _visible_inspection(principal, inspection_id)
    return list(db.session.scalars(select(EnforcementDecision).where(
        EnforcementDecision.inspection_id == inspection_id).order_by(EnforcementDecision.department_id)))


def _awaiting_review() -> Any:
    return (EnforcementDecision.status == DecisionStatus.DRAFT) & EnforcementDecision.major.is_(True) \
        & EnforcementDecision.legal_review_id.is_(None)


def _scoped(principal: Principal, query: Select[Any]) -> Select[Any]:
    if principal.is_admin:
        return query
    return query.where(EnforcementDecision.department_id == principal.department_id)


def list_decisions(principal: Principal, *, status: str | None = None, awaiting_review: bool = False,
                   limit: int = 50, after: str | None = None) -> Page[EnforcementDecision]:
    """Decisions of the caller's department (an administrator: every department's)."""
    if not can(principal, Permission.USE_REVIEW):
        raise Problem(403, "forbidden", "您的角色无权执行此操作")
    query = _scoped(principal, select(EnforcementDecision))
    if status is not None:
        query = query.where(EnforcementDecision.status == DecisionStatus(status))
    if awaiting_review:
        query = query.where(_awaiting_review())
    return keyset_page(query, EnforcementDecision.id, limit, after)


def legal_queue(principal: Principal, limit: int = 100) -> list[EnforcementDecision]:
    """Major drafts of the legal reviewer's department waiting for a sign-off, oldest first."""
    if not can(principal, Permission.LEGAL_SIGNOFF):
        raise Problem(403, "forbidden", "只有法制审核人员可以查看待审核的执法决定")
    query = _scoped(principal, select(EnforcementDecision).where(_awaiting_review()))
    return list(db.session.scalars(query.order_by(EnforcementDecision.updated_at, EnforcementDecision.id)
                                   .limit(limit)))


def reviews_of(decision_id: uuid.UUID) -> list[LegalReview]:
    """Every legal review of a decision, oldest first (the history behind ``legal_review_id``)."""
    return list(db.session.scalars(select(LegalReview).where(LegalReview.decision_id == decision_id)
                                   .order_by(LegalReview.created_at, LegalReview.id)))


def current_review(decision: EnforcementDecision) -> LegalReview | None:
    """The legal review of the draft as it stands, if any."""
    return None if decision.legal_review_id is None else db.session.get(LegalReview, decision.legal_review_id)


def signed_off(decision: EnforcementDecision) -> bool:
    """An approved legal review of the decision as it stands."""
    review = current_review(decision)
    return review is not None and review.outcome == ReviewOutcome.APPROVED


# ---- recording and changing decisions -------------------------------------------------------

def _may_record(principal: Principal, department_id: uuid.UUID) -> None:
    if not can(principal, Permission.RECORD_DECISIONS):
        raise Problem(403, "forbidden", "只有本部门的执法监督人员或负责人可以记录执法决定")
    if not principal.is_admin and department_id != principal.department_id:
        raise Problem(403, "forbidden", "只能记录本部门的执法决定")


def _check_kind_fields(kind: DecisionKind, values: Mapping[str, Any]) -> None:
    """Each kind carries its own particulars, and no other kind's."""
    errors: dict[str, list[str]] = {}
    if kind == DecisionKind.RECTIFY_ORDER and values.get("rectify_by") is None:
        errors["rectify_by"] = ["责令限期改正须填写改正期限"]
    if kind != DecisionKind.RECTIFY_ORDER and values.get("rectify_by") is not None:
        errors["rectify_by"] = ["只有责令限期改正才有改正期限"]
    if kind == DecisionKind.PENALTY and values.get("amount_yuan") is None:
        errors["amount_yuan"] = ["行政处罚须填写罚款金额（无罚款填 0）"]
    if kind != DecisionKind.PENALTY and values.get("amount_yuan") is not None:
        errors["amount_yuan"] = ["只有行政处罚才有罚款金额"]
    if errors:
        raise Problem(422, "validation-failed", next(iter(errors.values()))[0], errors=errors)


def _assess(decision: EnforcementDecision) -> None:
    decision.major, decision.major_reasons = major_assessment(
        decision.kind, decision.amount_yuan, decision.circumstances or [], rule_for(decision.department_id))


def _snapshot(decision: EnforcementDecision) -> dict[str, Any]:
    """The audited particulars of a decision."""
    return {"kind": decision.kind.value, "status": decision.status.value, "department_id": str(decision.department_id),
            "inspection_id": str(decision.inspection_id), "major": decision.major,
            "major_reasons": list(decision.major_reasons or []),
            "amount_yuan": None if decision.amount_yuan is None else f"{Decimal(decision.amount_yuan):.2f}",
            "rectify_by": None if decision.rectify_by is None else decision.rectify_by.isoformat(),
            "decided_on": None if decision.decided_on is None else decision.decided_on.isoformat(),
            "served_on": None if decision.served_on is None else decision.served_on.isoformat()}


def create_decision(principal: Principal, inspection_id: uuid.UUID, data: Mapping[str, Any]) -> EnforcementDecision:
    """Record a department's draft decision on an approved inspection record."""
    if not can(principal, Permission.RECORD_DECISIONS):
        raise Problem(403, "forbidden", "只有本部门的执法监督人员或负责人可以记录执法决定")
    inspection, task = _visible_inspection(principal, inspection_id)
    department_id = data.get("department_id") or principal.department_id
    if not principal.is_admin and department_id != principal.department_id:
        raise _field_error("department_id", "只能记录本部门的执法决定", 403, "forbidden")
    if department_id not in _task_departments(task):
        raise _field_error("department_id", "该部门未参加此次检查", 422)
    _may_record(principal, department_id)
    if ((inspection.fields or {}).get("review") or {}).get("status") != "approved":
        raise Problem(409, "inspection-not-approved", "检查记录经审核批准后才能记录执法决定")
    if db.session.scalar(select(EnforcementDecision.id).where(
            EnforcementDecision.inspection_id == inspection.id,
            EnforcementDecision.department_id == department_id)) is not None:
        raise Problem(409, "decision-exists", "本部门已对此次检查记录了执法决定，请修改原决定")
    kind = DecisionKind(data["kind"])
    _check_kind_fields(kind, data)
    now = utcnow()
    decision = EnforcementDecision(
        inspection_id=inspection.id, task_id=task.id, department_id=department_id, enterprise_id=task.enterprise_id,
        kind=kind, conclusion=data["conclusion"], legal_basis=data["legal_basis"], rectify_by=data.get("rectify_by"),
        amount_yuan=data.get("amount_yuan"), circumstances=sorted(set(data.get("circumstances") or [])),
        status=DecisionStatus.DRAFT, created_by_id=principal.user_id, created_at=now, updated_at=now)
    _assess(decision)
    db.session.add(decision)
    db.session.flush()
    audit.record("decision.created", object_type="decision", object_id=str(decision.id), actor=principal,
                 details=_snapshot(decision))
    return decision


def _writable(principal: Principal, decision_id: uuid.UUID) -> EnforcementDecision:
    """Load for a change: 404 unless visible, 403 unless the caller records its department's decisions."""
    decision = get_decision(principal, decision_id)
    _may_record(principal, decision.department_id)
    return decision


def update_decision(principal: Principal, decision_id: uuid.UUID, data: Mapping[str, Any]) -> EnforcementDecision:
    """Edit a draft; a change to what the legal reviewer saw asks for a new review."""
    decision = _writable(principal, decision_id)
    if decision.status != DecisionStatus.DRAFT:
        raise Problem(409, "not-draft", "执法决定已作出，不能再修改")
    merged = {name: data.get(name, getattr(decision, name)) for name in REVIEWED_FIELDS}
    merged["kind"] = DecisionKind(merged["kind"])
    # Changing the kind drops particulars that belong to the old one, unless given again.
    if "kind" in data and merged["kind"] != decision.kind:
        merged["rectify_by"] = data.get("rectify_by")
        merged["amount_yuan"] = data.get("amount_yuan")
    _check_kind_fields(merged["kind"], merged)
    merged["circumstances"] = sorted(set(merged["circumstances"] or []))
    changed = [name for name in REVIEWED_FIELDS if merged[name] != getattr(decision, name)]
    if not changed:
        return decision
    for name in changed:
        setattr(decision, name, merged[name])
    _assess(decision)
    decision.updated_at = utcnow()
    had_review = decision.legal_review_id is not None
    decision.legal_review_id = None
    db.session.flush()
    audit.record("decision.updated", object_type="decision", object_id=str(decision.id), actor=principal,
                 details={**_snapshot(decision), "changed": changed, "legal_review_cleared": had_review})
    return decision


def sign_off(principal: Principal, decision_id: uuid.UUID, data: Mapping[str, Any]) -> LegalReview:
    """A legal reviewer's opinion on a major draft (法制审核): approved, or rejected for amendment."""
    decision = get_decision(principal, decision_id)
    if not can(principal, Permission.LEGAL_SIGNOFF):
        raise Problem(403, "forbidden", "只有法制审核人员可以签署法制审核意见")
    if not principal.is_admin and decision.department_id != principal.department_id:
        raise Problem(403, "forbidden", "只能审核本部门的执法决定")
    if decision.status != DecisionStatus.DRAFT:
        raise Problem(409, "not-draft", "执法决定已作出，不能再审核")
    if not decision.major:
        raise Problem(409, "legal-review-not-required", "该执法决定不属于重大执法决定，无需法制审核")
    if decision.legal_review_id is not None:
        raise Problem(409, "already-signed-off", "该执法决定的当前草稿已有法制审核意见；修改草稿后才能再次审核")
    reviewed_on: date = data["reviewed_on"]
    if reviewed_on > _today():
        raise _field_error("reviewed_on", "审核日期不能晚于今天")
    if reviewed_on < office_day(decision.updated_at):
        raise _field_error("reviewed_on", "审核日期不能早于执法决定草稿的最后修改日期")
    opinion = data["opinion"].strip()
    if not opinion:
        raise _field_error("opinion", "请填写法制审核意见")
    if principal.user_id is None:  # the operator's CLI has no user to name
        raise Problem(403, "forbidden", "法制审核须由具名的法制审核人员签署")
    review = LegalReview(decision_id=decision.id, reviewer_id=principal.user_id, opinion=opinion,
                         outcome=ReviewOutcome(data["outcome"]), reviewed_on=reviewed_on, created_at=utcnow())
    db.session.add(review)
    db.session.flush()
    decision.legal_review_id = review.id
    db.session.flush()
    audit.record("decision.legal_review", object_type="decision", object_id=str(decision.id), actor=principal,
                 details={"legal_review_id": str(review.id), "outcome": review.outcome.value,
                          "reviewed_on": reviewed_on.isoformat(), "opinion": opinion})
    return review


def make_decision(principal: Principal, decision_id: uuid.UUID, decided_on: date) -> EnforcementDecision:
    """Make the decision (作出决定) on ``decided_on``; a major one only with an approved legal sign-off."""
    decision = _writable(principal, decision_id)
    if decision.status != DecisionStatus.DRAFT:
        raise Problem(409, "not-draft", "执法决定已作出")
    _assess(decision)  # by the department's rule in force today, not the one when it was drafted
    review = current_review(decision)
    if decision.major and (review is None or review.outcome != ReviewOutcome.APPROVED):
        why = "法制审核未同意" if review is not None else "尚未经法制审核"
        raise Problem(409, "legal-review-required", f"重大执法决定须经法制审核同意后才能作出（{why}）",
                      extra={"major_reasons": decision.major_reasons})
    if decided_on > _today():
        raise _field_error("decided_on", "决定日期不能晚于今天")
    if review is not None and decided_on < review.reviewed_on:
        raise _field_error("decided_on", "决定日期不能早于法制审核日期")
    decision.status, decision.decided_on = DecisionStatus.MADE, decided_on
    decision.made_by_id, decision.made_at = principal.user_id, utcnow()
    db.session.flush()
    audit.record("decision.made", object_type="decision", object_id=str(decision.id), actor=principal,
                 details={**_snapshot(decision), "legal_review_id": None if review is None else str(review.id)})
    return decision


def serve_decision(principal: Principal, decision_id: uuid.UUID, served_on: date) -> EnforcementDecision:
    """Record that the decision was served (送达) on ``served_on``: not before it was made."""
    decision = _writable(principal, decision_id)
    if decision.status != DecisionStatus.MADE:
        raise Problem(409, "not-made", "执法决定尚未作出或已送达" if decision.status == DecisionStatus.DRAFT
                      else "执法决定已送达")
    assert decision.decided_on is not None  # made decisions carry their date
    if served_on < decision.decided_on:
        raise _field_error("served_on", "送达日期不能早于决定日期")
    if served_on > _today():
        raise _field_error("served_on", "送达日期不能晚于今天")
    decision.status, decision.served_on, decision.served_by_id = DecisionStatus.SERVED, served_on, principal.user_id
    db.session.flush()
    audit.record("decision.served", object_type="decision", object_id=str(decision.id), actor=principal,
                 details=_snapshot(decision))
    return decision


# ---- commitments (§12) ------------------------------------------------------------------------

def get_commitment(principal: Principal, commitment_id: uuid.UUID) -> Commitment:
    return load_authorized(principal, Commitment, commitment_id, Permission.READ_COMMITMENTS,
                           not_found="告知承诺不存在")


def list_commitments(principal: Principal, *, enterprise_id: uuid.UUID | None, result: str | None,
                     limit: int, after: str | None) -> Page[Commitment]:
    if not can(principal, Permission.READ_COMMITMENTS):
        raise Problem(403, "forbidden", "您的角色无权执行此操作")
    query = select(Commitment)
    if not principal.is_admin:
        query = query.where(Commitment.department_id == principal.department_id)
    if enterprise_id is not None:
        query = query.where(Commitment.enterprise_id == enterprise_id)
    if result == "pending":
        query = query.where(Commitment.result.is_(None))
    elif result is not None:
        query = query.where(Commitment.result == CommitmentResult(result))
    return keyset_page(query, Commitment.id, limit, after)


def create_commitment(principal: Principal, data: Mapping[str, Any]) -> Commitment:
    """Register a notification-commitment made to the caller's department, optionally with its check task."""
    if not can(principal, Permission.MANAGE_COMMITMENTS):
        raise Problem(403, "forbidden", "您的角色无权执行此操作")
    department_id = data.get("department_id") or principal.department_id
    if not principal.is_admin and department_id != principal.department_id:
        raise _field_error("department_id", "只能登记本部门受理的告知承诺", 403, "forbidden")
    if db.session.get(Department, department_id) is None:
        raise _field_error("department_id", "部门不存在")
    enterprise = db.session.get(Enterprise, data["enterprise_id"])
    if enterprise is None:
        raise _field_error("enterprise_id", "检查对象不存在")
    task_id = data.get("task_id")
    if task_id is not None:
        task = db.session.get(InspectionTask, task_id)
        if task is None or not _sees_task(principal, task):
            raise _field_error("task_id", "检查任务不存在")
        if task.enterprise_id != enterprise.id:
            raise _field_error("task_id", "核查任务的检查对象与承诺企业不一致")
    commitment = Commitment(enterprise_id=enterprise.id, department_id=department_id, matter=data["matter"],
                            promise=data["promise"], due_on=data["due_on"], task_id=task_id,
                            created_by_id=principal.user_id, created_at=utcnow())
    db.session.add(commitment)
    db.session.flush()
    audit.record("commitment.created", object_type="commitment", object_id=str(commitment.id), actor=principal,
                 details={"enterprise_id": str(enterprise.id), "matter": commitment.matter,
                          "due_on": commitment.due_on.isoformat(),
                          "task_id": None if task_id is None else str(task_id)})
    return commitment


def _sees_task(principal: Principal, task: InspectionTask) -> bool:
    if principal.is_admin:
        return True
    return principal.department_id in _task_departments(task)


def record_commitment_result(principal: Principal, commitment_id: uuid.UUID,
                             data: Mapping[str, Any]) -> Commitment:
    """Record the follow-up check's result against the commitment, once (承诺属实 / 承诺不实)."""
    commitment = load_authorized(principal, Commitment, commitment_id, Permission.MANAGE_COMMITMENTS,
                                 not_found="告知承诺不存在", visible=Permission.READ_COMMITMENTS)
    if commitment.result is not None:
        raise Problem(409, "result-already-recorded", "该告知承诺的核查结果已记录，不能更改")
    checked_on: date = data["checked_on"]
    if checked_on > _today():
        raise _field_error("checked_on", "核查日期不能晚于今天")
    result = CommitmentResult(data["result"])
    note = (data.get("note") or "").strip() or None
    if result == CommitmentResult.UNTRUE and not note:
        raise _field_error("note", "承诺不实时须写明不实的情况")
    commitment.result, commitment.result_note, commitment.checked_on = result, note, checked_on
    commitment.result_by_id = principal.user_id
    db.session.flush()
    audit.record("commitment.result", object_type="commitment", object_id=str(commitment.id), actor=principal,
                 details={"result": result.value, "checked_on": checked_on.isoformat(), "note": note})
    return commitment


def untrue_commitments(enterprise_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, list[dict[str, Any]]]:
    """Commitments found untrue, by enterprise: what the directory marks on an enterprise (§12, 信用记录)."""
    wanted = list(enterprise_ids)
    if not wanted:
        return {}
    found: dict[uuid.UUID, list[dict[str, Any]]] = {}
    rows = db.session.execute(select(Commitment, Department.name).join(Department,
                              Department.id == Commitment.department_id).where(
        Commitment.enterprise_id.in_(wanted), Commitment.result == CommitmentResult.UNTRUE)
        .order_by(Commitment.checked_on, Commitment.id))
    for commitment, department_name in rows:
        found.setdefault(commitment.enterprise_id, []).append({
            "commitment_id": str(commitment.id), "department": department_name, "matter": commitment.matter,
            "checked_on": commitment.checked_on.isoformat() if commitment.checked_on else None})
    return found


def user_name(user_id: uuid.UUID | None) -> str | None:
    """A user's full name for the pages and the API (None: nobody, or the operator's CLI)."""
    if user_id is None:
        return None
    user = db.session.get(User, user_id)
    return None if user is None else user.full_name

