"""``flask --app server expire-uploads``: delete abandoned partial uploads."""
from __future__ import annotations

import click

from server.db_types import utcnow
from server.extensions import db
from server.uploads import service
from server.uploads.locking import UploadLocked


@click.command("expire-uploads")
def expire_uploads_command() -> None:
    """Delete partial uploads not written to for INSPECT_ONCE_UPLOAD_EXPIRY_HOURS; print each one removed."""
    now = utcnow()
    removed = 0
    try:
        for upload in service.find_expired(now):
            db.session.rollback()
            try:
                with service.holding(upload.id):
                    if not service.expire(upload.id, now):
                        continue
                    # The record first: should removing the bytes fail, the
                    # upload is already refused and the next run removes them.
                    db.session.commit()
                    service.remove_partial_bytes(upload.storage_key, upload.id)
            except UploadLocked:
                click.echo(f"skipped upload {upload.id}: a request is writing to it")
                continue
            removed += 1
            click.echo(f"expired upload {upload.id}: {upload.offset}/{upload.length} bytes, "
                       f"last written {upload.last_write:%Y-%m-%d %H:%M:%S}Z")
        for part, reason in service.leftover_partials(now):
            service.remove_partial_bytes(part.key)
            removed += 1
            click.echo(f"removed leftover partial upload {part.key} ({reason}; {part.offset}/{part.length} bytes)")
    except BaseException:
        db.session.rollback()
        raise
    db.session.commit()
    click.echo(f"{removed} partial upload(s) removed")
