"""The enterprise's evaluation page ``/public/c/<token>/evaluation`` (Chinese, no log-in) and the office API.

The page: GET shows the forms; POST (``action`` rate | complain | look-up) records a rating, lodges a complaint or
shows what the enterprise gave and the replies it got. Forms carry a CSRF token (Flask-WTF, as the review app's
do). Every refusal is a page saying why, with its status: a code that is no code of ours (400, 404), before
or past the rating period or a task cancelled before anyone visited (409, 410), a wrong credit code (403), a
spent budget (429 with Retry-After), a form not filled in right (422).

The API (bearer tokens): a task's or an inspection's evaluation and complaints, the follow-up queue, one
complaint, and closing a follow-up with a reply.
"""
from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any, TypeVar

import marshmallow as ma
from flask import Blueprint, Response, current_app, render_template, request
from flask.views import MethodView
from werkzeug.exceptions import HTTPException

from server.api import BEARER
from server.api import Blueprint as ApiBlueprint
from server.auth.policy import Permission, current_principal, requires
from server.db_types import utcnow
from server.errors import Problem
from server.evaluations import schemas as s
from server.evaluations import service
from server.evaluations.models import Courtesy
from server.pageheaders import public_page_headers

bp = Blueprint("evaluations", __name__, url_prefix="/public", template_folder="templates",
               static_folder="static", static_url_path="/evaluation-static")

#: HTTP status of the page per opening state (``service.Opening``).
PAGE_STATUS = {"open": 200, "not-open": 409, "closed": 410, "cancelled": 410, "not-approved": 409,
               "forged": 400, "malformed": 400, "unknown-task": 404}
FORMS: dict[str, type[ma.Schema]] = {"rate": s.RatingForm, "complain": s.ComplaintForm, "look-up": s.LookUpForm}
COURTESY_CHOICES = [(c.value, service.COURTESY_WORDS[c]) for c in Courtesy]


def _client_address() -> str:
    return request.remote_addr or "unknown"




@bp.before_request
def protect_forms() -> None:
    if request.method not in ("GET", "HEAD", "OPTIONS"):  # the review app's way: its CSRFProtect, checked here
        current_app.extensions["csrf"].protect()


@bp.after_request
def page_headers(response: Response) -> Response:
    # No script at all; the forms post here only. The referrer stays on this server (Flask-WTF checks it on HTTPS,
    # and the page's address holds the token); nothing is cached by a proxy.
    return public_page_headers(response, referrer="same-origin", cache="no-store")


def _page(token: str, opened: service.Opening | None, status: int, **context: Any) -> tuple[str, int]:
    return render_template("evaluations/page.html", token=token, opened=opened,
                           check=opened.check if opened is not None else None,
                           courtesy_choices=COURTESY_CHOICES, courtesy_words=service.COURTESY_WORDS,
                           form=context.pop("form", {}), errors=context.pop("errors", {}),
                           max_complaints=service.MAX_COMPLAINTS, limits={
                               "comment": service.COMMENT_MAX, "text": service.TEXT_MAX,
                               "contact": service.CONTACT_MAX}, **context), status


@bp.errorhandler(HTTPException)
def error_page(error: HTTPException) -> Any:
    """Every error of these pages as a page in Chinese (a form expired, a body too large, a spent budget)."""
    status = error.code or 500
    if getattr(error, "name", "") == "CSRF Error" or "CSRF" in (error.description or ""):
        message = "表单已过期或无效，请刷新页面后重新填写提交"
    elif isinstance(error, Problem) and error.detail:
        message = error.detail
    else:
        message = {404: "页面不存在", 405: "不支持该请求方法", 413: "提交的内容过长"}.get(status, "请求无法处理")
    token = (request.view_args or {}).get("token", "")
    page, _ = _page(token, None, status, refusal=message)
    headers = error.extra_headers if isinstance(error, Problem) else {}
    return page, status, headers


@bp.get("/c/<path:token>/evaluation")
def page(token: str) -> Any:
    opened = service.opening(token, utcnow())
    return _page(token, opened, PAGE_STATUS[opened.state])


