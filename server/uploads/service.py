"""Resumable evidence uploads (tus 1.0.0) and the media records they leave (docs/uploads.md).

Each operation follows the same order: load the upload and check who asks
(404 for another department's, 403 for someone else's in the department),
take the upload's lock where bytes or state change (423 when busy), re-read
its state under the lock, then work.

While a body streams in, no database connection is held: a bodycam segment
may take minutes, and a transaction open that long would hold a connection
(PostgreSQL) or the WAL (SQLite) for nothing. The read transaction of the
checks is ended first; the writes of a finished upload start a new one, which
the request commits once.

Durability: the store fsyncs the data, then the offset record, then its
directory (``storage.py``); an offset is reported only after that. A long body
without its own checksum is made durable in checkpoints as it arrives, so a
server killed mid-PATCH loses at most the last few seconds. The running
SHA-256 of each upload is kept in memory keyed by upload and offset
(``digests.py``) and, where the hash can leave the process (``sha256.py``), in
the store, so that a restarted server or another worker goes on from it. A
process with neither hashes the durable bytes it has not seen, once.
"""
from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

import marshmallow as ma
from flask import current_app
from sqlalchemy import or_, select

from server import events, transaction
from server.audit import service as audit
from server.auth.policy import Permission, Principal, can
from server.db_types import new_uuid, utcnow
from server.directory.models import Device, DeviceKind
from server.errors import Problem, flatten_messages
from server.extensions import db
from server.loading import load_authorized
from server.sync.service import synced_media
from server.tasks.service import is_task_member, member_task_ids
from server.uploads import deletion, tus
from server.uploads import sha256 as portable_sha256
from server.uploads.digests import BackgroundHash, RunningDigests
from server.uploads.locking import UploadLocked, UploadLocker
from server.uploads.models import Media, MediaObject, Upload, UploadStatus, VerificationStatus
from server.uploads.schemas import UploadMetadata
from server.uploads.storage import (
    CommitsHashState,
    ExpiringStore,
    HashStateStore,
    MediaStore,
    OffsetMismatch,
    PartialState,
    PartialWriter,
    StorageError,
    StoredObject,
    UnknownPartial,
)

log = logging.getLogger(__name__)

# A catch-up on more than this (after a restart, say) is worth a line in the log.
RE_HASH_LOGGED_BYTES = 256 << 20

EXTENSION = "inspect_once.uploads"


@dataclass
class Uploads:
    """What the upload protocol works with, built once per app (``server.uploads.init_app``)."""

    store: MediaStore
    locker: UploadLocker
    digests: RunningDigests
    max_upload_bytes: int
    expiry: timedelta
    checkpoint_bytes: int
    checkpoint_seconds: float

    @property
    def extensions(self) -> list[str]:
        """The tus extensions to advertise: only what the configured store supports."""
        names = list(tus.BASE_EXTENSIONS)
        if isinstance(self.store, ExpiringStore):
            names.append("expiration")
        return names


def uploads() -> Uploads:
    return current_app.extensions[EXTENSION]  # type: ignore[no-any-return]


class BodyTruncated(Exception):
    """The client sent fewer bytes than it announced, or went away."""


class BodyTooLarge(Exception):
    """The body holds more bytes than the upload has room for."""


class Body(Protocol):
    """A request body read in blocks; ``content_length`` is None for a chunked one."""

    @property
    def content_length(self) -> int | None: ...

    def blocks(self, limit: int) -> Iterator[bytes | bytearray]:
        """The body in blocks; raises BodyTooLarge past ``limit`` bytes, BodyTruncated when cut short."""
        ...

    def release(self, block: bytes | bytearray) -> None:
        """``block`` (one of those handed out) is no longer used: the body may fill it again."""
        ...


@dataclass(frozen=True)
class UploadView:
    """What a tus answer tells about an upload."""

    id: uuid.UUID
    length: int
    offset: int
    metadata_header: str
    expires_at: datetime | None


@dataclass(frozen=True)
class _Snapshot:
    """A plain copy of an upload's row, usable while no database connection is held."""

    id: uuid.UUID
    status: UploadStatus
    length: int
    sha256: str
    storage_key: str
    metadata_header: str
    created_at: datetime

    @property
    def key(self) -> str:
        return self.id.hex


