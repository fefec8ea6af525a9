"""The office prints a task's inspection code from the review app; only the task's departments reach it."""
from __future__ import annotations

from server.extensions import db
from server.review.sessions import principal_of
from server.tasks.service import create_task
from tests.server.review.conftest import Scene, other_enterprise
from tests.server.review.test_decisions import _pending_task


def test_a_supervisor_prints_the_code_of_a_dispatched_task(review_as, scene: Scene) -> None:
    client = review_as("m-sup")
    inspection = client.get(f"/review/inspections/{scene.joint.id}").get_data(as_text=True)
    assert f'href="/review/tasks/{scene.world.task.id}/code"' in inspection
    page = client.get(f"/review/tasks/{scene.world.task.id}/code")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and 'data-testid="code-qr"' in html and "<svg" in html
    assert 'href="http://localhost/public/c/' in html and "近 365 天内第 1 次（上限 2 次）" in html
    public = client.get(html.split('data-testid="code-link"')[0].rsplit('href="', 1)[1].split('"')[0])
    assert public.status_code == 200 and 'data-state="valid"' in public.get_data(as_text=True)


def test_a_pending_task_has_no_code_and_another_department_does_not_see_the_task(review_as, scene: Scene,
                                                                                 client) -> None:
    pending = _pending_task(scene)
    html = review_as("m-sup").get(f"/review/tasks/{pending.id}/code").get_data(as_text=True)
    assert 'data-testid="no-code"' in html and "<svg" not in html
    market_only = create_task(principal_of(scene.world.people["m-head"]), {
        "title": "市场监管局单独检查", "enterprise_id": other_enterprise("PL880001", "祁阳某商行", scene.world).id,
        "window_start": scene.start, "window_end": scene.start.replace(hour=23),
        "member_ids": [scene.world.people["m-insp"].id], "check_item_ids": []})
    db.session.commit()
    client.post("/review/logout")
    other = review_as("e-sup").get(f"/review/tasks/{market_only.id}/code")
    assert other.status_code == 404
    assert review_as("e-sup").get("/review/tasks/not-a-uuid/code").status_code in (400, 404)
