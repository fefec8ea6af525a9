"""Enforcement decisions, their legal review and notification-commitment checks (issue 15, docs/decisions.md)."""
from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Teach the audit log who owns a decision and a commitment."""
    from server.audit.service import register_object_model
    from server.decisions.models import Commitment, EnforcementDecision

    register_object_model("decision", EnforcementDecision)
    register_object_model("commitment", Commitment)
