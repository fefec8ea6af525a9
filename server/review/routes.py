"""The review app's pages: log-on, the work queue, an inspection, decisions, footage, approvals, tablets."""
from __future__ import annotations

import functools
import math
import re
import uuid
from collections.abc import Callable
from datetime import date, datetime
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from werkzeug.exceptions import HTTPException

from server import transaction
from server.audit.service import record as audit
from server.auth.policy import Permission, can
from server.db_types import OFFICE_TIMEZONE
from server.errors import Problem
from server.extensions import db
from server.review import coverage, service
from server.review.models import DecisionKind
from server.review.paging import MAX_PAGE
from server.review.sessions import LogOnRefused, log_off, log_on, principal_of, resume
from server.uploads.streaming import audited_media_response
from server.verification.flags import FLAG_LABELS

bp = Blueprint("review", __name__, url_prefix="/review", template_folder="templates",
               static_folder="static", static_url_path="/static")

F = TypeVar("F", bound=Callable[..., Any])
TOKEN = "review_token"
LANGUAGES = ("zh", "en")


def _client_address() -> str:
    return request.remote_addr or "unknown"


def office(permission: Permission = Permission.USE_REVIEW) -> Callable[[F], F]:
    """Page decorator: a live review session whose role holds ``permission``; otherwise to the log-on page."""

    def decorator(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            token = session.get(TOKEN)
            user = resume(token, current_app.config["REVIEW_IDLE_TIMEOUT"]) if isinstance(token, str) else None
            if user is None:
                if token is not None:
                    session.pop(TOKEN, None)
                    flash(_("Your session has ended. Please log in again."), "info")
                if request.method == "GET" and request.endpoint not in ("review.stream", "review.contact_sheet"):
                    return redirect(url_for("review.login", next=request.full_path.rstrip("?")))
                abort(401)
            g.review_user = user
            g.principal = principal_of(user)
            if not can(g.principal, permission):
                raise Problem(403, "forbidden", "您的角色无权执行此操作")
            return view(*args, **kwargs)

        wrapper._required_permission = permission  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorator


@bp.before_request
def protect_forms() -> None:
    # Every form in the app carries the token; the JSON API (bearer tokens) is not CSRF-checked.
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        current_app.extensions["csrf"].protect()


@bp.after_request
def confidential(response: Response) -> Response:
    response.headers.setdefault("Content-Security-Policy",
                                "default-src 'self'; img-src 'self' data:; media-src 'self'; object-src 'none'; "
                                "frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if request.endpoint != "review.static":
        response.headers.setdefault("Cache-Control", "no-store")  # footage and records stay off shared caches
    return response


def _error_text(status: int) -> str:
    texts = {400: _("The request was not valid."), 401: _("Please log in."), 403: _("You may not do this."),
             404: _("Not found, or not visible to you.")}
    return texts.get(status, _("The request failed."))


@bp.errorhandler(HTTPException)
def error_page(error: HTTPException) -> tuple[str, int]:
    status = error.code or 500
    if isinstance(error, Problem) and error.detail:
        message = error.detail
    elif getattr(error, "name", "") == "CSRF Error" or "CSRF" in (error.description or ""):
        message = _("The form has expired or is not valid. Reload the page and try again.")
    else:
        message = _error_text(status)
    return render_template("review/error.html", status=status, message=message), status


# Printable ASCII only: control characters split headers, and browsers read a backslash as a slash
# ("/\\host" is another host); a path from this app needs neither (its query is percent-encoded).
_UNSAFE_IN_NEXT = re.compile(r"[^\x21-\x7e]|\\")
NEXT_MAX = 2000


def _safe_next(target: str | None) -> str:
    """Where to go after log-on or a language switch: a path of this app as given, else the queue."""
    fallback = url_for("review.queue")
    if not isinstance(target, str) or not target or len(target) > NEXT_MAX or _UNSAFE_IN_NEXT.search(target):
        return fallback
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not parts.path.startswith("/review/"):
        return fallback
    # A browser resolves dot segments (also written %2e), and "/review/../x" leaves the app.
    if any(segment in (".", "..") for segment in unquote(parts.path).split("/")):
        return fallback
    return target


# ---- log-on ----------------------------------------------------------------------------------

@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    if request.method == "GET":
        return render_template("review/login.html", next=request.args.get("next", ""))
    username = (request.form.get("username") or "").strip()[:64]
    password = request.form.get("password") or ""
    try:
        opened = log_on(username, password, _client_address())
    except LogOnRefused as refused:
        transaction.keep_writes_despite_error()  # the failure stays on the audit record
        messages = {"invalid-credentials": _("Wrong user name or password."),
                    "role-not-allowed": _("This app is for office staff only. Inspectors use the tablet app.")}
        return render_template("review/login.html", next=request.form.get("next", ""), username=username,
                               error=messages.get(refused.message, refused.message)), refused.status
    language = session.get("lang")
    session.clear()  # a fresh session (and CSRF token) at every log-on
    g.pop("csrf_token", None)  # Flask-WTF caches the token of this request in g
    if language:
        session["lang"] = language
    session[TOKEN] = opened.token
    return redirect(_safe_next(request.form.get("next")), 303)


@bp.post("/logout")
def logout() -> Any:
    token = session.pop(TOKEN, None)
    if isinstance(token, str):
        log_off(token)
    flash(_("You have logged out."), "info")
    return redirect(url_for("review.login"), 303)


@bp.post("/language")
def language() -> Any:
    chosen = request.form.get("lang")
    if chosen in LANGUAGES:
        session["lang"] = chosen
    return redirect(_safe_next(request.form.get("next")), 303)


# ---- the work queue --------------------------------------------------------------------------

def _date(name: str) -> date | None:
    raw = request.args.get(name, "").strip()
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise Problem(400, "bad-request", _("Not a date (YYYY-MM-DD): %(value)s", value=raw[:40])) from None


def _filters() -> service.QueueFilters:
    department = request.args.get("department", "").strip()
    status = request.args.get("status", service.ReviewStatus.OPEN)
    if status not in service.STATUSES:
        raise Problem(400, "bad-request", _("Unknown status."))
    page = _page_number("page")
    try:
        department_id = uuid.UUID(department) if department else None
    except ValueError:
        raise Problem(400, "bad-request", _("Unknown department.")) from None
    flag = request.args.get("flag", "").strip()[:40] or None
    return service.QueueFilters(department_id=department_id, date_from=_date("from"), date_to=_date("to"),
                                flag=flag, status=status, page=page)


@bp.get("/")
@office()
def queue() -> Any:
    filters = _filters()
    found = service.work_queue(g.principal, filters)
    args = {k: v for k, v in request.args.items() if k != "page" and v}
    return render_template("review/queue.html", queue=found, filters=filters, args=args,
                           departments=service.departments(),
                           statuses=service.STATUSES, flag_labels=FLAG_LABELS,
                           footage=coverage.queue_footage(g.principal, [row.inspection for row in found.rows]),
                           quota=coverage.quota_status(g.principal, filters.department_id or g.principal.department_id),
                           can_set_quota=g.principal.role in coverage.QUOTA_ROLES)


# ---- an inspection ---------------------------------------------------------------------------

def _inspection_id(value: str) -> uuid.UUID:
    return service.parse_uuid(value)


def _denied(action: str, object_type: str, object_id: str) -> None:
    """A refused look at a record or its footage is itself on the record."""
    transaction.keep_writes_despite_error()
    audit(action, object_type=object_type, object_id=object_id, outcome="denied", actor=g.principal)


@bp.get("/inspections/<inspection_id>")
@office()
def inspection(inspection_id: str) -> Any:
    return _show_inspection(inspection_id)


_LIST_PAGES = ("findings", "signatures", "evidence", "flags", "conflicts", "decisions")
#: The query arguments the inspection page's own links carry on (a page of each list, the player's file and time).
INSPECTION_ARGS = tuple(f"{name}_page" for name in _LIST_PAGES) + ("audit_before", "media", "t")


_DIGITS = re.compile(r"[0-9]{1,18}")


def _page_number(name: str) -> int:
    raw = request.args.get(name, "1")
    if not _DIGITS.fullmatch(raw) or not 1 <= int(raw) <= MAX_PAGE:
        raise Problem(400, "bad-request", _("Unknown page."))
    return int(raw)


def _inspection_pages() -> service.InspectionPages:
    wanted = request.args.get("media")
    try:
        media = uuid.UUID(wanted) if wanted else None
    except ValueError:
        media = None  # a stale or mistyped link still shows the record, with its first recording
    return service.InspectionPages(**{name: _page_number(f"{name}_page") for name in _LIST_PAGES}, media=media)


def _audit_before() -> int | None:
    raw = request.args.get("audit_before")
    if raw is None:
        return None
    if not _DIGITS.fullmatch(raw):
        raise Problem(400, "bad-request", _("Unknown page."))
    return int(raw)


def _show_inspection(inspection_id: str, *, status: int = 200, decision_error: str | None = None,
                     comment: str = "") -> Any:
    """The inspection page (also shown again, with the reason, when a decision on it is refused)."""
    pages, before = _inspection_pages(), _audit_before()
    try:
        view = service.inspection_view(g.principal, _inspection_id(inspection_id), pages)
    except Problem:
        _denied("inspection.view", "inspection", inspection_id)
        raise
    audit("inspection.view", object_type="inspection", object_id=str(view.inspection.id), actor=g.principal)
    try:
        start_at = max(0.0, float(request.args.get("t", "0")))
    except ValueError:
        start_at = 0.0
    asked = request.args.get("media")
    if not math.isfinite(start_at) or (asked and view.playing is not None and str(view.playing.media.id) != asked):
        start_at = 0.0  # a time belongs to the file it was given with
    args = {name: request.args[name] for name in INSPECTION_ARGS if request.args.get(name)}
    footage, watched = (coverage.footage(view.inspection)
                        if coverage.sees_coverage(g.principal, view.inspection.department_id) else (None, {}))
    return render_template("review/inspection.html", view=view, playing=view.playing, start_at=start_at,
                           footage=footage, watched=watched,
                           flag_labels=FLAG_LABELS, audit=service.audit_trail(g.principal, view.inspection, before),
                           audit_page=service.AUDIT_PAGE,
                           args=args, can_decide=can(g.principal, Permission.DECIDE_REVIEW),
                           can_sign=can(g.principal, Permission.LEGAL_SIGNOFF),
                           decision_error=decision_error, comment=comment,
                           back_to=url_for("review.inspection", inspection_id=view.inspection.id)), status


@bp.post("/inspections/<inspection_id>/decisions")
@office()
def decide(inspection_id: str) -> Any:
    identifier = _inspection_id(inspection_id)
    try:
        kind = DecisionKind(request.form.get("kind", ""))
    except ValueError:
        raise Problem(400, "bad-request", _("Unknown decision.")) from None
    comment = request.form.get("comment")
    try:
        service.decide(g.principal, identifier, kind, comment)
    except Problem as refused:
        if refused.code not in (409, 422):
            raise  # 403 and 404 stay error pages: the record is not theirs to decide on (or to see)
        # A decision the record's state or the form refused: the page again, the reason beside the comment
        # box and what was typed kept. Nothing of the refused decision is kept; the view is on the record.
        db.session.rollback()
        transaction.keep_writes_despite_error()
        return _show_inspection(inspection_id, status=refused.code, decision_error=_refusal_text(refused),
                                comment=(comment or "")[:service.COMMENT_MAX])
    flash({DecisionKind.APPROVE: _("Approved."), DecisionKind.RETURN: _("Returned with your comments."),
           DecisionKind.LEGAL_SIGNOFF: _("Legal review signed off.")}[kind], "success")
    return redirect(url_for("review.inspection", inspection_id=identifier) + "#decisions", 303)


def _refusal_text(refused: Problem) -> str:
    """Why a decision was refused, in the page's language (the service's detail is Chinese)."""
    if refused.errors and "comment" in refused.errors:
        return (_("Returning a record needs your comments.") if refused.errors["comment"] == ["required"]
                else _("Comments may be at most %(count)s characters.", count=service.COMMENT_MAX))
    texts = {"already-approved": _("This record is approved already: no further decision can be made."),
             "legal-review-required": _("Coercive measures were taken: a legal reviewer must sign off first."),
             "already-signed-off": _("The legal review is signed off already."),
             "legal-review-not-required": _("This record needs no legal review.")}
    return texts.get(refused.slug, refused.detail or _("The request failed."))


# ---- footage ---------------------------------------------------------------------------------

def _media(media_id: str, action: str) -> Any:
    try:
        return service.get_media_for_review(g.principal, service.parse_uuid(media_id))
    except Problem:
        _denied(action, "media", media_id)
        raise


@bp.get("/media/<media_id>/stream")
@office()
def stream(media_id: str) -> Any:
    media = _media(media_id, "media.stream")
    # At most a chunk a request, so that each audited range is what the player really fetched (coverage).
    return audited_media_response(g.principal, media, coverage.capped_range(request.headers.get("Range")))


@bp.get("/media/<media_id>/contact-sheet.jpg")
@office()
def contact_sheet(media_id: str) -> Any:
    media = _media(media_id, "media.contact_sheet")
    path = service.contact_sheet(media)
    if path is None:
        raise Problem(404, "not-found", "无法为该文件生成联系表")
    audit("media.contact_sheet", object_type="media", object_id=str(media.id), actor=g.principal)
    return Response(path.read_bytes(), mimetype="image/jpeg")  # a small JPEG: no file handle left open


# ---- the sampling quota of footage (heads, administrators) -------------------------------------

def _quota_page(department_id: uuid.UUID, status: int = 200, error: str | None = None) -> tuple[str, int]:
    quota = coverage.get_quota(g.principal, department_id)
    return render_template("review/quota.html", quota=quota, department_id=department_id,
                           departments=service.departments() if g.principal.is_admin else [],
                           progress=coverage.quota_status(g.principal, department_id), error=error), status


def _quota_department() -> uuid.UUID:
    wanted = request.values.get("department")
    return service.parse_uuid(wanted) if wanted and g.principal.is_admin else g.principal.department_id


@bp.get("/quota")
@office()
def quota() -> Any:
    return _quota_page(_quota_department())


@bp.post("/quota")
@office()
def set_quota() -> Any:
    department_id = _quota_department()
    raw = request.form.get("other_percent", "").strip()
    if not _DIGITS.fullmatch(raw) or int(raw) > 100:
        return _quota_page(department_id, 422, _("The share must be a whole number from 0 to 100."))
    coverage.set_quota(g.principal, department_id, request.form.get("coercive_in_full") == "on", int(raw))
    flash(_("Sampling quota saved."), "success")
    return redirect(url_for("review.quota", department=department_id if g.principal.is_admin else None), 303)


# ---- dispatch approvals (heads) --------------------------------------------------------------

@bp.get("/approvals")
@office(Permission.APPROVE_TASKS)
def approvals() -> Any:
    pending = service.pending_dispatches(g.principal, _page_number("page"))
    return render_template("review/approvals.html", pending=pending, counts=service.visit_counts(pending.items))


@bp.post("/approvals/<task_id>")
@office(Permission.APPROVE_TASKS)
def decide_dispatch(task_id: str) -> Any:
    action = request.form.get("action")
    if action not in ("approve", "reject"):
        raise Problem(400, "bad-request", _("Unknown decision."))
    service.record_dispatch_decision(g.principal, service.parse_uuid(task_id), action == "approve",
                                     request.form.get("reason"))
    flash(_("Dispatch approved.") if action == "approve" else _("Dispatch rejected."), "success")
    return redirect(url_for("review.approvals"), 303)


# ---- a task's inspection code, to print (涉企行政检查码) --------------------------------------------

@bp.get("/tasks/<task_id>/code")
@office()
def task_code(task_id: str) -> Any:
    import segno

    task, code = service.task_code(g.principal, service.parse_uuid(task_id))
    qr = segno.make(code.url, error="m").svg_inline(scale=5, border=4, title=_("Inspection code")) if code else None
    return render_template("review/task_code.html", task=task, code=code, qr=qr,
                           counts=service.visit_counts([task]))


# ---- tablets: enrolment codes and retiring (administrators, department heads) -------------------

def _devices_page(status: int = 200, **context: Any) -> tuple[str, int]:
    from sqlalchemy import select

    from server.directory import enrolment
    from server.directory.models import Department

    departments = (list(db.session.scalars(select(Department).order_by(Department.code)))
                   if g.principal.is_admin else [g.review_user.department])
    return render_template("review/devices.html", tablets=enrolment.tablets(g.principal), departments=departments,
                           max_listed=enrolment.MAX_LISTED, **context), status


@bp.get("/devices")
@office(Permission.MANAGE_DEVICES)
def devices() -> Any:
    return _devices_page()


@bp.post("/devices/codes")
@office(Permission.MANAGE_DEVICES)
def issue_enrolment_code() -> Any:
    """Issue a one-time code and show it once, with the QR code of the app's enrolment link (never stored)."""
    import segno

    from server.directory import enrolment

    form = request.form
    department_id = g.principal.department_id
    if g.principal.is_admin and form.get("department_id"):
        department_id = service.parse_uuid(form["department_id"])
    device_id = (form.get("device_id") or "").strip() or None
    label = (form.get("label") or "").strip() or None
    try:
        issued = enrolment.issue_code(g.principal, department_id, device_id, label)
    except Problem as problem:
        db.session.rollback()
        return _devices_page(problem.code or 400, error=problem.detail or problem.title, form=form)
    link = request.url_root.rstrip("/") + "/field/#enrol=" + issued.code
    qr = segno.make(link, error="m").svg_inline(scale=6, border=2, title=_("Enrolment QR code"))
    return _devices_page(issued=issued, link=link, qr=qr)


@bp.post("/devices/<device_id>/retire")
@office(Permission.MANAGE_DEVICES)
def retire_device(device_id: str) -> Any:
    from server.directory import enrolment

    device = enrolment.retire(g.principal, device_id)
    flash(_("Tablet %(id)s is retired: it can no longer log in or sync.", id=device.id), "success")
    return redirect(url_for("review.devices"), 303)


def local_time(value: Any, with_seconds: bool = True) -> str:
    """A time as the city reads it (UTC+8)."""
    if isinstance(value, str):
        value = service.parse_time(value)
    if not isinstance(value, datetime):  # missing on the record (or undefined in the template)
        return "—"
    return value.astimezone(OFFICE_TIMEZONE).strftime("%Y-%m-%d %H:%M:%S" if with_seconds else "%Y-%m-%d %H:%M")


def clock(value: datetime) -> str:
    """The time of day only (the timeline's ticks; the date is on the record above)."""
    return value.astimezone(OFFICE_TIMEZONE).strftime("%H:%M:%S")
