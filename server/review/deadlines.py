"""The review app's publication deadlines (/review/publication): per department, what is overdue, due within
three working days and due later, with a publish action. Pages on the app's blueprint (``routes.bp``)."""
from __future__ import annotations

from itertools import groupby
from typing import Any

from flask import flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _

from server.auth.policy import Permission, can
from server.errors import Problem
from server.publication import service as publication
from server.review import service
from server.review.routes import bp, office


@bp.get("/publication")
@office()
def publication_deadlines() -> Any:
    department = request.args.get("department", "").strip()[:20] or None
    rows = publication.deadlines(g.principal, department)
    groups = [(code, list(items)) for code, items in groupby(rows, key=lambda r: r.department.code)]
    return render_template("review/publication.html", groups=groups, department=department,
                           can_publish=can(g.principal, Permission.PUBLISH_RESULTS),
                           kind_text=publication.DECISION_KIND_TEXT,
                           published=publication.recent_publications(g.principal, department))


@bp.post("/publication/<decision_id>")
@office(Permission.PUBLISH_RESULTS)
def publish_decision(decision_id: str) -> Any:
    try:
        published = publication.publish(g.principal, service.parse_uuid(decision_id))
    except Problem as refused:
        if refused.code != 409:
            raise
        flash(refused.detail or refused.title, "error")
        return redirect(url_for("review.publication_deadlines"), 303)
    flash(_("Published: %(name)s.", name=published.enterprise_name), "success")
    return redirect(url_for("review.publication_deadlines"), 303)


def _refused_or_raise(refused: Problem) -> Any:
    """A correction or withdrawal the form or the entry's state refused: the page again, with the reason."""
    if refused.code not in (409, 422):
        raise refused
    flash(refused.detail or refused.title, "error")
    return redirect(url_for("review.publication_deadlines") + "#published", 303)


@bp.post("/publication/entries/<publication_id>/correct")
@office(Permission.PUBLISH_RESULTS)
def correct_publication(publication_id: str) -> Any:
    conclusion = (request.form.get("conclusion") or "").strip() or None
    try:
        corrected = publication.correct(g.principal, service.parse_uuid(publication_id), request.form.get("note"),
                                        conclusion)
    except Problem as refused:
        return _refused_or_raise(refused)
    flash(_("Corrected: %(name)s (version %(n)d).", name=corrected.enterprise_name, n=corrected.version), "success")
    return redirect(url_for("review.publication_deadlines") + "#published", 303)


@bp.post("/publication/entries/<publication_id>/withdraw")
@office(Permission.PUBLISH_RESULTS)
def withdraw_publication(publication_id: str) -> Any:
    try:
        withdrawn = publication.withdraw(g.principal, service.parse_uuid(publication_id), request.form.get("reason"))
    except Problem as refused:
        return _refused_or_raise(refused)
    flash(_("Withdrawn: %(name)s.", name=withdrawn.enterprise_name), "success")
    return redirect(url_for("review.publication_deadlines") + "#published", 303)
