"""The verification jobs. Each job is its own transaction boundary.

A run commits its start before the (long) analysis, so a worker that dies
mid-run leaves a trace the sweeper finds; the result is committed at the end.
Running a job twice for one file just replaces the report.
"""
from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta

from flask import current_app

from server.db_types import utcnow
from server.extensions import db
from server.jobs.queue import current_queue, enqueue_after_commit
from server.uploads.models import Media
from server.uploads.service import uploads
from server.verification import inspections, service

log = logging.getLogger(__name__)

VERIFY_MEDIA = "verify-media"
ASSESS_INSPECTION = "assess-inspection"
ASSESS_INSPECTIONS = "assess-inspections"
REASSESS_HOLDER = "reassess-certificate-holder"
SWEEP = "verification-sweep"


def _lease() -> timedelta:
    return timedelta(seconds=current_app.config["SETTINGS"].verification_lease_seconds)


def verify_media_job(media_id: str) -> None:
    from media import verify_file

    identifier = uuid.UUID(media_id)
    if service.start_run(identifier, lease=_lease()) is None:
        return  # done already, or running elsewhere: a job runs once however often it is queued
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
    result = service.with_provenance(media, result)
    service.record_result(identifier, result)
    touched = {identifier, *service.reassess_chain(identifier)}
    for inspection_id in sorted({i for m in touched for i in inspections.inspections_touching_media(m)}, key=str):
        enqueue_after_commit(ASSESS_INSPECTION, inspection_id=str(inspection_id))
    log.info("verified media %s: %s", media_id, result["status"])


def assess_inspection_job(inspection_id: str) -> None:
    flags = inspections.assess_inspection(uuid.UUID(inspection_id))
    if flags is not None:
        log.info("assessed inspection %s: %d flag(s)", inspection_id, len(flags))


def assess_inspections_job(inspection_ids: list[str]) -> None:
    """The inspections one push touched, in one job: queuing a job per inspection was a queue transaction (and an
    fsync) each, most of what a push's commit cost. Each assessment commits on its own, as its single job would."""
    for inspection_id in inspection_ids:
        assess_inspection_job(inspection_id)
        db.session.commit()


def sweep_job() -> None:
    queue = current_queue(current_app)
    for media_id in service.media_needing_a_run(utcnow(), lease=_lease()):
        queue.enqueue(VERIFY_MEDIA, media_id=str(media_id))
    for inspection_id in inspections.inspections_needing_assessment():
        queue.enqueue(ASSESS_INSPECTION, inspection_id=str(inspection_id))


def reassess_holder_job(holder_id: str, since: str) -> None:
    """A certificate's status changed: its holder's inspections from that office day on are re-assessed
    (earlier days keep their verdict; the status history answers for them)."""
    for inspection_id in inspections.inspections_of_holder_since(uuid.UUID(holder_id), datetime.fromisoformat(since)):
        enqueue_after_commit(ASSESS_INSPECTION, inspection_id=str(inspection_id))


# ---- subscribers to the lower capabilities' events (server.events) ------------------------------
# They run once the announcing transaction has committed, so they only queue work.

def on_media_stored(media_id: uuid.UUID) -> None:
    """A file was stored: verify it."""
    current_queue(current_app).enqueue(VERIFY_MEDIA, media_id=str(media_id))


def on_inspections_changed(inspection_ids: set[uuid.UUID]) -> None:
    """Records of these inspections were synced: re-assess each."""
    if inspection_ids:
        current_queue(current_app).enqueue(ASSESS_INSPECTIONS, inspection_ids=sorted(str(i) for i in inspection_ids))


def on_certificate_changed(holder_id: uuid.UUID, changed_at: datetime) -> None:
    """A certificate was suspended, revoked or reinstated: re-assess its holder's inspections from that day on."""
    current_queue(current_app).enqueue(REASSESS_HOLDER, holder_id=str(holder_id), since=changed_at.isoformat())