def _snapshot(row: Upload) -> _Snapshot:
    return _Snapshot(row.id, row.status, row.length, row.sha256, row.storage_key, row.metadata_header, row.created_at)


# ---- refusals -------------------------------------------------------------------------

def _not_found() -> Problem:
    return Problem(404, "not-found", "上传不存在")


def _gone(status: UploadStatus) -> Problem:
    reasons = {UploadStatus.TERMINATED: "已被终止", UploadStatus.EXPIRED: "长时间未续传，已过期清理",
               UploadStatus.QUARANTINED: "因文件哈希不符已作废"}
    reason = reasons.get(status, "已不存在")
    return Problem(410, "upload-gone", f"该上传{reason}，请重新创建上传", title="上传已失效")


def _offset_mismatch(sent: int, current: int) -> Problem:
    return Problem(409, "offset-mismatch", f"Upload-Offset 为 {sent}，但服务器已保存到第 {current} 字节，请从该处续传",
                   title="偏移量不一致", headers={"Upload-Offset": str(current)}, extra={"offset": current})


def _locked() -> Problem:
    return Problem(423, "upload-locked", "该上传正由另一个请求写入，请稍后重试", title="上传正被占用",
                   headers={"Retry-After": "1"})


def _invalid(field: str, message: str, slug: str = "validation-failed") -> Problem:
    return Problem(422, slug, message, errors={field: [message]})


# ---- the lock and the database connection around streaming -------------------------------

def _hold(upload: uuid.UUID) -> None:
    """Take the upload's lock for the rest of the request (released after the commit)."""
    try:
        lock = uploads().locker.acquire(upload.hex)
    except UploadLocked:
        raise _locked() from None
    transaction.at_request_end(lock.release)


def _release_connection() -> None:
    # Only reads happened so far: ending the read transaction hands the
    # connection back to the pool before bytes start streaming in.
    db.session.rollback()


def _reload(upload_id: uuid.UUID) -> Upload:
    """The row as committed now (a new transaction sees what finished while we waited)."""
    db.session.rollback()
    row = db.session.get(Upload, upload_id, populate_existing=True)
    if row is None:
        raise _not_found()
    return row


def _owns(principal: Principal, upload: Upload) -> bool:
    if principal.kind == "device":
        return upload.uploaded_by_device_id == principal.id
    return principal.user_id is not None and upload.uploaded_by_user_id == principal.user_id


def _load(principal: Principal, upload_id: uuid.UUID) -> Upload:
    upload = load_authorized(principal, Upload, upload_id, Permission.UPLOAD_MEDIA, not_found="上传不存在")
    if not _owns(principal, upload):
        raise Problem(403, "forbidden", "只有发起该上传的设备或人员可以继续或终止它")
    return upload


def _view(ctx: Uploads, up: _Snapshot, offset: int, last_write: datetime | None) -> UploadView:
    expires = None
    if isinstance(ctx.store, ExpiringStore) and offset < up.length:
        expires = max(up.created_at, last_write or up.created_at) + ctx.expiry
    return UploadView(up.id, up.length, offset, up.metadata_header, expires)


# ---- creation ---------------------------------------------------------------------------

@dataclass(frozen=True)
class _Target:
    """What a new upload will become once complete, resolved from its metadata and the caller."""

    media_id: uuid.UUID | None
    department_id: uuid.UUID
    task_id: uuid.UUID | None
    device_id: str | None
    file_name: str | None
    content_type: str | None
    capture_start: datetime | None


def _validated_metadata(raw: str | None) -> dict[str, Any]:
    pairs = tus.parse_metadata(raw)
    try:
        return UploadMetadata().load(pairs)  # type: ignore[no-any-return]
    except ma.ValidationError as exc:
        errors = {f"Upload-Metadata.{k}": v for k, v in flatten_messages(exc.messages).items()}
        raise Problem(422, "validation-failed", "Upload-Metadata 中以下项有误：" + "，".join(sorted(errors)),
                      errors=errors) from None


