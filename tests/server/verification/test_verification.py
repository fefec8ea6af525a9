"""Stored evidence is verified by a background job; the verdict shows on the media record."""
from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from server.db_types import utcnow
from server.extensions import db
from server.jobs.queue import current_queue
from server.uploads.models import Media
from server.verification import service
from server.verification.jobs import VERIFY_MEDIA, sweep_job
from server.verification.models import VerificationReport
from tests.conftest import World
from tests.media.conftest import run_ffmpeg
from tests.server.uploads.conftest import create, metadata, push_media, sha256

# Verification reads the file from local disk or from the S3 object store (tests/conftest.py).
pytestmark = pytest.mark.media_stores


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    run_ffmpeg("-f", "lavfi", "-i", "testsrc2=size=160x120:rate=10", "-t", "2", "-c:v", "libx264",
               "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(path))
    return Path(path).read_bytes()


def upload(client, auth, world: World, data: bytes, name: str) -> str:  # type: ignore[no-untyped-def]
    """A tablet syncs a media record, then uploads its bytes in one creation-with-upload request."""
    synced = push_media(client, auth, world, data, content_type="video/mp4", file_name=name)
    response = create(client, auth.headers("m-insp"), len(data),
                      metadata(sha256=sha256(data), filename=name, filetype="video/mp4", media_id=synced.id),
                      data=data, content_type="application/offset+octet-stream")
    assert response.status_code == 201, response.get_data(as_text=True)
    assert int(response.headers["Upload-Offset"]) == len(data)
    return synced.id


def verification_of(client, auth, media_id: str) -> dict:  # type: ignore[no-untyped-def,type-arg]
    answer = client.get(f"/api/v1/media/{media_id}", headers=auth.headers("m-insp"))
    assert answer.status_code == 200, answer.get_json()
    return answer.get_json()["verification"]  # type: ignore[no-any-return]


def test_a_stored_recording_is_verified_by_the_worker(app, client, auth, world: World, clip: bytes) -> None:
    media_id = upload(client, auth, world, clip, "clip.mp4")
    assert verification_of(client, auth, media_id)["status"] == "pending"
    assert current_queue(app).run_pending() >= 1
    verdict = verification_of(client, auth, media_id)
    # A tablet without a signing key sends no capture manifest: noted (a warning), the verdict unchanged.
    assert verdict["status"] == "verified" and [r["code"] for r in verdict["reasons"]] == ["unsigned"]
    assert verdict["measurements"]["kind"] == "video" and verdict["measurements"]["duration"] == 2.0
    assert verdict["detections"] == [] and verdict["analyser"] and verdict["verified_at"]
    report = db.session.get(VerificationReport, uuid.UUID(media_id))
    assert report.measurements and report.finished_at and report.analyser


def test_a_file_that_is_not_media_fails_with_its_reason(app, client, auth, world: World) -> None:
    media_id = upload(client, auth, world, b"this is a text file, not a recording\n" * 50, "notes.mp4")
    current_queue(app).run_pending()
    verdict = verification_of(client, auth, media_id)
    assert verdict["status"] == "failed"
    assert "not-media" in {r["code"] for r in verdict["reasons"]}
    assert all(r["message"] for r in verdict["reasons"])  # said in words a supervisor reads


def test_a_job_queued_twice_runs_once(app, client, auth, world: World, clip: bytes) -> None:
    media_id = upload(client, auth, world, clip, "clip.mp4")
    queue = current_queue(app)
    queue.enqueue(VERIFY_MEDIA, media_id=media_id)  # e.g. a sweep that raced the upload's own job
    queue.run_pending()
    queue.enqueue(VERIFY_MEDIA, media_id=media_id)  # and one after the verdict is in
    queue.run_pending()
    assert db.session.scalar(select(func.count()).select_from(VerificationReport)) == 1
    report = db.session.get(VerificationReport, uuid.UUID(media_id))
    db.session.refresh(report)
    assert report.attempts == 1 and report.status == "verified"


def test_a_run_under_way_elsewhere_is_not_started_again(app, client, auth, world: World, clip: bytes) -> None:
    media_id = upload(client, auth, world, clip, "clip.mp4")
    current_queue(app).huey.flush()
    assert service.start_run(uuid.UUID(media_id)) is not None  # another worker claims it
    db.session.commit()
    assert service.start_run(uuid.UUID(media_id)) is None
    assert service.start_run(uuid.UUID(media_id), lease=timedelta(0)) is not None  # its lease ran out


def test_a_run_whose_worker_died_is_found_and_run_again(app, client, auth, world: World, clip: bytes) -> None:
    media_id = upload(client, auth, world, clip, "clip.mp4")
    queue = current_queue(app)
    queue.huey.flush()  # the job is lost with the worker …
    service.start_run(uuid.UUID(media_id))  # … after it had started
    report = db.session.get(VerificationReport, uuid.UUID(media_id))
    report.started_at = utcnow() - timedelta(hours=1)
    db.session.commit()
    assert service.media_needing_a_run(utcnow()) == [uuid.UUID(media_id)]
    sweep_job()
    queue.run_pending()
    assert verification_of(client, auth, media_id)["status"] == "verified"
    assert service.media_needing_a_run(utcnow()) == []


def test_a_file_whose_job_was_never_queued_is_swept_up(app, client, auth, world: World, clip: bytes) -> None:
    media_id = upload(client, auth, world, clip, "clip.mp4")
    current_queue(app).huey.flush()
    media = db.session.get(Media, uuid.UUID(media_id))
    assert service.media_needing_a_run(utcnow()) == []  # too recent to call lost
    assert service.media_needing_a_run(media.uploaded_at + timedelta(minutes=5)) == [media.id]
