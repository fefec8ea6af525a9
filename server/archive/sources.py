"""What the case file gathers from the capabilities below it, each as plain JSON-ready data.

Each gatherer reads one capability's rows (read-only) and returns what the archive office needs to read the
case without the server: names as well as ids, dates as ISO 8601.
"""
from __future__ import annotations

import uuid
from datetime import date
from typing import Any

from sqlalchemy import String, cast, select

from server.audit.service import list_entries
from server.auth.policy import SYSTEM
from server.directory.models import Certificate, User
from server.directory.service import certificate_status_on
from server.extensions import db
from server.planning.models import Draw
from server.review.models import ReviewDecision
from server.tasks.models import TaskMember

AUDIT_PAGE = 500


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def _username(user_id: uuid.UUID | None) -> str | None:
    if user_id is None:
        return None
    user = db.session.get(User, user_id)
    return user.username if user is not None else None


def enforcement_decisions(task_id: uuid.UUID) -> list[dict[str, Any]]:
    """Each department's enforcement decision on the case with its legal reviews (server.decisions).

    The slot is filled from ``server.decisions`` when that capability is installed; without it the case
    file says so (``decisions.json`` → ``{"available": false}``) rather than silently leaving it out.
    """
    try:
        from server.decisions.models import EnforcementDecision, LegalReview
    except ImportError:  # pragma: no cover - only before server.decisions exists
        return []
    out = []
    for decision in db.session.scalars(select(EnforcementDecision).where(EnforcementDecision.task_id == task_id)
                                       .order_by(EnforcementDecision.created_at, EnforcementDecision.id)):
        reviews = [{"id": str(r.id), "reviewer": _username(r.reviewer_id), "reviewer_id": str(r.reviewer_id),
                    "opinion": r.opinion, "outcome": r.outcome.value, "reviewed_on": _iso(r.reviewed_on),
                    "recorded_at": _iso(r.created_at), "is_sign_off": r.id == decision.legal_review_id}
                   for r in db.session.scalars(select(LegalReview).where(LegalReview.decision_id == decision.id)
                                               .order_by(LegalReview.created_at, LegalReview.id))]
        out.append({"id": str(decision.id), "inspection_id": str(decision.inspection_id),
                    "department_id": str(decision.department_id), "kind": decision.kind.value,
                    "status": decision.status.value, "conclusion": decision.conclusion,
                    "legal_basis": decision.legal_basis, "rectify_by": _iso(decision.rectify_by),
                    "amount_yuan": str(decision.amount_yuan) if decision.amount_yuan is not None else None,
                    "circumstances": list(decision.circumstances or []), "major": decision.major,
                    "major_reasons": list(decision.major_reasons or []), "decided_on": _iso(decision.decided_on),
                    "served_on": _iso(decision.served_on), "made_by": _username(decision.made_by_id),
                    "served_by": _username(decision.served_by_id), "legal_reviews": reviews})
    return out


def decisions_available() -> bool:
    try:
        import server.decisions.models  # noqa: F401
    except ImportError:  # pragma: no cover
        return False
    return True


def review_decisions(inspection_id: uuid.UUID, task_id: uuid.UUID) -> list[dict[str, Any]]:
    """The supervisors' review decisions (approve, return, legal sign-off) and the task's dispatch approvals."""
    rows = db.session.scalars(select(ReviewDecision).where(
        (ReviewDecision.inspection_id == inspection_id) | (ReviewDecision.task_id == task_id))
        .order_by(ReviewDecision.decided_at, ReviewDecision.id))
    return [{"id": str(r.id), "kind": r.kind.value, "comment": r.comment, "department_id": str(r.department_id),
             "decided_by": _username(r.decided_by_id), "decided_at": _iso(r.decided_at),
             "inspection_id": str(r.inspection_id) if r.inspection_id else None} for r in rows]


def draws(task_id: uuid.UUID) -> list[dict[str, Any]]:
    """The double-random draw records that chose this enterprise and these inspectors (enough to re-run them)."""
    text = str(task_id)
    candidates = db.session.scalars(select(Draw).where(cast(Draw.task_ids, String).like(f"%{text}%"))
                                    .order_by(Draw.created_at, Draw.id))
    return [{"id": str(d.id), "department_id": str(d.department_id),
             "plan_id": str(d.plan_id) if d.plan_id else None,
             "joint_plan_id": str(d.joint_plan_id) if d.joint_plan_id else None, "seed": d.seed,
             "inputs": d.inputs, "input_hash": d.input_hash, "result": d.result, "result_hash": d.result_hash,
             "task_ids": d.task_ids, "created_by": _username(d.created_by_id), "created_at": _iso(d.created_at)}
            for d in candidates if text in (d.task_ids or [])]


def certificates(task_id: uuid.UUID, day: date) -> dict[str, Any]:
    """Each team member's enforcement certificates and their standing on the inspection day (from history)."""
    members = db.session.scalars(select(TaskMember).where(TaskMember.task_id == task_id))
    out = []
    for member in members:
        user = db.session.get(User, member.user_id)
        for certificate in db.session.scalars(select(Certificate).where(Certificate.holder_id == member.user_id)
                                              .order_by(Certificate.number)):
            out.append({"holder_id": str(member.user_id), "holder": user.username if user else None,
                        "holder_name": user.full_name if user else None,
                        "department_id": str(member.department_id), "number": certificate.number,
                        "valid_from": _iso(certificate.valid_from), "valid_until": _iso(certificate.valid_until),
                        "status_on_day": certificate_status_on(certificate, day),
                        "history": [{"status": c.status.value, "reason": c.reason, "changed_at": _iso(c.changed_at)}
                                    for c in certificate.history]})
    out.sort(key=lambda c: (c["holder"] or "", c["number"]))
    return {"day": day.isoformat(), "certificates": out}


def audit_entries(object_ids: list[str]) -> list[dict[str, Any]]:
    """Every audit entry naming one of the case's objects, oldest first, with its chain hashes."""
    rows: list[Any] = []
    after: int | None = None
    while True:
        page = list_entries(SYSTEM, {"object_ids": object_ids}, AUDIT_PAGE, after)
        rows.extend(page.items)
        if page.next_after is None:
            break
        after = int(page.next_after)
    rows.sort(key=lambda e: e.seq)
    return [{"seq": e.seq, "occurred_at": _iso(e.occurred_at), "action": e.action, "outcome": e.outcome.value,
             "object_type": e.object_type, "object_id": e.object_id, "actor_kind": e.actor_kind.value,
             "actor": e.actor_username or e.actor_id, "details": e.details, "prev_hash": e.prev_hash,
             "hash": e.hash} for e in rows]
