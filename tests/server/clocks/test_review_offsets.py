"""The inspection page shows, next to a file's capture time, its device's clock offsets at the syncs around it."""
from __future__ import annotations

from datetime import timedelta

from server.clocks.models import ReadingKind
from server.clocks.service import record
from server.extensions import db
from tests.conftest import World
from tests.server.review.conftest import build_scene, clip, log_in  # noqa: F401 - clip: the scene's recording


def test_the_capture_time_is_shown_with_the_devices_offsets_before_and_after(client, world: World,
                                                                            clip: bytes) -> None:  # noqa: F811
    scene = build_scene(world, clip)
    video = scene.video
    video.device_id = "SCJG-BC01"
    captured = video.capture_start
    for hours, offset in ((-1, 130), (1, 132)):
        told = captured + timedelta(hours=hours)
        record("SCJG-BC01", ReadingKind.UPLOAD, told, told - timedelta(seconds=offset))
    db.session.commit()
    log_in(client, "m-sup")
    page = client.get(f"/review/inspections/{scene.joint.id}").get_data(as_text=True)
    assert "设备时钟偏差：同步前 +2 分 10 秒 / 同步后 +2 分 12 秒" in page
    # A device the ledger never heard from shows no offsets.
    video.device_id = "SCJG-TAB1"
    db.session.commit()
    assert 'data-testid="clock-offsets"' not in client.get(f"/review/inspections/{scene.joint.id}").get_data(
        as_text=True)
