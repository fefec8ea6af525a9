"""The tablet app in Debian's Chromium (Playwright, no browser download) against a live server.

A tablet is a persistent browser profile (``launch_persistent_context``): closing and reopening it keeps the
service worker, its cache and IndexedDB, as a tablet's browser does across restarts. The browser's clock is set
to the test's instant (the server runs at it too), so the app's HLC stamps and "today" agree with the server's.
"""
from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from tests.server.review.test_browser import ARTIFACTS as REVIEW_ARTIFACTS
from tests.server.review.test_browser import CHROMIUM_ARGS, require_chromium

WEB = Path(__file__).resolve().parents[2] / "field_client" / "web"
DIST = WEB / "dist"
ARTIFACTS = REVIEW_ARTIFACTS / "field"
TABLET = {"width": 1280, "height": 800}  # a 10-inch tablet held landscape
PHONE = {"width": 390, "height": 844}


def require_build() -> Path:
    """The built app (make test builds it before pytest); its absence fails, never skips."""
    if not (DIST / "index.html").is_file() or not (DIST / "sw.js").is_file():
        pytest.fail("the tablet app is not built (field_client/web/dist): run `make web`; make test builds it",
                    pytrace=False)
    return DIST


def build_app(outdir: Path, label: str) -> Path:
    """Another build of the same sources (``node build.mjs --outdir``): what a new deployment serves."""
    subprocess.run(["node", "build.mjs", "--outdir", str(outdir), "--label", label], cwd=WEB, check=True,
                   capture_output=True, timeout=300)
    return outdir


@pytest.fixture(scope="session")
def playwright_driver(playwright_session: Any) -> Any:
    require_chromium()
    return playwright_session


@dataclass
class Tablet:
    """One tablet's browser: a persistent profile that can be closed and opened again."""

    playwright: Any
    profile: Path
    base: str
    name: str
    viewport: dict[str, int] = field(default_factory=lambda: dict(TABLET))
    context: Any = None
    page: Any = None
    console: list[str] = field(default_factory=list)

    def open(self, *, offline: bool = False, path: str = "/field/") -> Any:
        self.context = self.playwright.chromium.launch_persistent_context(
            str(self.profile), executable_path=require_chromium(), args=CHROMIUM_ARGS, headless=True,
            viewport=self.viewport, locale="zh-CN", timezone_id="Asia/Shanghai", has_touch=True,
            service_workers="allow", accept_downloads=False)
        self.context.clock.install(time=datetime.now(UTC))
        if offline:
            self.context.set_offline(True)
        self.page = self.context.pages[0] if self.context.pages else self.context.new_page()
        self.page.on("console", lambda m: self.console.append(f"{m.type}: {m.text}"))
        self.page.on("pageerror", lambda e: self.console.append(f"pageerror: {e}"))
        self.page.set_default_timeout(20_000)
        self.page.goto(self.base + path)
        self.wait_screen(None)
        return self.page

    def close(self) -> None:
        if self.context is not None:
            self.context.close()
        self.context = self.page = None

    def offline(self, value: bool = True) -> None:
        self.context.set_offline(value)

    def wait_for_sync(self, files: int, timeout: float = 120_000) -> None:
        """On the sync screen: nothing waits and every one of ``files`` is uploaded (a timeout keeps a shot)."""
        try:
            self.page.wait_for_function(
                "n => document.querySelector('[data-testid=sync-pending]')?.dataset.count === '0'"
                " && document.querySelectorAll('[data-testid=upload]').length === n"
                " && document.querySelectorAll('[data-testid=upload][data-state=done]').length === n",
                arg=files, timeout=timeout, polling=500)
        except Exception as error:  # re-raised with the screen
            self.shot("sync-timeout")
            raise AssertionError("sync did not finish: " + self.page.locator("main").inner_text()[:2000]) from error

    def sync_now(self, files: int = 0) -> None:
        """On the sync screen: tap "sync now" and wait until that sync finished, then for ``files`` uploads."""
        before = self.page.locator("[data-testid=sync-last]").get_attribute("data-at")
        self.page.click("[data-testid=sync-now]")
        self.page.wait_for_function(
            "before => document.querySelector('[data-testid=sync-last]')?.dataset.at !== before"
            " && document.querySelector('[data-testid=sync-summary]')?.dataset.running === 'false'", arg=before,
            timeout=60_000)
        self.wait_for_sync(files)

    def shot(self, name: str, *, full_page: bool = True) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{self.name}-{name}.png"
        self.page.screenshot(path=str(path), full_page=full_page)
        return path

    def screen(self) -> str:
        return self.page.locator("main").get_attribute("data-screen")  # type: ignore[no-any-return]

    def wait_screen(self, name: str | None, timeout: float = 20_000) -> None:
        """Waits for a screen of the app (any screen: None); a timeout names the screen shown and the console."""
        selector = f"main[data-screen='{name}']" if name else "main[data-screen]"
        try:
            self.page.wait_for_selector(selector, timeout=timeout)
        except Exception as error:  # re-raised with what the page showed
            shown = self.page.evaluate("() => document.querySelector('main')?.dataset.screen ?? null")
            text = self.page.evaluate("() => document.body.innerText.slice(0, 600)")
            raise AssertionError(f"screen {name!r} not shown (showing {shown!r}): {text!r}\nconsole: "
                                 + "\n".join(self.console[-30:])) from error


