"""The tablet's hybrid logical clock (docs/sync.md).

A stamp reads ``"<wall ms, 13 digits>-<counter, 4 hex digits>-<device id>"``.
Strings of that shape sort like the stamps they name, which is how the server
picks the winner of a concurrent edit. The clock never runs backwards: each
local change takes ``wall = max(now, last.wall)`` and bumps the counter when
the wall did not advance, and stamps seen on pull are folded into ``last`` so
a tablet whose clock is behind still orders its edits after what it has seen.

The functions here are pure; the engine persists ``last`` in the same SQLite
transaction as the change it stamps, so the clock survives restarts and a
crash can never hand out a stamp twice.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass

HLC_PATTERN = re.compile(r"^(\d{13})-([0-9a-f]{4})-([A-Za-z0-9][A-Za-z0-9-]{0,63})$")
NODE_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,63}$")
MAX_COUNTER = 0xFFFF
MAX_WALL_MS = 10**13 - 1


@dataclass(frozen=True, order=True)
class Stamp:
    """One HLC stamp; ordering is (wall, counter, node), the same as the string's."""

    wall_ms: int
    counter: int
    node: str

    def __str__(self) -> str:
        return f"{self.wall_ms:013d}-{self.counter:04x}-{self.node}"


def parse(value: str) -> Stamp:
    """Parse an HLC string; ``ValueError`` when it is not one."""
    match = HLC_PATTERN.match(value)
    if not match:
        raise ValueError(f"not an HLC stamp: {value!r}")
    return Stamp(int(match.group(1)), int(match.group(2), 16), match.group(3))


def valid_node(node: str) -> bool:
    """Whether ``node`` can be the device part of a stamp."""
    return bool(NODE_PATTERN.match(node))


def now_ms() -> int:
    return int(time.time() * 1000)


def _carry(wall: int, counter: int) -> tuple[int, int]:
    # The counter has four hex digits; past that, borrow a millisecond.
    if counter > MAX_COUNTER:
        wall, counter = wall + 1, 0
    if wall > MAX_WALL_MS:
        raise ValueError("HLC wall time out of range")
    return wall, counter


def tick(last: Stamp | None, now: int, node: str) -> Stamp:
    """The stamp for a new local change; strictly greater (in wall, counter) than ``last``."""
    if not valid_node(node):
        raise ValueError(f"device id {node!r} cannot be an HLC node")
    if last is None or now > last.wall_ms:
        wall, counter = now, 0
    else:
        wall, counter = _carry(last.wall_ms, last.counter + 1)
    return Stamp(wall, counter, node)


def fold(last: Stamp | None, seen: Stamp, node: str) -> Stamp:
    """``last`` after seeing ``seen``: the next tick orders after both.

    Kept as our own node: ``last`` only remembers how far the clock has got.
    """
    if last is None or (seen.wall_ms, seen.counter) > (last.wall_ms, last.counter):
        return Stamp(seen.wall_ms, seen.counter, node)
    return Stamp(last.wall_ms, last.counter, node)
