"""The enterprise's evaluation and complaints in the review app: the section 「企业评价」 on an inspection's page, and
the open complaint follow-ups (/review/complaints) with the form that closes one with a reply. Pages on the app's
blueprint (``routes.bp``); who sees what (never the team; contacts for the legal affairs office only) is the
evaluations service's."""
from __future__ import annotations

import uuid
from typing import Any

from flask import Flask, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from server.auth.policy import Permission, can
from server.errors import Problem
from server.evaluations import service as evaluations
from server.evaluations.models import Courtesy
from server.extensions import db
from server.review import service
from server.review.routes import bp, office

COURTESY = {Courtesy.SATISFIED.value: _l("Satisfied"), Courtesy.BASICALLY_SATISFIED.value: _l("Mostly satisfied"),
            Courtesy.DISSATISFIED.value: _l("Dissatisfied")}


def inspection_feedback(inspection_id: uuid.UUID) -> evaluations.TaskFeedback | None:
    """The enterprise's rating and complaints beside the record, as the caller may read them (None: they may not)."""
    try:
        return evaluations.inspection_feedback(g.principal, inspection_id)
    except Problem:
        return None


@bp.get("/complaints")
@office(Permission.REPLY_COMPLAINTS)
def complaints() -> Any:
    rows, total = evaluations.open_follow_ups(g.principal)
    return render_template("review/complaints.html", rows=rows, total=total, reply_max=evaluations.REPLY_MAX,
                           can_see_contacts=can(g.principal, Permission.READ_EVALUATION_CONTACTS))


@bp.post("/complaints/<complaint_id>/reply")
@office(Permission.REPLY_COMPLAINTS)
def reply_to_complaint(complaint_id: str) -> Any:
    try:
        evaluations.close_follow_up(g.principal, service.parse_uuid(complaint_id), request.form.get("reply", ""))
    except Problem as refused:
        if refused.code not in (409, 422):
            raise  # 403 and 404 stay error pages: not theirs to answer (or to see)
        db.session.rollback()
        flash(_("Write a reply of at most %(count)s characters.", count=evaluations.REPLY_MAX)
              if refused.code == 422 else _("This complaint has been replied to already."), "error")
        return redirect(url_for("review.complaints") + f"#complaint-{complaint_id}", 303)
    flash(_("Replied: the follow-up is closed, and the enterprise can read the reply."), "success")
    return redirect(url_for("review.complaints"), 303)


def init_app(app: Flask) -> None:
    app.jinja_env.globals.update(enterprise_feedback=inspection_feedback, courtesy_words=COURTESY,
                                 complaint_reply_max=evaluations.REPLY_MAX)
