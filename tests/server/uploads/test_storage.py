"""The local media store on its own: content addressing, durable offsets, the order of fsyncs."""
from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from server.uploads import storage
from server.uploads.locking import FileUploadLocker, UploadLocked
from server.uploads.storage import LocalMediaStore, OffsetMismatch, StorageError, UnknownObject, UnknownPartial


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def store(tmp_path: Path) -> LocalMediaStore:
    return LocalMediaStore(tmp_path / "media")


def test_put_is_content_addressed_and_stored_once(store: LocalMediaStore) -> None:
    data = os.urandom(3 * storage.BLOCK_SIZE + 17)
    first = store.put(iter([data[:1000], data[1000:]]))
    again = store.put(iter([data]))
    assert first == again
    assert first.sha256 == sha(data) and first.size == len(data)
    assert first.key == f"{first.sha256[:2]}/{first.sha256[2:4]}/{first.sha256}"
    assert (store.root / "objects" / first.key).is_file()
    assert [p for p in (store.root / "objects").rglob("*") if p.is_file()] == [store.root / "objects" / first.key]
    assert not list((store.root / "tmp").iterdir())


def test_read_a_range_stat_and_delete(store: LocalMediaStore) -> None:
    data = os.urandom(2 * storage.BLOCK_SIZE + 5)
    stored = store.put(iter([data]))
    assert b"".join(store.read(stored.key)) == data
    assert b"".join(store.read(stored.key, 10, storage.BLOCK_SIZE + 20)) == data[10:storage.BLOCK_SIZE + 20]
    assert max(len(b) for b in store.read(stored.key)) <= storage.BLOCK_SIZE
    assert store.stat(stored.key) == stored
    store.delete(stored.key)
    store.delete(stored.key)  # idempotent
    assert store.stat(stored.key) is None
    with pytest.raises(UnknownObject):
        store.read(stored.key)


def test_keys_never_leave_the_store(store: LocalMediaStore) -> None:
    for key in ("../../etc/passwd", "ab/cd/../../x", "/etc/passwd", ""):
        with pytest.raises(UnknownObject):
            store.read(key)
        assert store.stat(key) is None
        with pytest.raises(UnknownPartial):
            store.partial(key)


def test_a_partial_upload_becomes_durable_only_on_commit(store: LocalMediaStore) -> None:
    data = os.urandom(1000)
    part = store.create_partial(len(data))
    assert len(part.key) == 32 and part.offset == 0 and part.length == 1000
    with store.append(part.key, 0) as writer:
        writer.write(data[:300])
        assert store.partial(part.key).offset == 0
        assert writer.commit() == 300
        writer.write(data[300:400])
        writer.discard()
        assert writer.offset == writer.durable_offset == 300
        writer.write(data[300:500])
        # leaving without a commit drops what was not committed
    assert store.partial(part.key).offset == 300
    with pytest.raises(OffsetMismatch) as mismatch:
        with store.append(part.key, 200):
            pass
    assert mismatch.value.durable_offset == 300
    with store.append(part.key, 300) as writer:
        writer.write(data[300:])
        with pytest.raises(ValueError):
            writer.write(b"x")  # never past the length
        writer.commit()
    assert b"".join(store.read_partial(part.key, 1000)) == data


def test_bytes_past_the_durable_offset_do_not_count(store: LocalMediaStore) -> None:
    """A crash between writing data and recording the offset leaves a tail; the next append drops it."""
    data = os.urandom(600)
    part = store.create_partial(600)
    with store.append(part.key, 0) as writer:
        writer.write(data[:200])
        writer.commit()
    with open(store.root / "uploads" / part.key / "data", "ab") as handle:
        handle.write(b"garbage that was never recorded")
    assert store.partial(part.key).offset == 200
    with store.append(part.key, 200) as writer:
        writer.write(data[200:])
        writer.commit()
    stored = store.finish_partial(part.key, sha(data))
    assert b"".join(store.read(stored.key)) == data


