"""A new deployment of the app never strands what the old one stored: drafts captured offline on version N open,
offline, on version N+1 after its service worker took over."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Flask

from tests.conftest import PASSWORD, World
from tests.field_app.conftest import build_app, enrolment_code
from tests.server.uploads.conftest import Live, live  # noqa: F401 - the live-server fixture

NOTE = "版本升级前离线填写的检查说明"


def test_drafts_of_version_n_open_offline_on_version_n_plus_1(app: Flask, world: World,
                                                               live: Live,  # noqa: F811 - the imported fixture
                                                               tablets: Any, tmp_path: Path) -> None:
    task_id = str(world.task.id)
    tablet = tablets(live.url, "update")
    page = tablet.open(path=f"/field/#enrol={enrolment_code(app, 'SCJG', 'SCJG-TAB1')}")
    tablet.wait_screen("login")
    page.fill("input[name=username]", "m-insp")
    page.fill("input[name=password]", PASSWORD)
    page.click("[data-testid=login-form] button[type=submit]")
    tablet.wait_screen("tasks")
    page.wait_for_selector("[data-testid=task-row]")
    page.wait_for_function("() => navigator.serviceWorker.controller !== null")
    old_script = page.evaluate("() => document.querySelector('script[type=module]').src")

    # Version N, offline: a draft finding.
    tablet.offline(True)
    page.reload()
    tablet.wait_screen("unlock")
    page.fill("input[name=password]", PASSWORD)
    page.click("[data-testid=login-form] button[type=submit]")
    tablet.wait_screen("tasks")
    page.click("[data-testid=task-row]")
    page.click("[data-testid=start]")
    tablet.wait_screen("inspect-overview")
    page.goto(f"{live.url}/field/#/inspect/{task_id}/findings")
    tablet.wait_screen("inspect-findings")
    ours = page.locator("[data-testid=finding][data-check-item=SCJG-01]")
    ours.locator("button[data-result=non_compliant]").click()
    page.wait_for_selector("[data-check-item=SCJG-01] textarea:not([disabled])")
    ours.locator("textarea[name=note]").fill(NOTE)
    ours.locator("textarea[name=note]").blur()
    page.wait_for_timeout(300)
    tablet.close()

    # Version N+1 is deployed; the tablet opens the app online and is offered the update.
    app.config["FIELD_APP_DIR"] = str(build_app(tmp_path / "dist-n1", "N+1"))
    page = tablet.open()
    banner = page.locator("[data-testid=update-banner]")
    banner.wait_for(timeout=30_000)
    assert "本机数据会保留" in banner.inner_text()
    tablet.shot("01-update-offered")
    banner.locator("button").click()
    page.wait_for_function("old => document.querySelector('script[type=module]')?.src !== old", arg=old_script,
                           timeout=30_000)
    tablet.wait_screen(None)

    # Offline on N+1: the draft is there.
    tablet.offline(True)
    page.reload()
    tablet.wait_screen("unlock")
    page.fill("input[name=password]", PASSWORD)
    page.click("[data-testid=login-form] button[type=submit]")
    tablet.wait_screen("tasks")
    page.goto(f"{live.url}/field/#/inspect/{task_id}/findings")
    tablet.wait_screen("inspect-findings")
    ours = page.locator("[data-testid=finding][data-check-item=SCJG-01]")
    assert ours.locator("textarea[name=note]").input_value() == NOTE
    assert ours.locator("button[data-result=non_compliant]").get_attribute("aria-pressed") == "true"
    page.goto(f"{live.url}/field/#/sync")
    tablet.wait_screen("sync")
    assert "(N+1)" in page.locator("[data-testid=app-version]").inner_text()
    assert int(page.locator("[data-testid=sync-pending]").get_attribute("data-count")) >= 2
    tablet.shot("02-n-plus-1-offline-drafts")
