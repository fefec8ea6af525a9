"""Reading the device's clock off a sync or upload request: the ``Device-Clock`` header.

``Device-Clock: 2026-03-10T04:00:00.123Z`` (ISO 8601 with Z or an offset) is the device's clock as it sent the
request. A route wears ``@observed(kind)``; once its view has done its work without refusing, one ledger row is
added to the request's transaction, beside the server's time when the request reached the view. A header that
cannot be read is ignored (a push then falls back to its HLC stamps): it never refuses a sync.
"""
from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

from flask import request

from server.auth.policy import current_principal
from server.clocks import service
from server.clocks.models import ReadingKind, ReadingSource
from server.db_types import utcnow

log = logging.getLogger(__name__)

HEADER = "Device-Clock"
# A clock earlier than this is not a clock reading (a dead battery resets to 1970 or 2000: both kept).
_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
_LATEST = datetime(2200, 1, 1, tzinfo=UTC)

View = TypeVar("View", bound=Callable[..., Any])

#: The header in the OpenAPI description of the routes that read it (a route's own list of parameters names it).
PARAMETER = {"in": "header", "name": HEADER, "required": False,
             "description": "The device's clock as it sends the request, ISO 8601 with a zone "
                            "(2026-03-10T04:00:00.123Z), kept in the server's clock ledger; unreadable: ignored",
             "schema": {"type": "string", "format": "date-time"}}


def parse_device_clock(raw: str | None) -> datetime | None:
    """The header's time in UTC, or None when absent or not an ISO 8601 time with a zone."""
    if raw is None:
        return None
    raw = raw.strip()
    if not raw or len(raw) > 40:
        return None
    try:
        moment = datetime.fromisoformat(raw)
        if moment.tzinfo is None or moment.utcoffset() is None:
            return None
        moment = moment.astimezone(UTC)
    except (ValueError, OverflowError):
        return None
    return moment if _EARLIEST <= moment < _LATEST else None


def push_clock(body: Mapping[str, Any]) -> datetime | None:
    """The latest physical time among a push's HLC stamps of the pushing device (``<ms>-<counter>-<node>``)."""
    device_id = body.get("device_id")
    walls = []
    for mutation in body.get("mutations") or []:
        stamp = mutation.get("hlc") if isinstance(mutation, Mapping) else None
        if isinstance(stamp, str) and stamp[13:14] == "-" and stamp.split("-", 2)[-1] == device_id \
                and stamp[:13].isdigit():
            walls.append(int(stamp[:13]))
    if not walls:
        return None
    try:
        moment = datetime.fromtimestamp(max(walls) / 1000, UTC)
    except (ValueError, OverflowError, OSError):
        return None
    return moment if _EARLIEST <= moment < _LATEST else None


def _caller_device() -> str | None:
    principal = current_principal()
    if principal.device_id is not None:
        return principal.device_id
    return principal.id if principal.kind == "device" else None


def observed(kind: ReadingKind, fallback: Callable[..., datetime | None] | None = None) -> Callable[[View], View]:
    """Record the caller's device clock for this request once the view returns (innermost decorator)."""

    def decorate(view: View) -> View:
        @functools.wraps(view)
        def run(*args: Any, **kwargs: Any) -> Any:
            received = utcnow()
            result = view(*args, **kwargs)
            device_id = _caller_device()
            if device_id is not None:
                raw = request.headers.get(HEADER)
                clock, source = parse_device_clock(raw), ReadingSource.HEADER
                if clock is None and raw is not None:
                    log.info("unreadable %s header from %s ignored", HEADER, device_id)
                if clock is None and fallback is not None:
                    clock, source = fallback(*args, **kwargs), ReadingSource.HLC
                if clock is not None:
                    service.record(device_id, kind, clock, received, source)
            return result

        return run  # type: ignore[return-value]

    return decorate
