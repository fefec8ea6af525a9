"""Moving stored evidence from one media store to another: run by ``media-migrate`` (docs/uploads.md).

Every ``MediaObject`` row is copied on its own: the bytes are streamed from the
source into the target, checked against the row's SHA-256 and size on the way
(so a damaged file is never copied), read back from the target and hashed again,
and only then is the row pointed at the target, in a commit of its own. Stopping
at any moment therefore leaves each row naming a complete, checked copy; the
source files are never deleted here, so the old configuration keeps working too.
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from sqlalchemy import func, select, update

from server.extensions import db
from server.uploads.models import MediaObject, Upload, UploadStatus
from server.uploads.storage import MediaStore, StorageError, UnknownObject

# Rows read per query: enough to keep the queries few, few enough to keep memory flat on any installation.
PAGE_SIZE = 500


class CopyMismatch(Exception):
    """Bytes that do not match their row: the reason, operator-facing."""


@dataclass
class MigrationReport:
    """What a run did; ``failed`` holds (sha256, reason) for each object left where it was."""

    copied: int = 0
    copied_bytes: int = 0
    already_migrated: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)


def objects_to_migrate() -> int:
    """How many stored objects there are (the progress bar's length)."""
    return db.session.scalar(select(func.count()).select_from(MediaObject)) or 0


def partial_uploads_on(store: MediaStore) -> int:
    """Uploads still receiving bytes into ``store``: they are not moved, their bytes stay where they are."""
    return db.session.scalar(select(func.count()).select_from(Upload).where(
        Upload.status == UploadStatus.ACTIVE, Upload.storage_backend == store.backend)) or 0


def migrate_objects(source: MediaStore, target: MediaStore, *, say: Callable[[str], None],
                    advance: Callable[[int], None], recheck: bool = True,
                    page_size: int = PAGE_SIZE) -> MigrationReport:
    """Copy every stored object from ``source`` to ``target`` and point its row there; commits per object.

    ``say`` gets one line per object that could not be copied (its row is left
    as it was); ``advance`` is called once per row. Rows already pointing at an
    object of the right size in ``target`` are counted as already migrated.
    With ``recheck`` the copy is read back from ``target`` and hashed before
    its row is changed.
    """
    report = MigrationReport()
    after = ""
    try:
        while True:
            # Keyset pagination: each page starts after the last hash seen, so rows committed meanwhile do not
            # shift the pages, and only one page is ever held.
            page = db.session.execute(
                select(MediaObject.sha256, MediaObject.size, MediaObject.backend, MediaObject.key)
                .where(MediaObject.sha256 > after).order_by(MediaObject.sha256).limit(page_size)).all()
            # No transaction stays open while bytes stream (a large file takes minutes): the page is in memory.
            db.session.rollback()
            if not page:
                return report
            for sha256, size, backend, key in page:
                _migrate_one(source, target, sha256, size, backend, key, recheck, report, say)
                advance(1)
            after = page[-1].sha256
    except BaseException:
        db.session.rollback()
        raise


def _migrate_one(source: MediaStore, target: MediaStore, sha256: str, size: int, backend: str, key: str,
                 recheck: bool, report: MigrationReport, say: Callable[[str], None]) -> None:
    if backend == target.backend:
        found = target.stat(key)
        if found is not None and found.size == size:
            report.already_migrated += 1
            return
    try:
        try:
            blocks = source.read(source.object_key(sha256))
        except UnknownObject:
            raise CopyMismatch("the source file is missing") from None
        stored = target.put(_matching(blocks, sha256, size, "the source file"), sha256=sha256)
        if (stored.sha256, stored.size) != (sha256, size):
            raise CopyMismatch(f"the target stored {stored.size} bytes hashing to {stored.sha256}")
        if recheck:
            for _ in _matching(target.read(stored.key), sha256, size, "the copy read back from the target"):
                pass
    except UnknownObject:
        _fail(report, say, sha256, "the copy is missing from the target right after it was stored")
        return
    except (CopyMismatch, StorageError) as exc:
        _fail(report, say, sha256, str(exc))
        return
    db.session.execute(update(MediaObject).where(MediaObject.sha256 == sha256)
                       .values(backend=stored.backend, key=stored.key))
    # One commit per object: an interruption loses at most the object being copied, never a checked one.
    db.session.commit()
    report.copied += 1
    report.copied_bytes += size


def _fail(report: MigrationReport, say: Callable[[str], None], sha256: str, reason: str) -> None:
    report.failed.append((sha256, reason))
    say(f"failed {sha256}: {reason}")


def _matching(blocks: Iterable[bytes], sha256: str, size: int, what: str) -> Iterator[bytes]:
    """``blocks`` passed through, raising ``CopyMismatch`` before the end of the stream unless they are the
    ``size`` bytes that hash to ``sha256``.

    The error comes from inside the stream ``MediaStore.put`` reads, so the
    target abandons the object before it is published under any address.
    """
    digest = hashlib.sha256()
    seen = 0
    try:
        for block in blocks:
            seen += len(block)
            if seen > size:
                raise CopyMismatch(f"{what} holds more than the recorded {size} bytes")
            digest.update(block)
            yield block
    except StorageError as exc:
        raise CopyMismatch(f"{what} could not be read: {exc}") from exc
    if seen != size:
        raise CopyMismatch(f"{what} holds {seen} bytes, the record says {size}")
    if digest.hexdigest() != sha256:
        raise CopyMismatch(f"{what} does not hash to its SHA-256 (it hashes to {digest.hexdigest()})")