def _recording_device(principal: Principal, named: str | None) -> str | None:
    """The device that recorded the file: the caller's own, or (for a dock) one of its department."""
    if principal.kind == "device":
        if named is None or named == principal.id:
            return principal.id
        caller = db.session.get(Device, principal.id)
        if caller is None or caller.kind != DeviceKind.DOCK:
            raise Problem(403, "forbidden", "设备只能上传自己录制的文件（扩展坞除外）")
    elif named is None:
        return None
    device = db.session.get(Device, named)
    if device is None:
        raise _invalid("Upload-Metadata.device_id", f"设备 {named} 未登记", "unknown-device")
    if device.department_id != principal.department_id:
        raise Problem(403, "forbidden", "只能上传本部门设备录制的文件")
    return device.id


def _resolve_target(principal: Principal, metadata: Mapping[str, Any], length: int) -> _Target:
    device_id = _recording_device(principal, metadata["device_id"])
    media_id: uuid.UUID | None = metadata["media_id"]
    if media_id is None:
        if principal.kind != "device":
            raise _invalid("Upload-Metadata.media_id", "平板上传须给出所属证据记录的 media_id（先同步证据记录）")
        return _Target(None, principal.department_id, None, device_id, metadata["filename"], metadata["filetype"],
                       metadata["capture_start"])
    record = synced_media(media_id)
    if record is None:
        raise _invalid("Upload-Metadata.media_id", "没有这条证据记录（请先同步证据记录再上传文件）", "unknown-media")
    if principal.kind == "device":
        if record.department_id != principal.department_id:
            raise Problem(403, "forbidden", "不能为其他部门的证据记录上传文件")
    elif principal.user_id is None or not is_task_member(record.task_id, principal.user_id):
        raise Problem(403, "forbidden", "您不是该证据所属检查任务的检查组成员")
    fields = record.fields
    if fields.get("sha256") != metadata["sha256"]:
        raise _invalid("Upload-Metadata.sha256", "与证据记录中的 SHA-256 不一致", "media-mismatch")
    if fields.get("size") != length:
        raise _invalid("Upload-Length", f"与证据记录中的大小（{fields.get('size')} 字节）不一致", "media-mismatch")
    capture_start = metadata["capture_start"]
    if capture_start is None and fields.get("capture_start"):
        capture_start = datetime.fromisoformat(fields["capture_start"])
    return _Target(record.id, record.department_id, record.task_id, device_id,
                   metadata["filename"] or fields.get("file_name"), metadata["filetype"] or fields.get("content_type"),
                   capture_start)


def create_upload(principal: Principal, length: int, metadata_header: str | None, body: Body | None,
                  checksum: tus.Checksum | None) -> UploadView:
    """tus creation (and creation-with-upload when ``body`` is given)."""
    ctx = uploads()
    if length > ctx.max_upload_bytes:
        raise Problem(413, "upload-too-large", f"文件大小 {length} 字节超过上限 {ctx.max_upload_bytes} 字节",
                      title="文件过大", headers={"Tus-Max-Size": str(ctx.max_upload_bytes)})
    metadata = _validated_metadata(metadata_header)
    target = _resolve_target(principal, metadata, length)
    upload_id = uuid.uuid4()
    _release_connection()

    part = ctx.store.create_partial(length, sha256=metadata["sha256"])
    _hold(upload_id)
    now = utcnow()
    up = _Snapshot(upload_id, UploadStatus.ACTIVE, length, metadata["sha256"], part.key, metadata_header or "", now)
    offset, running, last_write = 0, portable_sha256.new(), part.updated_at
    if body is not None:
        try:
            offset, running = _receive(ctx, up, 0, body, checksum)
        except BaseException as exc:
            # The client never learns this upload's address: nothing of it is kept.
            ctx.store.remove_partial(part.key)
            ctx.digests.drop(up.key)
            if isinstance(exc, Problem) and exc.slug == "body-truncated":
                raise Problem(400, "body-truncated", "请求体不完整（连接中断或少于 Content-Length）；上传未创建",
                              title="请求体不完整") from None
            raise
        last_write = utcnow()

    row = Upload(id=upload_id, status=UploadStatus.ACTIVE, length=length, sha256=metadata["sha256"],
                 storage_backend=ctx.store.backend, storage_key=part.key, department_id=principal.department_id,
                 uploaded_by_user_id=principal.user_id,
                 uploaded_by_device_id=principal.id if principal.kind == "device" else None,
                 media_id=target.media_id, media_department_id=target.department_id, task_id=target.task_id,
                 device_id=target.device_id, file_name=target.file_name, content_type=target.content_type,
                 capture_start=target.capture_start, metadata_header=metadata_header or "", created_at=now)
    db.session.add(row)
    db.session.flush()
    if offset == length:
        _finalize(ctx, up, running)
    return _view(ctx, up, offset, last_write)


