"""Hybrid logical clock stamps as the server reads them (see docs/sync.md)."""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

HLC_PATTERN = re.compile(r"^(\d{13})-([0-9a-f]{4})-([A-Za-z0-9][A-Za-z0-9-]{0,63})$")


@dataclass(frozen=True, order=True)
class Stamp:
    wall_ms: int
    counter: int
    node: str

    @property
    def wall_time(self) -> datetime:
        return datetime.fromtimestamp(self.wall_ms / 1000, UTC)


def parse(value: str) -> Stamp:
    """Parse an HLC string; ValueError when it is not one."""
    match = HLC_PATTERN.match(value)
    if not match:
        raise ValueError("HLC must look like 1764120000000-0001-DEVICE")
    return Stamp(int(match.group(1)), int(match.group(2), 16), match.group(3))
