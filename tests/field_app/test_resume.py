"""The network goes in the middle of a large upload: the file waits with what the server already holds, and when the
network is back the tablet goes on from the server's offset (the same tus upload, not a new one) until the server
holds the file with the SHA-256 the tablet took at capture."""
from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path
from typing import Any

from flask import Flask
from sqlalchemy import select

from server.extensions import db
from server.sync.models import SyncedEntity
from server.uploads.models import Media
from tests.conftest import PASSWORD, World
from tests.field_app.conftest import enrolment_code, video_clip
from tests.server.uploads.conftest import Live, live  # noqa: F401 - the live-server fixture

CHUNK = 4 * 1024 * 1024  # the app's PATCH size


def test_an_upload_cut_by_the_network_resumes_where_the_server_stopped(app: Flask, world: World,
                                                                       live: Live,  # noqa: F811 - imported fixture
                                                                       tablets: Any, tmp_path: Path) -> None:
    # A recording as long as a few PATCHes: a real clip, then more footage bytes.
    clip = video_clip(tmp_path / "clip.mp4", seconds=1)
    large = tmp_path / "VID_0200.mp4"
    large.write_bytes(clip.read_bytes() + os.urandom(6 * CHUNK))
    digest = hashlib.sha256(large.read_bytes()).hexdigest()

    tablet = tablets(live.url, "resume")
    page = tablet.open(path=f"/field/#enrol={enrolment_code(app, 'SCJG', 'SCJG-TAB1')}")
    tablet.wait_screen("login")
    page.fill("input[name=username]", "m-insp")
    page.fill("input[name=password]", PASSWORD)
    page.click("[data-testid=login-form] button[type=submit]")
    tablet.wait_screen("tasks")
    page.click("[data-testid=task-row]")
    page.click("[data-testid=start]")
    tablet.wait_screen("inspect-overview")
    page.goto(f"{live.url}/field/#/inspect/{world.task.id}/findings")
    tablet.wait_screen("inspect-findings")
    ours = page.locator("[data-testid=finding][data-check-item=SCJG-01]")
    ours.locator("button[data-result=compliant]").click()
    page.wait_for_selector("[data-check-item=SCJG-01] [data-testid=add-video][aria-disabled=false]")

    # The network is cut during the third PATCH of the file.
    requests: list[tuple[str, str | None]] = []
    state = {"patches": 0, "cut": False}

    def network(route: Any) -> None:
        request = route.request
        if request.method == "PATCH":
            state["patches"] += 1
            if state["patches"] == 3:
                state["cut"] = True
        if state["cut"]:
            route.abort("internetdisconnected")
            return
        requests.append((request.method, request.headers.get("upload-offset")))
        route.continue_()

    page.route("**/api/v1/uploads/**", network)
    page.goto(f"{live.url}/field/#/sync")
    tablet.wait_screen("sync")
    page.goto(f"{live.url}/field/#/inspect/{world.task.id}/findings")
    tablet.wait_screen("inspect-findings")
    page.locator("[data-check-item=SCJG-01] [data-testid=add-video] input").set_input_files(str(large))
    page.wait_for_selector("[data-check-item=SCJG-01] [data-testid=capture-note].ok", timeout=60_000)
    page.goto(f"{live.url}/field/#/sync")
    tablet.wait_screen("sync")
    page.click("[data-testid=sync-now]")
    for _ in range(600):
        if state["cut"]:
            break
        page.wait_for_timeout(50)
    assert state["cut"], state
    tablet.offline(True)
    row = page.locator("[data-testid=upload]")
    page.wait_for_function("() => document.querySelector('[data-testid=upload]')?.dataset.state === 'waiting'",
                           timeout=60_000)
    held = page.evaluate("() => document.querySelector('[data-testid=upload] progress').value")
    assert 0 < held < large.stat().st_size, held
    assert "离线" in page.locator("[data-testid=sync-summary]").inner_text()
    tablet.shot("01-upload-cut")

    # Back online: the upload goes on from the server's offset.
    state["cut"] = False
    tablet.offline(False)
    tablet.wait_for_sync(1)
    assert row.get_attribute("data-state") == "done"
    tablet.shot("02-upload-resumed")
    creations = [r for r in requests if r[0] == "POST"]
    assert len(creations) == 1, requests  # the same upload went on
    # It asked the server where it stood (HEAD), then sent on from there: the two PATCHes done are not sent again.
    asked = [i for i, (method, _) in enumerate(requests) if method == "HEAD"]
    assert asked, requests
    after = [int(offset or 0) for method, offset in requests[asked[0]:] if method == "PATCH"]
    assert after and after[0] == 2 * CHUNK, requests

    db.session.remove()
    record = db.session.scalars(select(SyncedEntity).where(SyncedEntity.kind == "media")).one()
    assert record.fields["sha256"] == digest
    stored = db.session.get(Media, uuid.UUID(str(record.id)))
    assert stored is not None and stored.sha256 == digest and stored.size == large.stat().st_size
