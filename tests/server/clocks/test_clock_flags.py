"""Capture times read against the device's clock ledger: a clock set back, a clock far off, a clock that runs
true. The tablet tells its clock at each pull and push (Device-Clock) as the app does; the worker assesses."""
from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from server.clocks import ledger
from server.clocks.ledger import Reading
from server.clocks.service import offsets_around
from server.sync.entities import inspection_id_for
from server.verification import flags as rules
from server.verification.inspections import assess_inspection
from tests.conftest import World
from tests.server.sync.test_push import mutation, new_inspection, push

TABLET = "SCJG-TAB1"


def _told(offset: timedelta) -> str:
    return (datetime.now(UTC) + offset).isoformat().replace("+00:00", "Z")


def _visit(client, auth, world: World, clock, offsets: tuple[timedelta, timedelta],  # type: ignore[no-untyped-def]
           captured_after: timedelta) -> dict[str, dict]:
    """The tablet pulls telling its clock ``offsets[0]`` off, takes a photo, and pushes it an hour later
    telling ``offsets[1]``; the photo's capture time is what its clock said ``captured_after`` the pull."""
    headers = auth.headers("m-insp")
    assert client.get("/api/v1/sync/pull", headers={**headers, "Device-Clock": _told(offsets[0])}).status_code == 200
    captured = datetime.now(UTC) + captured_after + offsets[1]
    clock.shift(timedelta(hours=1))
    headers = auth.headers("m-insp")  # the first log-in has expired
    inspection = new_inspection(world)
    photo = mutation("media", str(uuid.uuid4()), {
        "inspection_id": inspection["entity_id"], "sha256": "cd" * 32, "size": 2048, "proves": "scene",
        "content_type": "image/jpeg", "file_name": "IMG_0007.jpg", "capture_start": captured.isoformat()}, TABLET)
    answer = push(client, {**headers, "Device-Clock": _told(offsets[1])}, TABLET, [inspection, photo])
    assert [r["status"] for r in answer.get_json()["results"]] == ["applied", "applied"], answer.get_json()
    flags = assess_inspection(inspection_id_for(world.task.id)) or []
    return {f.code: {"message": f.message, "severity": f.severity, **f.details}
            for f in flags if f.code.startswith("clock-")}


def test_a_tablet_clock_set_back_a_day_is_flagged(client, auth, world: World, clock) -> None:
    found = _visit(client, auth, world, clock, (timedelta(0), -timedelta(days=1)), timedelta(minutes=30))
    assert set(found) == {"clock-jumped-back", "clock-offset"}
    jumped = found["clock-jumped-back"]
    assert jumped["severity"] == "error" and jumped["device_id"] == TABLET
    assert abs(jumped["jumped_back_seconds"] - 86400) < 60
    assert "被调回约 1 天" in jumped["message"] and "同步前 +0 秒 / 同步后 -1 天" in jumped["message"], jumped
    assert found["clock-offset"]["severity"] == "warning"


def test_an_offset_beyond_the_bound_is_flagged_and_a_true_clock_is_not(client, auth, world: World, clock) -> None:
    found = _visit(client, auth, world, clock, (timedelta(minutes=10), timedelta(minutes=10, seconds=1)),
                   timedelta(minutes=30))
    assert set(found) == {"clock-offset"}, found
    offset = found["clock-offset"]
    assert offset["limit_seconds"] == 300 and abs(offset["offset_before_seconds"] - 600) < 5
    assert "同步前 +10 分 / 同步后 +10 分 1 秒" in offset["message"], offset
    # The same ledger read for the review page.
    before, after = offsets_around(TABLET, datetime.fromisoformat(offset["captured_at"]))
    assert before is not None and after is not None and before.server_time < after.server_time


def test_a_tablet_whose_clock_runs_true_is_not_flagged(client, auth, world: World, clock) -> None:
    found = _visit(client, auth, world, clock, (timedelta(minutes=2, seconds=10), timedelta(minutes=2, seconds=12)),
                   timedelta(minutes=30))
    assert found == {}


def test_the_rules_on_plain_readings() -> None:
    t0 = datetime(2026, 3, 10, 4, 0, tzinfo=UTC)
    true = [Reading(t0 + timedelta(hours=h, seconds=130 + h), t0 + timedelta(hours=h)) for h in range(3)]
    assert ledger.jumps_back(true) == []
    assert [r.offset.seconds for r in ledger.around(true, t0 + timedelta(minutes=90))] == [131, 132]
    # Set back a day between the second and the third reading: times on either side of the jump are ambiguous.
    back = [*true[:2], Reading(t0 + timedelta(hours=2) - timedelta(days=1), t0 + timedelta(hours=2))]
    (jump,) = ledger.jumps_back(back)
    assert jump.covers(t0 + timedelta(minutes=90)) and jump.covers(t0 - timedelta(hours=23))
    assert not jump.covers(t0 - timedelta(days=3))
    assert ledger.jump_around(back, t0 + timedelta(minutes=90), t0 + timedelta(hours=2)) == jump
    # A capture that reached the server before the clock was set back was not touched by it.
    assert ledger.jump_around(back, t0 + timedelta(minutes=50), t0 + timedelta(hours=1)) is None
    assert ledger.clock_behind(back, t0 + timedelta(minutes=50), t0 + timedelta(hours=1)) is None
    # A capture time later than the device's clock at a sync after the file arrived lies in its future.
    assert ledger.clock_behind(back, t0 + timedelta(hours=1, minutes=30), t0 + timedelta(hours=2)) == back[2]
    assert ledger.clock_behind(true, t0 + timedelta(hours=1, minutes=30), t0 + timedelta(hours=2)) is None
    facts = rules.ClockFacts(None, "IMG.jpg", TABLET, t0, timedelta(seconds=130), None,
                             behind_by=timedelta(hours=3))
    flags = rules._clock_flags(_facts(facts))
    assert [f.code for f in flags] == ["clock-jumped-back"]
    assert "比设备之后同步时的时钟还晚 3 小时" in flags[0].message and "同步后 未知" in flags[0].message
    # Many files of one far-off device: one flag naming the earliest, every file in the details.
    far = [rules.ClockFacts(None, f"IMG_{n}.jpg", TABLET, t0 + timedelta(minutes=n), timedelta(hours=1),
                            timedelta(hours=1)) for n in (3, 1, 2)]
    (flag,) = rules._clock_flags(_facts(*far))
    assert flag.code == "clock-offset" and flag.details["count"] == 3 and "IMG_1.jpg等 3 个文件" in flag.message
    assert [f["name"] for f in flag.details["files"]] == ["IMG_1.jpg", "IMG_2.jpg", "IMG_3.jpg"]


def _facts(*clocks: rules.ClockFacts) -> rules.InspectionFacts:
    return rules.InspectionFacts(uuid.uuid4(), None, None, datetime(2026, 3, 10, tzinfo=UTC), (), {}, 0, (),
                                 clocks=clocks)
