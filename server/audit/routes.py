"""GET /api/v1/audit: the audit log, for supervisors, legal reviewers and heads (their department) and admins."""
from __future__ import annotations

from typing import Any

from flask.views import MethodView

from server.api import BEARER, Blueprint
from server.audit import schemas as s
from server.audit import service
from server.auth.policy import Permission, current_principal, requires

blp = Blueprint("audit", __name__, url_prefix="/api/v1/audit",
                description="The audit log: log-ons, views and streams of footage, decisions, changes of state")


@blp.route("")
class AuditLog(MethodView):
    @requires(Permission.READ_AUDIT)
    @blp.doc(security=BEARER)
    @blp.arguments(s.AuditQuery, location="query")
    @blp.response(200, s.AuditPage)
    @blp.alt_response(401, description="Not authenticated")
    @blp.alt_response(403, description="Your role does not read the audit log")
    @blp.alt_response(422, description="Invalid filter")
    def get(self, query: dict[str, Any]) -> Any:
        """Audit entries, newest first: your department's (as actor or as the object's owner); all for admins"""
        limit, after = query.pop("limit"), query.pop("after")
        return service.list_entries(current_principal(), query, limit, after)
