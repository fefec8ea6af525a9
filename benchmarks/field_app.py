"""The tablet app in headless Chromium on this machine: what an inspector waits for.

    .venv/bin/python benchmarks/field_app.py [--video-mb 1024] [--photos 20] [--rounds 3] [--quick]

Against a live server (SQLite, the standard test cast) and the built app (field_client/web/dist, or a build made
for the run), with Debian's Chromium driven by Playwright on a persistent profile, it measures:

- opening the app offline from the service worker: cold (a new browser process) and warm (a reload), to the
  unlock screen, and the offline unlock itself (PBKDF2-SHA-256, 600,000 iterations);
- the streaming SHA-256 of a video file in the page (hash-wasm, 1 MiB slices, as at capture) against
  ``sha256sum`` on the same file in the same run, with the page's JS heap before and at its peak (flat: the file
  is never in memory whole);
- the cost of encryption at rest on the same file: AES-GCM of every 1 MiB chunk alone, and the whole capture
  (hash + encrypt + IndexedDB) through the app's own file input;
- a full sync of one inspection with N photos: push of the records, then every photo over tus, to the server
  holding them all.

Prints each figure and a last ``result:`` line (JSON). --quick: a 16 MiB file and 3 photos, for the test suite.
Needs node (to build the app when dist/ is missing) and /usr/bin/chromium; without them it says what it skipped.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

WEB = ROOT / "field_client" / "web"
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--enable-precise-memory-info", "--js-flags=--expose-gc"]
PASSWORD = "correct-horse-battery"  # tests.conftest's, for the standard cast
MIB = 1024 * 1024


def app_folder(work: Path) -> Path | None:
    built = WEB / "dist"
    if (built / "index.html").is_file() and (built / "sw.js").is_file():
        return built
    if shutil.which("node") is None or not (WEB / "node_modules").is_dir():
        return None
    out = work / "dist"
    subprocess.run(["node", "build.mjs", "--outdir", str(out)], cwd=WEB, check=True, capture_output=True)
    return out


def make_server(work: Path, folder: Path) -> tuple[Any, Any, str]:
    from flask_migrate import upgrade
    from werkzeug.serving import make_server as serve

    from server import create_app
    from tests.conftest import build_world

    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": f"sqlite:///{work / 'bench.db'}"},
                     env={"INSPECT_ONCE_VAR": str(work / "var"), "MEDIA_ROOT": str(work / "media"),
                          "INSPECT_ONCE_MEDIA_MIN_FREE_BYTES": "0", "INSPECT_ONCE_FIELD_APP_DIR": str(folder)})
    context = app.app_context()
    context.push()
    upgrade(directory=app.extensions["migrate"].directory, revision="heads")
    world = build_world()
    server = serve("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return app, (server, world), f"http://127.0.0.1:{server.server_port}"


def enrolment_code(app: Any) -> str:
    result = app.test_cli_runner().invoke(args=["enrol-tablet", "--department", "SCJG", "--id", "SCJG-TAB1"])
    if result.exit_code != 0:
        raise SystemExit(result.output)
    return str(result.output.strip().splitlines()[-1])


def random_file(path: Path, size: int) -> Path:
    """A recording-sized file: a real MP4 start (the app checks what a file is), then random footage bytes."""
    with path.open("wb") as out:
        out.write(b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom")
        left = size - 24
        while left > 0:
            block = os.urandom(min(left, 8 * MIB))
            out.write(block)
            left -= len(block)
    return path


def photo(path: Path, seed: int) -> Path:
    import cv2
    import numpy as np

    picture = (np.random.default_rng(seed).random((1200, 1600, 3)) * 255).astype(np.uint8)
    cv2.imwrite(str(path), picture, [cv2.IMWRITE_JPEG_QUALITY, 80])
    return path


class Browser:
    def __init__(self, playwright: Any, profile: Path, base: str, timeout_ms: int) -> None:
        self.playwright, self.profile, self.base, self.timeout_ms = playwright, profile, base, timeout_ms
        self.context: Any = None
        self.page: Any = None

    def open(self, path: str, *, offline: bool = False) -> float:
        started = time.perf_counter()
        self.context = self.playwright.chromium.launch_persistent_context(
            str(self.profile), executable_path=CHROMIUM, args=ARGS, headless=True,
            viewport={"width": 1280, "height": 800}, locale="zh-CN", service_workers="allow")
        if offline:
            self.context.set_offline(True)
        self.page = self.context.pages[0] if self.context.pages else self.context.new_page()
        self.page.set_default_timeout(self.timeout_ms)
        self.page.goto(self.base + path)
        self.page.wait_for_selector("main[data-screen]")
        return time.perf_counter() - started

    def screen(self, name: str) -> None:
        self.page.wait_for_selector(f"main[data-screen='{name}']")

    def close(self) -> None:
        self.context.close()

    def submit_password(self, username: str | None = None) -> None:
        if username:
            self.page.fill("input[name=username]", username)
        self.page.fill("input[name=password]", PASSWORD)
        self.page.click("[data-testid=login-form] button[type=submit]")


def sha256sum(path: Path) -> tuple[str, float]:
    started = time.perf_counter()
    out = subprocess.run(["sha256sum", str(path)], check=True, capture_output=True, text=True).stdout
    return out.split()[0], time.perf_counter() - started


def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    import logging

    from playwright.sync_api import sync_playwright

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request would drown the figures

    folder = app_folder(work)
    if folder is None:
        return {"skipped": ["the app is not built and node (or node_modules) is missing"]}
    if not os.access(CHROMIUM, os.X_OK):
        return {"skipped": [f"{CHROMIUM} is missing (apt-get install chromium)"]}
    app, (server, world), base = make_server(work, folder)
    task_id = str(world.task.id)
    result: dict[str, Any] = {"video_bytes": args.video_mb * MIB, "photos": args.photos}
    with sync_playwright() as playwright:
        tablet = Browser(playwright, work / "profile", base, 60_000 if args.quick else 1_800_000)
        tablet.open(f"/field/#enrol={enrolment_code(app)}")
        tablet.screen("login")
        tablet.submit_password("m-insp")
        tablet.screen("tasks")
        tablet.page.wait_for_function("() => navigator.serviceWorker.controller !== null")
        tablet.page.wait_for_selector("[data-testid=task-row]")
        tablet.close()

        # Opening offline: cold (a new browser), warm (a reload), then the offline unlock.
        cold = []
        for _ in range(args.rounds):
            cold.append(tablet.open("/field/", offline=True))
            tablet.screen("unlock")
            tablet.close()
        tablet.open("/field/?bench", offline=True)
        tablet.screen("unlock")
        warm = []
        for _ in range(args.rounds):
            started = time.perf_counter()
            tablet.page.reload()
            tablet.screen("unlock")
            warm.append(time.perf_counter() - started)
        started = time.perf_counter()
        tablet.submit_password()
        tablet.screen("tasks")
        unlock = time.perf_counter() - started
        result.update(open_cold_ms=round(statistics.median(cold) * 1000),
                      open_warm_ms=round(statistics.median(warm) * 1000), unlock_ms=round(unlock * 1000))
        print(f"open offline: cold {result['open_cold_ms']} ms (new browser), warm {result['open_warm_ms']} ms "
              f"(reload); offline unlock {result['unlock_ms']} ms")

        # One inspection, N photos captured offline, then synced.
        page = tablet.page
        page.click("[data-testid=task-row]")
        page.click("[data-testid=start]")
        tablet.screen("inspect-overview")
        page.goto(f"{base}/field/?bench#/inspect/{task_id}/findings")
        tablet.screen("inspect-findings")
        item = page.locator("[data-testid=finding][data-own=true]").first
        item.locator("button[data-result=compliant]").click()
        page.wait_for_selector("[data-testid=finding][data-own=true] [data-testid=add-photo][aria-disabled=false]")
        photos = [photo(work / f"IMG_{n:04d}.jpg", n) for n in range(args.photos)]
        started = time.perf_counter()
        for n, path in enumerate(photos, start=1):
            item.locator("[data-testid=add-photo] input").set_input_files(str(path))
            page.wait_for_function(f"() => document.querySelectorAll('[data-own=true] [data-testid=media-thumb]')"
                                   f".length === {n}")
        capture_photos = time.perf_counter() - started
        photo_bytes = sum(p.stat().st_size for p in photos)
        page.goto(f"{base}/field/?bench#/sync")
        tablet.screen("sync")
        # The network comes back: the app syncs by itself (records, then the files one by one).
        started = time.perf_counter()
        tablet.context.set_offline(False)
        page.wait_for_function(
            "n => document.querySelector('[data-testid=sync-pending]')?.dataset.count === '0'"
            " && document.querySelectorAll('[data-testid=upload][data-state=done]').length === n",
            arg=args.photos, polling=100)
        sync_seconds = time.perf_counter() - started
        result.update(capture_photos_ms=round(capture_photos * 1000), sync_ms=round(sync_seconds * 1000),
                      photo_bytes=photo_bytes)
        print(f"{args.photos} photos ({photo_bytes / MIB:.1f} MiB): captured in {capture_photos * 1000:.0f} ms; "
              f"sync from the network's return (records, then every photo over tus) {sync_seconds * 1000:.0f} ms "
              f"({photo_bytes / MIB / sync_seconds:.1f} MiB/s)")

        # Hashing and encrypting a video in the page, against sha256sum on the same file.
        video = random_file(work / "VID_0001.mp4", args.video_mb * MIB)
        expected, sum_seconds = sha256sum(video)
        page.evaluate("() => { const i = document.createElement('input'); i.type = 'file'; i.id = 'bench-file';"
                      " i.hidden = true; document.body.append(i); }")
        page.set_input_files("#bench-file", str(video))
        hashed = page.evaluate("() => window.__fieldBench.sha256(document.querySelector('#bench-file').files[0])")
        if hashed["hex"] != expected:
            raise SystemExit(f"the page's SHA-256 {hashed['hex']} differs from sha256sum's {expected}")
        encrypted = page.evaluate("() => window.__fieldBench.encrypt(document.querySelector('#bench-file').files[0])")
        size_mib = args.video_mb
        page_rate = size_mib / (hashed["ms"] / 1000)
        sum_rate = size_mib / sum_seconds
        result.update(hash_page_mib_s=round(page_rate, 1), hash_sha256sum_mib_s=round(sum_rate, 1),
                      hash_ratio=round(page_rate / sum_rate, 2),
                      encrypt_mib_s=round(size_mib / (encrypted["ms"] / 1000), 1),
                      heap_before_mib=round((hashed["heapBefore"] or 0) / MIB, 1),
                      heap_peak_mib=round((hashed["heapPeak"] or 0) / MIB, 1),
                      heap_after_gc_mib=round((hashed["heapAfter"] or 0) / MIB, 1))
        print(f"SHA-256 of {size_mib} MiB: page {page_rate:.0f} MiB/s, sha256sum {sum_rate:.0f} MiB/s "
              f"(page/sha256sum {page_rate / sum_rate:.2f}); JS heap {result['heap_before_mib']} MiB before, "
              f"peak {result['heap_peak_mib']} MiB while hashing (uncollected slices), "
              f"{result['heap_after_gc_mib']} MiB after a collection")
        print(f"AES-GCM of the same file in 1 MiB chunks: {result['encrypt_mib_s']} MiB/s")

        # The whole capture of it through the app: hash, encrypt, IndexedDB.
        page.goto(f"{base}/field/?bench#/inspect/{task_id}/findings")
        tablet.screen("inspect-findings")
        item = page.locator("[data-testid=finding][data-own=true]").first
        started = time.perf_counter()
        item.locator("[data-testid=add-video] input").set_input_files(str(video))
        page.wait_for_selector("[data-testid=finding][data-own=true] [data-testid=capture-note].ok"
                               ":has-text('VID_0001.mp4')")
        capture_video = time.perf_counter() - started
        result["capture_video_mib_s"] = round(size_mib / capture_video, 1)
        print(f"capture of the {size_mib} MiB video (hash + encrypt + IndexedDB): {capture_video:.1f} s "
              f"({result['capture_video_mib_s']} MiB/s)")
        tablet.close()
    server.shutdown()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--video-mb", type=int, default=1024, help="size of the video hashed and captured (MiB)")
    parser.add_argument("--photos", type=int, default=20, help="photos in the synced inspection")
    parser.add_argument("--rounds", type=int, default=3, help="repetitions of the open timings")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, seconds (the test suite)")
    args = parser.parse_args()
    if args.quick:
        args.video_mb, args.photos, args.rounds = 16, 3, 1
    with tempfile.TemporaryDirectory(prefix="field-app-bench-") as work:
        result = run(args, Path(work))
    result["quick"] = args.quick
    print("result: " + json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()
