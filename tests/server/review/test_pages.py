"""The work queue, the inspection page, footage and who may see them."""
from __future__ import annotations

import re
from datetime import UTC, timedelta

from sqlalchemy import select

from server.audit.models import AuditEntry
from server.db_types import OFFICE_TIMEZONE
from server.extensions import db
from server.tasks.models import InspectionTask
from tests.server.review.conftest import CERTIFICATE_AT, Scene


def _rows(page: str) -> list[str]:
    return re.findall(r'<tr data-testid="queue-row">.*?href="/review/inspections/([0-9a-f-]+)"', page, re.S)


def _audit(action: str) -> list[AuditEntry]:
    return list(db.session.scalars(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.seq)))


def test_a_supervisor_sees_own_and_joint_records_only(review_as, scene: Scene) -> None:
    market = _rows(review_as("m-sup").get("/review/").get_data(as_text=True))
    assert set(market) == {str(scene.joint.id), str(scene.coercive.id)}


def test_the_other_departments_supervisor_sees_the_joint_record_they_took_part_in(review_as, scene: Scene) -> None:
    ecology = _rows(review_as("e-sup").get("/review/").get_data(as_text=True))
    assert set(ecology) == {str(scene.joint.id), str(scene.ecology_only.id)}


def test_an_admin_sees_everything(review_as, scene: Scene) -> None:
    assert len(_rows(review_as("admin").get("/review/?status=all").get_data(as_text=True))) == 3


def test_filters_by_flag_with_counts_per_flag(review_as, scene: Scene) -> None:
    client = review_as("admin")
    page = client.get("/review/").get_data(as_text=True)
    counts = dict(re.findall(r'data-flag="([a-z-]+)">[^<]*<b>(\d+)</b>', page))
    assert counts == {"certificate-missing": "1", "footage-missing": "1", "lens-covered": "1"}
    assert _rows(client.get("/review/?flag=lens-covered").get_data(as_text=True)) == [str(scene.joint.id)]
    assert _rows(client.get("/review/?flag=hash-mismatch").get_data(as_text=True)) == []


def test_filters_by_department_date_and_status(review_as, scene: Scene) -> None:
    client = review_as("admin")
    ecology = client.get(f"/review/?department={scene.world.ecology.id}").get_data(as_text=True)
    assert _rows(ecology) == [str(scene.ecology_only.id)]
    day = (scene.start - timedelta(days=2)).astimezone(OFFICE_TIMEZONE).date().isoformat()
    assert _rows(client.get(f"/review/?from={day}&to={day}").get_data(as_text=True)) == [str(scene.ecology_only.id)]
    assert _rows(client.get("/review/?status=approved").get_data(as_text=True)) == []
    assert len(_rows(client.get("/review/?status=pending").get_data(as_text=True))) == 3


def test_bad_filters_are_refused_plainly(review_as, scene: Scene) -> None:
    client = review_as("m-sup")
    for query in ("from=yesterday", "status=whatever", "page=0", "department=nope"):
        response = client.get("/review/?" + query)
        assert response.status_code == 400, query
        assert "data-testid=\"error-message\"" in response.get_data(as_text=True)


def test_the_queue_is_paged(review_as, scene: Scene, monkeypatch) -> None:
    from server.review import service

    monkeypatch.setattr(service, "PAGE_SIZE", 2)
    client = review_as("admin")
    first = client.get("/review/?status=all").get_data(as_text=True)
    second = client.get("/review/?status=all&page=2").get_data(as_text=True)
    assert len(_rows(first)) == 2 and len(_rows(second)) == 1
    assert 'page=2' in first and not set(_rows(first)) & set(_rows(second))


def test_the_inspection_page_shows_the_record_and_its_evidence(review_as, scene: Scene) -> None:
    client = review_as("m-sup")
    response = client.get(f"/review/inspections/{scene.joint.id}")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    for text in ("厂区一号车间", "营业执照公示", "排污许可", "排污许可证过期", "市场监管局", "生态环境局",
                 "CERT-M-001", "REC_0001.MP4", "镜头被遮挡 2 秒"):
        assert text in page, text
    assert page.count('data-testid="merged-finding"') == 2  # the joint record, merged across departments
    merged = page.split('data-testid="merged-findings"')[1].split("</table>")[0]
    assert "不合规" in merged and "合规" in merged and "non_compliant" not in merged  # results in words
    assert f'/review/media/{scene.video.id}/stream' in page
    assert f'/review/media/{scene.video.id}/contact-sheet.jpg' in page
    # One timeline: the segment, the certificate at 2 s into it, the covered lens and both findings.
    assert 'class="segment"' in page
    assert f'data-media="{scene.video.id}" data-t="{CERTIFICATE_AT[0]:.1f}"' in page
    for kind in ("certificate", "covered", "finding", "flag"):
        assert f'class="mark {kind}"' in page, kind
    [view] = _audit("inspection.view")
    assert view.object_id == str(scene.joint.id) and view.actor_username == "m-sup"


