"""Times as the client writes them for the server."""
from __future__ import annotations

from datetime import datetime, timezone


def iso_local(epoch_seconds: float) -> str:
    """ISO 8601 with the tablet's UTC offset, as the server requires."""
    return datetime.fromtimestamp(epoch_seconds, timezone.utc).astimezone().isoformat(timespec="milliseconds")
