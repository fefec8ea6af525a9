from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import current_app

from server.api import BEARER, Blueprint
from server.auth.policy import Permission, current_principal, requires
from server.clocks.models import ReadingKind
from server.clocks.observe import PARAMETER as DEVICE_CLOCK
from server.clocks.observe import observed, push_clock
from server.sync import schemas as s
from server.sync import service

blp = Blueprint("sync", __name__, url_prefix="/api/v1/sync",
                description="Offline-first sync: tablets push mutations and pull changes (docs/sync.md)")


@blp.post("/push")
@requires(Permission.SYNC)
@blp.doc(security=BEARER, parameters=[DEVICE_CLOCK])
@blp.arguments(s.PushRequest)
@blp.response(200, s.PushResponse)
@blp.alt_response(401, description="Not authenticated")
@blp.alt_response(403, description="Log-in not bound to a tablet (device-required), or bound to another "
                                   "(device-mismatch)")
@blp.alt_response(422, description="Malformed batch; nothing was applied")
@observed(ReadingKind.PUSH, fallback=push_clock)
def push(body: dict[str, Any]) -> Any:
    """Push a batch of offline mutations; answered only after it is committed"""
    skew = timedelta(seconds=current_app.config["SETTINGS"].sync_max_skew_seconds)
    return {"results": service.push(current_principal(), body["device_id"], body["mutations"], skew)}


@blp.get("/pull")
@requires(Permission.SYNC)
@blp.doc(security=BEARER)
@blp.arguments(s.PullQuery, location="query")
@blp.response(200, s.PullResponse)
@blp.alt_response(401, description="Not authenticated")
@blp.alt_response(403, description="Log-in not bound to a tablet (device-required)")
@blp.alt_response(422, description="Invalid cursor or limit")
@observed(ReadingKind.PULL)
def pull(query: dict[str, Any]) -> Any:
    """Changes you may see since the cursor, oldest first"""
    return service.pull(current_principal(), query["cursor"], query["limit"])


@blp.get("/conflicts")
@requires(Permission.READ_CONFLICTS)
@blp.doc(security=BEARER)
@blp.arguments(s.ConflictQuery, location="query")
@blp.response(200, s.ConflictSchema(many=True))
@blp.alt_response(404, description="Task not found or not yours")
def conflicts(query: dict[str, Any]) -> Any:
    """Values that lost a concurrent edit on a task's records"""
    return service.list_conflicts(current_principal(), query["task_id"])
