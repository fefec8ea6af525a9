"""Inspection tasks: a planned visit to one enterprise by a team."""
from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Teach the audit log who owns a task."""
    from server.audit.service import register_object_model
    from server.tasks.models import InspectionTask

    register_object_model("task", InspectionTask)
