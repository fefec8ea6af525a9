"""One writer per upload at a time, across threads and server processes.

Locking is its own small interface (as in tusd): the local file locker below
works for every process on one machine; several machines sharing an S3 store
would plug in a database- or Redis-backed locker instead.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path

from server.uploads.storage import StorageError

_LOCK_NAME = re.compile(r"^[0-9a-f]{32}$")


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
