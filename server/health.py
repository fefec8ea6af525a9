from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, send_from_directory
from sqlalchemy import text

from server.errors import problem_response
from server.extensions import db
from server.uploads.service import uploads

bp = Blueprint("health", __name__)


def _size(count: int) -> str:
    return f"{count / 1024 ** 3:.1f} GiB"


@bp.get("/healthz")
def healthz() -> Any:
    """200 when the database and the media store answer: ``ok``, or ``degraded`` when the store's free
    space is below ``INSPECT_ONCE_MEDIA_MIN_FREE_BYTES`` (it works, but uploads will soon fail); 503 when
    either does not answer."""
    checks: dict[str, str] = {}
    try:
        db.session.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001 - any failure means "not healthy"
        checks["database"] = f"error: {type(exc).__name__}"
    floor = current_app.config["SETTINGS"].media_min_free_bytes
    store = uploads().store.health()
    extra: dict[str, Any] = {"media_free_bytes": store.free_bytes, "media_min_free_bytes": floor}
    if not store.available:
        checks["media_store"] = f"error: {store.problem}"
    elif store.free_bytes is not None and store.free_bytes < floor:
        checks["media_store"] = f"low: {_size(store.free_bytes)} free, below the floor of {_size(floor)}"
    else:
        checks["media_store"] = "ok"
    if any(v.startswith("error") for v in checks.values()):
        return problem_response(503, "unhealthy", "服务不可用", "数据库或媒体存储不可用",
                                extra={"checks": checks, **extra})
    status = "ok" if all(v == "ok" for v in checks.values()) else "degraded"
    return {"status": status, "checks": checks, **extra}


@bp.get("/api/v1/docs/assets/<path:filename>")
def swagger_ui_asset(filename: str) -> Any:
    """Swagger UI's JavaScript and CSS, from the installed package (no CDN)."""
    import swagger_ui_bundle

    return send_from_directory(swagger_ui_bundle.swagger_ui_path, filename, max_age=86400)
