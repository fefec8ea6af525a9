"""The running SHA-256 of each upload, kept in process memory between PATCHes.

Keyed by upload and offset: a state is only ever handed out for the exact
offset it has hashed up to, so it is right whichever process or thread wrote
the bytes (a durable prefix never changes). When this process is behind —
another server process took the previous PATCH, or this one restarted — the
caller hashes the durable bytes from the furthest state it holds (``nearest``)
and goes on from there.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any


class RunningDigests:
    def __init__(self, capacity: int = 4096) -> None:
        self._capacity = capacity
        self._states: OrderedDict[str, tuple[int, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def nearest(self, upload_id: str, offset: int) -> tuple[int, Any] | None:
        """The furthest known state at or before ``offset``: (its offset, a copy), or None."""
        with self._lock:
            entry = self._states.get(upload_id)
            if entry is None or entry[0] > offset:
                return None
            self._states.move_to_end(upload_id)
            return entry[0], entry[1].copy()

    def put(self, upload_id: str, offset: int, state: Any) -> None:
        """Remember ``state`` (taken over, not copied) as the hash of ``[0, offset)``."""
        with self._lock:
            self._states[upload_id] = (offset, state)
            self._states.move_to_end(upload_id)
            while len(self._states) > self._capacity:
                self._states.popitem(last=False)

    def drop(self, upload_id: str) -> None:
        with self._lock:
            self._states.pop(upload_id, None)

    def clear(self) -> None:
        """Forget everything (what a restart does; tests use it)."""
        with self._lock:
            self._states.clear()
