"""The inspection code checked on a phone with no network: the offline checker's routes, then the phone in Chromium.

The verifier itself is unit-tested in field_client/web/test/public-check.test.js on the Python side's vectors
(tests/protocol/code_vectors.json).
"""
from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from server.codes import service
from tests.conftest import World
from tests.server.review.test_browser import ARTIFACTS, browser  # noqa: F401 - the browser fixture
from tests.server.uploads.conftest import Live, live  # noqa: F401 - the live-server fixture

PHONE = {"width": 390, "height": 844}
SHOTS = Path("/tmp")


def _token(app: Flask, world: World) -> str:
    with app.test_request_context("/"):
        code = service.issued_code(world.task)
    assert code is not None
    return code.token


def _tampered(token: str) -> str:
    """The same signature over a payload naming another enterprise."""
    body, signature = token.split(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    payload["n"] = "祁阳市另一家食品有限公司"
    text = json.dumps(payload, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode("utf-8")
    return base64.urlsafe_b64encode(text).rstrip(b"=").decode("ascii") + "." + signature


def _require_checker_build(app: Flask) -> None:
    folder = Path(app.config["FIELD_APP_DIR"]) / "public-check"
    if not (folder / "code-check.js").is_file() or not (folder / "code-sw.js").is_file():
        pytest.fail("the offline checker is not built (field_client/web/dist/public-check): run `make web`; "
                    "make test builds it", pytrace=False)


def test_the_checker_is_served_for_the_code_pages_only(app: Flask, client: FlaskClient, world: World) -> None:
    _require_checker_build(app)
    page = client.get(f"/public/c/{_token(app, world)}").get_data(as_text=True)
    assert '<script src="/public/code-check.js" defer data-worker="/public/code-sw.js"' in page
    assert 'data-scope="/public/c/" data-keys="/public/code-keys.json"' in page

    worker = client.get("/public/code-sw.js")
    assert worker.status_code == 200 and worker.mimetype == "text/javascript"
    assert worker.headers["Service-Worker-Allowed"] == "/public/c/"
    assert worker.headers["Cache-Control"] == "no-cache"
    assert client.get("/public/code-sw.js", headers={"If-None-Match": worker.headers["ETag"]}).status_code == 304
    script = client.get("/public/code-check.js")
    assert script.status_code == 200 and script.mimetype == "text/javascript" and b"ed25519" in script.data.lower()

    offline = client.get("/public/code-offline.html")
    assert offline.status_code == 200 and "script-src 'self'" in offline.headers["Content-Security-Policy"]
    html = offline.get_data(as_text=True)
    assert 'data-page="code-offline"' in html and "/public/code-check.js" in html and "code.css" in html


def test_an_unbuilt_checker_leaves_the_code_page_working(app: Flask, client: FlaskClient, world: World,
                                                          tmp_path: Path) -> None:
    app.config["FIELD_APP_DIR"] = str(tmp_path)
    assert client.get("/public/code-sw.js").status_code == 404
    assert client.get(f"/public/c/{_token(app, world)}").status_code == 200


def _report(page: Any) -> dict[str, str]:
    page.wait_for_function("() => document.body.dataset.checked", timeout=20_000)
    return {"state": page.locator("[data-testid=verdict]").get_attribute("data-state"),
            "verdict": page.locator("[data-testid=verdict]").inner_text(),
            "text": page.locator("main").inner_text()}


def test_a_phone_with_no_network_checks_the_code_from_the_token_alone(
        app: Flask, world: World, live: Live, browser: Any) -> None:  # noqa: F811 - the imported fixtures
    _require_checker_build(app)
    token = _token(app, world)
    url = f"{live.url}/public/c/{token}"
    context = browser.new_context(viewport=PHONE, locale="zh-CN", timezone_id="Asia/Shanghai", is_mobile=True,
                                  has_touch=True, service_workers="allow")
    context.clock.install(time=datetime.now(UTC))  # the phone's clock: the test's instant, as the server's
    console: list[str] = []
    try:
        page = context.new_page()
        page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
        page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))

        # Online: the server's page; the worker installs and keeps the offline checker.
        page.goto(url)
        assert page.locator("[data-testid=verdict]").get_attribute("data-state") == "valid"
        page.evaluate("() => navigator.serviceWorker.ready.then(() => true)")
        page.wait_for_selector("[data-testid=offline-ready]")
        page.screenshot(path=str(SHOTS / "h2-online.png"), full_page=True)

        # No network: the same code is checked in the phone.
        context.set_offline(True)
        page.goto(url)
        report = _report(page)
        page.screenshot(path=str(SHOTS / "h2-offline.png"), full_page=True)
        assert report["state"] == "valid", (report, console)
        text = report["text"]
        assert "签名有效：此码由行政执法监督平台签发" in report["verdict"]
        assert "祁阳市浯溪食品有限公司" in text and "市场监管局、生态环境局" in text
        masked = world.enterprise.credit_code[:6] + "********" + world.enterprise.credit_code[-4:]
        assert masked in text and world.enterprise.credit_code not in text
        assert "现在在计划检查时间内" in text
        for unchecked in ("是否已被取消", "审批情况", "执法证今天是否有效", "是否超过上限"):
            assert unchecked in page.locator("[data-testid=offline-unchecked]").inner_text()
        assert "恢复网络后重新打开此页面" in text

        # A tampered code: the signature fails, and nothing it claims is repeated.
        page.goto(f"{live.url}/public/c/{_tampered(token)}")
        report = _report(page)
        page.screenshot(path=str(SHOTS / "h2-forged.png"), full_page=True)
        assert report["state"] == "forged" and "签名无效，可能系伪造" in report["verdict"]
        assert "另一家" not in report["text"]

        # The same code once its window is over, by the phone's own clock.
        page.clock.set_system_time(world.task.window_end.timestamp() + 3600)
        page.goto(url)
        report = _report(page)
        assert report["state"] == "expired" and "已经结束" in report["verdict"]
    finally:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / "code-offline-console.log").write_text("\n".join(console), encoding="utf-8")
        context.close()
