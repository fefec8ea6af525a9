"""Removing abandoned partial uploads: run by ``expire-uploads`` and hourly by the worker."""
from __future__ import annotations

from collections.abc import Callable

from server.auth.policy import SYSTEM
from server.db_types import utcnow
from server.extensions import db
from server.uploads import deletion, service
from server.uploads.locking import UploadLocked
from server.uploads.models import Upload


def expire_abandoned(say: Callable[[str], None]) -> int:
    """Expire uploads not written to for the configured time and remove leftover bytes; returns how many.

    Commits as it goes: each upload's refusal is recorded before its bytes are
    removed, so a failure half-way leaves nothing that the next run cannot finish.
    """
    now = utcnow()
    removed = 0
    try:
        for upload in service.find_expired(now):
            db.session.rollback()
            # An upload for a case under a legal hold keeps its bytes: the refusal is audited and committed.
            refused = deletion.upload_refusal(db.session.get(Upload, upload.id), "upload-expiry", SYSTEM)
            if refused is not None:
                db.session.commit()
                say(f"kept upload {upload.id}: {refused.slug}")
                continue
            try:
                with service.holding(upload.id):
                    if not service.expire(upload.id, now):
                        continue
                    db.session.commit()
                    service.remove_partial_bytes(upload.storage_key, upload.id)
            except UploadLocked:
                say(f"skipped upload {upload.id}: a request is writing to it")
                continue
            removed += 1
            say(f"expired upload {upload.id}: {upload.offset}/{upload.length} bytes, "
                f"last written {upload.last_write:%Y-%m-%d %H:%M:%S}Z")
        for part, reason in service.leftover_partials(now):
            service.remove_partial_bytes(part.key)
            removed += 1
            say(f"removed leftover partial upload {part.key} ({reason}; {part.offset}/{part.length} bytes)")
    except BaseException:
        db.session.rollback()
        raise
    db.session.commit()
    return removed


def expire_job() -> None:
    """The worker's hourly run; what it removes goes to the log."""
    import logging

    log = logging.getLogger(__name__)
    count = expire_abandoned(log.info)
    if count:
        log.info("%d partial upload(s) removed", count)
