"""Reading a device's clock ledger: plain functions on plain readings, no database, no HTTP.

A reading is the device's clock against the server's receive time at one sync or upload. Between two
readings a device clock that runs true keeps its offset (device − server) within a few seconds; an offset
that *drops* by more than a tolerance means the clock was set back in between (by hand, a dead battery, a
bad time source), and a device time inside the stretch it went through twice is ambiguous.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

#: Offsets within this of each other are one clock (drift, network delay, a queued request).
JUMP_TOLERANCE = timedelta(seconds=60)

#: How an offset is written in Chinese (flag messages); the review page passes its own translated units.
CHINESE_UNITS: Mapping[str, str] = {"d": "{n} 天", "h": "{n} 小时", "min": "{n} 分", "s": "{n} 秒"}


@dataclass(frozen=True)
class Reading:
    """The device's clock (``device_clock``) at the server's receive time (``server_time``)."""

    device_clock: datetime
    server_time: datetime

    @property
    def offset(self) -> timedelta:
        """Device clock − server time: positive when the device is ahead."""
        return self.device_clock - self.server_time


@dataclass(frozen=True)
class Jump:
    """Between two consecutive readings the device's clock was set back by about ``by``."""

    earlier: Reading
    later: Reading
    by: timedelta

    def covers(self, moment: datetime, tolerance: timedelta = JUMP_TOLERANCE) -> bool:
        """Whether a device time ``moment`` may have been read on either side of the jump.

        The clock went from ``earlier.device_clock`` up to some time T, back to T − by, and on to
        ``later.device_clock``; T is at most ``later.device_clock + by``. The device times shown in between
        lie within [earlier − by, later + by].
        """
        return (self.earlier.device_clock - self.by - tolerance <= moment
                <= self.later.device_clock + self.by + tolerance)


def around(readings: Sequence[Reading], moment: datetime) -> tuple[Reading | None, Reading | None]:
    """The readings nearest ``moment`` (a time on the device's own clock) before and after it, by that clock.

    Ties go to the reading the server received last (before) and first (after).
    """
    before = max((r for r in readings if r.device_clock <= moment),
                 key=lambda r: (r.device_clock, r.server_time), default=None)
    after = min((r for r in readings if r.device_clock >= moment),
                key=lambda r: (r.device_clock, r.server_time), default=None)
    return before, after


def jumps_back(readings: Sequence[Reading], tolerance: timedelta = JUMP_TOLERANCE) -> list[Jump]:
    """Every place, in the server's order, where the device's offset dropped by more than ``tolerance``."""
    ordered = sorted(readings, key=lambda r: r.server_time)
    found = []
    for earlier, later in zip(ordered, ordered[1:], strict=False):
        drop = earlier.offset - later.offset
        if drop > tolerance:
            found.append(Jump(earlier, later, drop))
    return found


def jump_around(readings: Sequence[Reading], moment: datetime, arrived_at: datetime,
                tolerance: timedelta = JUMP_TOLERANCE) -> Jump | None:
    """The largest jump back that may have happened before a capture the server received at ``arrived_at``
    and whose stretch of device times covers the capture time ``moment``; None when there is none (a jump
    after the capture reached the server cannot have touched it)."""
    return max((j for j in jumps_back(readings, tolerance)
                if j.earlier.server_time < arrived_at - tolerance and j.covers(moment, tolerance)),
               key=lambda j: j.by, default=None)


def clock_behind(readings: Sequence[Reading], moment: datetime, arrived_at: datetime,
                 tolerance: timedelta = JUMP_TOLERANCE) -> Reading | None:
    """The first reading once the capture reached the server (the sync that brought it, or the next), when its
    device clock is earlier than the capture time ``moment``: the capture lies in the device's future (its
    clock was set back in between, or the time is not the clock's). None otherwise."""
    first = min((r for r in readings if r.server_time >= arrived_at - tolerance), key=lambda r: r.server_time,
                default=None)
    return first if first is not None and first.device_clock < moment - tolerance else None


def describe_offset(offset: timedelta, units: Mapping[str, str] = CHINESE_UNITS) -> str:
    """``+2 分 10 秒``, ``-1 天``, ``+0 秒``: a sign and the two largest units (a trailing zero unit left out)."""
    seconds = round(offset.total_seconds())
    sign = "-" if seconds < 0 else "+"
    seconds = abs(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [("d", days), ("h", hours), ("min", minutes), ("s", secs)]
    first = next((i for i, (_, n) in enumerate(parts) if n), len(parts) - 1)
    shown = [p for p in parts[first:first + 2] if p is parts[first] or p[1]]
    return sign + " ".join(units[unit].format(n=n) for unit, n in shown)
