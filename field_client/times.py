"""Times as the client writes them for the server, and as it shows them to the inspector.

The server keeps instants in UTC; inspectors read them in the offices' zone
(Asia/Shanghai, as the server's ``OFFICE_TIMEZONE``), to the minute. The zone
is the client's own setting — ``--timezone`` or ``$FIELDSYNC_TIMEZONE`` — and
never the machine's.
"""
from __future__ import annotations

import os
import re
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

OFFICE_TIMEZONE = "Asia/Shanghai"
TIMEZONE_ENV = "FIELDSYNC_TIMEZONE"
# For a tablet without a time zone database: the offices' zone has kept UTC+8 all year since 1991.
_WITHOUT_DATABASE = {"Asia/Shanghai": timezone(timedelta(hours=8), "CST"), "UTC": UTC}
_OFFSET = re.compile(r"^(?:UTC)?([+-])(\d{1,2}):?(\d{2})$")


def iso_local(epoch_seconds: float) -> str:
    """ISO 8601 with the tablet's UTC offset, as the server requires."""
    return datetime.fromtimestamp(epoch_seconds, UTC).astimezone().isoformat(timespec="milliseconds")


def office_zone(name: str | None = None) -> tzinfo:
    """The zone times are shown in: ``name``, else ``$FIELDSYNC_TIMEZONE``, else Asia/Shanghai.

    A name is an IANA zone (``Asia/Shanghai``, ``UTC``) or a fixed offset
    (``+08:00``); anything else is a ``ValueError``.
    """
    text = (name if name is not None else os.environ.get(TIMEZONE_ENV) or OFFICE_TIMEZONE).strip()
    offset = _OFFSET.match(text)
    if offset:
        sign, hours, minutes = offset.groups()
        delta = timedelta(hours=int(hours), minutes=int(minutes))
        if delta > timedelta(hours=14) or int(minutes) >= 60:
            raise ValueError(f"UTC 偏移超出范围：{text}")
        return timezone(-delta if sign == "-" else delta)
    try:
        return ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        if text in _WITHOUT_DATABASE:
            return _WITHOUT_DATABASE[text]
        raise ValueError(f"未知的时区：{text}（应为如 Asia/Shanghai 的时区名或如 +08:00 的 UTC 偏移）") from None


def office_time(value: Any, zone: tzinfo) -> str:
    """An ISO 8601 instant as ``2026-12-02 09:00`` in ``zone``; other text as it is, nothing as ``""``."""
    if value is None:
        return ""
    if len(str(value)) <= 10:
        return str(value)  # a date (or less) is no instant: shifting it to a zone would change it
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return str(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # the server's instants are UTC
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M")
