"""Two tablets of two departments capture the same joint inspection offline and converge: one record on the server,
each department's finding, both tablets showing the same merged record, and the field both changed reported as a
conflict on the tablet whose edit lost."""
from __future__ import annotations

from typing import Any

from flask import Flask
from sqlalchemy import select

from server.extensions import db
from server.sync.entities import inspection_id_for
from server.sync.models import SyncedEntity
from tests.conftest import PASSWORD, World
from tests.field_app.conftest import Tablet, enrolment_code
from tests.server.uploads.conftest import Live, live  # noqa: F401 - the live-server fixture


def ready(tablet: Tablet, app: Flask, department: str, device: str, username: str) -> None:
    page = tablet.open(path=f"/field/#enrol={enrolment_code(app, department, device)}")
    tablet.wait_screen("login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("[data-testid=login-form] button[type=submit]")
    tablet.wait_screen("tasks")
    page.wait_for_selector("[data-testid=task-row]")
    page.wait_for_function("() => navigator.serviceWorker.controller !== null")


def capture(tablet: Tablet, base: str, task_id: str, item: str, result: str, note: str, place: str) -> None:
    page = tablet.page
    page.click("[data-testid=task-row]")
    page.click("[data-testid=start]")
    tablet.wait_screen("inspect-overview")
    page.fill("input[name=place]", place)
    page.locator("input[name=place]").blur()
    page.goto(f"{base}/field/#/inspect/{task_id}/findings")
    tablet.wait_screen("inspect-findings")
    ours = page.locator(f"[data-testid=finding][data-check-item={item}]")
    assert ours.get_attribute("data-own") == "true"
    ours.locator(f"button[data-result={result}]").click()
    page.wait_for_selector(f"[data-check-item={item}] textarea:not([disabled])")
    ours.locator("textarea[name=note]").fill(note)
    ours.locator("textarea[name=note]").blur()


def sync(tablet: Tablet, base: str) -> None:
    page = tablet.page
    page.goto(f"{base}/field/#/sync")
    tablet.wait_screen("sync")
    tablet.sync_now(0)


def test_two_departments_capture_one_joint_inspection_offline_and_converge(app: Flask, world: World,
                                                                           live: Live,  # noqa: F811
                                                                           tablets: Any) -> None:
    task_id = str(world.task.id)
    inspection_id = inspection_id_for(world.task.id)
    market_id, ecology_id = world.market.id, world.ecology.id
    market, ecology = tablets(live.url, "joint-scjg"), tablets(live.url, "joint-sthj")
    ready(market, app, "SCJG", "SCJG-TAB1", "m-insp")
    ready(ecology, app, "STHJ", "STHJ-TAB1", "e-insp")
    for tablet in (market, ecology):
        tablet.offline(True)
        tablet.page.reload()
        tablet.wait_screen("unlock")
        tablet.page.fill("input[name=password]", PASSWORD)
        tablet.page.click("[data-testid=login-form] button[type=submit]")
        tablet.wait_screen("tasks")
    capture(market, live.url, task_id, "SCJG-01", "compliant", "营业执照已在大厅公示", "生产车间")
    capture(ecology, live.url, task_id, "STHJ-01", "non_compliant", "排污许可证已过期", "污水处理站")
    ecology.shot("01-offline-findings")

    # They come back one after the other: the market tablet syncs first, then the ecology tablet, then the market
    # tablet again (to get the ecology's record).
    market.offline(False)
    sync(market, live.url)
    ecology.offline(False)
    sync(ecology, live.url)
    sync(market, live.url)

    db.session.remove()
    entities = db.session.scalars(select(SyncedEntity).where(
        (SyncedEntity.id == inspection_id) | (SyncedEntity.inspection_id == inspection_id))).all()
    inspections = [e for e in entities if e.kind == "inspection"]
    findings = {e.department_id: e.fields for e in entities if e.kind == "finding"}
    assert len(inspections) == 1 and len(findings) == 2
    assert findings[market_id]["note"] == "营业执照已在大厅公示"
    assert findings[ecology_id]["result"] == "non_compliant"
    place = inspections[0].fields["place"]
    assert place in ("生产车间", "污水处理站")

    # Each tablet shows the other department's finding and the same merged place.
    for tablet, theirs, text in ((market, "STHJ-01", "不符合"), (ecology, "SCJG-01", "符合")):
        page = tablet.page
        page.goto(f"{live.url}/field/#/inspect/{task_id}/findings")
        tablet.wait_screen("inspect-findings")
        other = page.locator(f"[data-testid=finding][data-check-item={theirs}]")
        assert other.get_attribute("data-own") == "false" and f"组员已记录：{text}" in other.inner_text()
        page.goto(f"{live.url}/field/#/inspect/{task_id}/overview")
        tablet.wait_screen("inspect-overview")
        assert page.locator("input[name=place]").input_value() == place
    market.shot("02-market-sees-ecology")
    ecology.page.goto(f"{live.url}/field/#/inspect/{task_id}/findings")
    ecology.wait_screen("inspect-findings")
    ecology.shot("03-ecology-sees-market")

    # The place both changed offline: the tablet whose push met the other's edit (the second to sync) is told.
    page = ecology.page
    page.goto(f"{live.url}/field/#/sync")
    ecology.wait_screen("sync")
    page.wait_for_selector("[data-testid=conflict-item]")
    assert page.locator("[data-testid=sync-conflicts]").inner_text() != "与他人同时修改：0 处"
    assert "检查地点" in page.locator("[data-testid=conflicts]").inner_text()
    ecology.shot("04-sync-conflict")
