"""Enforcement decisions, legal review and commitment checks over HTTP: parse, one service call, serialise."""
from __future__ import annotations

import uuid
from typing import Any

from flask.views import MethodView

from server.api import BEARER, Blueprint
from server.auth.policy import Permission, current_principal, requires
from server.decisions import schemas as s
from server.decisions import service

inspection_blp = Blueprint("inspection_decisions", __name__, url_prefix="/api/v1/inspections",
                           description="Enforcement decisions on an inspection (one per department)")
blp = Blueprint("decisions", __name__, url_prefix="/api/v1/decisions",
                description="Enforcement decisions (执法决定) and their legal review (法制审核)")
rules_blp = Blueprint("decision_rules", __name__, url_prefix="/api/v1/departments",
                      description="What makes a department's decisions major (§4)")
commitments_blp = Blueprint("commitments", __name__, url_prefix="/api/v1/commitments",
                            description="Notification-commitments (告知承诺) and their follow-up checks (§12)")
blueprints = [inspection_blp, blp, rules_blp, commitments_blp]


@inspection_blp.route("/<uuid:inspection_id>/decisions")
class InspectionDecisions(MethodView):
    @requires(Permission.READ_DECISIONS)
    @inspection_blp.doc(security=BEARER)
    @inspection_blp.response(200, s.DecisionList)
    @inspection_blp.alt_response(401, description="Not authenticated")
    @inspection_blp.alt_response(404, description="Not found or not yours")
    def get(self, inspection_id: uuid.UUID) -> Any:
        """The decisions recorded on an inspection, one per department"""
        return {"items": service.decisions_of_inspection(current_principal(), inspection_id)}

    @requires(Permission.RECORD_DECISIONS)
    @inspection_blp.doc(security=BEARER)
    @inspection_blp.arguments(s.DecisionCreate)
    @inspection_blp.response(201, s.DecisionDetailSchema)
    @inspection_blp.alt_response(403, description="Not your department's, or role not allowed")
    @inspection_blp.alt_response(404, description="Not found or not yours")
    @inspection_blp.alt_response(409, description="Record not approved yet, or your department decided already")
    @inspection_blp.alt_response(422, description="Invalid input")
    def post(self, body: dict[str, Any], inspection_id: uuid.UUID) -> Any:
        """Record your department's draft decision on an approved inspection record"""
        return service.create_decision(current_principal(), inspection_id, body)


@blp.route("/")
class Decisions(MethodView):
    @requires(Permission.READ_DECISIONS)
    @blp.doc(security=BEARER)
    @blp.arguments(s.DecisionQuery, location="query")
    @blp.response(200, s.DecisionPage)
    @blp.alt_response(401, description="Not authenticated")
    @blp.alt_response(403, description="Role not allowed")
    @blp.alt_response(422, description="Invalid filter")
    def get(self, query: dict[str, Any]) -> Any:
        """Your department's decisions (administrators: all); filter by status or awaiting legal review"""
        return service.list_decisions(current_principal(), status=query["status"],
                                      awaiting_review=query["awaiting_review"], limit=query["limit"],
                                      after=query["after"])


@blp.route("/<uuid:decision_id>")
class DecisionItem(MethodView):
    @requires(Permission.READ_DECISIONS)
    @blp.doc(security=BEARER)
    @blp.response(200, s.DecisionDetailSchema)
    @blp.alt_response(404, description="Not found or not yours")
    def get(self, decision_id: uuid.UUID) -> Any:
        """A decision, with its legal reviews"""
        return service.get_decision(current_principal(), decision_id)

    @requires(Permission.RECORD_DECISIONS)
    @blp.doc(security=BEARER)
    @blp.arguments(s.DecisionUpdate)
    @blp.response(200, s.DecisionDetailSchema)
    @blp.alt_response(403, description="Not your department's")
    @blp.alt_response(404, description="Not found or not yours")
    @blp.alt_response(409, description="Already made")
    @blp.alt_response(422, description="Invalid input")
    def patch(self, body: dict[str, Any], decision_id: uuid.UUID) -> Any:
        """Edit a draft; a change to what the legal reviewer saw asks for a new review"""
        return service.update_decision(current_principal(), decision_id, body)


@blp.route("/<uuid:decision_id>/legal-review")
class DecisionLegalReview(MethodView):
    @requires(Permission.LEGAL_SIGNOFF)
    @blp.doc(security=BEARER)
    @blp.arguments(s.LegalReviewCreate)
    @blp.response(201, s.LegalReviewSchema)
    @blp.alt_response(403, description="Not a legal reviewer of its department")
    @blp.alt_response(404, description="Not found or not yours")
    @blp.alt_response(409, description="Not major, not a draft, or reviewed already as it stands")
    @blp.alt_response(422, description="Invalid input")
    def post(self, body: dict[str, Any], decision_id: uuid.UUID) -> Any:
        """Sign off (or refuse) a major draft: the reviewer, the opinion and its date"""
        return service.sign_off(current_principal(), decision_id, body)


