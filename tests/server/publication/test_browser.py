"""In a real browser (Debian's Chromium through Playwright, as tests/server/review/test_browser.py): the deadlines
view of the review app with its publish action, and the public results page with no log-in. Screenshots go to
test-artifacts/ (``INSPECT_ONCE_TEST_ARTIFACTS``)."""
from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from server.auth.policy import SYSTEM
from server.decisions.models import DecisionKind, EnforcementDecision
from server.directory.models import Certificate, Department, Role, User
from server.extensions import db
from server.planning.models import Draw
from server.publication import service
from server.seed import DEMO_PASSWORD, seed_demo_city
from server.tasks.models import InspectionTask
from tests.server.publication.conftest import made_decision
from tests.server.review.test_browser import ARTIFACTS, browser  # noqa: F401 - the Chromium fixture
from tests.server.uploads.conftest import Live, live  # noqa: F401 - the live-server fixture


def _demo_decisions() -> dict[str, Any]:
    """Decisions of market regulation on the demo city's visits: one due soon, one overdue, one due later, one
    beyond the calendar; and on the drawn visits published results, one corrected, one withdrawn."""
    seed_demo_city()
    db.session.commit()
    market = db.session.scalar(select(Department).where(Department.code == "SCJG"))
    drawn = [uuid for draw in db.session.scalars(select(Draw)) for uuid in draw.task_ids]
    decided = set(db.session.scalars(select(EnforcementDecision.task_id).where(  # the demo's own decisions
        EnforcementDecision.department_id == market.id)))
    tasks = [t for t in db.session.scalars(select(InspectionTask).order_by(InspectionTask.created_at))
             if market.id in {m.department_id for m in t.members} and t.id not in decided]
    drawn_tasks = [t for t in tasks if str(t.id) in drawn]
    other = [t for t in tasks if str(t.id) not in drawn] + drawn_tasks[2:]
    assert len(other) >= 4 and len(drawn_tasks) >= 2, (len(other), len(drawn_tasks))
    made = {
        "soon": made_decision(other[0], market.id, DecisionKind.PENALTY, date(2026, 3, 2), "责令改正，罚款五千元"),
        "overdue": made_decision(other[1], market.id, DecisionKind.RECTIFY_ORDER, date(2026, 1, 20), "责令限期改正"),
        "due": made_decision(other[2], market.id, DecisionKind.NO_IRREGULARITY, date(2026, 3, 9), "未发现违法违规行为"),
        "unknown": made_decision(other[3], market.id, DecisionKind.NO_IRREGULARITY, date(2026, 12, 24), "未发现问题"),
    }
    published = made_decision(drawn_tasks[0], market.id, DecisionKind.RECTIFY_ORDER, date(2026, 3, 3),
                              "责令于2026年3月31日前改正")
    first = service.publish(SYSTEM, published.id)
    service.correct(SYSTEM, first.id, "改正期限有误", conclusion="责令于2026年4月30日前改正")
    gone = made_decision(drawn_tasks[1], market.id, DecisionKind.PENALTY, date(2026, 3, 4), "罚款二千元")
    service.withdraw(SYSTEM, service.publish(SYSTEM, gone.id).id, "该处罚决定已被行政复议撤销")
    db.session.commit()
    return made


def test_deadlines_view_and_public_page_in_the_browser(on_publication_day: None, app: Flask, live: Live,  # noqa: F811
                                                       browser: Any, request: pytest.FixtureRequest) -> None:  # noqa: F811
    made = _demo_decisions()
    suffix = request.node.callspec.id if hasattr(request.node, "callspec") else "run"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN")
    page = context.new_page()
    page.goto(live.url + "/review/")
    page.fill("input[name=username]", "scjg-supervisor")
    page.fill("input[name=password]", DEMO_PASSWORD)
    page.click("form[action='/review/login'] button[type=submit]")
    page.wait_for_load_state()
    page.click("header nav >> text=公开期限")
    page.wait_for_load_state()
    assert page.url.endswith("/review/publication")
    states = page.locator("[data-testid=deadline-row]").evaluate_all(
        "rows => Object.fromEntries(rows.map(r => [r.dataset.decision, r.dataset.state]))")
    assert {str(d.id): k for k, d in made.items()}.items() <= states.items(), states
    assert page.locator("[data-testid=department]").count() == 1  # a supervisor: their own department
    assert page.locator("[data-testid=count-overdue]").inner_text() == "已逾期: 1"
    assert "工作日历" in page.locator("[data-testid=calendar-error]").first.inner_text() or \
        "尚未收录" in page.locator("[data-testid=calendar-error]").first.inner_text()
    page.screenshot(path=str(ARTIFACTS / f"publication-deadlines-{suffix}.png"), full_page=True)

    row = page.locator(f"[data-testid=deadline-row][data-decision='{made['soon'].id}']")
    row.locator("button[type=submit]").click()
    page.wait_for_load_state()
    assert "已公开" in page.locator(".flash.success").inner_text()
    assert page.locator(f"[data-testid=deadline-row][data-decision='{made['soon'].id}']").count() == 0
    context.close()

    # The public: no log-in, in Chinese, nothing personal.
    public = browser.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN")
    page = public.new_page()
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))
    answer = page.goto(live.url + "/public/")
    assert answer.status == 200 and "/review/login" not in page.url
    assert all(url.startswith(live.url) for url in requested), requested  # nothing from a CDN
    results = page.locator("[data-testid=result]")
    assert results.count() >= 2
    assert "责令改正，罚款五千元" in page.locator("[data-testid=results]").inner_text()  # just published
    # This test's correction (the demo city has one of its own).
    corrected = page.locator("[data-testid=result]:has([data-testid=correction])").filter(has_text="改正期限有误")
    assert "更正（第 2 版）" in corrected.inner_text() and "改正期限有误" in corrected.inner_text()
    corrected.locator("details summary").click()
    assert "责令于2026年3月31日前改正" in corrected.locator("[data-testid=earlier-version]").inner_text()
    withdrawn = page.locator("[data-testid=result][data-state=withdrawn]")
    assert "已撤销" in withdrawn.inner_text() and "罚款二千元" not in withdrawn.inner_text()
    assert "该处罚决定已被行政复议撤销" in withdrawn.inner_text()
    plans = page.locator("[data-testid=plan]")
    assert plans.count() >= 1 and page.locator("[data-testid=drawn-target]").count() >= 1
    assert "双随机" in page.locator("[data-testid=results]").inner_text()
    text = page.locator("body").inner_text()
    inspectors = list(db.session.scalars(select(User).where(User.role == Role.INSPECTOR)))
    for secret in {u.full_name for u in inspectors} | set(db.session.scalars(select(Certificate.number))):
        assert secret not in text, secret
    page.screenshot(path=str(ARTIFACTS / f"public-results-{suffix}.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})  # a phone
    page.screenshot(path=str(ARTIFACTS / f"public-results-phone-{suffix}.png"), full_page=True)
    public.close()
