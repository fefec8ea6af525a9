"""The legal reviewer's queue (/review/legal): major draft decisions of the reviewer's department waiting for a
sign-off (法制审核, seed §4), each with a link to its inspection record, and the sign-off form. Also the
enforcement decisions shown on an inspection's page. Pages on the app's blueprint (``routes.bp``); the rules
are the decisions service's."""
from __future__ import annotations

from datetime import date
from typing import Any

from flask import Flask, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from server.auth.policy import Permission
from server.db_types import office_day, utcnow
from server.decisions import service as decisions
from server.decisions.models import EnforcementDecision
from server.directory.models import Department, Enterprise
from server.errors import Problem
from server.extensions import db
from server.review import service
from server.review.routes import bp, office

KINDS = {"no_irregularity": _l("No irregularity found"), "rectify_order": _l("Order to rectify within a time limit"),
         "penalty": _l("Administrative penalty"), "seizure": _l("Seizure or impoundment"),
         "transfer_judicial": _l("Transfer to the judicial authorities"), "licensing": _l("Licensing decision")}
STATUSES = {"draft": _l("Draft"), "made": _l("Made"), "served": _l("Served")}
CIRCUMSTANCES = {"major_public_interest": _l("Major public interest"),
                 "major_party_rights": _l("Major rights of the party or a third party"),
                 "after_hearing": _l("Decided after a hearing"), "complex_case": _l("Difficult or complex case"),
                 "multiple_legal_relations": _l("Several legal relations")}
OUTCOMES = {"approved": _l("Agree"), "rejected": _l("Do not agree")}
OPINION_MAX = 10_000


def reason_text(reason: str) -> str:
    """Why a decision is major, in words ("kind:seizure", "penalty_above:10000.00", "circumstance:…")."""
    what, _sep, value = reason.partition(":")
    if what == "kind":
        return str(KINDS.get(value, value))
    if what == "penalty_above":
        return _("Penalty above %(amount)s yuan", amount=value)
    if what == "circumstance":
        return str(CIRCUMSTANCES.get(value, value))
    return reason


def _names(rows: list[EnforcementDecision]) -> tuple[dict[Any, Enterprise], dict[Any, Department]]:
    enterprises = {e: db.session.get(Enterprise, e) for e in {r.enterprise_id for r in rows}}
    departments = {d: db.session.get(Department, d) for d in {r.department_id for r in rows}}
    return enterprises, departments


@bp.get("/legal")
@office(Permission.LEGAL_SIGNOFF)
def legal_queue() -> Any:
    rows = decisions.legal_queue(g.principal)
    enterprises, departments = _names(rows)
    return render_template("review/legal.html", rows=rows, enterprises=enterprises, departments=departments,
                           kinds=KINDS, reason_text=reason_text, limit=100)


def _sign_off_page(decision_id: str, status: int = 200, error: str | None = None,
                   errors: dict[str, list[str]] | None = None, form: Any = None) -> tuple[str, int]:
    decision = decisions.get_decision(g.principal, service.parse_uuid(decision_id))
    enterprises, departments = _names([decision])
    return render_template(
        "review/legal_review.html", decision=decision, enterprise=enterprises[decision.enterprise_id],
        department=departments[decision.department_id], reviews=decisions.reviews_of(decision.id),
        awaiting=decision.major and decision.legal_review_id is None and decision.status.value == "draft",
        kinds=KINDS, statuses=STATUSES, circumstances=CIRCUMSTANCES, outcomes=OUTCOMES, reason_text=reason_text,
        user_name=decisions.user_name, today=office_day(utcnow()).isoformat(), error=error, errors=errors or {},
        form=form or {}, opinion_max=OPINION_MAX), status


@bp.get("/legal/<decision_id>")
@office(Permission.LEGAL_SIGNOFF)
def legal_review(decision_id: str) -> Any:
    return _sign_off_page(decision_id)


def _form_date(raw: str | None) -> date | None:
    try:
        return date.fromisoformat((raw or "").strip())
    except ValueError:
        return None


@bp.post("/legal/<decision_id>")
@office(Permission.LEGAL_SIGNOFF)
def sign_off(decision_id: str) -> Any:
    form = request.form
    outcome, opinion = form.get("outcome", ""), form.get("opinion", "")
    reviewed_on = _form_date(form.get("reviewed_on"))
    errors: dict[str, list[str]] = {}
    if outcome not in OUTCOMES:
        errors["outcome"] = [_("Choose whether you approve.")]
    if not opinion.strip():
        errors["opinion"] = [_("Write your opinion.")]
    elif len(opinion) > OPINION_MAX:
        errors["opinion"] = [_("The opinion may be at most %(count)s characters.", count=OPINION_MAX)]
    if reviewed_on is None:
        errors["reviewed_on"] = [_("Give the date of the review.")]
    if errors:
        return _sign_off_page(decision_id, 422, errors=errors, form=form)
    assert reviewed_on is not None
    try:
        decisions.sign_off(g.principal, service.parse_uuid(decision_id),
                           {"outcome": outcome, "opinion": opinion, "reviewed_on": reviewed_on})
    except Problem as refused:
        if refused.code not in (409, 422):
            raise  # 403 and 404 stay error pages: not theirs to review (or to see)
        db.session.rollback()
        return _sign_off_page(decision_id, refused.code, error=refused.detail, errors=refused.errors, form=form)
    flash(_("Legal review recorded.") if outcome == "approved" else _("Legal review recorded: not approved."),
          "success")
    return redirect(url_for("review.legal_queue"), 303)


def inspection_decisions(inspection_id: Any) -> list[dict[str, Any]]:
    """The enforcement decisions on an inspection's page, as the caller may see them (none when they may not)."""
    try:
        rows = decisions.decisions_of_inspection(g.principal, inspection_id)
    except Problem:
        return []
    enterprises, departments = _names(rows)
    return [{"decision": row, "department": departments[row.department_id], "signed_off": decisions.signed_off(row)}
            for row in rows]


def init_app(app: Flask) -> None:
    app.jinja_env.globals.update(enforcement_decisions=inspection_decisions, decision_kinds=KINDS,
                                 decision_statuses=STATUSES, decision_reason=reason_text)