@blp.route("/<uuid:decision_id>/make")
class DecisionMake(MethodView):
    @requires(Permission.RECORD_DECISIONS)
    @blp.doc(security=BEARER)
    @blp.arguments(s.MakeBody)
    @blp.response(200, s.DecisionDetailSchema)
    @blp.alt_response(403, description="Not your department's")
    @blp.alt_response(404, description="Not found or not yours")
    @blp.alt_response(409, description="legal-review-required: a major decision needs an approved sign-off; "
                                       "not-draft: made already")
    @blp.alt_response(422, description="Invalid date")
    def post(self, body: dict[str, Any], decision_id: uuid.UUID) -> Any:
        """Make the decision (作出决定) on a date"""
        return service.make_decision(current_principal(), decision_id, body["decided_on"])


@blp.route("/<uuid:decision_id>/serve")
class DecisionServe(MethodView):
    @requires(Permission.RECORD_DECISIONS)
    @blp.doc(security=BEARER)
    @blp.arguments(s.ServeBody)
    @blp.response(200, s.DecisionDetailSchema)
    @blp.alt_response(403, description="Not your department's")
    @blp.alt_response(404, description="Not found or not yours")
    @blp.alt_response(409, description="Not made yet, or served already")
    @blp.alt_response(422, description="Invalid date")
    def post(self, body: dict[str, Any], decision_id: uuid.UUID) -> Any:
        """Record that the decision was served (送达)"""
        return service.serve_decision(current_principal(), decision_id, body["served_on"])


@rules_blp.route("/<uuid:department_id>/decision-rule")
class DepartmentDecisionRule(MethodView):
    @requires(Permission.READ_DECISIONS)
    @rules_blp.doc(security=BEARER)
    @rules_blp.response(200, s.RuleSchema)
    @rules_blp.alt_response(404, description="No such department")
    def get(self, department_id: uuid.UUID) -> Any:
        """The department's rule for major decisions (or the defaults it takes)"""
        return service.get_rule(current_principal(), department_id)

    @requires(Permission.MANAGE_DECISION_RULES)
    @rules_blp.doc(security=BEARER)
    @rules_blp.arguments(s.RuleUpdate)
    @rules_blp.response(200, s.RuleSchema)
    @rules_blp.alt_response(403, description="Not your department's head")
    @rules_blp.alt_response(404, description="No such department")
    @rules_blp.alt_response(422, description="Invalid input")
    def put(self, body: dict[str, Any], department_id: uuid.UUID) -> Any:
        """Set what makes the department's decisions major"""
        return service.set_rule(current_principal(), department_id, body)


@commitments_blp.route("/")
class Commitments(MethodView):
    @requires(Permission.READ_COMMITMENTS)
    @commitments_blp.doc(security=BEARER)
    @commitments_blp.arguments(s.CommitmentQuery, location="query")
    @commitments_blp.response(200, s.CommitmentPage)
    @commitments_blp.alt_response(401, description="Not authenticated")
    @commitments_blp.alt_response(422, description="Invalid filter")
    def get(self, query: dict[str, Any]) -> Any:
        """Your department's commitments (administrators: all); filter by enterprise or result"""
        return service.list_commitments(current_principal(), enterprise_id=query["enterprise_id"],
                                        result=query["result"], limit=query["limit"], after=query["after"])

    @requires(Permission.MANAGE_COMMITMENTS)
    @commitments_blp.doc(security=BEARER)
    @commitments_blp.arguments(s.CommitmentCreate)
    @commitments_blp.response(201, s.CommitmentSchema)
    @commitments_blp.alt_response(403, description="Role not allowed, or not your department")
    @commitments_blp.alt_response(422, description="Invalid input")
    def post(self, body: dict[str, Any]) -> Any:
        """Register a notification-commitment and, optionally, the task that checks it"""
        return service.create_commitment(current_principal(), body)


@commitments_blp.route("/<uuid:commitment_id>")
class CommitmentItem(MethodView):
    @requires(Permission.READ_COMMITMENTS)
    @commitments_blp.doc(security=BEARER)
    @commitments_blp.response(200, s.CommitmentSchema)
    @commitments_blp.alt_response(404, description="Not found or not yours")
    def get(self, commitment_id: uuid.UUID) -> Any:
        """A commitment and its check's result"""
        return service.get_commitment(current_principal(), commitment_id)


@commitments_blp.route("/<uuid:commitment_id>/result")
class CommitmentResult(MethodView):
    @requires(Permission.MANAGE_COMMITMENTS)
    @commitments_blp.doc(security=BEARER)
    @commitments_blp.arguments(s.CommitmentResultBody)
    @commitments_blp.response(200, s.CommitmentSchema)
    @commitments_blp.alt_response(403, description="Not your department's")
    @commitments_blp.alt_response(404, description="Not found or not yours")
    @commitments_blp.alt_response(409, description="Result recorded already")
    @commitments_blp.alt_response(422, description="Invalid input")
    def post(self, body: dict[str, Any], commitment_id: uuid.UUID) -> Any:
        """Record the follow-up check's result: the commitment true or untrue"""
        return service.record_commitment_result(current_principal(), commitment_id, body)
