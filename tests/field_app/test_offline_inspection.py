"""An inspector's day on the tablet app, end to end in Chromium: enrol the tablet, log in, lose the network, open
the app from its service worker, capture a whole inspection (certificate photo, findings with a photo and a
video, measures, a signature), close the browser, open it again, come back online and sync. The server then
holds the record with the SHA-256 the tablet computed, and the worker verifies the files."""
from __future__ import annotations

import hashlib
import uuid
from pathlib import Path
from typing import Any

from flask import Flask
from sqlalchemy import select

from server.extensions import db
from server.jobs.queue import current_queue
from server.sync.entities import inspection_id_for
from server.sync.models import SyncedEntity
from server.uploads.models import Media
from tests.conftest import PASSWORD, World
from tests.field_app.conftest import (
    PHONE,
    Tablet,
    certificate_photo,
    enrolment_code,
    scene_photo,
    sign,
    video_clip,
)
from tests.server.uploads.conftest import Live, live  # noqa: F401 - the live-server fixture

NOTE = "营业执照未在经营场所显著位置公示，当场责令改正"
CONCLUSION = "基本符合要求，营业执照公示问题已责令当场改正"


def enrol_and_log_in(tablet: Tablet, code: str, username: str = "m-insp") -> Any:
    page = tablet.open()
    tablet.wait_screen("enrol")
    tablet.shot("01-enrol")
    # Typed as read from a printout: lower case, no hyphens.
    page.fill("input[name=code]", code.replace("-", "").lower())
    page.click("[data-testid=enrol-form] button[type=submit]")
    tablet.wait_screen("login")
    assert "SCJG-TAB1" in page.locator("[data-testid=device]").inner_text()
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    tablet.shot("02-login")
    page.click("[data-testid=login-form] button[type=submit]")
    tablet.wait_screen("tasks", timeout=60_000)
    return page


def unlock(tablet: Tablet, password: str = PASSWORD) -> None:
    page = tablet.page
    tablet.wait_screen("unlock")
    page.fill("input[name=password]", password)
    page.click("[data-testid=login-form] button[type=submit]")


