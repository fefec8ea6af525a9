"""One case, one file (一案一档): the case file as a signed BagIt package, retention and legal holds."""
from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Register the deletion guard with uploads, and the archive's commands."""
    from server.archive import cli, retention
    from server.archive.models import LegalHold
    from server.audit.service import register_object_model

    register_object_model("legal_hold", LegalHold)
    retention.init_app(app)
    cli.init_app(app)