def test_another_departments_supervisor_gets_404_for_the_page_and_the_footage(review_as, scene: Scene) -> None:
    client = review_as("e-sup")
    assert client.get(f"/review/inspections/{scene.coercive.id}").status_code == 404
    client = review_as("m-sup")
    assert client.get(f"/review/inspections/{scene.ecology_only.id}").status_code == 404
    assert client.get("/review/inspections/not-a-uuid").status_code == 404
    denied = _audit("inspection.view")
    assert [e.outcome.value for e in denied] == ["denied"] * 3


def test_footage_of_a_joint_record_streams_for_both_departments_and_nobody_else(app, review_as, scene: Scene) -> None:
    for user in ("m-sup", "e-sup", "admin"):
        response = review_as(user).get(f"/review/media/{scene.video.id}/stream", headers={"Range": "bytes=0-99"})
        assert response.status_code == 206, (user, response.status_code)
        assert response.headers["Content-Range"].startswith("bytes 0-99/") and len(response.data) == 100
    stranger = app.test_client()
    assert stranger.get(f"/review/media/{scene.video.id}/stream").status_code == 401
    streams = _audit("media.stream")
    assert [e.details["range"] for e in streams] == ["bytes=0-99"] * 3
    assert {e.actor_username for e in streams} == {"m-sup", "e-sup", "admin"}


def test_a_refused_range_is_kept_in_the_audit_log_as_failed(review_as, scene: Scene) -> None:
    response = review_as("m-sup").get(f"/review/media/{scene.video.id}/stream", headers={"Range": "bytes=999999999-"})
    assert response.status_code == 416
    [entry] = _audit("media.stream")
    assert entry.outcome.value == "failed" and entry.details["status"] == 416


def test_footage_of_another_department_is_404(review_as, scene: Scene, clip: bytes) -> None:
    from server.tasks.models import InspectionTask
    from tests.server.review.conftest import stored_media

    task = db.session.get(InspectionTask, scene.ecology_only.task_id)
    hidden = stored_media(clip[:1000], task, scene.world.ecology.id, name="E.MP4", capture_start=scene.start)
    db.session.commit()
    client = review_as("m-sup")
    assert client.get(f"/review/media/{hidden.id}/stream").status_code == 404
    assert client.get(f"/review/media/{hidden.id}/contact-sheet.jpg").status_code == 404
    assert review_as("e-sup").get(f"/review/media/{hidden.id}/stream",
                                  headers={"Range": "bytes=0-9"}).status_code == 206


def test_seeking_asks_for_the_middle_and_the_end(review_as, scene: Scene) -> None:
    client = review_as("m-sup")
    size = scene.video.size
    middle = client.get(f"/review/media/{scene.video.id}/stream", headers={"Range": f"bytes={size // 2}-"})
    assert middle.status_code == 206 and len(middle.data) == size - size // 2
    assert client.get(f"/review/media/{scene.video.id}/stream", headers={"Range": "bytes=-10"}).status_code == 206
    assert client.get(f"/review/media/{scene.video.id}/stream", headers={"Range": f"bytes={size}-"}).status_code == 416


def test_the_contact_sheet_is_made_once_and_kept_by_content(app, review_as, scene: Scene) -> None:
    client = review_as("m-sup")
    response = client.get(f"/review/media/{scene.video.id}/contact-sheet.jpg")
    assert response.status_code == 200 and response.mimetype == "image/jpeg"
    assert response.data[:2] == b"\xff\xd8"
    cached = list((app.config["SETTINGS"].var_dir / "review-cache" / "contact-sheets").iterdir())
    assert [p.name for p in cached] == [f"{scene.video.sha256}-i10.jpg"]
    assert client.get(f"/review/media/{scene.video.id}/contact-sheet.jpg").data == response.data
    assert len(_audit("media.contact_sheet")) == 2


def test_an_inspector_cannot_use_the_media_urls(client, scene: Scene) -> None:
    from tests.server.review.conftest import log_in

    assert log_in(client, "m-insp").status_code == 403
    assert client.get(f"/review/media/{scene.video.id}/stream").status_code == 401


def test_without_javascript_a_timeline_link_reloads_the_player_at_that_moment(review_as, scene: Scene) -> None:
    page = review_as("m-sup").get(
        f"/review/inspections/{scene.joint.id}?media={scene.video.id}&t=9.5").get_data(as_text=True)
    assert f'src="/review/media/{scene.video.id}/stream#t=9.5"' in page


def _queue_row(page: str, inspection_id: object) -> str:
    rows = page.split('<tr data-testid="queue-row">')[1:]
    return next(r for r in rows if f"/review/inspections/{inspection_id}" in r)


