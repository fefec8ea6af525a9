"""The loop back to the field: a supervisor returns a finished record with comments in the review app, the tablet
shows them at its next sync, the inspector corrects the record and finishes it again, and the review queue shows
it resubmitted."""
from __future__ import annotations

from typing import Any

from flask import Flask

from server.sync.entities import inspection_id_for
from tests.conftest import PASSWORD, World
from tests.field_app.conftest import ARTIFACTS, CHROMIUM_ARGS, Tablet, enrolment_code, require_chromium
from tests.server.uploads.conftest import Live, live  # noqa: F401 - the live-server fixture

COMMENT = "营业执照公示一项结论与现场照片不符，请核实后修改"


def finish(tablet: Tablet, live_url: str, task_id: str, result: str, note: str, button: str = "完成检查") -> None:
    page = tablet.page
    page.goto(f"{live_url}/field/#/inspect/{task_id}/findings")
    tablet.wait_screen("inspect-findings")
    ours = page.locator("[data-testid=finding][data-check-item=SCJG-01]")
    ours.locator(f"button[data-result={result}]").click()
    page.wait_for_selector(f"[data-check-item=SCJG-01] button[data-result={result}][aria-pressed=true]")
    ours.locator("textarea[name=note]").fill(note)
    ours.locator("textarea[name=note]").blur()
    page.goto(f"{live_url}/field/#/inspect/{task_id}/finish")
    tablet.wait_screen("inspect-finish")
    assert page.locator("[data-testid=finish]").inner_text().strip() == button
    page.click("[data-testid=finish]")
    page.wait_for_selector("[data-testid=finished]")


def test_a_returned_record_comes_back_to_the_tablet_and_is_resubmitted(app: Flask, world: World,
                                                                       live: Live,  # noqa: F811 - imported fixture
                                                                       tablets: Any, playwright_driver: Any) -> None:
    task_id = str(world.task.id)
    inspection_id = str(inspection_id_for(world.task.id))
    tablet = tablets(live.url, "returned")
    page = tablet.open(path=f"/field/#enrol={enrolment_code(app, 'SCJG', 'SCJG-TAB1')}")
    tablet.wait_screen("login")
    page.fill("input[name=username]", "m-insp")
    page.fill("input[name=password]", PASSWORD)
    page.click("[data-testid=login-form] button[type=submit]")
    tablet.wait_screen("tasks")
    page.click("[data-testid=task-row]")
    page.click("[data-testid=start]")
    tablet.wait_screen("inspect-overview")
    finish(tablet, live.url, task_id, "compliant", "营业执照已公示")
    page.goto(live.url + "/field/#/sync")
    tablet.wait_screen("sync")
    tablet.sync_now(0)

    # The supervisor returns it in the review app (another browser).
    browser = playwright_driver.chromium.launch(executable_path=require_chromium(), args=CHROMIUM_ARGS, headless=True)
    try:
        review = browser.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN").new_page()
        review.goto(live.url + "/review/")
        review.fill("input[name=username]", "m-sup")
        review.fill("input[name=password]", PASSWORD)
        review.click("form[action='/review/login'] button[type=submit]")
        review.wait_for_load_state()
        review.goto(f"{live.url}/review/inspections/{inspection_id}")
        review.fill("[data-testid=decision-form] textarea[name=comment]", COMMENT)
        review.click("[data-testid=decision-form] button[value=return]")
        review.wait_for_load_state()
        assert review.locator("[data-testid=review-status]").inner_text() == "已退回"

        # The tablet's next sync brings the comment; the task says it was returned.
        tablet.sync_now(0)
        page.goto(live.url + "/field/#/tasks")
        tablet.wait_screen("tasks")
        page.wait_for_selector("[data-testid=task-status]:has-text('已退回')")
        tablet.shot("01-tasks-returned")
        page.click("[data-testid=task-row]")
        tablet.wait_screen("task")
        assert page.locator("[data-testid=review-comment]").inner_text() == COMMENT
        assert "测试m-sup" in page.locator("[data-testid=returned]").inner_text()
        tablet.shot("02-task-returned")
        page.click("[data-testid=start]")
        tablet.wait_screen("inspect-overview")
        assert page.locator("[data-testid=review-comment]").inner_text() == COMMENT

        # Corrected and finished again: resubmitted in the queue.
        finish(tablet, live.url, task_id, "non_compliant", "营业执照未公示，已责令改正", button="修改完毕，重新提交")
        tablet.shot("03-finished-again")
        page.goto(live.url + "/field/#/sync")
        tablet.wait_screen("sync")
        tablet.sync_now(0)
        review.goto(live.url + "/review/")
        link = review.locator(f"a[href='/review/inspections/{inspection_id}']")
        row = review.locator("[data-testid=queue-row]", has=link)
        assert row.locator(".status.resubmitted").count() == 1, row.inner_text()
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        review.screenshot(path=str(ARTIFACTS / "returned-04-review-queue-resubmitted.png"), full_page=True)
    finally:
        browser.close()