def test_commit_syncs_the_data_before_the_offset_record(store: LocalMediaStore,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    part = store.create_partial(10)
    events: list[tuple[str, str]] = []
    real_sync, real_pwrite = os.fdatasync, os.pwrite

    def fdatasync(fd: int) -> None:
        events.append(("sync", os.readlink(f"/proc/self/fd/{fd}")))
        real_sync(fd)

    def pwrite(fd: int, data: bytes, position: int) -> int:
        events.append(("write", os.readlink(f"/proc/self/fd/{fd}")))
        return real_pwrite(fd, data, position)

    monkeypatch.setattr(storage.os, "fdatasync", fdatasync)
    monkeypatch.setattr(storage.os, "pwrite", pwrite)
    directory = str(store.root / "uploads" / part.key)
    with store.append(part.key, 0) as writer:
        writer.write(b"0123456789")
        writer.commit()
    assert events == [("sync", f"{directory}/data"), ("write", f"{directory}/offset"), ("sync", f"{directory}/offset")]
    assert store.partial(part.key).offset == 10
    # The record is rewritten in place, always the same size.
    assert (store.root / "uploads" / part.key / "offset").read_bytes() == b"00000000000000000010\n"


def test_durable_bytes_leave_the_page_cache_except_the_newest(store: LocalMediaStore,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Only clean (fdatasynced) pages are let go, never the newest window another worker may hash next."""
    monkeypatch.setattr(storage, "RECENT_BYTES_CACHED", 100)
    part = store.create_partial(1000)
    events: list[tuple[Any, ...]] = []
    real_sync = os.fdatasync

    def fdatasync(fd: int) -> None:
        events.append(("sync", os.path.basename(os.readlink(f"/proc/self/fd/{fd}"))))
        real_sync(fd)

    def posix_fadvise(fd: int, offset: int, length: int, advice: int) -> None:
        assert advice == os.POSIX_FADV_DONTNEED
        events.append(("drop", os.path.basename(os.readlink(f"/proc/self/fd/{fd}")), offset, length))

    monkeypatch.setattr(storage.os, "fdatasync", fdatasync)
    monkeypatch.setattr(storage.os, "posix_fadvise", posix_fadvise)
    with store.append(part.key, 0) as writer:
        writer.write(b"a" * 80)
        writer.commit()  # 80 durable, all within the newest 100
        writer.write(b"b" * 220)
        writer.commit()  # 300 durable: [0, 200) may go
        writer.write(b"c" * 50)  # not durable: nothing more may go
    assert events == [("sync", "data"), ("sync", "offset"),
                      ("sync", "data"), ("sync", "offset"), ("drop", "data", 0, 200)]
    events.clear()
    with store.append(part.key, 300) as writer:  # the next PATCH, perhaps in another process
        writer.write(b"d" * 150)
        writer.commit()
    assert events == [("sync", "data"), ("sync", "offset"), ("drop", "data", 200, 150)]
    assert b"".join(store.read_partial(part.key, 450, start=290)) == b"b" * 10 + b"d" * 150


def test_writeback_of_each_block_starts_before_the_commit(store: LocalMediaStore,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[tuple[int, int, int]] = []
    monkeypatch.setattr(storage, "_SYNC_FILE_RANGE",
                        lambda fd, offset, length, flags: started.append((offset, length, flags)) or 0)
    part = store.create_partial(100)
    with store.append(part.key, 0) as writer:
        writer.write(b"a" * 30)
        writer.write(b"b" * 20)
        writer.commit()
    assert started == [(0, 30, 2), (30, 20, 2)]  # SYNC_FILE_RANGE_WRITE: start, do not wait
    # Without the call (not Linux) the commit alone makes the bytes durable.
    monkeypatch.setattr(storage, "_SYNC_FILE_RANGE", None)
    with store.append(part.key, 50) as writer:
        writer.write(b"c" * 50)
        writer.commit()
    assert store.partial(part.key).offset == 100
    assert b"".join(store.read_partial(part.key, 100)) == b"a" * 30 + b"b" * 20 + b"c" * 50


def test_the_real_sync_file_range_is_found_on_linux() -> None:
    if sys.platform.startswith("linux"):
        assert storage._SYNC_FILE_RANGE is not None


def test_a_hash_state_is_kept_only_as_far_as_the_bytes_are_durable(store: LocalMediaStore) -> None:
    part = store.create_partial(100)
    assert store.load_hash_state(part.key) is None
    with store.append(part.key, 0) as writer:
        writer.write(b"x" * 40)
        writer.commit()
    store.save_hash_state(part.key, 40, b"state at forty")
    assert store.load_hash_state(part.key) == (40, b"state at forty")
    store.save_hash_state(part.key, 30, b"older")  # replaces, whatever was there (shorter too)
    assert store.load_hash_state(part.key) == (30, b"older")
    store.save_hash_state(part.key, 60, b"ahead of the durable bytes")  # e.g. the offset record was lost
    assert store.load_hash_state(part.key) is None
    record = store.root / "uploads" / part.key / "hash"
    store.save_hash_state(part.key, 40, b"state at forty")
    torn = bytearray(record.read_bytes())
    torn[-6] ^= 1
    record.write_bytes(bytes(torn))
    assert store.load_hash_state(part.key) is None
    record.write_bytes(b"IOH1")  # cut short
    assert store.load_hash_state(part.key) is None
    store.remove_partial(part.key)
    assert store.load_hash_state(part.key) is None
    with pytest.raises(StorageError):
        store.save_hash_state(part.key, 40, b"gone")


def test_finishing_twice_or_identical_content_keeps_one_object(store: LocalMediaStore) -> None:
    data = os.urandom(5000)
    parts = [store.create_partial(len(data)) for _ in range(2)]
    for part in parts:
        with store.append(part.key, 0) as writer:
            writer.write(data)
            writer.commit()
    first = store.finish_partial(parts[0].key, sha(data))
    assert store.finish_partial(parts[0].key, sha(data)) == first  # repeatable after a crash
    assert store.finish_partial(parts[1].key, sha(data)) == first
    for part in parts:
        store.remove_partial(part.key)
        store.remove_partial(part.key)
        with pytest.raises(UnknownPartial):
            store.partial(part.key)
    assert b"".join(store.read(first.key)) == data
    assert list(store.iter_partials()) == []


def test_quarantine_keeps_the_bytes_aside_with_the_reason(store: LocalMediaStore) -> None:
    part = store.create_partial(4)
    with store.append(part.key, 0) as writer:
        writer.write(b"abcd")
        writer.commit()
    where = store.quarantine_partial(part.key, {"declared_sha256": "0" * 64})
    assert where == f"quarantine/{part.key}"
    assert (store.root / where / "data").read_bytes() == b"abcd"
    assert '"declared_sha256"' in (store.root / where / "reason.json").read_text()
    with pytest.raises(UnknownPartial):
        store.partial(part.key)
    assert not list((store.root / "objects").rglob("*"))


def test_backend_failures_are_one_storage_error(tmp_path: Path) -> None:
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("")
    broken = LocalMediaStore(blocked / "media")
    with pytest.raises(StorageError) as failure:
        broken.create_partial(10)
    assert isinstance(failure.value.__cause__, OSError)
    with pytest.raises(StorageError):
        broken.put(iter([b"x"]))


def test_the_file_lock_excludes_threads_of_one_process_too(tmp_path: Path) -> None:
    locker = FileUploadLocker(tmp_path / "locks")
    name = "a" * 32
    with locker.hold(name):
        with pytest.raises(UploadLocked):
            locker.acquire(name)
    lock = locker.acquire(name)
    lock.release()
    lock.release()
    locker.forget(name)
    with pytest.raises(ValueError):
        locker.acquire("../../etc/passwd")
