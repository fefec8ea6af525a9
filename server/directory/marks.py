"""Marks other capabilities put on an enterprise in the directory's view of it (信用记录).

The directory sits low in the stack and never imports the capabilities above it; one that keeps something the
directory should show (a notification-commitment found untrue, server.decisions) installs its reader here in
its own ``init_app``.
"""
from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from typing import Any

UntrueCommitments = Callable[[Iterable[uuid.UUID]], dict[uuid.UUID, list[dict[str, Any]]]]
_readers: dict[str, UntrueCommitments] = {}


def install_untrue_commitments(reader: UntrueCommitments) -> None:
    """``reader(enterprise_ids)`` answers the commitments found untrue, by enterprise."""
    _readers["untrue_commitments"] = reader


def untrue_commitments(enterprise_id: uuid.UUID) -> list[dict[str, Any]]:
    """Commitments the enterprise was found not to keep (none when no capability reports them)."""
    reader = _readers.get("untrue_commitments")
    return [] if reader is None else reader([enterprise_id]).get(enterprise_id, [])
