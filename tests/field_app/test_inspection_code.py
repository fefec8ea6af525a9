"""扫码入企 with no signal: the tablet pulls the task and its inspection code, loses the network, opens the task
from its service worker and shows the code full screen; the QR code on the screen (read by OpenCV from a
screenshot, as a phone's camera would) is the pulled URL; the record the tablet starts offline carries the token;
back online, an enterprise's phone opens the URL and the public page says the code is valid; past the window's
end the tablet says the code has expired."""
from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flask import Flask

from server.codes.service import issued_code
from server.extensions import db
from server.sync.entities import inspection_id_for
from server.sync.models import SyncedEntity
from server.tasks.models import InspectionTask
from tests.conftest import World
from tests.field_app.conftest import (
    ARTIFACTS,
    CHROMIUM_ARGS,
    PHONE,
    enrolment_code,
    open_task_offline,
    require_chromium,
)
from tests.field_app.test_offline_inspection import enrol_and_log_in, unlock
from tests.server.uploads.conftest import Live, live  # noqa: F401 - the live-server fixture


def read_qr(path: Path) -> str:
    """What a camera reads from the screen: OpenCV's detector on the screenshot as it is."""
    import cv2

    picture = cv2.imread(str(path))
    # The plain detector misreads about one code of this size in five (tokens differ per run: a new key per
    # test); the ArUco-based detector reads them all, the plain one stays as a second reader.
    for detector in (cv2.QRCodeDetectorAruco(), cv2.QRCodeDetector()):
        text, points, _ = detector.detectAndDecode(picture)
        if text:
            return str(text)
    raise AssertionError(f"no QR code read in {path}")


def test_the_tablet_shows_the_inspection_code_offline_and_a_phone_reads_it(
        app: Flask, world: World, live: Live,  # noqa: F811 - the imported fixture
        tablets: Any, playwright_driver: Any) -> None:
    task_uuid = world.task.id
    task_id = str(task_uuid)
    with app.test_request_context(base_url=live.url):
        code = issued_code(db.session.get(InspectionTask, task_uuid))
    assert code is not None

    tablet = tablets(live.url, "code")
    enrol_and_log_in(tablet, enrolment_code(app, "SCJG", "SCJG-TAB1"))
    # No network from here on: the app, the task and its code all come from the tablet.
    page = open_task_offline(tablet, unlock)
    tablet.shot("task", full_page=False)
    page.click("[data-testid=show-code]")
    tablet.wait_screen("code")
    view = page.locator("[data-testid=code-view]")
    assert view.get_attribute("data-state") == "valid"
    qr = page.locator("[data-testid=code-qr]")
    assert qr.get_attribute("data-url") == code.url
    box = qr.bounding_box()
    assert box["width"] >= 500 and box["y"] >= 0 and box["y"] + box["height"] <= 800  # large, whole on the screen
    text = view.inner_text()
    assert "祁阳市浯溪食品有限公司" in text and "有效期至" in text and "没有网络也能出示" in text
    assert page.locator("[data-testid=network]").count() == 0  # nothing but the code on the screen
    assert read_qr(tablet.shot("code-tablet", full_page=False)) == code.url

    # Held upright at phone size the code still fills the width and reads the same.
    page.set_viewport_size(PHONE)
    box = qr.bounding_box()
    assert box["width"] >= 340 and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
    assert read_qr(tablet.shot("code-phone-size", full_page=False)) == code.url
    page.click("[data-testid=close-code]")
    tablet.wait_screen("task")

    # The record started offline carries the token the tablet holds; the inspection screen shows the code too.
    page.click("[data-testid=start]")
    tablet.wait_screen("inspect-overview")
    tablet.shot("inspect-phone-size", full_page=False)
    page.click("[data-testid=show-code]")
    tablet.wait_screen("code")
    page.click("[data-testid=close-code]")
    tablet.wait_screen("inspect-overview")

    # Back online: the record syncs with its code.
    page.goto(live.url + "/field/#/sync")
    tablet.wait_screen("sync")
    tablet.offline(False)
    tablet.wait_for_sync(0)
    db.session.remove()
    record = db.session.get(SyncedEntity, inspection_id_for(task_uuid))
    assert record is not None and record.fields["inspection_code"] == code.token

    # The enterprise's phone opens what it scanned.
    browser = playwright_driver.chromium.launch(executable_path=require_chromium(), args=CHROMIUM_ARGS, headless=True)
    try:
        context = browser.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True,
                                      locale="zh-CN", timezone_id="Asia/Shanghai")
        context.clock.install(time=datetime.now(UTC))
        phone = context.new_page()
        answer = phone.goto(code.url)
        assert answer is not None and answer.status == 200
        verdict = phone.locator("[data-testid=verdict]")
        assert verdict.get_attribute("data-state") == "valid", verdict.inner_text()
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        phone.screenshot(path=str(ARTIFACTS / "code-phone-page.png"), full_page=True)
    finally:
        browser.close()

    # Past the window's end the tablet no longer offers the code.
    page.goto(f"{live.url}/field/#/code/{task_id}")
    tablet.wait_screen("code")
    assert view.get_attribute("data-state") == "valid"
    tablet.context.clock.fast_forward("09:00:00")
    page.wait_for_selector("[data-testid=code-view][data-state=expired]")
    assert "检查码已过期" in view.inner_text() and qr.count() == 0
    tablet.shot("code-expired", full_page=False)
    errors = [line for line in tablet.console if line.startswith("pageerror")]
    assert not errors, errors
