"""Verification rules: what a run records, and which files need a (new) run."""
from __future__ import annotations

import contextlib
import os
import tempfile
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import and_, or_, select

from server.db_types import utcnow
from server.extensions import db
from server.provenance import service as provenance
from server.uploads.models import Media, MediaObject, VerificationStatus
from server.uploads.storage import MediaStore
from server.verification.models import VerificationReport

# A run that started this long ago and never finished died with its worker (the default lease).
STALE_RUN = timedelta(minutes=30)
# A stored file with no run at all after this long lost its job (enqueue failed).
UNQUEUED = timedelta(minutes=2)


def start_run(media_id: uuid.UUID, lease: timedelta = STALE_RUN) -> VerificationReport | None:
    """Claim the file's run (so a dead worker's run can be found), or None when there is nothing to
    do: the media is gone, its verdict is already in, or another worker's run is under way."""
    media = db.session.get(Media, media_id)
    if media is None or media.verification_status != VerificationStatus.PENDING:
        return None
    now = utcnow()
    report = db.session.get(VerificationReport, media_id, with_for_update=True)
    if report is None:
        report = VerificationReport(media_id=media_id, attempts=0)
        db.session.add(report)
    elif report.started_at is not None and report.started_at > now - lease and (
            report.finished_at is None or report.finished_at < report.started_at):
        return None
    report.attempts += 1
    report.started_at = now
    db.session.flush()
    return report


@contextlib.contextmanager
def local_file(store: MediaStore, key: str) -> Iterator[Path | None]:
    """A path to the stored object: the store's own file when it has one, else a temporary copy."""
    local = getattr(store, "local_path", None)
    if local is not None:
        path = local(key)
        yield path if path.exists() else None
        return
    if store.stat(key) is None:
        yield None
        return
    # A copy in the store's scratch folder (an object store's), removed as soon as the analysis is done.
    with tempfile.NamedTemporaryFile(prefix="verify-", dir=getattr(store, "scratch", None), delete=False) as handle:
        for block in store.read(key):
            handle.write(block)
    try:
        yield Path(handle.name)
    finally:
        os.unlink(handle.name)


def record_result(media_id: uuid.UUID, result: dict[str, Any]) -> None:
    """Store a finished run and show its verdict on the media record."""
    media = db.session.get(Media, media_id)
    report = db.session.get(VerificationReport, media_id)
    if media is None or report is None:
        return
    report.status = result["status"]
    report.reasons = result["reasons"]
    report.measurements = result.get("measurements") or {}
    report.detections = result.get("detections") or []
    report.analyser = result.get("analyser")
    report.finished_at = utcnow()
    _show(media, result["status"], result["reasons"])
    db.session.flush()


def _show(media: Media, status: str, reasons: list[dict[str, Any]]) -> None:
    media.verification_status = VerificationStatus(status)
    media.verification_reasons = [{"code": r["code"], "severity": r["severity"], "message": r["message"]}
                                  for r in reasons]


def with_provenance(media: Media, result: dict[str, Any]) -> dict[str, Any]:
    """The analysis' result with the file's provenance (its signed capture manifest, server.provenance) added."""
    checked = provenance.check_media(media, result.get("sha256"))
    reasons, status = provenance.merge(result["reasons"], result["status"], checked)
    return {**result, "reasons": reasons, "status": status}


#: At most this many later files of a device are re-checked when an earlier capture arrives.
MAX_REASSESSED = 200


def reassess_chain(media_id: uuid.UUID) -> list[uuid.UUID]:
    """Later captures of the same device that were waiting for this one (chain-gap): check them again.

    Returns the files whose verdict changed (their inspections are to be re-assessed).
    """
    manifest = provenance.manifest_of(media_id)
    if manifest is None:
        return []
    changed = []
    for later_id in provenance.waiting_on(manifest)[:MAX_REASSESSED]:
        media = db.session.get(Media, later_id)
        report = db.session.get(VerificationReport, later_id)
        if media is None or report is None or report.status is None or \
                not any(r.get("code") == "chain-gap" for r in media.verification_reasons or []):
            continue
        checked = provenance.check_media(media)
        reasons, status = provenance.merge(report.reasons or [], provenance.analysis_status(report.reasons or []),
                                           checked)
        if reasons != report.reasons or status != report.status:
            report.reasons, report.status = reasons, status
            _show(media, status, reasons)
            changed.append(later_id)
    db.session.flush()
    return changed


def object_key_of(media: Media) -> tuple[str, str] | None:
    stored = db.session.get(MediaObject, media.sha256)
    return (stored.backend, stored.key) if stored else None


def media_needing_a_run(now: datetime, limit: int = 500, lease: timedelta = STALE_RUN) -> list[uuid.UUID]:
    """Pending files whose run never started (lost job) or started longer than ``lease`` ago and
    never finished (dead worker)."""
    never = and_(VerificationReport.media_id.is_(None), Media.uploaded_at < now - UNQUEUED)
    died = and_(VerificationReport.started_at < now - lease,
                or_(VerificationReport.finished_at.is_(None),
                    VerificationReport.finished_at < VerificationReport.started_at))
    query = (select(Media.id).outerjoin(VerificationReport, VerificationReport.media_id == Media.id)
             .where(Media.verification_status == VerificationStatus.PENDING, or_(never, died))
             .order_by(Media.uploaded_at).limit(limit))
    return list(db.session.scalars(query))
