"""The clock ledger's writes and reads: one row per request, and the readings around a capture time."""
from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import select

from server.clocks.ledger import Reading
from server.clocks.models import ClockReading, ReadingKind, ReadingSource
from server.extensions import db


def record(device_id: str, kind: ReadingKind, device_clock: datetime, server_time: datetime,
           source: ReadingSource = ReadingSource.HEADER) -> None:
    """Keep one reading of ``device_id``'s clock; written with the request's other writes (one commit)."""
    offset = device_clock - server_time
    db.session.add(ClockReading(device_id=device_id, kind=kind, source=source, device_clock=device_clock,
                                server_time=server_time, offset_ms=round(offset.total_seconds() * 1000)))


def _reading(row: ClockReading) -> Reading:
    return Reading(row.device_clock, row.server_time)


def offsets_around(device_id: str, moment: datetime) -> tuple[Reading | None, Reading | None]:
    """The device's clock at the syncs nearest ``moment`` (a time as that device's clock stated it), before
    and after it by the same clock; None where the ledger has none. Only readings the device told itself
    (its ``Device-Clock`` header) count: a push's HLC time only bounds the clock from below."""
    told = select(ClockReading).where(ClockReading.device_id == device_id,
                                      ClockReading.source == ReadingSource.HEADER)
    before = db.session.scalar(told.where(ClockReading.device_clock <= moment)
                               .order_by(ClockReading.device_clock.desc(), ClockReading.server_time.desc()).limit(1))
    after = db.session.scalar(told.where(ClockReading.device_clock >= moment)
                              .order_by(ClockReading.device_clock, ClockReading.server_time).limit(1))
    return (_reading(before) if before else None), (_reading(after) if after else None)


def ledgers(device_ids: Iterable[str], since: datetime, until: datetime) -> dict[str, list[Reading]]:
    """Each device's told readings the server received between ``since`` and ``until``, in that order."""
    wanted = sorted(set(device_ids))
    found: dict[str, list[Reading]] = {device_id: [] for device_id in wanted}
    if not wanted:
        return found
    rows = db.session.scalars(select(ClockReading).where(
        ClockReading.device_id.in_(wanted), ClockReading.source == ReadingSource.HEADER,
        ClockReading.server_time >= since, ClockReading.server_time <= until)
        .order_by(ClockReading.server_time, ClockReading.id))
    for row in rows:
        found[row.device_id].append(_reading(row))
    return found
