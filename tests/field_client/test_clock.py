"""The field client tells its clock (Device-Clock) with every sync and upload, and the server's ledger keeps it."""
from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from field_client.clock import device_clock
from field_client.engine import FieldClient
from server.clocks.models import ClockReading, ReadingKind, ReadingSource
from server.extensions import db
from tests.conftest import World


def test_the_header_is_the_clock_in_utc_to_the_millisecond() -> None:
    assert device_clock(1773115200.1234) == "2026-03-10T04:00:00.123Z"
    assert datetime.fromisoformat(device_clock()) - datetime.now(UTC) < timedelta(seconds=5)


def test_sync_and_upload_leave_readings_of_the_tablets_clock(tablet: Callable[..., FieldClient], world: World,
                                                             tmp_path: Path) -> None:
    client = tablet("m-insp", "SCJG-TAB1")
    client.sync()
    inspection = client.start_inspection(str(world.task.id), place="生产车间")
    photo = tmp_path / "IMG_0001.jpg"
    photo.write_bytes(os.urandom(3000))
    client.attach(inspection, photo, "scene")
    report = client.sync()
    assert report.uploads.uploaded == 1
    db.session.expire_all()
    readings = list(db.session.scalars(select(ClockReading)))
    assert {r.kind for r in readings} == {ReadingKind.PUSH, ReadingKind.PULL, ReadingKind.UPLOAD}
    assert all(r.device_id == "SCJG-TAB1" and r.source == ReadingSource.HEADER for r in readings)
    assert all(abs(r.offset_ms) < 5000 for r in readings)
