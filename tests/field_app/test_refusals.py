"""What the tablet app refuses, and says so in Chinese on the screen: a wrong enrolment code, another department's
inspector, a retired tablet (nothing captured is lost), a file that is not a photo, a file over the server's
upload limit, a tablet whose storage is full."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from server.auth.policy import SYSTEM
from server.directory import enrolment
from server.extensions import db
from tests.conftest import PASSWORD, World, _build_app
from tests.field_app.conftest import Tablet, certificate_photo, enrolment_code, scene_photo
from tests.server.uploads.conftest import Live, live  # noqa: F401 - the live-server fixture

LIMIT = 200_000  # the server's upload limit in the capture test: a 16 KB photo passes, a 270 KB one does not


def log_in(tablet: Tablet, username: str, password: str = PASSWORD) -> None:
    page = tablet.page
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("[data-testid=login-form] button[type=submit]")


def error_text(tablet: Tablet) -> str:
    tablet.page.wait_for_selector("[data-testid=error]")
    return tablet.page.locator("[data-testid=error]").inner_text()


def test_a_tablet_or_an_account_that_may_not_sync_is_told_why(app: Flask, world: World,
                                                              live: Live,  # noqa: F811 - the imported fixture
                                                              tablets: Any) -> None:
    tablet = tablets(live.url, "refused")
    page = tablet.open(path="/field/#enrol=ABCD-EFGH-JKLM")  # a QR link whose code was never issued
    text = error_text(tablet)
    assert tablet.screen() == "enrol" and "登记码" in text and "invalid" not in text
    tablet.shot("01-enrol-wrong-code")
    page.fill("input[name=code]", "12")
    page.click("[data-testid=enrol-form] button[type=submit]")
    page.wait_for_selector("[data-testid=error]:has-text('12 位')")

    code = enrolment_code(app, "SCJG", "SCJG-TAB1")
    page.fill("input[name=code]", code)
    page.click("[data-testid=enrol-form] button[type=submit]")
    tablet.wait_screen("login")

    # An inspector of the ecology department on the market department's tablet.
    log_in(tablet, "e-insp")
    text = error_text(tablet)
    assert tablet.screen() == "login" and "部门" in text, text
    tablet.shot("02-login-other-department")

    # The market's inspector starts the inspection; then an administrator retires the tablet.
    log_in(tablet, "m-insp")
    tablet.wait_screen("tasks")
    page.wait_for_selector("[data-testid=task-row]")
    enrolment.retire(SYSTEM, "SCJG-TAB1")
    db.session.commit()
    page.click("[data-testid=task-row]")
    page.click("[data-testid=start]")
    tablet.wait_screen("inspect-overview")
    page.fill("input[name=place]", "仓库")
    page.locator("input[name=place]").blur()
    page.goto(live.url + "/field/#/sync")
    tablet.wait_screen("sync")
    page.click("[data-testid=sync-now]")
    page.wait_for_selector("[data-testid=sync-error]")
    refused = page.locator("[data-testid=sync-error]").inner_text()
    assert "停用" in refused or "登记" in refused, refused
    assert int(page.locator("[data-testid=sync-pending]").get_attribute("data-count")) >= 2  # nothing lost
    tablet.shot("03-sync-retired-tablet")

    # Log off: the retired tablet cannot log in again; the captured record stays on it.
    page.click("[data-testid=logoff]")
    tablet.wait_screen("login")
    log_in(tablet, "m-insp")
    text = error_text(tablet)
    assert tablet.screen() == "login" and ("停用" in text or "登记" in text), text
    tablet.shot("04-login-retired-tablet")


def test_wrong_offline_passwords_lock_the_tablet_until_an_online_log_in(app: Flask, world: World,
                                                                        live: Live,  # noqa: F811 - imported fixture
                                                                        tablets: Any) -> None:
    tablet = tablets(live.url, "locked")
    page = tablet.open(path=f"/field/#enrol={enrolment_code(app, 'SCJG', 'SCJG-TAB1')}")
    tablet.wait_screen("login")
    log_in(tablet, "m-insp")
    tablet.wait_screen("tasks")
    page.wait_for_function("() => navigator.serviceWorker.controller !== null")
    tablet.offline(True)
    page.reload()
    tablet.wait_screen("unlock")
    for left in (4, 3, 2, 1):
        log_in(tablet, "m-insp", "wrong-password")
        page.wait_for_selector(f"[data-testid=error]:has-text('还可尝试 {left} 次')")
    log_in(tablet, "m-insp", "wrong-password")
    page.wait_for_selector("[data-testid=error]:has-text('已锁定')")
    log_in(tablet, "m-insp")  # even the right password: locked until the server confirms it
    page.wait_for_selector("[data-testid=error]:has-text('已锁定')")
    assert tablet.screen() == "unlock"
    tablet.shot("01-unlock-locked")
    tablet.offline(False)
    page.reload()
    tablet.wait_screen("login")
    log_in(tablet, "m-insp")
    tablet.wait_screen("tasks")
    page.wait_for_selector("[data-testid=task-row]")  # the data kept on the tablet is back


@pytest.fixture
def app(database_url: str, tmp_path: Path) -> Iterator[Flask]:
    """The server with a small upload limit, which the app learns and applies at capture."""
    built = _build_app(database_url, tmp_path / "var", env_extra={"INSPECT_ONCE_MAX_UPLOAD_BYTES": str(LIMIT)})
    with built.app_context():
        yield built
        db.session.remove()
        db.engine.dispose()


def test_files_are_refused_at_capture_with_the_reason(app: Flask, world: World,
                                                      live: Live,  # noqa: F811 - the imported fixture
                                                      tablets: Any, tmp_path: Path) -> None:
    not_a_photo = tmp_path / "IMG_0100.jpg"
    not_a_photo.write_text("这不是照片，是一份文本文件\n" * 100, encoding="utf-8")
    small = certificate_photo(tmp_path / "IMG_0101.jpg", "CERT-M-001")
    large = scene_photo(tmp_path / "IMG_0102.jpg")
    assert small.stat().st_size < LIMIT < large.stat().st_size

    # The inspector's certificate was suspended this morning: the app says so at the certificate photo.
    result = app.test_cli_runner().invoke(args=["set-certificate-status", "CERT-M-001", "suspended",
                                                "--reason", "暂停执法资格"])
    assert result.exit_code == 0, result.output
    tablet = tablets(live.url, "capture")
    page = tablet.open(path=f"/field/#enrol={enrolment_code(app, 'SCJG', 'SCJG-TAB1')}")
    tablet.wait_screen("login")
    log_in(tablet, "m-insp")
    tablet.wait_screen("tasks")
    page.click("[data-testid=task-row]")
    page.click("[data-testid=start]")
    tablet.wait_screen("inspect-overview")
    page.goto(f"{live.url}/field/#/inspect/{world.task.id}/certificate")
    tablet.wait_screen("inspect-certificate")
    page.set_input_files("[data-testid=certificate-photo] input", str(small))
    check = page.locator("[data-testid=certificate-check]")
    check.wait_for()
    assert check.get_attribute("data-state") == "invalid" and "已暂停" in check.inner_text(), check.inner_text()
    page.wait_for_selector("[data-testid=capture-note].ok")  # the photo is kept as evidence all the same
    tablet.shot("05-certificate-suspended")
    page.goto(f"{live.url}/field/#/inspect/{world.task.id}/findings")
    tablet.wait_screen("inspect-findings")
    ours = page.locator("[data-testid=finding][data-check-item=SCJG-01]")
    ours.locator("button[data-result=compliant]").click()
    page.wait_for_selector("[data-check-item=SCJG-01] [data-testid=add-photo][aria-disabled=false]")
    note = ours.locator("[data-testid=capture-note]")

    ours.locator("[data-testid=add-photo] input").set_input_files(str(not_a_photo))
    page.wait_for_selector("[data-testid=capture-note][data-code=not-media]")
    assert "不是照片或视频" in note.inner_text()
    tablet.shot("06-capture-not-media")

    ours.locator("[data-testid=add-photo] input").set_input_files(str(large))
    page.wait_for_selector("[data-testid=capture-note][data-code=too-large]")
    assert "上限" in note.inner_text() and "195 KB" in note.inner_text()
    tablet.shot("07-capture-too-large")

    ours.locator("[data-testid=add-photo] input").set_input_files(str(small))
    page.wait_for_selector("[data-check-item=SCJG-01] [data-testid=capture-note].ok")
    ours.locator("[data-testid=media-thumb]").first.wait_for()  # the note can show before the list re-renders
    assert ours.locator("[data-testid=media-thumb]").count() == 1

    # The tablet's storage is nearly full: the app warns, refuses the next file, and keeps what it has.
    # (Chromium's CDP quota override does not reach a persistent profile's page: the browser's answer is
    # narrowed in the page instead, as a tablet with 64 KB left would give it.)
    page.evaluate("""() => {
      const real = navigator.storage.estimate.bind(navigator.storage);
      navigator.storage.estimate = async () => { const e = await real(); return {...e, quota: e.usage + 65536}; };
    }""")
    ours.locator("[data-testid=add-photo] input").set_input_files(str(small))
    page.wait_for_selector("[data-testid=capture-note][data-code=quota]")
    assert "存储空间不足" in note.inner_text()
    assert ours.locator("[data-testid=media-thumb]").count() == 1
    tablet.shot("08-capture-quota")
    page.goto(live.url + "/field/#/sync")
    tablet.wait_screen("sync")
    page.wait_for_selector("[data-testid=storage-low]")
    tablet.shot("09-sync-storage-low")


def _offline_record_with_place(app: Flask, tablet: Any, place: str) -> Any:
    """Enrol, log in as m-insp, go offline, start the task's record and type its place; returns the page."""
    page = tablet.open(path=f"/field/#enrol={enrolment_code(app, 'SCJG', 'SCJG-TAB1')}")
    tablet.wait_screen("login")
    log_in(tablet, "m-insp")
    tablet.wait_screen("tasks")
    page.wait_for_selector("[data-testid=task-row]")
    tablet.offline(True)
    page.click("[data-testid=task-row]")
    page.click("[data-testid=start]")
    tablet.wait_screen("inspect-overview")
    page.fill("input[name=place]", place)
    page.locator("input[name=place]").blur()
    return page


