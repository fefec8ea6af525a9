"""The device's clock, told to the server with every request: the ``Device-Clock`` header.

The server keeps a ledger of each device's clock against its own at every sync and upload (docs/verification.md,
"Clock ledger") and reads the times this device stamps on its captures against it. The value is this machine's
clock as the request leaves, ISO 8601 in UTC to the millisecond (``2026-03-10T04:00:00.123Z``): read afresh for
each attempt, never corrected, because the server wants to see the clock exactly as it dated the captures.
"""
from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime

HEADER = "Device-Clock"


def device_clock(epoch_seconds: float | None = None) -> str:
    """This machine's clock now (or at ``epoch_seconds``) as the header's value."""
    moment = datetime.fromtimestamp(time.time() if epoch_seconds is None else epoch_seconds, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def with_device_clock(headers: Mapping[str, str] | None = None) -> dict[str, str]:
    """``headers`` with the device's clock added (a copy)."""
    return {**(headers or {}), HEADER: device_clock()}