@bp.post("/c/<path:token>/evaluation")
def submit(token: str) -> Any:
    opened = service.opening(token, utcnow())
    if not opened.genuine:
        return _page(token, opened, PAGE_STATUS[opened.state])
    action = request.form.get("action", "")
    form = {key: value for key, value in request.form.items() if key not in ("csrf_token", "credit_code")}
    schema = FORMS.get(action)
    if schema is None:
        return _page(token, opened, 400, refusal="请选择要提交的表单（评价、投诉或查看）")
    try:
        data = schema().load(request.form.to_dict())
    except ma.ValidationError as invalid:
        errors = {str(field): (messages if isinstance(messages, list) else [str(messages)])
                  for field, messages in invalid.messages_dict.items()}
        return _page(token, opened, 422, action=action, form=form, errors=errors,
                     refusal="提交的内容有误，请按提示修改后重新提交")
    address = _client_address()
    try:
        if action == "rate":
            feedback, first = service.rate(opened, data, address, utcnow())
            return _page(token, opened, 201 if first else 200, feedback=feedback,
                         notice="评价已提交，感谢您的反馈" if first else "评价已修改（已保留修改前的版本）")
        if action == "complain":
            feedback = service.complain(opened, data, address, utcnow())
            return _page(token, opened, 201, feedback=feedback,
                         notice="投诉已受理，监督机构将跟进并作出答复；答复将显示在本页（凭统一社会信用代码查看）")
        return _page(token, opened, 200, feedback=service.look_up(opened, data["credit_code"], address))
    except Problem as refused:
        status = refused.code or 400
        page, _ = _page(token, opened, status, action=action, form=form, errors=refused.errors or {},
                        refusal=refused.detail or refused.title)
        return page, status, refused.extra_headers


# ---- the office API ------------------------------------------------------------------------------------------

task_blp = ApiBlueprint("task_evaluations", __name__, url_prefix="/api/v1/tasks",
                        description="The enterprise's evaluation of a visit and its complaints (offices only)")
inspection_blp = ApiBlueprint("inspection_evaluations", __name__, url_prefix="/api/v1/inspections",
                              description="The enterprise's evaluation and complaints beside an inspection record")
complaint_blp = ApiBlueprint("complaints", __name__, url_prefix="/api/v1/complaints",
                             description="Complaints of enterprises (投诉) and their follow-ups (跟进), closed with a "
                                         "reply (答复)")
api_blueprints = [task_blp, inspection_blp, complaint_blp]
F = TypeVar("F", bound=Callable[..., Any])

_NOT_INSPECTORS = "An inspector (or anyone on the team): what the enterprise said is never the team's to read"
_NOT_THEIRS = "Not found, or not a task of the caller's department (nor one the caller was on the team of)"


def _reading(blueprint: ApiBlueprint, schema: type[ma.Schema]) -> Callable[[F], F]:
    """What every reading route declares: the offices' permission, the bearer token, the answer, the refusals."""
    def decorate(view: F) -> F:
        for step in (blueprint.alt_response(404, description=_NOT_THEIRS),
                     blueprint.alt_response(403, description=_NOT_INSPECTORS),
                     blueprint.response(200, schema), blueprint.doc(security=BEARER),
                     requires(Permission.READ_EVALUATIONS)):
            view = step(view)
        return view
    return decorate


@task_blp.get("/<uuid:task_id>/evaluations")
@_reading(task_blp, s.FeedbackSchema)
def task_evaluations(task_id: uuid.UUID) -> Any:
    """The enterprise's rating of the visit (every version) and its complaints; contacts for legal reviewers only"""
    return service.task_feedback(current_principal(), task_id)


@inspection_blp.get("/<uuid:inspection_id>/evaluations")
@_reading(inspection_blp, s.FeedbackSchema)
def inspection_evaluations(inspection_id: uuid.UUID) -> Any:
    """The rating and complaints of the inspection record's task"""
    return service.inspection_feedback(current_principal(), inspection_id)


@complaint_blp.route("/")
class FollowUps(MethodView):
    @requires(Permission.READ_EVALUATIONS)
    @complaint_blp.doc(security=BEARER)
    @complaint_blp.arguments(s.FollowUpQuery, location="query")
    @complaint_blp.response(200, s.ComplaintPage)
    @complaint_blp.alt_response(403, description=_NOT_INSPECTORS)
    @complaint_blp.alt_response(422, description="Invalid status, limit or cursor")
    def get(self, query: dict[str, Any]) -> Any:
        """The follow-up queue: complaints of the tasks the caller's department took part in (open by default)"""
        return service.follow_ups(current_principal(), query["status"], query["limit"], query["after"])


@complaint_blp.get("/<uuid:complaint_id>")
@_reading(complaint_blp, s.ComplaintSchema)
def complaint(complaint_id: uuid.UUID) -> Any:
    """One complaint and its follow-up"""
    return service.complaint_view(current_principal(), complaint_id)


@complaint_blp.post("/<uuid:complaint_id>/reply")
@requires(Permission.REPLY_COMPLAINTS)
@complaint_blp.doc(security=BEARER)
@complaint_blp.arguments(s.ReplyBody)
@complaint_blp.response(200, s.ComplaintSchema)
@complaint_blp.alt_response(403, description="Not a legal reviewer, a head or an administrator")
@complaint_blp.alt_response(404, description=_NOT_THEIRS)
@complaint_blp.alt_response(409, description="follow-up-closed: replied to already")
@complaint_blp.alt_response(422, description="Invalid input")
def reply(body: dict[str, Any], complaint_id: uuid.UUID) -> Any:
    """Close the follow-up with the office's reply; the enterprise reads it on the evaluation page"""
    return service.close_follow_up(current_principal(), complaint_id, body["reply"])
