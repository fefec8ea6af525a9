"""Review coverage (issue 17): byte intervals merged per reviewer per file, shown on the queue and the
inspection page to the department's own reviewers, and the monthly sampling quota counting down to zero."""
from __future__ import annotations

from datetime import timedelta

from flask.testing import FlaskClient
from sqlalchemy import select

from server.audit.models import AuditEntry
from server.db_types import utcnow
from server.extensions import db
from server.review import coverage
from server.verification.models import InspectionMedia
from tests.server.review.conftest import Scene, post_form, stored_media
from tests.server.review.test_labels import visible

MiB = 1024 * 1024


def test_overlapping_and_repeated_ranges_count_once() -> None:
    assert coverage.merge([(50, 100), (0, 10), (5, 20), (0, 10), (20, 30), (60, 70), (40, 40)]) == [(0, 30),
                                                                                                      (50, 100)]
    assert coverage.coverage([(0, 50), (0, 50), (25, 75)], 100) == 0.75
    assert coverage.coverage([(90, 500), (-5, 10)], 100) == 0.2  # cut to the file
    assert coverage.coverage([(0, 10)], 0) == 0.0
    assert coverage.Watch(None, "x", 0.999).percent == 99  # 100% only to the last byte  # type: ignore[arg-type]


def test_what_an_audit_entry_says_was_sent_and_the_players_chunk() -> None:
    assert coverage.served({"status": 206, "content_range": "bytes 10-19/100"}, 100) == (10, 20)
    assert coverage.served({"status": 200, "content_range": None}, 100) == (0, 100)
    assert coverage.served({"status": 416, "content_range": None}, 100) is None
    assert coverage.served({"status": 206, "content_range": "nonsense"}, 100) is None
    assert coverage.capped_range("bytes=0-") == f"bytes=0-{4 * MiB - 1}"
    assert coverage.capped_range(f"bytes={MiB}-{100 * MiB}") == f"bytes={MiB}-{5 * MiB - 1}"
    assert coverage.capped_range("bytes=0-99") == "bytes=0-99"
    assert coverage.capped_range("bytes=-10") == "bytes=-10"
    assert coverage.capped_range(None) is None
    assert coverage.needed(20, 11, 0) == 3 and coverage.needed(20, 11, 3) == 0 and coverage.needed(0, 5, 0) == 0


def _watch(client: FlaskClient, media_id: object, first: int, last: int) -> None:
    response = client.get(f"/review/media/{media_id}/stream", headers={"Range": f"bytes={first}-{last}"})
    assert response.status_code == 206, response.status_code


def _this_month(scene: Scene) -> None:
    """Both market records visited now (the scene dates them by the hour and day before)."""
    for record in (scene.joint, scene.coercive):
        record.fields = {**record.fields, "started_at": utcnow().isoformat()}
    db.session.commit()


def test_half_watched_is_50_percent_for_the_departments_reviewers_only(review_as, scene: Scene) -> None:
    size = scene.video.size
    half = -(-size // 2)
    client = review_as("m-sup")
    _watch(client, scene.video.id, 0, size // 4 - 1)
    _watch(client, scene.video.id, size // 8, half - 1)  # overlaps the first
    _watch(client, scene.video.id, 0, 99)                # and again from the start
    assert coverage.file_coverage({scene.video.id: size})[scene.video.id].watches[0].share == half / size
    page = visible(client.get(f"/review/inspections/{scene.joint.id}").get_data(as_text=True))
    assert "已观看 50%（测试m-sup）" in page
    assert "1 段视频中已完整观看 0 段（0%）" in page
    queue = visible(client.get("/review/?status=all").get_data(as_text=True))
    assert "1 段视频中已完整观看 0 段（0%）" in queue
    # Ecology took part in the joint record and reviews it, but coverage is market's business.
    other = review_as("e-sup")
    assert "已观看" not in visible(other.get(f"/review/inspections/{scene.joint.id}").get_data(as_text=True))
    assert "段视频中已完整观看" not in visible(other.get("/review/?status=all").get_data(as_text=True))


def test_the_quota_counts_what_is_still_needed_and_reaches_zero(review_as, scene: Scene, clip: bytes) -> None:
    world = scene.world
    _this_month(scene)
    seized = stored_media(clip, world.task, world.market.id, name="REC_0002.MP4", capture_start=scene.start)
    db.session.add(InspectionMedia(inspection_id=scene.coercive.id, media_id=seized.id,
                                   task_id=scene.coercive.task_id, source="bodycam", attached_at=scene.start))
    db.session.commit()

    supervisor = review_as("m-sup")
    assert "本月抽查要求" not in visible(supervisor.get("/review/").get_data(as_text=True))  # none set yet
    assert post_form(supervisor, "/review/quota", {"coercive_in_full": "on", "other_percent": "20"}
                     ).status_code == 403  # a supervisor does not set it
    head = review_as("m-head")
    refused = post_form(head, "/review/quota", {"coercive_in_full": "on", "other_percent": "120"}, "/review/quota")
    assert refused.status_code == 422 and "0 到 100" in refused.get_data(as_text=True)
    saved = post_form(head, "/review/quota", {"coercive_in_full": "on", "other_percent": "20"}, "/review/quota")
    assert saved.status_code == 303

    supervisor = review_as("m-sup")
    wanted = "本月抽查要求：强制措施记录 1 份待完整观看；其他记录还需抽看 1 份"
    assert wanted in visible(supervisor.get("/review/").get_data(as_text=True))
    assert "本月抽查要求" not in visible(review_as("e-sup").get("/review/").get_data(as_text=True))

    supervisor = review_as("m-sup")
    opened = supervisor.get(f"/review/media/{seized.id}/stream", headers={"Range": "bytes=0-"})  # as players ask
    assert opened.status_code == 206 and len(opened.data) == seized.size  # a small file: within the first chunk
    [entry] = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "media.stream",
                                                          AuditEntry.object_id == str(seized.id))).all()
    assert entry.details["range"] == f"bytes=0-{coverage.STREAM_CHUNK - 1}"  # capped: what is sent is what counts
    _watch(supervisor, scene.video.id, 0, scene.video.size * 96 // 100)  # 95% is in full
    page = visible(supervisor.get("/review/").get_data(as_text=True))
    assert "本月抽查要求已完成" in page
    status = coverage.quota_status(_principal(scene, "m-sup"), world.market.id)  # type: ignore[arg-type]
    assert status is not None and (status.coercive, status.coercive_pending, status.others,
                                   status.others_watched, status.others_needed) == (1, 0, 1, 1, 0)
    assert coverage.month_of(utcnow())[1] <= utcnow() < coverage.month_of(utcnow())[2]
    assert coverage.month_of(utcnow())[2] - coverage.month_of(utcnow())[1] >= timedelta(days=28)


def _principal(scene: Scene, user: str) -> object:
    from server.review.sessions import principal_of

    return principal_of(scene.world.people[user])