# ---- offset (HEAD) ----------------------------------------------------------------------

def upload_state(principal: Principal, upload_id: uuid.UUID) -> UploadView:
    """tus HEAD: the durable offset. An offset equal to the length always means "stored"."""
    ctx = uploads()
    up = _snapshot(_load(principal, upload_id))
    if up.status == UploadStatus.COMPLETED:
        return _view(ctx, up, up.length, None)
    if up.status != UploadStatus.ACTIVE:
        raise _gone(up.status)
    _release_connection()
    part = _partial(ctx, up)
    if part.offset < up.length:
        return _view(ctx, up, part.offset, part.updated_at)
    # Every byte is durable but the upload was never finished: the server
    # stopped between the last write and the commit. Finish it now.
    _hold(upload_id)
    up = _snapshot(_reload(upload_id))
    if up.status == UploadStatus.COMPLETED:
        return _view(ctx, up, up.length, None)
    if up.status != UploadStatus.ACTIVE:
        raise _gone(up.status)
    _finalize(ctx, up, _running_digest(ctx, up, up.length))
    return _view(ctx, up, up.length, None)


def _partial(ctx: Uploads, up: _Snapshot) -> PartialState:
    try:
        return ctx.store.partial(up.storage_key)
    except UnknownPartial:
        # The row says active but the bytes are gone (a crash between removing
        # them and the commit): the client has to start again.
        raise _gone(UploadStatus.EXPIRED) from None


# ---- appending (PATCH) ------------------------------------------------------------------

def append(principal: Principal, upload_id: uuid.UUID, offset: int, body: Body,
           checksum: tus.Checksum | None) -> UploadView:
    """tus PATCH: append the body at ``offset``; the last byte stores the file (or quarantines it)."""
    ctx = uploads()
    _load(principal, upload_id)
    _hold(upload_id)
    up = _snapshot(_reload(upload_id))
    if up.status == UploadStatus.COMPLETED:
        if offset != up.length:
            raise _offset_mismatch(offset, up.length)
        if body.content_length:
            raise Problem(413, "upload-length-exceeded", "上传已完成，不能再追加数据",
                          headers={"Upload-Offset": str(up.length)})
        return _view(ctx, up, up.length, None)
    if up.status != UploadStatus.ACTIVE:
        raise _gone(up.status)
    _release_connection()

    part = _partial(ctx, up)
    if offset != part.offset:
        raise _offset_mismatch(offset, part.offset)
    new_offset, running = _receive(ctx, up, offset, body, checksum)
    if new_offset == up.length:
        _finalize(ctx, up, running)
        return _view(ctx, up, new_offset, None)
    return _view(ctx, up, new_offset, utcnow())


def _running_digest(ctx: Uploads, up: _Snapshot, offset: int) -> Any:
    """The SHA-256 of the durable bytes ``[0, offset)`` (see ``_hash_stored``)."""
    start, digest = _furthest_hash(ctx, up, offset)
    _hash_stored(ctx, up, digest, start, offset)
    _keep(ctx, up, offset)(digest)
    return digest


