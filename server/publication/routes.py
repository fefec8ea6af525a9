"""The public results page ``/public/`` and its feed ``/public/feed.json``: no log-in, Chinese, no CDN."""
from __future__ import annotations

import re
import uuid
from typing import Any

from flask import Blueprint, Response, jsonify, render_template, request, url_for
from flask.views import MethodView

from server.api import BEARER
from server.api import Blueprint as ApiBlueprint
from server.auth.policy import Permission, current_principal, requires
from server.errors import Problem, handle_http_exception
from server.pageheaders import public_page_headers
from server.publication import public, service
from server.publication import schemas as s

bp = Blueprint("public", __name__, url_prefix="/public", template_folder="templates",
               static_folder="static", static_url_path="/static")

_DIGITS = re.compile(r"[0-9]{1,6}")


def _page(name: str) -> int:
    raw = request.args.get(name, "1")
    if not _DIGITS.fullmatch(raw) or not 1 <= int(raw) <= public.MAX_PAGE:
        raise Problem(400, "bad-request", "页码无效", errors={name: ["页码应为 1 至 10000 之间的整数"]})
    return int(raw)


@bp.after_request
def public_headers(response: Response) -> Response:
    # No script; the page may be cached briefly by the public.
    return public_page_headers(response)


@bp.errorhandler(Problem)
def error_page(error: Problem) -> Any:
    """The page's own errors as a page (the feed's stay problem+json, as everywhere in the API)."""
    if request.endpoint == "public.index":
        return render_template("public/error.html", status=error.code, message=error.detail or error.title), error.code
    return handle_http_exception(error)


@bp.get("/")
def index() -> Any:
    results, plans = public.results(_page("page")), public.plans(_page("plans_page"))
    return render_template("public/index.html", results=results, plans=plans, args=request.args)


@bp.get("/feed.json")
def feed() -> Any:
    page = _page("page")
    results, plans = public.results(page), public.plans(page)
    more = results.more or plans.more
    return jsonify({
        "title": "祁阳市行政执法结果公开", "page": page,
        "next": url_for("public.feed", page=page + 1, _external=False) if more else None,
        "results": [public.entry_json(e) for e in results.items],
        "plans": [public.plan_json(p) for p in plans.items],
    })


# ---- the office API ----------------------------------------------------------------------------

decision_blp = ApiBlueprint("decision_publication", __name__, url_prefix="/api/v1/decisions",
                            description="A decision's publication deadline and its published versions")
publication_blp = ApiBlueprint("publications", __name__, url_prefix="/api/v1/publications",
                               description="Publishing decisions' results (事后公开): deadlines, corrections, "
                                           "withdrawals")
api_blueprints = [decision_blp, publication_blp]


@decision_blp.route("/<uuid:decision_id>/publication")
class DecisionPublication(MethodView):
    @requires(Permission.READ_DECISIONS)
    @decision_blp.doc(security=BEARER)
    @decision_blp.response(200, s.StatusSchema)
    @decision_blp.alt_response(404, description="Not found or not yours")
    @decision_blp.alt_response(409, description="decision-not-made: a draft has no deadline")
    @decision_blp.alt_response(422, description="calendar-out-of-range: the statutory calendar does not reach "
                                                "the deadline yet (never guessed)")
    def get(self, decision_id: uuid.UUID) -> Any:
        """The deadline to publish a made decision in, and its published versions"""
        return service.publication_status(current_principal(), decision_id)

    @requires(Permission.PUBLISH_RESULTS)
    @decision_blp.doc(security=BEARER)
    @decision_blp.response(201, s.PublicationSchema)
    @decision_blp.alt_response(403, description="Your department's, but your role may not publish")
    @decision_blp.alt_response(404, description="Not found or not yours")
    @decision_blp.alt_response(409, description="decision-not-made, already-published")
    def post(self, decision_id: uuid.UUID) -> Any:
        """Publish the result of a made decision on the public page (version 1)"""
        return service.publish(current_principal(), decision_id)


@publication_blp.route("/deadlines")
class Deadlines(MethodView):
    @requires(Permission.USE_REVIEW)
    @publication_blp.doc(security=BEARER)
    @publication_blp.arguments(s.DeadlineQuery, location="query")
    @publication_blp.response(200, s.DeadlineList)
    @publication_blp.alt_response(403, description="Role not allowed")
    @publication_blp.alt_response(404, description="No such department")
    @publication_blp.alt_response(422, description="Invalid department code")
    def get(self, query: dict[str, Any]) -> Any:
        """Made decisions not yet published, per department: overdue, due within 3 working days, due, unknown"""
        return {"items": service.deadlines(current_principal(), query["department"])}


@publication_blp.route("/<uuid:publication_id>/correction")
class Correction(MethodView):
    @requires(Permission.PUBLISH_RESULTS)
    @publication_blp.doc(security=BEARER)
    @publication_blp.arguments(s.CorrectionBody)
    @publication_blp.response(201, s.PublicationSchema)
    @publication_blp.alt_response(403, description="Your department's, but your role may not publish")
    @publication_blp.alt_response(404, description="Not found or not yours")
    @publication_blp.alt_response(409, description="publication-withdrawn, publication-superseded")
    @publication_blp.alt_response(422, description="Invalid input")
    def post(self, body: dict[str, Any], publication_id: uuid.UUID) -> Any:
        """Correct a published result (更新): a new version, shown as a correction of this one"""
        return service.correct(current_principal(), publication_id, body["note"], body.get("conclusion"))


@publication_blp.route("/<uuid:publication_id>/withdrawal")
class Withdrawal(MethodView):
    @requires(Permission.PUBLISH_RESULTS)
    @publication_blp.doc(security=BEARER)
    @publication_blp.arguments(s.WithdrawalBody)
    @publication_blp.response(200, s.PublicationSchema)
    @publication_blp.alt_response(403, description="Your department's, but your role may not publish")
    @publication_blp.alt_response(404, description="Not found or not yours")
    @publication_blp.alt_response(409, description="publication-withdrawn, publication-superseded")
    @publication_blp.alt_response(422, description="Invalid input")
    def post(self, body: dict[str, Any], publication_id: uuid.UUID) -> Any:
        """Withdraw a published result (撤销): it stays listed as withdrawn, with the reason"""
        return service.withdraw(current_principal(), publication_id, body["reason"])
