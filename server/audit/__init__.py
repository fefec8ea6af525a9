"""The audit log: append-only, hash-chained (``service.record``, ``service.verify_chain``), read at /api/v1/audit."""
from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Register the tables and the ``audit-verify`` operator command."""
    from server.audit import models as _models  # noqa: F401 - tables for migrations
    from server.audit.cli import audit_verify_command

    app.cli.add_command(audit_verify_command)
