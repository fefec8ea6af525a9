"""Where evidence bytes live: a small store interface and the local-disk store.

The upload protocol (``server/uploads/service.py``) knows nothing of disks or
buckets; it talks to a ``MediaStore``:

- objects, addressed by their SHA-256: ``put`` a stream, ``read`` a range,
  ``stat``, ``delete``;
- partial uploads, named by a key the store generates (never a client's file
  name): ``create_partial``, ``partial`` (length and durable offset),
  ``append`` (a writer that makes what it wrote durable on ``commit``),
  ``read_partial`` (a range of the durable bytes), ``finish_partial`` (the complete file becomes an object),
  ``remove_partial`` (abort, or clean up after finishing) and
  ``quarantine_partial`` (keep a file that failed its hash aside, for review).

Optional capabilities are separate small interfaces, checked with
``isinstance``; the protocol advertises a tus extension only when the
configured store has what it needs (``ExpiringStore`` → ``expiration``), and
keeps running-hash states only in a ``HashStateStore``.

Every backend failure surfaces as one ``StorageError``; "no such upload" is
``UnknownPartial`` and a stale offset is ``OffsetMismatch``, which are answers,
not failures. ``server/uploads/s3store.py`` is the second store, over the S3
API: multipart parts for ``append``, ``CopyObject`` for ``finish_partial``.
"""
from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import functools
import hashlib
import json
import os
import re
import shutil
import struct
import sys
import uuid
import zlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

BLOCK_SIZE = 1 << 20
_HASH_MAGIC = b"IOH1"
_HASH_RECORD = struct.Struct(">4sQH")  # magic, offset, state size; then the state and a CRC-32

# How much of each partial upload's newest durable bytes is left in the page cache.
RECENT_BYTES_CACHED = 64 << 20

#: What every store checks names against, so nothing a client sends becomes part of a path or an S3 key.
SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
PARTIAL_KEY = re.compile(r"^[0-9a-f]{32}$")
_OBJECT_KEY = re.compile(r"^[0-9a-f]{2}/[0-9a-f]{2}/([0-9a-f]{64})$")


class StorageError(Exception):
    """The storage backend failed (disk full, permissions, I/O error, unreachable service)."""


class UnknownPartial(LookupError):
    """No partial upload with that key (never created, finished, removed or quarantined)."""


class UnknownObject(LookupError):
    """No object with that key."""


class OffsetMismatch(Exception):
    """An append was asked at an offset other than the durable one."""

    def __init__(self, durable_offset: int) -> None:
        super().__init__(f"the durable offset is {durable_offset}")
        self.durable_offset = durable_offset


@dataclass(frozen=True)
class StoredObject:
    """A complete file, content-addressed: ``backend`` and ``key`` find it again."""

    backend: str
    key: str
    sha256: str
    size: int


@dataclass(frozen=True)
class PartialState:
    """A partial upload as the store knows it: ``offset`` bytes are durable."""

    key: str
    length: int
    offset: int
    updated_at: datetime  # when the offset last became durable (creation included)


class PartialWriter(ABC):
    """Appends to one partial upload; nothing is durable before ``commit``."""

    @property
    @abstractmethod
    def durable_offset(self) -> int:
        """The offset made durable by the last commit (or the starting offset)."""

    @property
    @abstractmethod
    def offset(self) -> int:
        """The offset after everything written so far, committed or not."""

    @abstractmethod
    def write(self, block: bytes | bytearray) -> None:
        """Append ``block``; may not go past the upload's length."""

    @abstractmethod
    def commit(self, hash_state: bytes | None = None) -> int:
        """Make everything written durable and return the new durable offset.

        The writer stays usable: a long body is committed in checkpoints.
        ``hash_state`` (the running hash of every byte written) is given to a
        ``CommitsHashState`` store, which keeps it with the bytes.
        """

    @abstractmethod
    def discard(self) -> None:
        """Forget what was written since the last commit."""


