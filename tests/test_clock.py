"""The suite's clock (tests/clock.py) keeps every test off the wall clock: these tests keep it honest."""
from __future__ import annotations

import re
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from time_machine import escape_hatch

from server.db_types import office_day
from tests.clock import (
    AROUND_OFFICE_MIDNIGHT,
    DEFAULT_NOW,
    office_today,
    parse_instant,
    session_now,
    subprocess_command,
)

REPO = Path(__file__).resolve().parents[1]
UTC = UTC


def test_a_test_runs_at_the_suites_instant_and_time_flows_on_from_it() -> None:
    start = session_now()
    now = datetime.now(UTC)
    assert start <= now < start + timedelta(minutes=5)
    assert abs(time.time() - now.timestamp()) < 5
    assert escape_hatch.is_travelling()  # not the wall clock


def test_the_default_instant_is_hours_from_any_midnight() -> None:
    start = DEFAULT_NOW
    for zone in (UTC, timezone(timedelta(hours=8))):  # the machine's (CI's is UTC) and the offices'
        local = start.astimezone(zone)
        since_midnight = timedelta(hours=local.hour, minutes=local.minute, seconds=local.second)
        assert timedelta(hours=3) <= since_midnight <= timedelta(hours=21), (zone, local)


@pytest.mark.around_office_midnight
def test_a_test_marked_around_office_midnight_runs_frozen_at_each_instant(request: pytest.FixtureRequest) -> None:
    instant = request.node.callspec.params["clock"]
    assert datetime.now(UTC) == instant
    time.sleep(0.01)
    assert datetime.now(UTC) == instant
    assert office_today() == office_day(instant)


def test_the_instants_are_on_both_sides_of_office_midnight() -> None:
    after_midnight = {name for name, at in AROUND_OFFICE_MIDNIGHT.items()
                      if office_day(at) != office_day(at - timedelta(hours=1))}
    assert after_midnight and after_midnight != set(AROUND_OFFICE_MIDNIGHT)
    # The offices' day turns at 16:00 UTC: after it, the UTC date (a UTC machine's date.today()) is the day before.
    assert any(office_day(at) != at.date() for at in AROUND_OFFICE_MIDNIGHT.values())
    assert any(office_day(at).year != at.year for at in AROUND_OFFICE_MIDNIGHT.values())


@pytest.mark.parametrize("clock", [datetime(2031, 7, 1, 12, tzinfo=UTC)], indirect=True)
def test_a_subprocess_started_by_a_test_runs_at_the_tests_instant() -> None:
    # ``python -m calendar`` prints the calendar of the current year: the travelled one, not the wall clock's.
    shown = subprocess.run(subprocess_command(sys.executable, "calendar"), cwd=REPO, capture_output=True,
                           text=True, timeout=60, check=True).stdout
    assert shown.split()[0] == "2031", shown[:200]


@pytest.mark.real_clock  # what it checks: that a test so marked reads the wall clock
def test_a_test_marked_real_clock_reads_the_wall_clock(clock: None) -> None:
    assert clock is None and not escape_hatch.is_travelling()


def test_an_instant_needs_its_offset() -> None:
    assert parse_instant("2026-12-02T16:14:00Z") == datetime(2026, 12, 2, 16, 14, tzinfo=UTC)
    assert parse_instant("2026-12-03T00:14:00+08:00") == datetime(2026, 12, 2, 16, 14, tzinfo=UTC)
    with pytest.raises(ValueError, match="offset"):
        parse_instant("2026-12-02T16:14:00")


# The machine's day (date.today(), naive datetime.now()) is not the offices' day: between 16:00 and 24:00 UTC
# on a UTC machine they differ, and a machine in another zone differs at other hours. Days come from
# server.db_types.office_day (tests: tests.clock.office_today), instants from aware UTC datetimes.
MACHINE_DAY = re.compile(r"\bdate\.today\(\)|\bdatetime\.now\(\)|\bdatetime\.utcnow\(|\bdatetime\.today\(\)")


def test_no_code_reads_the_machines_day() -> None:
    found = []
    for folder in ("server", "media", "field_client", "tests"):
        for path in sorted((REPO / folder).rglob("*.py")):
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                code = line.split("#", 1)[0]
                if MACHINE_DAY.search(code) and "``" not in code:
                    found.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert not found, "the machine's day or a naive now:\n" + "\n".join(found)