def _furthest_hash(ctx: Uploads, up: _Snapshot, offset: int) -> tuple[int, Any]:
    """The furthest hash state at or before ``offset`` that this process can go on from: its own,
    the one the store keeps (saved by whichever process took an earlier PATCH), or a fresh one."""
    best = ctx.digests.nearest(up.key, offset)
    if isinstance(ctx.store, HashStateStore) and (best is None or best[0] < offset):
        kept = ctx.store.load_hash_state(up.storage_key)
        if kept is not None and kept[0] <= offset and (best is None or kept[0] > best[0]):
            restored = portable_sha256.from_saved_state(kept[1])
            if restored is not None:
                best = (kept[0], restored)
    return best or (0, portable_sha256.new())


def _hash_from(ctx: Uploads, up: _Snapshot, offset: int) -> BackgroundHash:
    """A hash of the durable bytes ``[0, offset)``, ready for more, brought up to date on its own thread."""
    start, digest = _furthest_hash(ctx, up, offset)
    hasher = BackgroundHash(digest)
    if start < offset:
        hasher.then(lambda state: _hash_stored(ctx, up, state, start, offset))
        hasher.then(_keep(ctx, up, offset))
    return hasher


def _hash_stored(ctx: Uploads, up: _Snapshot, digest: Any, start: int, end: int) -> None:
    """Hash the durable bytes ``[start, end)`` into ``digest``.

    ``start`` is as far as a hash state this process could take up goes (0 if
    none). Where hash states cannot be saved (a libcrypto without the functions,
    a store without the capability), clients that open a connection per PATCH
    make a worker catch up on the bytes another one received; the store keeps an
    upload's newest bytes cached for that. After a restart, the same.
    """
    hashed = start
    for block in ctx.store.read_partial(up.storage_key, end, start=start):
        digest.update(block)
        hashed += len(block)
    if hashed != end:
        raise StorageError(f"partial upload {up.storage_key} holds {hashed} durable bytes, its record says {end}")
    if end - start > RE_HASH_LOGGED_BYTES:
        log.info("hashed %d durable bytes of upload %s received elsewhere", end - start, up.id)


def _keep(ctx: Uploads, up: _Snapshot, offset: int) -> Callable[[Any], None]:
    """Remember the hash state as it is once the hash reaches ``offset``, a durable offset: in this
    process, and in the store for any other (the next PATCH may reach another worker)."""

    def keep(state: Any) -> None:
        ctx.digests.put(up.key, offset, state.copy())
        saved = portable_sha256.saved_state(state)
        if saved is not None and isinstance(ctx.store, HashStateStore):
            try:
                ctx.store.save_hash_state(up.storage_key, offset, saved)
            except (StorageError, UnknownPartial) as exc:  # an aid only: the next worker hashes again
                log.warning("could not keep the hash state of upload %s: %s", up.id, exc)

    return keep


def _receive(ctx: Uploads, up: _Snapshot, offset: int, body: Body,
             checksum: tus.Checksum | None) -> tuple[int, Any]:
    """Append ``body`` at ``offset``; returns the new durable offset and the hash of ``[0, new offset)``."""
    remaining = up.length - offset
    if body.content_length is not None and body.content_length > remaining:
        raise Problem(413, "upload-length-exceeded",
                      f"本次数据 {body.content_length} 字节超过该上传剩余的 {remaining} 字节，未保存任何内容",
                      title="数据超出上传长度", headers={"Upload-Offset": str(offset)})
    hasher = _hash_from(ctx, up, offset)
    try:
        with ctx.store.append(up.storage_key, offset) as writer:
            return _stream(ctx, up, writer, body, checksum, hasher, remaining)
    except OffsetMismatch as exc:
        raise _offset_mismatch(offset, exc.durable_offset) from None
    except UnknownPartial:
        raise _gone(UploadStatus.EXPIRED) from None
    finally:
        hasher.close()


