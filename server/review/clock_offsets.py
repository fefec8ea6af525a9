"""The capturing device's clock offsets beside a capture time on the inspection page (the clock ledger,
``server.clocks``): 「设备时钟偏差：同步前 +2 分 10 秒 / 同步后 +2 分 12 秒」."""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from flask import Flask
from flask_babel import gettext as _

from server.clocks.ledger import describe_offset
from server.clocks.service import offsets_around


def _moment(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    try:
        moment = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None
    return moment if moment is not None and moment.tzinfo is not None else None


def clock_offsets(media: Any, synced: dict[str, Any] | None) -> str | None:
    """The words for a file's capture time, or None when the ledger knows nothing of its device."""
    synced = synced or {}
    device = getattr(media, "device_id", None) or synced.get("device_id")
    moment = _moment(getattr(media, "capture_start", None)) or _moment(synced.get("capture_start"))
    if not isinstance(device, str) or moment is None:
        return None
    before, after = offsets_around(device, moment)
    if before is None and after is None:
        return None
    units = {"d": _("{n} d"), "h": _("{n} h"), "min": _("{n} min"), "s": _("{n} s")}

    def words(offset: timedelta | None) -> str:
        return describe_offset(offset, units) if offset is not None else _("unknown")

    return _("Device clock offset: before sync %(before)s / after sync %(after)s",
             before=words(before.offset if before else None), after=words(after.offset if after else None))


def init_app(app: Flask) -> None:
    app.jinja_env.globals["clock_offsets"] = clock_offsets