class MediaStore(ABC):
    """The base interface every media store implements."""

    #: Recorded beside every object, so files stay findable when a new backend is added.
    backend: str = ""

    # -- objects -----------------------------------------------------------------------

    @abstractmethod
    def object_key(self, sha256: str) -> str:
        """The key an object with this SHA-256 has (or would have) in this store."""

    @abstractmethod
    def put(self, blocks: Iterable[bytes], sha256: str | None = None) -> StoredObject:
        """Store a stream as an object; an identical object already stored is kept as is.

        With ``sha256`` (the hash the bytes must have) nothing else is stored: bytes hashing otherwise
        raise ``ValueError``, and a store may skip the stream when that object exists already.
        """

    @abstractmethod
    def read(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """Bytes ``[start, end)`` of an object, in blocks. Raises ``UnknownObject``."""

    @abstractmethod
    def stat(self, key: str) -> StoredObject | None:
        """The object under ``key``, or None."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Delete an object; deleting a missing one is not an error."""

    @abstractmethod
    def iter_objects(self) -> Iterator[StoredObject]:
        """Every object the store holds, in key order (``media-migrate`` copies them)."""

    # -- partial uploads ---------------------------------------------------------------

    @abstractmethod
    def health(self) -> StoreHealth:
        """Whether the store can take writes now, and its free space where it has a limit."""

    @abstractmethod
    def create_partial(self, length: int, sha256: str | None = None) -> PartialState:
        """Start a partial upload of ``length`` bytes under a new, store-generated key.

        ``sha256`` is the hash its sender declared: a store may place the upload
        where a file of that content will stay (``finish_partial`` is called only
        once the received bytes have it).
        """

    @abstractmethod
    def partial(self, key: str) -> PartialState:
        """Length and durable offset. Raises ``UnknownPartial``."""

    @abstractmethod
    def append(self, key: str, offset: int) -> contextlib.AbstractContextManager[PartialWriter]:
        """A writer appending at ``offset``, which must be the durable offset.

        Raises ``OffsetMismatch`` otherwise. Leaving the context without a
        commit discards what was written since the last one.
        """

    @abstractmethod
    def read_partial(self, key: str, end: int, start: int = 0) -> Iterator[bytes]:
        """The durable bytes ``[start, end)`` of a partial upload, in blocks."""

    @abstractmethod
    def finish_partial(self, key: str, sha256: str) -> StoredObject:
        """Make a complete partial upload the object for ``sha256`` (its hash, checked by the caller).

        If that object exists already the duplicate bytes are not stored again.
        The partial upload itself stays until ``remove_partial``, so finishing
        can be repeated after a crash.
        """

    @abstractmethod
    def remove_partial(self, key: str) -> None:
        """Delete a partial upload (abort, or clean up once finished); idempotent."""

    @abstractmethod
    def quarantine_partial(self, key: str, reason: Mapping[str, Any]) -> str:
        """Move a partial upload aside, with ``reason``; returns where it went."""


class HashStateStore(ABC):
    """Capability: keep a partial upload's running-hash state beside it, for whichever process goes on.

    Only an aid: a state that is missing, stale or unreadable just means the
    caller hashes the durable bytes again.
    """

    @abstractmethod
    def save_hash_state(self, key: str, offset: int, state: bytes) -> None:
        """Keep ``state``, the hash of the durable bytes ``[0, offset)``, replacing the one kept before."""

    @abstractmethod
    def load_hash_state(self, key: str) -> tuple[int, bytes] | None:
        """The state last kept and its offset, or None when there is none that can be trusted."""


class CommitsHashState(ABC):  # noqa: B024 - a capability without methods of its own
    """Capability, or rather need: a partial upload's bytes cannot be read back before it is finished
    (the parts of an S3 multipart upload), so no other process could hash them again.

    The protocol then hands the running-hash state of every byte written to each
    ``PartialWriter.commit``, and the store keeps it no later than the bytes; its
    ``load_hash_state`` finds a state for the durable offset.
    """


@dataclass(frozen=True)
class StoreHealth:
    """What a store says of itself for ``/healthz``: whether it answers, and the room left where it knows."""

    available: bool
    problem: str | None = None  # why it is not available (operator-facing, English)
    free_bytes: int | None = None  # None: the store has no such limit it can tell (an object store)


class ExpiringStore(ABC):
    """Capability: list partial uploads with their last write, so abandoned ones can be removed."""

    @abstractmethod
    def iter_partials(self) -> Iterator[PartialState]:
        """Every partial upload the store holds."""


T = TypeVar("T")


def storage_errors(failures: tuple[type[Exception], ...],
                   describe: Callable[[Exception], str]) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """A decorator reporting a backend's ``failures`` as ``StorageError`` (``describe``d, keeping the cause)."""

    def decorator(fn: Callable[..., T]) -> Callable[..., T]:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> T:
            try:
                return fn(*args, **kwargs)
            except failures as exc:
                raise StorageError(f"{fn.__name__}: {describe(exc)}") from exc

        return wrapper

    return decorator


_storage_errors = storage_errors((OSError,), lambda exc: str(getattr(exc, "strerror", None) or exc))


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes | bytearray) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _write_durably(path: Path, data: bytes) -> None:
    """Replace ``path`` atomically: write a temporary file, fsync it, rename, fsync the directory."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        _write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _mkdirs_durably(path: Path) -> None:
    """Create ``path`` and missing parents, fsyncing each parent that gained an entry."""
    missing = []
    current = path
    while not current.exists():
        missing.append(current)
        current = current.parent
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):
            directory.mkdir(mode=0o750)
        _fsync_dir(directory.parent)


def _load_sync_file_range() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True).sync_file_range
    except (OSError, AttributeError):  # not glibc, or a libc without it
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function  # type: ignore[no-any-return]


_SYNC_FILE_RANGE = _load_sync_file_range()
_SYNC_FILE_RANGE_WRITE = 2


def _start_writeback(fd: int, offset: int, length: int) -> None:
    """Have the kernel start writing ``[offset, offset + length)`` to disk now, without waiting for it.

    The next checkpoint's fdatasync then waits for the last blocks only, not for
    all of them (PostgreSQL's ``*_flush_after`` settings do the same). It is only
    a head start: where the call is missing or fails, the fdatasync does it all.
    """
    if _SYNC_FILE_RANGE is not None:
        _SYNC_FILE_RANGE(fd, offset, length, _SYNC_FILE_RANGE_WRITE)


def _drop_cached(fd: int, start: int, end: int) -> None:
    """Let the kernel drop durable upload bytes from the page cache.

    Footage is written once and read again only by the verifier, later; kept in
    the cache it would push out what is read often (the database) and, as uploads
    of gigabytes go on, make every write take fresh memory instead of reusing
    pages just freed (on virtual machines, where fresh memory is costly, buffered
    writes were six times slower). The pages are clean after the fdatasync, so
    nothing is lost; it is only advice, so it may fail.
    """
    if end > start and hasattr(os, "posix_fadvise"):
        with contextlib.suppress(OSError):
            os.posix_fadvise(fd, start, end - start, os.POSIX_FADV_DONTNEED)


def _offset_record(offset: int) -> bytes:
    # Fixed width, so a new record overwrites the old one in place with one
    # write far smaller than a disk sector: it is either wholly old or wholly new.
    return f"{offset:020d}\n".encode()


class _LocalWriter(PartialWriter):
    def __init__(self, fd: int, offset_fd: int, directory: Path, start: int, length: int) -> None:
        self._fd = fd
        self._offset_fd = offset_fd
        self._directory = directory
        self._durable = start
        self._offset = start
        self._length = length
        self._uncached_to = max(0, start - RECENT_BYTES_CACHED)  # earlier writers dropped what lies before

    @property
    def durable_offset(self) -> int:
        return self._durable

    @property
    def offset(self) -> int:
        return self._offset

    @_storage_errors
    def write(self, block: bytes | bytearray) -> None:
        if self._offset + len(block) > self._length:
            raise ValueError("write past the upload's length")
        _write_all(self._fd, block)
        _start_writeback(self._fd, self._offset, len(block))
        self._offset += len(block)

    @_storage_errors
    def commit(self, hash_state: bytes | None = None) -> int:
        # The hash state is kept apart (``save_hash_state``): these bytes can be read back to hash them again.
        if self._offset == self._durable:
            return self._durable
        # The order is what makes a reported offset true after a crash: the
        # data first, then the record that says how much of it counts (the
        # record's directory entry has been durable since the upload was made).
        os.fdatasync(self._fd)
        record = _offset_record(self._offset)
        if os.pwrite(self._offset_fd, record, 0) != len(record):
            raise OSError("short write of the offset record")
        os.fdatasync(self._offset_fd)
        self._durable = self._offset
        # The newest bytes stay cached: a worker process that takes the next
        # PATCH without a hash state to go on from reads them back to hash them.
        keep_from = max(0, self._durable - RECENT_BYTES_CACHED)
        if keep_from > self._uncached_to:
            _drop_cached(self._fd, self._uncached_to, keep_from)
            self._uncached_to = keep_from
        return self._durable

    @_storage_errors
    def discard(self) -> None:
        if self._offset != self._durable:
            os.ftruncate(self._fd, self._durable)
            os.lseek(self._fd, self._durable, os.SEEK_SET)
            self._offset = self._durable


class LocalMediaStore(MediaStore, ExpiringStore, HashStateStore):
    """Files under one root directory::

        objects/ab/cd/<sha256>        complete files, read-only, one per content
        uploads/<key>/data            a partial upload's bytes (may run past the durable offset after a crash)
        uploads/<key>/offset          the durable offset: a fixed-width record rewritten in place
        uploads/<key>/info.json       length and creation time
        uploads/<key>/hash            the running SHA-256 state at some durable offset, with a checksum
        quarantine/<key>/…            partial uploads whose hash did not match, with reason.json
        tmp/                          work in progress (creation, put)

    Keys and paths are generated here and checked against strict patterns, so
    nothing a client sends ever becomes part of a path.
    """

    backend = "local"

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._objects = self.root / "objects"
        self._uploads = self.root / "uploads"
        self._quarantine = self.root / "quarantine"
        self._tmp = self.root / "tmp"
        self._ready = False

    @_storage_errors
    def _prepare(self) -> None:
        if not self._ready:
            for directory in (self._objects, self._uploads, self._quarantine, self._tmp):
                _mkdirs_durably(directory)
            self._ready = True

    def health(self) -> StoreHealth:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            if not os.access(self.root, os.W_OK):
                return StoreHealth(False, f"{self.root} is not writable")
            stats = os.statvfs(self.root)
        except OSError as exc:
            return StoreHealth(False, f"{self.root}: {exc.strerror}")
        return StoreHealth(True, free_bytes=stats.f_bavail * stats.f_frsize)

    # -- paths -------------------------------------------------------------------------

    def object_key(self, sha256: str) -> str:
        if not SHA256_HEX.match(sha256):
            raise ValueError("not a lowercase hex SHA-256")
        return f"{sha256[:2]}/{sha256[2:4]}/{sha256}"

    def local_path(self, key: str) -> Path:
        """The object's file on this machine (analysers read it in place)."""
        return self._object_path(key)

    def _object_path(self, key: str) -> Path:
        if not _OBJECT_KEY.match(key):
            raise UnknownObject(key)
        return self._objects / key

    def _partial_dir(self, key: str) -> Path:
        if not PARTIAL_KEY.match(key):
            raise UnknownPartial(key)
        return self._uploads / key

    # -- objects -----------------------------------------------------------------------

    @_storage_errors
    def put(self, blocks: Iterable[bytes], sha256: str | None = None) -> StoredObject:
        self._prepare()
        tmp = self._tmp / f"put-{uuid.uuid4().hex}"
        digest = hashlib.sha256()
        size = 0
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
        try:
            for block in blocks:
                _write_all(fd, block)
                digest.update(block)
                size += len(block)
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            tmp.unlink(missing_ok=True)
            raise
        os.close(fd)
        try:
            if sha256 is not None and digest.hexdigest() != sha256:
                raise ValueError(f"the bytes hash to {digest.hexdigest()}, not to {sha256}")
            return self._publish(tmp, digest.hexdigest(), size)
        finally:
            tmp.unlink(missing_ok=True)

    def _publish(self, source: Path, sha256: str, size: int) -> StoredObject:
        """Link the durable file ``source`` in as the object for ``sha256`` unless it exists."""
        key = self.object_key(sha256)
        target = self._objects / key
        if target.exists():
            existing = target.stat().st_size
            if existing != size:
                raise StorageError(f"object {key} holds {existing} bytes, expected {size}")
            return StoredObject(self.backend, key, sha256, size)
        _mkdirs_durably(target.parent)
        try:
            # A hard link is atomic and never replaces: two uploads of the same
            # content finishing at once leave one object.
            os.link(source, target)
        except FileExistsError:
            pass
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EOPNOTSUPP):
                raise
            self._copy_in(source, target)
        os.chmod(target, 0o440)
        _fsync_dir(target.parent)
        return StoredObject(self.backend, key, sha256, size)

    def _copy_in(self, source: Path, target: Path) -> None:
        """For file systems without hard links: copy, fsync, then link-or-rename into place."""
        tmp = self._tmp / f"copy-{uuid.uuid4().hex}"
        try:
            with open(source, "rb") as src, open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst, BLOCK_SIZE)
                dst.flush()
                os.fsync(dst.fileno())
            if not target.exists():
                os.replace(tmp, target)  # identical content if someone raced us
        finally:
            tmp.unlink(missing_ok=True)

    def read(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        path = self._object_path(key)
        return self._read_file(path, start, end, UnknownObject(key))

    @staticmethod
    def _read_file(path: Path, start: int, end: int | None, missing: LookupError) -> Iterator[bytes]:
        # Missing now is an answer now; the file is opened only once its blocks are asked for, so a reader
        # that never asks (the object was there already) leaves no descriptor open.
        try:
            path.stat()
        except FileNotFoundError:
            raise missing from None
        except OSError as exc:
            raise StorageError(f"read: {exc.strerror or exc}") from exc

        def blocks() -> Iterator[bytes]:
            try:
                handle = open(path, "rb")
            except FileNotFoundError:
                raise missing from None
            except OSError as exc:
                raise StorageError(f"read: {exc.strerror or exc}") from exc
            with handle:
                try:
                    handle.seek(start)
                    position = start
                    while end is None or position < end:
                        want = BLOCK_SIZE if end is None else min(BLOCK_SIZE, end - position)
                        block = handle.read(want)
                        if not block:
                            break
                        position += len(block)
                        yield block
                except OSError as exc:
                    raise StorageError(f"read: {exc.strerror or exc}") from exc

        return blocks()

    @_storage_errors
    def stat(self, key: str) -> StoredObject | None:
        try:
            path = self._object_path(key)
            size = path.stat().st_size
        except (UnknownObject, FileNotFoundError):
            return None
        match = _OBJECT_KEY.match(key)
        assert match is not None
        return StoredObject(self.backend, key, match.group(1), size)

    @_storage_errors
    def delete(self, key: str) -> None:
        path = self._object_path(key)
        try:
            path.unlink()
        except FileNotFoundError:
            return
        _fsync_dir(path.parent)

    def iter_objects(self) -> Iterator[StoredObject]:
        for first in self._sorted_names(self._objects):
            for second in self._sorted_names(self._objects / first):
                for name in self._sorted_names(self._objects / first / second):
                    found = self.stat(f"{first}/{second}/{name}")
                    if found is not None:
                        yield found

    @staticmethod
    def _sorted_names(directory: Path) -> list[str]:
        try:
            return sorted(os.listdir(directory))
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise StorageError(f"iter_objects: {exc.strerror or exc}") from exc

    # -- partial uploads ---------------------------------------------------------------

    @_storage_errors
    def create_partial(self, length: int, sha256: str | None = None) -> PartialState:
        # Linked into place when finished, so the declared hash is of no use here.
        if length < 0:
            raise ValueError("negative length")
        self._prepare()
        key = uuid.uuid4().hex
        building = self._tmp / f"partial-{key}"
        building.mkdir(mode=0o750)
        now = datetime.now(UTC)
        _write_durably(building / "info.json", json.dumps({"length": length, "created_at": now.isoformat()}).encode())
        fd = os.open(building / "data", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        _write_durably(building / "offset", _offset_record(0))
        # The upload appears whole or not at all.
        os.rename(building, self._uploads / key)
        _fsync_dir(self._uploads)
        _fsync_dir(self._tmp)
        return self.partial(key)

    def partial(self, key: str) -> PartialState:
        directory = self._partial_dir(key)
        try:
            info = json.loads((directory / "info.json").read_bytes())
            offset_path = directory / "offset"
            offset = int(offset_path.read_bytes().decode().strip())
            updated = datetime.fromtimestamp(offset_path.stat().st_mtime, UTC)
        except FileNotFoundError:
            raise UnknownPartial(key) from None
        except OSError as exc:
            raise StorageError(f"partial: {exc.strerror or exc}") from exc
        except (ValueError, KeyError, TypeError) as exc:
            raise StorageError(f"partial {key}: unreadable records ({exc})") from exc
        return PartialState(key, int(info["length"]), offset, updated)

    @contextlib.contextmanager
    def append(self, key: str, offset: int) -> Iterator[PartialWriter]:
        state = self.partial(key)
        if offset != state.offset:
            raise OffsetMismatch(state.offset)
        directory = self._partial_dir(key)
        try:
            fd = os.open(directory / "data", os.O_WRONLY)
        except FileNotFoundError:
            raise UnknownPartial(key) from None
        except OSError as exc:
            raise StorageError(f"append: {exc.strerror or exc}") from exc
        try:
            offset_fd = os.open(directory / "offset", os.O_WRONLY)
            # Bytes past the durable offset (a crash mid-write) do not count: drop them.
            os.ftruncate(fd, offset)
            os.lseek(fd, offset, os.SEEK_SET)
        except FileNotFoundError:
            os.close(fd)
            raise UnknownPartial(key) from None
        except OSError as exc:
            os.close(fd)
            raise StorageError(f"append: {exc.strerror or exc}") from exc
        writer = _LocalWriter(fd, offset_fd, directory, offset, state.length)
        try:
            yield writer
        finally:
            try:
                writer.discard()
            finally:
                os.close(fd)
                os.close(offset_fd)

    def read_partial(self, key: str, end: int, start: int = 0) -> Iterator[bytes]:
        return self._read_file(self._partial_dir(key) / "data", start, end, UnknownPartial(key))

    @_storage_errors
    def finish_partial(self, key: str, sha256: str) -> StoredObject:
        state = self.partial(key)
        if state.offset != state.length:
            raise ValueError(f"partial upload {key} is not complete ({state.offset}/{state.length})")
        self._prepare()
        return self._publish(self._partial_dir(key) / "data", sha256, state.length)

    @_storage_errors
    def remove_partial(self, key: str) -> None:
        directory = self._partial_dir(key)
        if not directory.exists():
            return
        # Rename first so a half-deleted upload is never mistaken for a live one.
        doomed = self._tmp / f"removed-{key}-{uuid.uuid4().hex[:8]}"
        try:
            os.rename(directory, doomed)
        except FileNotFoundError:
            return
        _fsync_dir(self._uploads)
        shutil.rmtree(doomed, ignore_errors=True)

    @_storage_errors
    def quarantine_partial(self, key: str, reason: Mapping[str, Any]) -> str:
        directory = self._partial_dir(key)
        if not directory.exists():
            raise UnknownPartial(key)
        self._prepare()
        target = self._quarantine / key
        os.rename(directory, target)
        _fsync_dir(self._uploads)
        _fsync_dir(self._quarantine)
        _write_durably(target / "reason.json", json.dumps(dict(reason), ensure_ascii=False, default=str).encode())
        return f"quarantine/{key}"

    # -- hash state capability ---------------------------------------------------------

    @_storage_errors
    def save_hash_state(self, key: str, offset: int, state: bytes) -> None:
        header = _HASH_RECORD.pack(_HASH_MAGIC, offset, len(state))
        record = header + state + zlib.crc32(header + state).to_bytes(4, "big")
        # Rewritten in place, not synced: after a crash it may be old or torn,
        # which the checksum and the offset check on loading turn into "none".
        fd = os.open(self._partial_dir(key) / "hash", os.O_WRONLY | os.O_CREAT, 0o640)
        try:
            if os.pwrite(fd, record, 0) != len(record):
                raise OSError("short write of the hash state")
            os.ftruncate(fd, len(record))
        finally:
            os.close(fd)

    def load_hash_state(self, key: str) -> tuple[int, bytes] | None:
        try:
            record = (self._partial_dir(key) / "hash").read_bytes()
            durable = self.partial(key).offset
        except (OSError, UnknownPartial, StorageError):
            return None
        if len(record) < _HASH_RECORD.size + 4:
            return None
        body, crc = record[:-4], int.from_bytes(record[-4:], "big")
        magic, offset, size = _HASH_RECORD.unpack_from(body)
        if magic != _HASH_MAGIC or size != len(body) - _HASH_RECORD.size or zlib.crc32(body) != crc:
            return None
        if offset > durable:  # never ahead of the bytes that count
            return None
        return offset, body[_HASH_RECORD.size:]

    # -- expiration capability ---------------------------------------------------------

    def iter_partials(self) -> Iterator[PartialState]:
        try:
            names = sorted(os.listdir(self._uploads))
        except FileNotFoundError:
            return
        except OSError as exc:
            raise StorageError(f"iter_partials: {exc.strerror or exc}") from exc
        for name in names:
            if not PARTIAL_KEY.match(name):
                continue
            try:
                yield self.partial(name)
            except UnknownPartial:
                continue
