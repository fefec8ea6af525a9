"""The clock ledger: one reading of the device's clock per push, pull and upload request."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from server.clocks.models import ClockReading, ReadingKind, ReadingSource
from server.extensions import db
from tests.conftest import World
from tests.server.sync.test_push import new_inspection, push
from tests.server.uploads.conftest import OCTETS, create, device_headers, footage, metadata, patch, sha256


def _clock(offset: timedelta) -> str:
    return (datetime.now(UTC) + offset).isoformat().replace("+00:00", "Z")


def _readings() -> list[ClockReading]:
    db.session.expire_all()
    return list(db.session.scalars(select(ClockReading).order_by(ClockReading.server_time, ClockReading.kind)))


def test_push_and_pull_each_leave_one_reading_of_the_tablets_clock(client, world: World, auth) -> None:
    headers = auth.headers("m-insp")
    ahead = {**headers, "Device-Clock": _clock(timedelta(minutes=2, seconds=10))}
    assert push(client, ahead, "SCJG-TAB1", [new_inspection(world), new_inspection(world)]).status_code == 200
    assert client.get("/api/v1/sync/pull", headers=ahead).status_code == 200
    readings = _readings()
    # One per request, not one per mutation.
    assert sorted((r.device_id, r.kind, r.source) for r in readings) == [
        ("SCJG-TAB1", ReadingKind.PULL, ReadingSource.HEADER), ("SCJG-TAB1", ReadingKind.PUSH, ReadingSource.HEADER)]
    for reading in readings:
        assert timedelta(minutes=2) < reading.device_clock - reading.server_time < timedelta(minutes=2, seconds=20)
        assert 120_000 < reading.offset_ms < 140_000


def test_an_unreadable_clock_is_ignored_a_push_falls_back_to_its_hlc(client, world: World, auth) -> None:
    headers = auth.headers("m-insp")
    for bad in ("yesterday", "2026-03-10T04:00:00", "9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00",
                "x" * 500, "2026-13-45T99:00:00Z"):
        answer = client.get("/api/v1/sync/pull", headers={**headers, "Device-Clock": bad})
        assert answer.status_code == 200, (bad, answer.get_data(as_text=True)[:200])
    assert _readings() == []
    answer = push(client, {**headers, "Device-Clock": "not a time"}, "SCJG-TAB1", [new_inspection(world)])
    assert answer.status_code == 200
    (reading,) = _readings()
    assert (reading.kind, reading.source) == (ReadingKind.PUSH, ReadingSource.HLC)
    assert abs(reading.device_clock - reading.server_time) < timedelta(seconds=5)
    # A refused request leaves none.
    assert client.get("/api/v1/sync/pull?cursor=zzz", headers={**headers, "Device-Clock": _clock(timedelta())}) \
        .status_code == 422
    assert len(_readings()) == 1


def test_tus_creation_and_each_patch_leave_a_reading_of_the_uploading_device(client, world: World) -> None:
    data = footage(2048, seed=7)
    dock = {**device_headers(client, world, "m-cam"), "Device-Clock": _clock(-timedelta(days=1))}
    answer = create(client, dock, len(data), metadata(sha256=sha256(data), filename="SEG.MP4", filetype="video/mp4"),
                    data=data[:1024], content_type=OCTETS)
    assert answer.status_code == 201, answer.get_data(as_text=True)
    assert patch(client, answer.headers["Location"], dock, 1024, data[1024:]).status_code == 204
    readings = _readings()
    assert [(r.device_id, r.kind) for r in readings] == [("SCJG-BC01", ReadingKind.UPLOAD)] * 2
    assert all(abs(r.offset_ms + 86_400_000) < 5_000 for r in readings)
