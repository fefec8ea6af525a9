"""The verification jobs. Each job is its own transaction boundary.

A run commits its start before the (long) analysis, so a worker that dies
mid-run leaves a trace the sweeper finds; the result is committed at the end.
Running a job twice for one file just replaces the report.
"""
from __future__ import annotations

import logging
import uuid

from flask import current_app

from server.db_types import utcnow
from server.extensions import db
from server.jobs.queue import current_queue
from server.uploads.models import Media
from server.uploads.service import uploads
from server.verification import service

log = logging.getLogger(__name__)

VERIFY_MEDIA = "verify-media"
SWEEP = "verification-sweep"


def verify_media_job(media_id: str) -> None:
    from media import verify_file

    identifier = uuid.UUID(media_id)
    if service.start_run(identifier) is None:
        return
    db.session.commit()
    media = db.session.get(Media, identifier)
    assert media is not None
    located = service.object_key_of(media)
    if located is None:
        result = {"status": "failed", "reasons": [{"code": "file-missing", "severity": "error",
                                                   "message": "服务器上找不到该文件", "details": {}}]}
    else:
        with service.local_file(uploads().store, located[1]) as path:
            if path is None:
                result = {"status": "failed", "reasons": [{"code": "file-missing", "severity": "error",
                                                           "message": "服务器上找不到该文件", "details": {}}]}
            else:
                report = verify_file(path, expected_sha256=media.sha256, filename=media.file_name)
                result = report.to_dict()
    service.record_result(identifier, result)
    log.info("verified media %s: %s", media_id, result["status"])


def sweep_job() -> None:
    queue = current_queue(current_app)
    for media_id in service.media_needing_a_run(utcnow()):
        queue.enqueue(VERIFY_MEDIA, media_id=str(media_id))
