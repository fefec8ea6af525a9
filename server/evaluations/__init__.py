"""The enterprise's evaluation of a visit and its complaints, with the visit's inspection code (issue 18;
docs/inspection-codes.md, "Evaluations and complaints").

- ``models``: the evaluation (one per task, every version kept) and complaints with their follow-ups.
- ``service``: when a code may rate its visit, the proof (the enterprise's credit code) and the flood limits,
  and what the supervising office reads and replies; ``schemas`` the forms and the API's bodies.
- ``routes``: the public page ``/public/c/<token>/evaluation`` and the office API. The review app shows the
  same beside the inspection record and lists the open follow-ups (``server.review.evaluations``).
"""
from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Register the tables with the audit log, the flood limits, the public page and the API."""
    from server.api import api
    from server.audit.service import register_object_model
    from server.evaluations.models import Complaint, VisitEvaluation
    from server.evaluations.routes import api_blueprints, bp
    from server.evaluations.service import init_limits

    register_object_model("evaluation", VisitEvaluation)
    register_object_model("complaint", Complaint)
    init_limits(app)
    app.register_blueprint(bp)
    for blueprint in api_blueprints:
        api.register_blueprint(blueprint)