def test_an_inspection_captured_offline_reaches_the_server(app: Flask, world: World,
                                                           live: Live,  # noqa: F811 - the imported fixture
                                                           tablets: Any, tmp_path: Path) -> None:
    task_id, licence_id = world.task.id, str(world.check_items["m-licence"].id)
    files = tmp_path / "camera"
    files.mkdir()
    own_certificate = certificate_photo(files / "IMG_0001.jpg", "CERT-M-001")
    other_certificate = certificate_photo(files / "IMG_0002.jpg", "CERT-E-001")
    photo = scene_photo(files / "IMG_0003.jpg")
    clip = video_clip(files / "VID_0004.mp4")

    tablet = tablets(live.url, "m-tab")
    page = enrol_and_log_in(tablet, enrolment_code(app, "SCJG", "SCJG-TAB1"))
    page.wait_for_selector("[data-testid=task-row]")
    assert "测试m-insp" in page.locator("[data-testid=current-user]").inner_text()
    row = page.locator("[data-testid=task-row]")
    assert row.count() == 1 and "祁阳市浯溪食品有限公司" in row.inner_text() and "联合检查" in row.inner_text()
    # The app shell is in the service worker's hands before the network goes.
    page.wait_for_function("() => navigator.serviceWorker.controller !== null")
    tablet.shot("03-tasks")

    # No network: the page comes from the service worker, the data is locked until the password unlocks it.
    tablet.offline(True)
    page.reload()
    tablet.wait_screen("unlock")
    assert page.locator("[data-testid=network]").inner_text() == "离线"
    tablet.shot("04-unlock-offline")
    unlock(tablet, "not-the-password")
    page.wait_for_selector("[data-testid=error]")
    assert "还可尝试 4 次" in page.locator("[data-testid=error]").inner_text()
    tablet.shot("05-unlock-wrong-password")
    unlock(tablet)
    tablet.wait_screen("tasks")

    page.click("[data-testid=task-row]")
    tablet.wait_screen("task")
    detail = page.locator("[data-testid=task-detail]")
    assert "《市场主体登记管理条例》第三十六条" in detail.inner_text()
    assert "《排污许可管理条例》第十七条" in detail.inner_text()
    assert page.locator("[data-testid=team-department]").count() == 2  # a joint task shows both departments
    tablet.shot("06-task-detail")
    page.click("[data-testid=start]")
    tablet.wait_screen("inspect-overview")
    page.fill("input[name=place]", "浯溪街道建设路1号 生产车间")
    page.fill("input[name=representative]", "李经理")
    page.locator("input[name=representative]").blur()
    tablet.shot("07-overview")

    # The certificate shown: someone else's is flagged at once; the inspector's own passes.
    page.click("[data-testid=next]")
    tablet.wait_screen("inspect-certificate")
    page.set_input_files("[data-testid=certificate-photo] input", str(other_certificate))
    check = page.locator("[data-testid=certificate-check]")
    check.wait_for()
    page.wait_for_selector("[data-testid=capture-note].ok")
    assert check.get_attribute("data-state") == "not-own" and "不是您本人的执法证" in check.inner_text()
    tablet.shot("08-certificate-not-own")
    page.set_input_files("[data-testid=certificate-photo] input", str(own_certificate))
    page.wait_for_selector("[data-testid=certificate-check][data-state=ok]")
    assert "今日有效" in check.inner_text()
    page.wait_for_function("() => document.querySelectorAll('[data-testid=media-thumb]').length === 2")
    tablet.shot("09-certificate-ok")

    # Findings: the market's item is ours to answer; the ecology item belongs to the other department.
    page.click("[data-testid=next]")
    tablet.wait_screen("inspect-findings")
    ours = page.locator("[data-testid=finding][data-check-item=SCJG-01]")
    theirs = page.locator("[data-testid=finding][data-check-item=STHJ-01]")
    assert theirs.get_attribute("data-own") == "false"
    ours.locator("button[data-result=non_compliant]").click()
    page.wait_for_selector("[data-testid=finding][data-check-item=SCJG-01] textarea:not([disabled])")
    ours.locator("textarea[name=note]").fill(NOTE)
    ours.locator("textarea[name=note]").blur()
    ours.locator("[data-testid=add-photo] input").set_input_files(str(photo))
    page.wait_for_function("() => document.querySelectorAll('[data-check-item=SCJG-01] [data-testid=media-thumb]')"
                           ".length === 1")
    ours.locator("[data-testid=add-video] input").set_input_files(str(clip))
    page.wait_for_function("() => document.querySelectorAll('[data-check-item=SCJG-01] [data-testid=media-thumb]')"
                           ".length === 2")
    assert ours.locator("button[data-result=non_compliant]").get_attribute("aria-pressed") == "true"
    tablet.shot("10-findings")
    page.evaluate("() => window.scrollTo(0, 0)")
    tablet.shot("10-findings-screen", full_page=False)  # as the tablet shows it (the README's picture)

    page.click("[data-testid=next]")
    tablet.wait_screen("inspect-measures")
    page.locator("[data-testid=soft-measures] .badges button").first.click()
    page.wait_for_selector("[data-testid=soft-measure]")
    coercive = page.locator("[data-testid=coercive-measures]")
    coercive.locator("select[name=kind]").select_option("seizure")
    coercive.locator("input[name=description]").fill("过期食品 12 箱，封存于仓库")
    coercive.locator("button[type=submit]").click()
    page.wait_for_selector("[data-testid=coercive-measure]")
    tablet.shot("11-measures")

    page.click("[data-testid=next]")
    tablet.wait_screen("inspect-signature")
    assert page.locator("[data-testid=signature-form] input[name=name]").input_value() == "李经理"
    page.click("[data-testid=save-signature]")
    assert "请先在签名框内签名" in page.locator("[data-testid=capture-note]").inner_text()
    sign(page)
    page.click("[data-testid=save-signature]")
    page.wait_for_selector("[data-testid=signature]")
    tablet.shot("12-signature")

    page.click("[data-testid=next]")
    tablet.wait_screen("inspect-finish")
    assert page.locator("[data-testid=summary-findings]").inner_text() == "检查结论 1/1 项"
    page.fill("textarea[name=conclusion]", CONCLUSION)
    page.click("[data-testid=finish]")
    page.wait_for_selector("[data-testid=finished]")
    tablet.shot("13-finished-offline")
    page.goto(live.url + "/field/#/sync")
    tablet.wait_screen("sync")
    assert "离线" in page.locator("[data-testid=sync-summary]").inner_text()
    tablet.shot("14-sync-offline")

    # The browser is closed (the tablet restarts) and opened again, still offline: everything is there.
    tablet.close()
    page = tablet.open(offline=True, path=f"/field/#/inspect/{task_id}/findings")
    unlock(tablet)
    tablet.wait_screen("inspect-findings")
    ours = page.locator("[data-testid=finding][data-check-item=SCJG-01]")
    assert ours.locator("textarea[name=note]").input_value() == NOTE
    ours.locator("[data-testid=media-thumb]").nth(1).wait_for()  # the thumbnails render after the record
    assert ours.locator("[data-testid=media-thumb]").count() == 2

    # Back online: the app syncs by itself, then uploads the files one by one.
    page.goto(live.url + "/field/#/sync")
    tablet.wait_screen("sync")
    tablet.offline(False)
    tablet.wait_for_sync(5)
    assert "上次成功同步" in page.locator("[data-testid=sync-last]").inner_text()
    tablet.shot("15-synced")

    # The server holds the record as captured, and the files with the tablet's hashes.
    db.session.remove()
    inspection_id = inspection_id_for(task_id)
    inspection = db.session.get(SyncedEntity, inspection_id)
    assert inspection is not None and inspection.fields["status"] == "finished"
    assert inspection.fields["conclusion"] == CONCLUSION and inspection.fields["representative"] == "李经理"
    assert inspection.fields["coercive_measures"] == [{"kind": "seizure", "description": "过期食品 12 箱，封存于仓库"}]
    assert inspection.fields["soft_measures"] == ["责令当场改正"]
    entities = db.session.scalars(select(SyncedEntity).where(SyncedEntity.inspection_id == inspection_id)).all()
    findings = [e for e in entities if e.kind == "finding"]
    media = {e.id: e for e in entities if e.kind == "media"}
    signatures = [e for e in entities if e.kind == "signature"]
    assert len(findings) == 1 and findings[0].fields["result"] == "non_compliant"
    assert findings[0].fields["note"] == NOTE and findings[0].fields["check_item_id"] == licence_id
    assert len(signatures) == 1 and signatures[0].fields["signer_name"] == "李经理"
    assert signatures[0].fields["signer_role"] == "representative"
    expected = {hashlib.sha256(p.read_bytes()).hexdigest(): p.name for p in (own_certificate, other_certificate,
                                                                             photo, clip)}
    by_hash = {m.fields["sha256"]: m for m in media.values()}
    assert set(expected) <= set(by_hash), (expected, by_hash)
    digest = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in (photo, clip)}
    evidence = {uuid.UUID(x) for x in findings[0].fields["evidence"]}
    assert evidence == {by_hash[digest[photo]].id, by_hash[digest[clip]].id}
    assert {by_hash[h].fields["proves"] for h in expected} == {"certificate", "scene"}
    signature_media = media[uuid.UUID(signatures[0].fields["media_id"])]
    assert signature_media.fields["proves"] == "signature" and signature_media.fields["content_type"] == "image/png"
    stored = {m.id: m for m in db.session.scalars(select(Media).where(Media.id.in_(list(media))))}
    assert set(stored) == set(media)  # every file arrived
    for media_id, record in media.items():
        assert stored[media_id].sha256 == record.fields["sha256"] and stored[media_id].size == record.fields["size"]

    # The worker verifies what arrived.
    queue = current_queue(app)
    while queue.run_pending():
        pass
    db.session.remove()
    verdicts = {db.session.get(Media, i).file_name: db.session.get(Media, i).verification_status.value for i in media}
    assert verdicts["VID_0004.mp4"] == "verified", verdicts
    assert verdicts["IMG_0003.jpg"] == "verified", verdicts

    # On a phone-sized screen too.
    page.set_viewport_size(PHONE)
    page.goto(live.url + "/field/#/tasks")
    tablet.wait_screen("tasks")
    tablet.shot("16-phone-tasks")
    page.goto(live.url + f"/field/#/inspect/{task_id}/findings")
    tablet.wait_screen("inspect-findings")
    tablet.shot("17-phone-findings")
    page.click("[data-testid=lang]")
    tablet.shot("18-phone-findings-en")
    assert "Findings" in page.locator("nav.steps").inner_text()
    page.click("[data-testid=lang]")
    errors = [line for line in tablet.console if line.startswith("pageerror")]
    assert not errors, errors

    # A lost tablet gives nothing away: the profile's files hold no finding text and no photo bytes in clear.
    tablet.close()
    profile_bytes = b"".join(p.read_bytes() for p in tablet.profile.rglob("*")
                             if p.is_file() and "IndexedDB" in str(p))
    assert b"SCJG-TAB1" in profile_bytes  # the scan sees the database (the device id is kept in clear)
    for text in (NOTE, CONCLUSION, "李经理"):
        for encoding in ("utf-8", "utf-16-le"):
            assert text.encode(encoding) not in profile_bytes, (text, encoding)
    picture = photo.read_bytes()
    for offset in range(1000, len(picture) - 64, max(1, len(picture) // 16)):
        assert picture[offset:offset + 48] not in profile_bytes
