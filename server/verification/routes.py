"""Inspection assessments: the flags supervisors review, and the evidence behind them."""
from __future__ import annotations

import uuid
from typing import Any

from flask.views import MethodView

from server.api import BEARER, Blueprint
from server.auth.policy import Permission, current_principal, requires
from server.verification import inspections as service
from server.verification import schemas as s

blp = Blueprint("inspections", __name__, url_prefix="/api/v1/inspections",
                description="Inspection records as assessed from their evidence: flags for review")


@blp.route("/")
class Assessments(MethodView):
    @requires(Permission.READ_TASKS)
    @blp.doc(security=BEARER)
    @blp.arguments(s.AssessmentQuery, location="query")
    @blp.response(200, s.AssessmentPage)
    @blp.alt_response(401, description="Not authenticated")
    @blp.alt_response(422, description="Invalid filter")
    def get(self, query: dict[str, Any]) -> Any:
        """Assessed inspections you may see, with their flags; filter by flag or task"""
        return service.list_assessments(current_principal(), query["flag"], query["task_id"],
                                        query["limit"], query["after"])


@blp.route("/<uuid:inspection_id>/assessment")
class Assessment(MethodView):
    @requires(Permission.READ_TASKS)
    @blp.doc(security=BEARER)
    @blp.response(200, s.AssessmentSchema)
    @blp.alt_response(404, description="Not found or not yours")
    def get(self, inspection_id: uuid.UUID) -> Any:
        """An inspection's flags and its evidence with each file's verification"""
        return service.get_assessment(current_principal(), inspection_id)