@pytest.fixture
def tablets(playwright_driver: Any, tmp_path: Path) -> Iterator[Callable[..., Tablet]]:
    require_build()
    made: list[Tablet] = []

    def make(base: str, name: str = "tablet", **kwargs: Any) -> Tablet:
        tablet = Tablet(playwright_driver, tmp_path / f"profile-{name}", base, name, **kwargs)
        made.append(tablet)
        return tablet

    yield make
    for tablet in made:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / f"{tablet.name}-console.log").write_text("\n".join(tablet.console), encoding="utf-8")
        try:
            tablet.close()
        except Exception:  # noqa: BLE001 - a test that failed may have left the browser in any state
            pass


def open_task_offline(tablet: Tablet, unlock: Callable[[Tablet], None]) -> Any:
    """From the task list of a logged-in tablet: the network goes, the app reloads from its service worker, the
    password unlocks it and the (first) task opens; the page."""
    page = tablet.page
    page.wait_for_selector("[data-testid=task-row]")
    page.wait_for_function("() => navigator.serviceWorker.controller !== null")
    tablet.offline(True)
    page.reload()
    unlock(tablet)
    tablet.wait_screen("tasks")
    page.click("[data-testid=task-row]")
    tablet.wait_screen("task")
    return page


def enrolment_code(app: Flask, department: str, device_id: str) -> str:
    """What an administrator runs: the code is the last line of ``enrol-tablet``'s output."""
    result = app.test_cli_runner().invoke(args=["enrol-tablet", "--department", department, "--id", device_id,
                                                "--label", f"{device_id} 测试平板"])
    assert result.exit_code == 0, result.output
    return result.output.strip().splitlines()[-1]


def certificate_photo(path: Path, text: str) -> Path:
    """A camera photo of a certificate's QR code (the app must decode it in the browser)."""
    import cv2
    import numpy as np

    picture = np.full((720, 960, 3), (196, 208, 214), np.uint8)
    code = cv2.resize(cv2.QRCodeEncoder.create().encode(text), None, fx=8, fy=8, interpolation=cv2.INTER_NEAREST)
    picture[80:80 + code.shape[0], 120:120 + code.shape[1]] = code[..., None]
    cv2.putText(picture, "ZHIFA ZHENG", (520, 200), cv2.FONT_HERSHEY_SIMPLEX, 1.4, (40, 40, 160), 3)
    cv2.imwrite(str(path), picture, [cv2.IMWRITE_JPEG_QUALITY, 90])
    return path


def scene_photo(path: Path, seed: int = 1) -> Path:
    import cv2
    import numpy as np

    rng = np.random.default_rng(seed)
    picture = (rng.random((600, 800, 3)) * 255).astype(np.uint8)
    cv2.rectangle(picture, (100, 100), (500, 400), (30, 120, 200), -1)
    cv2.imwrite(str(path), picture, [cv2.IMWRITE_JPEG_QUALITY, 85])
    return path


def video_clip(path: Path, seconds: int = 2) -> Path:
    """A short clip as a tablet records it, made by ffmpeg here (never downloaded)."""
    from tests.media.conftest import run_ffmpeg

    run_ffmpeg("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=15", "-t", str(seconds), "-c:v", "libx264",
               "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-movflags", "+faststart", str(path))
    return path


def sign(page: Any) -> None:
    """A signature drawn with the pointer on the pad."""
    box = page.locator("[data-testid=signature-canvas]").bounding_box()
    x, y, w, h = box["x"], box["y"], box["width"], box["height"]
    page.mouse.move(x + w * 0.15, y + h * 0.6)
    page.mouse.down()
    for i in range(1, 25):
        page.mouse.move(x + w * (0.15 + i * 0.028), y + h * (0.6 - 0.25 * ((i % 6) / 6)), steps=2)
    page.mouse.up()
    page.mouse.move(x + w * 0.3, y + h * 0.75)
    page.mouse.down()
    page.mouse.move(x + w * 0.8, y + h * 0.7, steps=8)
    page.mouse.up()

