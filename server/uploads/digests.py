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

import os
import queue
import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
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


# The threads that hash, shared by every PATCH of this process and kept between them: starting a
# thread per PATCH and joining it took a tenth of an 8 MiB PATCH's time on a busy machine (the
# starter waits until the new thread runs). A PATCH's hashing waits for a free thread only when this
# many PATCHes hash at once, and then only until one of them ends.
_HASH_THREADS = 64
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _hash_pool() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=_HASH_THREADS, thread_name_prefix="upload-hash")
        return _pool


def _forget_pool_after_fork() -> None:
    # A forked worker (gunicorn preloads the app in its master) starts with no threads of its own.
    global _pool, _pool_lock
    _pool = None
    _pool_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_pool_after_fork)


class BackgroundHash:
    """Updates a hash state on a thread of its own, in the order things are handed over.

    hashlib releases the GIL while it hashes a block, so with two cores the
    request thread receives and writes the next block while this one hashes
    the last. At most ``max_pending`` items wait: memory stays bounded when the
    network and disk outpace the hash. A failure (a catch-up that could not
    read the store) stops the hashing; ``update`` and ``result`` raise it.
    The thread is one of a pool kept by the process (``_hash_pool``).
    """

    def __init__(self, state: Any, *, max_pending: int = 4) -> None:
        self._state = state
        self._pending: queue.Queue[tuple[bytes | bytearray, Callable[[Any], None] | None]
                                   | Callable[[Any], None] | None] = queue.Queue(maxsize=max_pending)
        self._error: BaseException | None = None
        self._closed = False
        self._done = threading.Event()
        _hash_pool().submit(self._run)

    def _run(self) -> None:
        try:
            while True:
                item = self._pending.get()
                if item is None:
                    return
                if self._error is not None:
                    if isinstance(item, tuple) and item[1] is not None:
                        item[1](item[0])
                    continue
                try:
                    if isinstance(item, tuple):
                        block, release = item
                        try:
                            self._state.update(block)
                        finally:
                            if release is not None:
                                release(block)
                    else:
                        item(self._state)
                except BaseException as exc:  # noqa: BLE001 - handed to the request thread, which decides
                    self._error = exc
        finally:
            self._done.set()

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error

    def update(self, block: bytes | bytearray, release: Callable[[Any], None] | None = None) -> None:
        """Hash ``block`` after everything handed over before it; the caller no longer uses it, and
        ``release(block)`` is called once it is hashed (or skipped after a failure)."""
        self._raise_if_failed()
        self._pending.put((block, release))

    def then(self, action: Callable[[Any], None]) -> None:
        """Call ``action(state)`` on the hashing thread once everything before it is hashed
        (to hash more from elsewhere, or to keep a copy of the state as it is then)."""
        self._raise_if_failed()
        self._pending.put(action)

    def snapshot(self) -> Any:
        """A copy of the state once everything handed over so far is hashed (waits for it)."""
        copied: list[Any] = []
        ready = threading.Event()

        def take(state: Any) -> None:
            copied.append(state.copy())
            ready.set()

        self.then(take)
        while not ready.wait(0.05):
            self._raise_if_failed()
            if self._done.is_set():
                break
        self._raise_if_failed()
        if not copied:
            raise RuntimeError("the hash thread ended before the snapshot")
        return copied[0]

    def close(self) -> None:
        """Finish what was handed over and give the thread back; idempotent, never raises."""
        if not self._closed:
            self._closed = True
            self._pending.put(None)
            self._done.wait()

    def result(self) -> Any:
        """The state once everything handed over is hashed."""
        self.close()
        self._raise_if_failed()
        return self._state
