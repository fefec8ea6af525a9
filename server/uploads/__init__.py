"""Evidence uploads: tus protocol over a media store, and the media records (docs/uploads.md)."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import Flask, Response

from server.uploads.locking import UploadLocker
from server.uploads.storage import MediaStore, StorageError

EXPIRE_JOB = "expire-uploads"


def build_store(settings: Any) -> tuple[MediaStore, UploadLocker]:
    """The configured media store and the upload locker that goes with it.

    Local disk (``MEDIA_ROOT``) is one machine's: its locks are files there. An
    object store (``MEDIA_STORE_URL``) may be shared by app servers on several
    machines: their locks are in Redis when ``REDIS_URL`` is set (docs/deploy.md),
    else, for one machine, files under the var folder.
    """
    from server.uploads.locking import FileUploadLocker, RedisUploadLocker
    from server.uploads.storage import LocalMediaStore

    if not settings.media_store_url:
        return LocalMediaStore(settings.media_root), FileUploadLocker(settings.media_root / "locks")
    from server.config import ConfigError
    from server.uploads import sha256
    from server.uploads.s3store import S3MediaStore

    if not sha256.portable():
        # The parts of an unfinished multipart upload cannot be read back to hash them again.
        raise ConfigError("MEDIA_STORE_URL needs libcrypto's SHA256_Init/Update/Final (OpenSSL 1.1 or 3) to keep "
                          "the running hash of an upload where every app server finds it")
    scratch = settings.var_dir / "scratch"
    scratch.mkdir(parents=True, exist_ok=True)
    store = S3MediaStore.from_url(settings.media_store_url, {
        "AWS_ENDPOINT_URL": settings.s3_endpoint_url or "", "AWS_REGION": settings.s3_region or ""},
        scratch=str(scratch))
    locker: UploadLocker = (RedisUploadLocker(settings.redis_url) if settings.redis_url
                            else FileUploadLocker(settings.var_dir / "upload-locks"))
    return store, locker


def init_app(app: Flask) -> None:
    """Build the media store, the upload locker and the digest cache; register the operator command."""
    import logging

    from server.audit.service import register_object_model
    from server.errors import problem_response
    from server.uploads.cli import expire_uploads_command, media_migrate_command
    from server.uploads.digests import RunningDigests
    from server.uploads.models import Media, Upload
    from server.uploads.service import EXTENSION, Uploads

    register_object_model("media", Media)
    register_object_model("upload", Upload)
    settings = app.config["SETTINGS"]
    store, locker = build_store(settings)
    app.extensions[EXTENSION] = Uploads(
        store=store,
        locker=locker,
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
    app.cli.add_command(media_migrate_command)

    from server.jobs.queue import current_queue
    from server.uploads.expiry import expire_job

    queue = current_queue(app)
    queue.register(EXPIRE_JOB, expire_job, retries=0, retry_delay=0)
    queue.periodic(EXPIRE_JOB, every_minutes=60)
