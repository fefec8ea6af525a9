"""The tablet's hybrid logical clock: monotonic whatever the wall clock does, across restarts."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from field_client import hlc
from field_client.engine import FieldClient
from tests.field_client.conftest import MY_ITEM, TASK_ID

T0 = 1_764_120_000_000


def test_stamp_format_round_trips_and_sorts_like_the_stamps() -> None:
    stamp = hlc.Stamp(T0, 1, "SCJG-TAB1")
    assert str(stamp) == "1764120000000-0001-SCJG-TAB1"
    assert hlc.parse(str(stamp)) == stamp
    stamps = [hlc.Stamp(T0, 0x10, "A"), hlc.Stamp(T0, 0x9, "B"), hlc.Stamp(T0 + 1, 0, "A"), hlc.Stamp(T0, 0x9, "A")]
    assert sorted(map(str, stamps)) == [str(s) for s in sorted(stamps)]
    for bad in ("1764120000000-1-SCJG", "176412000000-0001-X", "1764120000000-00g1-X", "1764120000000-0001-"):
        with pytest.raises(ValueError):
            hlc.parse(bad)


def test_tick_never_goes_backwards_when_the_wall_clock_does() -> None:
    walls = [T0, T0 + 5, T0 + 5, T0 - 60_000, T0 - 60_000, T0 + 3, T0 + 10]
    stamps, last = [], None
    for wall in walls:
        last = hlc.tick(last, wall, "SCJG-TAB1")
        stamps.append(last)
    assert all(a < b for a, b in zip(stamps, stamps[1:], strict=False))
    assert [str(s) for s in stamps[:5]] == ["1764120000000-0000-SCJG-TAB1", "1764120000005-0000-SCJG-TAB1",
                                            "1764120000005-0001-SCJG-TAB1", "1764120000005-0002-SCJG-TAB1",
                                            "1764120000005-0003-SCJG-TAB1"]
    assert stamps[-1] == hlc.Stamp(T0 + 10, 0, "SCJG-TAB1")


def test_counter_overflow_borrows_a_millisecond() -> None:
    last = hlc.Stamp(T0, hlc.MAX_COUNTER, "X")
    assert hlc.tick(last, T0, "X") == hlc.Stamp(T0 + 1, 0, "X")


def test_fold_orders_the_next_local_stamp_after_anything_seen() -> None:
    mine = hlc.tick(None, T0, "TAB-B")
    seen = hlc.Stamp(T0 + 120_000, 7, "TAB-Z")  # a teammate whose clock is two minutes ahead
    folded = hlc.fold(mine, seen, "TAB-B")
    after = hlc.tick(folded, T0 + 1, "TAB-B")
    assert str(after) > str(seen)
    assert after == hlc.Stamp(T0 + 120_000, 8, "TAB-B")
    # Folding an older stamp changes nothing.
    assert hlc.fold(folded, hlc.Stamp(T0, 0, "TAB-Z"), "TAB-B") == folded


def test_invalid_device_cannot_stamp() -> None:
    with pytest.raises(ValueError):
        hlc.tick(None, T0, "tab 1")


class Wall:
    """A wall clock the test moves by hand (epoch seconds)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def __call__(self) -> float:
        return self.seconds


def test_clock_survives_restart_even_when_the_wall_clock_was_reset(
        tmp_path: Path, offline_tablet: Callable[..., FieldClient]) -> None:
    wall = Wall(T0 / 1000)
    path = tmp_path / "restart" / "field.db"
    client = offline_tablet(path, clock=wall)
    inspection = client.start_inspection(TASK_ID, place="车间")
    wall.seconds += 1
    client.record_finding(inspection, MY_ITEM, "compliant")
    before = client.last_stamp()
    client.close()

    wall.seconds -= 3600  # the tablet's clock was reset by an hour while it was off
    reopened = FieldClient(path, clock=wall)
    reopened.record_finding(inspection, MY_ITEM, "non_compliant")
    stamps = [m.hlc for m in reopened.store.mutations()]
    reopened.close()
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    assert stamps[-1] > str(before)
    assert hlc.parse(stamps[-1]).wall_ms == hlc.parse(str(before)).wall_ms  # held, not rewound


def test_stamps_seen_on_pull_are_folded_in(offline_tablet: Callable[..., FieldClient], fake_server) -> None:  # type: ignore[no-untyped-def]
    wall = Wall(T0 / 1000)
    client = offline_tablet(clock=wall)
    ahead = f"{T0 + 250_000}-0003-STHJ-TAB1"
    fake_server.changes.append({"entity": "inspection", "entity_id": "00000000-0000-4000-8000-00000000f001",
                                "op": "upsert", "version": 2, "updated_at": "2025-11-26T01:20:00+00:00",
                                "fields": {"task_id": TASK_ID, "status": "open", "place": "仓库"},
                                "meta": {"task_id": TASK_ID, "department_id": "x", "created_by_id": "y",
                                         "hlc": ahead}})
    client.pull()
    client.set_inspection_fields("00000000-0000-4000-8000-00000000f001", place="车间")
    (mutation,) = client.store.mutations()
    assert mutation.hlc > ahead
    assert mutation.hlc.endswith("-SCJG-TAB1")
    assert mutation.base_version == 2