def _stream(ctx: Uploads, up: _Snapshot, writer: PartialWriter, body: Body, checksum: tus.Checksum | None,
            hasher: BackgroundHash, remaining: int) -> tuple[int, Any]:
    # The hash state is remembered at durable offsets only (``_keep``): bytes
    # that are discarded are hashed too, but that state is never kept.
    this_patch = checksum.new() if checksum is not None else None
    # A PATCH with its own checksum is all or nothing, so it cannot be made
    # durable piecemeal; nor can a chunked one, which might turn out too long.
    checkpoints = this_patch is None and body.content_length is not None
    pending, since = 0, time.monotonic()
    try:
        for block in body.blocks(remaining):
            writer.write(block)
            if this_patch is not None:
                this_patch.update(block)
            size = len(block)
            # Last: once hashed, the block may go back to the body's pool and be filled again.
            hasher.update(block, body.release)
            if checkpoints:
                pending += size
                if pending >= ctx.checkpoint_bytes or time.monotonic() - since >= ctx.checkpoint_seconds:
                    _checkpoint(ctx, up, writer, hasher)
                    pending, since = 0, time.monotonic()
    except BodyTooLarge:
        writer.discard()
        raise Problem(413, "upload-length-exceeded", f"数据超过该上传剩余的 {remaining} 字节，本次数据未保存",
                      title="数据超出上传长度", headers={"Upload-Offset": str(writer.durable_offset)}) from None
    except BodyTruncated:
        if this_patch is not None:
            writer.discard()  # cannot be checked, so cannot be kept
        else:
            _checkpoint(ctx, up, writer, hasher)
        kept = writer.durable_offset
        raise Problem(400, "body-truncated",
                      f"请求体不完整（连接中断或少于 Content-Length）；已保存到第 {kept} 字节，请从该处续传",
                      title="请求体不完整", headers={"Upload-Offset": str(kept)}, extra={"offset": kept}) from None
    if this_patch is not None and checksum is not None and this_patch.digest() != checksum.digest:
        writer.discard()
        raise Problem(tus.CHECKSUM_MISMATCH, "checksum-mismatch",
                      f"本次数据与 Upload-Checksum（{checksum.algorithm}）不符，已丢弃，"
                      f"请从第 {writer.durable_offset} 字节重传",
                      title="校验和不符", headers={"Upload-Offset": str(writer.durable_offset)})
    durable = _checkpoint(ctx, up, writer, hasher)
    return durable, hasher.result()


def _checkpoint(ctx: Uploads, up: _Snapshot, writer: PartialWriter, hasher: BackgroundHash) -> int:
    """Make what was written durable and keep the hash state at the new durable offset.

    A store whose partial bytes cannot be read back (``CommitsHashState``) takes
    the state with the commit, so the hash must first catch up with the writes;
    any other keeps it afterwards, from the hashing thread.
    """
    if isinstance(ctx.store, CommitsHashState):
        state = hasher.snapshot()
        saved = portable_sha256.saved_state(state)
        if saved is None:
            raise StorageError("this libcrypto cannot save SHA-256 states, which an object store needs")
        durable = writer.commit(hash_state=saved)
        ctx.digests.put(up.key, durable, state)
        return durable
    durable = writer.commit()
    hasher.then(_keep(ctx, up, durable))
    return durable





# ---- the end of an upload ---------------------------------------------------------------

def _finalize(ctx: Uploads, up: _Snapshot, running: Any) -> None:
    """Every byte is durable: store the file if its SHA-256 is the declared one, else quarantine it."""
    digest = running.hexdigest()
    row = db.session.get(Upload, up.id)
    assert row is not None
    now = utcnow()
    ctx.digests.drop(up.key)
    if digest != up.sha256:
        where = ctx.store.quarantine_partial(up.storage_key, {
            "upload_id": str(up.id), "declared_sha256": up.sha256, "received_sha256": digest, "length": up.length,
            "quarantined_at": now.isoformat()})
        row.status = UploadStatus.QUARANTINED
        row.ended_at = now
        row.quarantined_as = where
        db.session.flush()
        transaction.keep_writes_despite_error()  # the answer is 460, the quarantine is a fact
        transaction.after_commit(lambda: ctx.locker.forget(up.key))
        log.warning("upload %s quarantined: declared sha256 %s, received %s", up.id, up.sha256, digest)
        raise Problem(tus.CHECKSUM_MISMATCH, "hash-mismatch",
                      f"整个文件的 SHA-256 为 {digest}，与声明的 {up.sha256} 不符；文件已隔离，本次上传作废",
                      title="文件哈希不符", extra={"declared_sha256": up.sha256, "received_sha256": digest})
    stored = ctx.store.finish_partial(up.storage_key, digest)
    media = _record_media(row, stored, now)
    row.status = UploadStatus.COMPLETED
    row.ended_at = now
    row.media_id = media.id
    db.session.flush()
    key = up.storage_key

    def clean_up() -> None:
        # Only now is the object the copy the database knows of.
        ctx.store.remove_partial(key)
        ctx.locker.forget(up.key)

    transaction.after_commit(clean_up)


