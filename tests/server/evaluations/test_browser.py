"""In Chromium on a phone: the enterprise opens its inspection code's URL and rates the visit; then a supervisor
logged in to the review app sees the rating beside the record. Screenshots go to the artifacts folder."""
from __future__ import annotations

from typing import Any

import pytest
from flask import Flask

from tests.conftest import VALID_CODE, World
from tests.server.evaluations.conftest import code_token, visit
from tests.server.review.test_browser import ARTIFACTS, _log_in, browser  # noqa: F401 - the browser fixture
from tests.server.uploads.conftest import Live, live  # noqa: F401 - the live-server fixture

PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True, "device_scale_factor": 2,
         "locale": "zh-CN"}


def test_the_enterprise_rates_the_visit_on_a_phone_and_the_supervisor_sees_it(
        app: Flask, world: World, live: Live, browser: Any,  # noqa: F811 - the imported fixtures
        request: pytest.FixtureRequest) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    suffix = request.node.callspec.id if hasattr(request.node, "callspec") else "run"
    inspection = visit(world)
    token = code_token(app, world.task)

    phone = browser.new_context(**PHONE)
    page = phone.new_page()
    page.goto(f"{live.url}/public/c/{token}")
    page.click("[data-testid=evaluate]")
    page.wait_for_load_state()
    assert page.locator("[data-testid=evaluation-state]").get_attribute("data-state") == "open"
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390  # nothing wider than the phone
    page.screenshot(path=str(ARTIFACTS / f"evaluation-phone-form-{suffix}.png"), full_page=True)
    form = page.locator("[data-testid=rating-form]")
    form.locator("input[name=certificate_shown][value=yes]").check()
    form.locator("input[name=courtesy][value=basically_satisfied]").check()
    form.locator("input[name=disturbed_production][value=yes]").check()
    form.locator("textarea[name=comment]").fill("检查时间较长，影响了上午的生产")
    form.locator("input[name=credit_code]").fill(VALID_CODE.lower())  # typed as it comes: capitals do not matter
    form.locator("[data-testid=submit-rating]").tap()
    page.wait_for_load_state()
    assert "评价已提交" in page.locator("[data-testid=notice]").inner_text()
    assert page.locator("[data-testid=evaluation-received]").is_visible()
    page.screenshot(path=str(ARTIFACTS / f"evaluation-phone-done-{suffix}.png"), full_page=True)
    phone.close()

    office = browser.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN")
    page = office.new_page()
    _log_in(page, live.url, "m-sup")
    page.goto(f"{live.url}/review/inspections/{inspection.id}#evaluation")
    section = page.locator("[data-testid=enterprise-evaluation]")
    assert section.locator("h2").inner_text() == "企业评价"
    assert section.locator("[data-testid=rating-courtesy]").inner_text() == "基本满意"
    assert section.locator("[data-testid=rating-disturbed]").inner_text() == "是"
    assert "检查时间较长" in section.inner_text()
    section.screenshot(path=str(ARTIFACTS / f"evaluation-review-{suffix}.png"))
    office.close()
