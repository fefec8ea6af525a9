"""Enforcement decisions, their legal review and notification-commitment checks (issue 15, docs/decisions.md)."""
from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """The default major-penalty amount, the audit log's object types, the directory's untrue-commitment mark."""
    from server.audit.service import register_object_model
    from server.decisions import cli, service
    from server.decisions.models import Commitment, EnforcementDecision
    from server.directory import marks

    # A penalty above this many yuan is a major decision (§4), unless a department set its own amount.
    app.config.setdefault(service.CONFIG_MAJOR_PENALTY, int(service.DEFAULT_MAJOR_PENALTY_YUAN))
    register_object_model("decision", EnforcementDecision)
    register_object_model("commitment", Commitment)
    marks.install_untrue_commitments(service.untrue_commitments)
    cli.init_app(app)
