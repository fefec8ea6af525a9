from __future__ import annotations

import os
from typing import Any

from flask import Blueprint, current_app, send_from_directory
from sqlalchemy import text

from server.errors import problem_response
from server.extensions import db

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Any:
    """200 when the database answers and the media store is writable."""
    checks: dict[str, str] = {}
    try:
        db.session.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001 - any failure means "not healthy"
        checks["database"] = f"error: {type(exc).__name__}"
    media_root = current_app.config["SETTINGS"].media_root
    try:
        media_root.mkdir(parents=True, exist_ok=True)
        checks["media_store"] = "ok" if os.access(media_root, os.W_OK) else "error: not writable"
    except OSError as exc:
        checks["media_store"] = f"error: {exc.strerror}"
    if all(v == "ok" for v in checks.values()):
        return {"status": "ok", "checks": checks}
    return problem_response(503, "unhealthy", "服务不可用", "数据库或媒体存储不可用", extra={"checks": checks})


@bp.get("/api/v1/docs/assets/<path:filename>")
def swagger_ui_asset(filename: str) -> Any:
    """Swagger UI's JavaScript and CSS, from the installed package (no CDN)."""
    import swagger_ui_bundle

    return send_from_directory(swagger_ui_bundle.swagger_ui_path, filename, max_age=86400)
