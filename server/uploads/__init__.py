"""Evidence uploads: tus protocol over a media store, and the media records (docs/uploads.md)."""
from __future__ import annotations

from datetime import timedelta

from flask import Flask, Response

from server.uploads.storage import StorageError

EXPIRE_JOB = "expire-uploads"


def init_app(app: Flask) -> None:
    """Build the media store, the upload locker and the digest cache; register the operator command."""
    import logging

    from server.audit.service import register_object_model
    from server.errors import problem_response
    from server.uploads.cli import expire_uploads_command
    from server.uploads.digests import RunningDigests
    from server.uploads.locking import FileUploadLocker
    from server.uploads.models import Media, Upload
    from server.uploads.service import EXTENSION, Uploads
    from server.uploads.storage import LocalMediaStore

    register_object_model("media", Media)
    register_object_model("upload", Upload)
    settings = app.config["SETTINGS"]
    app.extensions[EXTENSION] = Uploads(
        store=LocalMediaStore(settings.media_root),
        locker=FileUploadLocker(settings.media_root / "locks"),
        digests=RunningDigests(),
        max_upload_bytes=settings.max_upload_bytes,
        expiry=timedelta(hours=settings.upload_expiry_hours),
        checkpoint_bytes=int(app.config["UPLOAD_CHECKPOINT_BYTES"]),
        checkpoint_seconds=float(app.config["UPLOAD_CHECKPOINT_SECONDS"]),
    )
    log = logging.getLogger("server.uploads")

    def storage_unavailable(error: StorageError) -> Response:
        log.error("media store failed: %s", error, exc_info=error)
        return problem_response(503, "media-store-unavailable", "证据存储暂时不可用",
                                "证据存储暂时不可用；已确认的偏移量仍然有效，请稍后重试", headers={"Retry-After": "30"})

    app.register_error_handler(StorageError, storage_unavailable)
    app.cli.add_command(expire_uploads_command)

    from server.jobs.queue import current_queue
    from server.uploads.expiry import expire_job

    queue = current_queue(app)
    queue.register(EXPIRE_JOB, expire_job, retries=0, retry_delay=0)
    queue.periodic(EXPIRE_JOB, every_minutes=60)
