"""The suite's clock: no test reads the wall clock.

Every test runs at a fixed instant (``tests/conftest.py`` travels it there with time-machine, which moves
``datetime.now``, ``date.today`` and ``time.time`` of this process; ``time.monotonic`` still measures real
time, so timeouts keep working). The instant flows on from there (tick) unless a test freezes it.

``TEST_NOW=2026-12-02T16:14:00Z`` runs the whole session at another instant instead: the way to
check that nothing depends on the hour (``tests/test_clock.py`` keeps the clock itself honest).

A day in this project is a day in the offices' zone (``server.db_types.OFFICE_TIMEZONE``, UTC+8): office
midnight is 16:00 UTC, while the machine's ``date.today()`` turns at its own midnight. Tests that place
things "today" or "an hour ago" must be right on both sides of office midnight; ``AROUND_OFFICE_MIDNIGHT``
lists the instants they run at (``@pytest.mark.around_office_midnight``).

A process the test starts reads the real clock; ``subprocess_command`` starts a Python module at the test's
instant instead (``python -m tests.clock INSTANT -m MODULE ARGS``).
"""
from __future__ import annotations

import os
import runpy
import sys
from datetime import UTC, date, datetime

import time_machine

from server.db_types import office_day

UTC = UTC

#: 12:00 in the offices and 04:00 UTC: the same calendar day in the offices, in UTC and on a machine west of
#: UTC down to -04:00, and hours from any midnight, so that a test that runs for minutes stays on one day.
DEFAULT_NOW = datetime(2026, 3, 10, 4, 0, tzinfo=UTC)

#: Instants on both sides of the offices' midnight (16:00 UTC), and of the month's and the year's turn there.
AROUND_OFFICE_MIDNIGHT = {
    "office-23h59m59": datetime(2026, 3, 10, 15, 59, 59, tzinfo=UTC),
    "office-00h00m01": datetime(2026, 3, 10, 16, 0, 1, tzinfo=UTC),
    "office-00h14": datetime(2026, 12, 2, 16, 14, tzinfo=UTC),  # the hour CI once failed in
    "office-new-year-00h30": datetime(2026, 12, 31, 16, 30, tzinfo=UTC),  # 2027-01-01 there, 2026-12-31 in UTC
}

ENV = "TEST_NOW"  # not INSPECT_ONCE_: the server refuses unknown settings of its own prefix


def parse_instant(text: str) -> datetime:
    """An ISO 8601 instant with its offset (``Z`` allowed)."""
    moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError(f"{ENV} needs an offset (e.g. 2026-12-02T16:14:00Z), got {text!r}")
    return moment.astimezone(UTC)


def session_now() -> datetime:
    """The instant the session's tests start at: ``TEST_NOW`` or ``DEFAULT_NOW``."""
    text = os.environ.get(ENV)
    return parse_instant(text) if text else DEFAULT_NOW


def office_today() -> date:
    """Today in the offices, by the test's clock: the day the server's rules use (not ``date.today()``, which is
    the machine's day and another one from 16:00 to 24:00 UTC on a UTC machine)."""
    return office_day(datetime.now(UTC))


def subprocess_command(python: str, module: str, *args: str) -> list[str]:
    """``python -m MODULE ARGS`` that starts at this process's current (travelled) instant and ticks on."""
    return [python, "-m", "tests.clock", datetime.now(UTC).isoformat(), "-m", module, *args]


def main(argv: list[str]) -> None:
    """``python -m tests.clock INSTANT -m MODULE ARGS...``: run MODULE as ``__main__`` from INSTANT on."""
    if len(argv) < 3 or argv[1] != "-m":
        raise SystemExit("usage: python -m tests.clock INSTANT -m MODULE [ARGS...]")
    instant, module = parse_instant(argv[0]), argv[2]
    # Not a context: the travel lasts as long as the process, forked workers (gunicorn's) included.
    time_machine.travel(instant, tick=True).start()
    sys.argv = [module, *argv[3:]]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main(sys.argv[1:])
