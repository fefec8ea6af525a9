"""The legal reviewer's queue in a real browser (Debian's Chromium through Playwright, as the review app's own
browser tests drive it): the queue, the record link, the sign-off form, a refusal, the sign-off; screenshots."""
from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from flask import Flask

from server.decisions import service as decisions
from server.decisions.models import LegalReview
from server.extensions import db
from server.review.sessions import principal_of
from tests.server.decisions.conftest import Case
from tests.server.review.test_browser import ARTIFACTS, _log_in, browser  # noqa: F401 - the browser fixture
from tests.server.uploads.conftest import Live, live  # noqa: F401 - the live-server fixture


def test_a_legal_reviewer_signs_off_a_major_decision_in_the_browser(
        app: Flask, case: Case, live: Live,  # noqa: F811 - the imported fixture
        browser: Any, request: pytest.FixtureRequest) -> None:  # noqa: F811
    world = case.world
    drafted = decisions.create_decision(principal_of(world.people["e-sup"]), case.inspection.id, {
        "kind": "penalty", "amount_yuan": Decimal("50000"),
        "conclusion": "排污许可证过期仍排放污染物，责令停止违法行为",
        "legal_basis": "《排污许可管理条例》第三十三条", "circumstances": ["major_public_interest"]})
    db.session.commit()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    suffix = request.node.callspec.id if hasattr(request.node, "callspec") else "run"
    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="zh-CN")
    page = context.new_page()
    _log_in(page, live.url, "e-legal")
    page.click("nav a[href='/review/legal']")
    rows = page.locator("[data-testid=legal-row]")
    assert rows.count() == 1
    row = rows.first.inner_text()
    assert "祁阳市浯溪食品有限公司" in row and "行政处罚" in row and "50000.00 元" in row
    assert "罚款超过 10000.00 元" in row and "涉及重大公共利益" in row
    assert rows.first.locator("[data-testid=record-link]").get_attribute("href") == \
        f"/review/inspections/{case.inspection.id}"
    page.screenshot(path=str(ARTIFACTS / f"legal-queue-{suffix}.png"), full_page=True)

    rows.first.locator("[data-testid=review-link]").click()
    page.wait_for_load_state()
    assert "排污许可证过期仍排放污染物" in page.locator("[data-testid=conclusion]").inner_text()
    # No outcome chosen: the form comes back with the reason, nothing recorded.
    page.fill("#opinion", "事实清楚，证据确凿，适用依据正确，程序合法。")
    page.click("[data-testid=sign-off]")
    page.wait_for_load_state()
    assert "请选择是否同意" in page.content()
    assert page.input_value("#opinion") == "事实清楚，证据确凿，适用依据正确，程序合法。"
    page.check("input[name=outcome][value=approved]")
    page.screenshot(path=str(ARTIFACTS / f"legal-sign-off-{suffix}.png"), full_page=True)
    page.click("[data-testid=sign-off]")
    page.wait_for_load_state()
    assert page.url.endswith("/review/legal")
    assert "法制审核意见已记录：同意" in page.locator(".flash").inner_text()
    assert page.locator("[data-testid=legal-empty]").count() == 1
    db.session.expire_all()
    review = db.session.get(LegalReview, decisions.get_decision(principal_of(world.people["e-sup"]),
                                                               drafted.id).legal_review_id)
    assert review is not None and review.reviewer_id == case.legal["e-legal"].id
    assert review.reviewed_on == case.today and review.opinion.startswith("事实清楚")
    context.close()