def test_records_the_server_refuses_are_set_aside_with_the_reason_and_kept(app: Flask, world: World,
                                                                           live: Live,  # noqa: F811 - imported
                                                                           tablets: Any) -> None:
    from server.tasks.service import close_task

    task_id = world.task.id
    tablet = tablets(live.url, "set-aside")
    page = _offline_record_with_place(app, tablet, "仓库")
    # Meanwhile the office closes the task: what the tablet captured can no longer be stored.
    close_task(SYSTEM, task_id)
    db.session.commit()
    page.goto(f"{live.url}/field/#/sync")
    tablet.wait_screen("sync")
    tablet.offline(False)
    page.wait_for_selector("[data-testid=refused-item][data-code=task-closed]", timeout=60_000)
    refused = page.locator("[data-testid=refused]").inner_text()
    assert "检查任务已关闭" in refused and "task-closed" not in refused, refused
    page.wait_for_selector("[data-testid=sync-pending][data-count='0']", timeout=30_000)
    # Set aside, not lost: what it held stays on the tablet and is shown.
    assert "检查地点：仓库" in page.locator("[data-testid=refused]").inner_text()
    tablet.shot("01-sync-set-aside")


def test_a_password_changed_on_the_server_carries_the_waiting_records_over(app: Flask, world: World,
                                                                           live: Live,  # noqa: F811 - imported
                                                                           tablets: Any) -> None:
    from server.auth import passwords
    from server.directory.models import User

    tablet = tablets(live.url, "new-password")
    page = _offline_record_with_place(app, tablet, "二号仓库")
    page.click("[data-testid=logoff]")
    tablet.wait_screen("unlock")

    # The administrator sets a new password; the tablet's records are still under the old one.
    user = db.session.get(User, world.people["m-insp"].id)
    user.password_hash = passwords.hash_password("a-new-password-2026")
    db.session.commit()
    tablet.offline(False)
    page.reload()
    tablet.wait_screen("login")
    log_in(tablet, "m-insp", "a-new-password-2026")
    page.wait_for_selector("[data-testid=old-password-hint]")
    assert "未同步" in error_text(tablet)
    tablet.shot("01-login-old-password-asked")
    page.fill("input[name=old_password]", PASSWORD)
    page.click("[data-testid=login-form] button[type=submit]")
    tablet.wait_screen("tasks")
    page.goto(f"{live.url}/field/#/inspect/{world.task.id}/overview")
    tablet.wait_screen("inspect-overview")
    assert page.locator("input[name=place]").input_value() == "二号仓库"
    # From now on the new password unlocks the tablet offline.
    page.click("[data-testid=logoff]")
    tablet.offline(True)
    page.reload()
    tablet.wait_screen("unlock")
    log_in(tablet, "m-insp", "a-new-password-2026")
    tablet.wait_screen("tasks")