def _record_media(row: Upload, stored: StoredObject, now: datetime) -> Media:
    """The stored object (once per content) and the media record referring to it."""
    known = db.session.get(MediaObject, stored.sha256)
    if known is None:
        db.session.add(MediaObject(sha256=stored.sha256, size=stored.size, backend=stored.backend, key=stored.key,
                                   stored_at=now))
        db.session.flush()
    elif (known.backend, known.key) != (stored.backend, stored.key):
        # A store that keeps each upload where it was assembled (S3) kept this content a second time:
        # the record keeps the first copy, and the second goes once that is committed.
        store, duplicate = uploads().store, stored.key
        transaction.after_commit(lambda: store.delete(duplicate))
    media: Media | None = None
    if row.media_id is not None:
        media = db.session.get(Media, row.media_id)
    elif row.device_id is not None:
        # The same device sending the same bytes again (a dock that never heard
        # the last answer) is the same recording, not a second piece of evidence.
        media = db.session.scalar(select(Media).where(
            Media.device_id == row.device_id, Media.sha256 == stored.sha256,
            Media.department_id == row.media_department_id).limit(1))
    if media is not None:
        return media
    media = Media(id=row.media_id or new_uuid(), sha256=stored.sha256, size=stored.size,
                  department_id=row.media_department_id, task_id=row.task_id, device_id=row.device_id,
                  content_type=row.content_type, file_name=row.file_name, capture_start=row.capture_start,
                  uploaded_at=now, uploaded_by_user_id=row.uploaded_by_user_id,
                  uploaded_by_device_id=row.uploaded_by_device_id, upload_id=row.id)
    db.session.add(media)
    db.session.flush()
    on_media_stored(media)
    return media


def on_media_stored(media: Media) -> None:
    """A file was stored and its media record made: its verification is pending, and those who verify
    hear of it (``Event.MEDIA_STORED``) once this transaction commits, so they find the committed row."""
    media.verification_status = VerificationStatus.PENDING
    media.verification_reasons = []
    db.session.flush()
    events.emit(events.Event.MEDIA_STORED, media_id=media.id)


# ---- termination (DELETE) ---------------------------------------------------------------

def terminate(principal: Principal, upload_id: uuid.UUID) -> None:
    """tus termination: the partial bytes are deleted once the request commits."""
    ctx = uploads()
    _load(principal, upload_id)
    _hold(upload_id)
    row = _reload(upload_id)
    if row.status == UploadStatus.COMPLETED:
        raise Problem(409, "upload-complete", "上传已完成；已保存的证据文件不能通过终止上传删除", title="上传已完成")
    if row.status != UploadStatus.ACTIVE:
        raise _gone(row.status)
    # The bytes of a case under a legal hold stay, even at their sender's request (the refusal is audited).
    refused = deletion.upload_refusal(row, "api", principal)
    if refused is not None:
        raise Problem(409, refused.slug, refused.detail, title="上传不得终止")
    row.status = UploadStatus.TERMINATED
    row.ended_at = utcnow()
    db.session.flush()
    key, lock_name = row.storage_key, row.id.hex
    ctx.digests.drop(lock_name)

    def clean_up() -> None:
        ctx.store.remove_partial(key)
        ctx.locker.forget(lock_name)

    transaction.after_commit(clean_up)


# ---- expiry (operator command) ----------------------------------------------------------

@dataclass(frozen=True)
class ExpiredUpload:
    id: uuid.UUID
    storage_key: str
    offset: int
    length: int
    last_write: datetime


