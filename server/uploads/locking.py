"""One writer per upload at a time, across threads and server processes.

Locking is its own small interface (as in tusd): the local file locker below
works for every process on one machine; app servers on several machines,
sharing an object store, use the Redis locker.
"""
from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from server.uploads.storage import StorageError

_LOCK_NAME = re.compile(r"^[0-9a-f]{32}$")
log = logging.getLogger(__name__)


class UploadLocked(Exception):
    """Someone else holds this upload (a PATCH in progress): answer 423, never wait."""


class UploadLock(ABC):
    @abstractmethod
    def release(self) -> None:
        """Release the lock; releasing twice is harmless."""


class UploadLocker(ABC):
    @abstractmethod
    def acquire(self, upload_id: str) -> UploadLock:
        """Take the upload's lock without waiting, or raise ``UploadLocked``."""

    @abstractmethod
    def forget(self, upload_id: str) -> None:
        """Drop whatever the lock of an upload that is over left behind."""

    @contextlib.contextmanager
    def hold(self, upload_id: str) -> Iterator[None]:
        lock = self.acquire(upload_id)
        try:
            yield
        finally:
            lock.release()


class _FileLock(UploadLock):
    def __init__(self, fd: int) -> None:
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            try:
                fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)


class FileUploadLocker(UploadLocker):
    """``flock`` on ``<directory>/<upload_id>.lock``.

    Each acquisition opens the file anew, so two threads of one process
    exclude each other as two processes do; the kernel drops the lock of a
    process that dies, so a killed server never leaves an upload locked.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def _path(self, upload_id: str) -> Path:
        if not _LOCK_NAME.match(upload_id):
            raise ValueError("upload ids are 32 lowercase hex digits")
        return self.directory / f"{upload_id}.lock"

    def acquire(self, upload_id: str) -> UploadLock:
        path = self._path(upload_id)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise StorageError(f"lock: {exc.strerror or exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise UploadLocked(upload_id) from None
        except OSError as exc:
            os.close(fd)
            raise StorageError(f"lock: {exc.strerror or exc}") from exc
        return _FileLock(fd)

    def forget(self, upload_id: str) -> None:
        # Only for uploads that are over: whoever still opens this file finds
        # the upload finished once it re-reads its state under the lock.
        with contextlib.suppress(OSError):
            self._path(upload_id).unlink()


#: A lock of a server that died (SIGKILL, power) frees itself after this long; a live holder renews it.
REDIS_LOCK_SECONDS = 15.0


class _RedisLock(UploadLock):
    def __init__(self, lock: Any) -> None:
        self._lock = lock
        self._stop = threading.Event()
        self._renewer = threading.Thread(target=self._renew, name="upload-lock-renewer", daemon=True)
        self._renewer.start()

    def _renew(self) -> None:
        from redis.exceptions import LockError, RedisError

        while not self._stop.wait(REDIS_LOCK_SECONDS / 3):
            try:
                self._lock.reacquire()
            except (LockError, RedisError) as exc:
                # Lost (Redis restarted, or the lock ran out while this process stalled): the
                # store's own offset check still refuses a second writer at the same offset.
                log.warning("could not renew the upload lock %s: %s", self._lock.name, exc)
                return

    def release(self) -> None:
        from redis.exceptions import LockError, RedisError

        if self._stop.is_set():
            return
        self._stop.set()
        self._renewer.join()
        try:
            self._lock.release()
        except LockError:
            pass  # it had run out; whoever took it since keeps it
        except RedisError as exc:
            log.warning("could not release the upload lock %s: %s", self._lock.name, exc)


class RedisUploadLocker(UploadLocker):
    """A lock in Redis per upload, for app servers on several machines.

    Taken with ``SET NX PX`` and released only by its holder (redis-py's ``Lock``
    with a random token); it runs out ``REDIS_LOCK_SECONDS`` after its holder
    stops renewing it, so a killed server leaves an upload locked only that long.
    """

    def __init__(self, url: str, namespace: str = "inspect-once:upload-lock:") -> None:
        self.url = url
        self.namespace = namespace
        self._client: Any = None
        self._pid = 0
        self._guard = threading.Lock()

    def _redis(self) -> Any:
        import redis

        with self._guard:
            if self._client is None or self._pid != os.getpid():
                self._client = redis.Redis.from_url(self.url, socket_timeout=5, socket_connect_timeout=5)
                self._pid = os.getpid()
            return self._client

    def acquire(self, upload_id: str) -> UploadLock:
        from redis.exceptions import RedisError

        if not _LOCK_NAME.match(upload_id):
            raise ValueError("upload ids are 32 lowercase hex digits")
        lock = self._redis().lock(self.namespace + upload_id, timeout=REDIS_LOCK_SECONDS, blocking=False,
                                  thread_local=False)
        try:
            taken = lock.acquire(blocking=False)
        except RedisError as exc:
            raise StorageError(f"lock: {exc}") from exc
        if not taken:
            raise UploadLocked(upload_id)
        return _RedisLock(lock)

    def forget(self, upload_id: str) -> None:
        pass  # a released lock leaves nothing behind in Redis