def test_the_queue_shows_one_badge_per_flag_with_its_count_and_the_people_concerned(review_as, scene: Scene) -> None:
    from server.verification.models import InspectionFlag

    people = scene.world.people
    for person in ("m-insp", "e-insp"):
        db.session.add(InspectionFlag(inspection_id=scene.joint.id, task_id=scene.world.task.id,
                                      code="certificate-missing", severity="error",
                                      message=f"证据中未见 {people[person].full_name} 出示执法证",
                                      raised_at=scene.start,
                                      details={"user_id": str(people[person].id), "name": people[person].full_name}))
    db.session.commit()
    row = _queue_row(review_as("m-sup").get("/review/").get_data(as_text=True), scene.joint.id)
    badges = re.findall(r'<span class="flag [a-z]+"[^>]*data-flag="([a-z-]+)"', row)
    assert sorted(badges) == ["certificate-missing", "lens-covered"]  # one badge per code, not one per person
    missing = row.split('data-flag="certificate-missing"')[1].split("</span>\n")[0]
    assert "<b>2</b>" in missing
    assert "测试m-insp" in missing and "测试e-insp" in missing  # named, not only counted


def test_the_queue_dates_a_row_by_the_inspection_in_office_time(review_as, scene: Scene) -> None:
    from datetime import datetime

    # 16:30 UTC is half past midnight of the next day in the offices; the task's window is days away.
    visited = datetime(2026, 3, 1, 16, 30, tzinfo=UTC)
    scene.joint.fields = {**scene.joint.fields, "started_at": visited.isoformat()}
    db.session.commit()
    client = review_as("admin")
    page = client.get("/review/?status=all").get_data(as_text=True)
    joint = _queue_row(page, scene.joint.id)
    assert "2026-03-02 00:30" in joint
    window = scene.world.task.window_start.astimezone(OFFICE_TIMEZONE).strftime("%Y-%m-%d")
    assert window not in joint
    # A record without its own time falls back to the task's window, and says so.
    coercive = _queue_row(page, scene.coercive.id)
    task_day = (scene.start - timedelta(days=1)).astimezone(OFFICE_TIMEZONE).strftime("%Y-%m-%d")
    assert task_day in coercive and 'data-testid="window-date"' in coercive
    # The date filter and the order follow the same date.
    assert _rows(client.get("/review/?status=all&from=2026-03-02&to=2026-03-02").get_data(as_text=True)) == \
        [str(scene.joint.id)]
    assert _rows(client.get("/review/?status=all&from=2026-03-01&to=2026-03-01").get_data(as_text=True)) == []
    assert _rows(page)[-1] == str(scene.joint.id)  # the oldest visit last


def _certificate_photo(scene: Scene, clip: bytes, inspection=None):  # type: ignore[no-untyped-def]
    from tests.server.review.conftest import entity, stored_media

    inspection = inspection or scene.joint
    task = db.session.get(InspectionTask, inspection.task_id)
    photo = stored_media(clip[:3000], task, inspection.department_id, name="IMG_0001.jpg",
                         capture_start=scene.start + timedelta(seconds=1), content_type="image/jpeg")
    entity("media", task, inspection.department_id, inspection.created_by_id, entity_id=photo.id,
           inspection_id=inspection.id, fields={"inspection_id": str(inspection.id), "sha256": photo.sha256,
                                                "size": photo.size, "proves": "certificate",
                                                "content_type": "image/jpeg", "file_name": "IMG_0001.jpg"})
    db.session.commit()
    return photo


def test_a_certificate_photo_is_shown_on_the_page_through_the_audited_stream(review_as, scene: Scene,
                                                                              clip: bytes) -> None:
    photo = _certificate_photo(scene, clip)
    client = review_as("m-sup")
    page = client.get(f"/review/inspections/{scene.joint.id}").get_data(as_text=True)
    certificate = page.split('id="certificate"')[1].split("</section>")[0]
    assert f'<img src="/review/media/{photo.id}/stream"' in certificate  # the photo itself, in the certificate card
    row = next(r for r in page.split('data-testid="media-row"')[1:] if "IMG_0001.jpg" in r.split("</tr>")[0])
    assert f'href="/review/media/{photo.id}/stream"' in row.split("</tr>")[0]  # and opened from the evidence list
    response = client.get(f"/review/media/{photo.id}/stream")
    assert response.status_code == 200 and response.mimetype == "image/jpeg"
    assert response.headers["Content-Disposition"] == "inline" and response.data == clip[:3000]
    [seen] = [e for e in _audit("media.stream") if e.object_id == str(photo.id)]
    assert seen.outcome.value == "success" and seen.actor_username == "m-sup"


def test_a_certificate_photo_of_another_department_is_refused_and_the_refusal_recorded(review_as, scene: Scene,
                                                                                      clip: bytes) -> None:
    photo = _certificate_photo(scene, clip, scene.coercive)  # market's own record: ecology may not see it
    assert review_as("e-sup").get(f"/review/media/{photo.id}/stream").status_code == 404
    [refused] = [e for e in _audit("media.stream") if e.object_id == str(photo.id)]
    assert refused.outcome.value == "denied" and refused.actor_username == "e-sup"