def find_expired(now: datetime) -> list[ExpiredUpload]:
    """Active uploads whose last durable write is older than the expiry."""
    ctx = uploads()
    rows = db.session.scalars(select(Upload).where(Upload.status == UploadStatus.ACTIVE,
                                                   Upload.created_at <= now - ctx.expiry).order_by(Upload.created_at))
    found = []
    for row in rows:
        try:
            part: PartialState | None = ctx.store.partial(row.storage_key)
        except UnknownPartial:
            part = None
        last = max(row.created_at, part.updated_at) if part else row.created_at
        if last + ctx.expiry <= now:
            found.append(ExpiredUpload(row.id, row.storage_key, part.offset if part else 0, row.length, last))
    return found


def holding(upload_id: uuid.UUID) -> Any:
    """The upload's lock as a context manager (raises ``UploadLocked``), for operator commands."""
    return uploads().locker.hold(upload_id.hex)


def expire(upload_id: uuid.UUID, now: datetime) -> bool:
    """Mark an abandoned upload expired (caller holds its lock, commits, then removes its bytes)."""
    row = _reload(upload_id)
    if row.status != UploadStatus.ACTIVE:
        return False
    row.status = UploadStatus.EXPIRED
    row.ended_at = now
    db.session.flush()
    return True


def remove_partial_bytes(storage_key: str, upload_id: uuid.UUID | None = None) -> None:
    ctx = uploads()
    ctx.store.remove_partial(storage_key)
    if upload_id is not None:
        ctx.digests.drop(upload_id.hex)
        ctx.locker.forget(upload_id.hex)


def leftover_partials(now: datetime) -> list[tuple[PartialState, str]]:
    """Partial bytes no active upload owns: of ended uploads (a crash before their clean-up), or of
    creations that never committed (once older than the expiry). With the reason, for the operator."""
    ctx = uploads()
    if not isinstance(ctx.store, ExpiringStore):
        return []
    parts = list(ctx.store.iter_partials())
    if not parts:
        return []
    # Rows as tuples: dict() of a Result itself would take it for a mapping (it has keys()).
    statuses: dict[str, UploadStatus] = dict(db.session.execute(
        select(Upload.storage_key, Upload.status).where(Upload.storage_key.in_([p.key for p in parts]))).all())
    leftovers = []
    for part in parts:
        status = statuses.get(part.key)
        if status == UploadStatus.ACTIVE:
            continue
        if status is not None:
            leftovers.append((part, f"upload {status.value}"))
        elif part.updated_at + ctx.expiry <= now:
            leftovers.append((part, "no upload record"))
    return leftovers


# ---- media look-ups ---------------------------------------------------------------------

# Media belong to a department; an inspector also sees the media of the tasks they are on, as sync
# shows them their teammates' records of those tasks (docs/sync.md).

def find_media(principal: Principal, sha256: str) -> list[Media]:
    """Media with this SHA-256 that the caller may see (a dock checks before deleting its copy)."""
    if not can(principal, Permission.READ_MEDIA):
        raise Problem(403, "forbidden", "您的角色无权执行此操作")
    query = select(Media).where(Media.sha256 == sha256.lower())
    if not principal.is_admin:
        visible = Media.department_id == principal.department_id
        if principal.user_id is not None:
            visible = or_(visible, Media.task_id.in_(member_task_ids(principal.user_id)))
        query = query.where(visible)
    return list(db.session.scalars(query.order_by(Media.uploaded_at, Media.id).limit(200)))


def get_media(principal: Principal, media_id: uuid.UUID, *, audit_action: str = "media.view") -> Media:
    """The media record, if the caller may see it; a refusal is recorded in the audit log as ``audit_action``."""
    def on_team(media: Media) -> bool:  # evidence of a task whose team the caller is on, of any department
        return principal.user_id is not None and media.task_id is not None and can(principal, Permission.READ_MEDIA) \
            and is_task_member(media.task_id, principal.user_id)

    def refused(media: Media) -> None:
        audit.record(audit_action, object_type="media", object_id=str(media.id), outcome="denied", actor=principal)

    return load_authorized(principal, Media, media_id, Permission.READ_MEDIA, not_found="证据文件不存在",
                           also_allowed=on_team, on_refused=refused)
