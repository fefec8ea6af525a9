"""The running SHA-256 of each upload, kept in process memory between PATCHes.

Keyed by upload and offset: a state is only ever handed out for the exact
offset it has hashed up to, so it is right whichever process or thread wrote
the bytes (a durable prefix never changes). When this process is behind —
another server process took the previous PATCH, or this one restarted — the
caller goes on from the state the store keeps, if that is further, and hashes
the durable bytes it still lacks.

``BackgroundHash`` feeds one PATCH's bytes to a hash state on a thread of its
own, so hashing runs beside receiving and writing rather than between them.
"""
from __future__ import annotations

import queue
import threading
from collections import OrderedDict
from collections.abc import Callable
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


class BackgroundHash:
    """Updates a hash state on a thread of its own, in the order things are handed over.

    hashlib releases the GIL while it hashes a block, so with two cores the
    request thread receives and writes the next block while this one hashes
    the last. At most ``max_pending`` items wait: memory stays bounded when the
    network and disk outpace the hash. A failure (a catch-up that could not
    read the store) stops the hashing; ``update`` and ``result`` raise it.
    """

    def __init__(self, state: Any, *, max_pending: int = 4) -> None:
        self._state = state
        self._pending: queue.Queue[Callable[[Any], None] | bytes | None] = queue.Queue(maxsize=max_pending)
        self._error: BaseException | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="upload-hash", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._pending.get()
            if item is None:
                return
            if self._error is not None:
                continue
            try:
                if isinstance(item, bytes):
                    self._state.update(item)
                else:
                    item(self._state)
            except BaseException as exc:  # noqa: BLE001 - handed to the request thread, which decides
                self._error = exc

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error

    def update(self, block: bytes) -> None:
        """Hash ``block`` after everything handed over before it."""
        self._raise_if_failed()
        self._pending.put(block)

    def then(self, action: Callable[[Any], None]) -> None:
        """Call ``action(state)`` on the hashing thread once everything before it is hashed
        (to hash more from elsewhere, or to keep a copy of the state as it is then)."""
        self._raise_if_failed()
        self._pending.put(action)

    def close(self) -> None:
        """Finish what was handed over and stop the thread; idempotent, never raises."""
        if not self._closed:
            self._closed = True
            self._pending.put(None)
            self._thread.join()

    def result(self) -> Any:
        """The state once everything handed over is hashed."""
        self.close()
        self._raise_if_failed()
        return self._state
