"""Notification-commitments (§12): registered with the task that checks them, the result recorded once, and an
untrue one shown on the enterprise in the directory."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from server.audit.models import AuditEntry
from tests.conftest import World, assert_problem


def _commitment(client, auth, world: World, who: str = "m-sup", **extra) -> dict:  # type: ignore[no-untyped-def]
    body = {"enterprise_id": str(world.enterprise.id), "matter": "食品经营许可（告知承诺）",
            "promise": "经营场所已配备冷藏设施并建立进货查验记录", "due_on": "2026-12-31",
            "task_id": str(world.task.id), **extra}
    answer = client.post("/api/v1/commitments/", json=body, headers=auth.headers(who))
    assert answer.status_code == 201, answer.get_json()
    return answer.get_json()  # type: ignore[no-any-return]


def test_an_untrue_commitment_is_marked_in_the_directory(client, auth, world: World, app) -> None:
    from server.extensions import db

    commitment = _commitment(client, auth, world)
    assert commitment["result"] is None and commitment["task_id"] == str(world.task.id)
    enterprise_url = f"/api/v1/enterprises/{world.enterprise.id}"
    assert client.get(enterprise_url, headers=auth.headers("e-insp")).get_json()["untrue_commitments"] == []
    today = world.task.window_start.date().isoformat()
    result_url = f"/api/v1/commitments/{commitment['id']}/result"
    assert "note" in assert_problem(client.post(result_url, headers=auth.headers("m-sup"), json={
        "result": "untrue", "checked_on": today}), 422)["errors"]
    answer = client.post(result_url, headers=auth.headers("m-sup"),
                         json={"result": "untrue", "note": "未配备冷藏设施", "checked_on": today})
    assert answer.status_code == 200 and answer.get_json()["result"] == "untrue"
    marks = client.get(enterprise_url, headers=auth.headers("e-insp")).get_json()["untrue_commitments"]
    assert marks == [{"commitment_id": commitment["id"], "department": "市场监管局",
                      "matter": "食品经营许可（告知承诺）", "checked_on": today}]
    assert_problem(client.post(result_url, headers=auth.headers("m-sup"),
                               json={"result": "true", "checked_on": today}), 409, "result-already-recorded")
    actions = set(db.session.scalars(select(AuditEntry.action).where(AuditEntry.object_id == commitment["id"])))
    assert actions == {"commitment.created", "commitment.result"}


def test_commitments_belong_to_their_department(client, auth, world: World) -> None:
    commitment = _commitment(client, auth, world)
    url = f"/api/v1/commitments/{commitment['id']}"
    assert client.get(url, headers=auth.headers("m-head")).status_code == 200
    assert_problem(client.get(url, headers=auth.headers("e-sup")), 404)
    assert_problem(client.get(url, headers=auth.headers("m-insp")), 403)
    day = world.task.window_start.date()
    assert_problem(client.post(f"{url}/result", headers=auth.headers("e-head"),
                               json={"result": "true", "checked_on": day.isoformat()}), 404)
    assert "checked_on" in assert_problem(client.post(f"{url}/result", headers=auth.headers("m-sup"), json={
        "result": "true", "checked_on": (day + timedelta(days=30)).isoformat()}), 422)["errors"]
    listed = client.get("/api/v1/commitments/?result=pending", headers=auth.headers("e-sup")).get_json()["items"]
    assert listed == []
    mine = client.get(f"/api/v1/commitments/?enterprise_id={world.enterprise.id}",
                      headers=auth.headers("m-sup")).get_json()["items"]
    assert [c["id"] for c in mine] == [commitment["id"]]


def test_a_commitment_refuses_what_does_not_fit(client, auth, world: World) -> None:
    headers = auth.headers("m-sup")
    base = {"enterprise_id": str(world.enterprise.id), "matter": "许可", "promise": "承诺", "due_on": "2026-12-31"}
    assert_problem(client.post("/api/v1/commitments/", json=base, headers=auth.headers("m-insp")), 403)
    assert "enterprise_id" in assert_problem(client.post("/api/v1/commitments/", headers=headers, json={
        **base, "enterprise_id": "00000000-0000-0000-0000-000000000001"}), 422)["errors"]
    assert "task_id" in assert_problem(client.post("/api/v1/commitments/", headers=headers, json={
        **base, "task_id": "00000000-0000-0000-0000-000000000001"}), 422)["errors"]
    assert "department_id" in assert_problem(client.post("/api/v1/commitments/", headers=headers, json={
        **base, "department_id": str(world.ecology.id)}), 403)["errors"]
    assert "due_on" in assert_problem(client.post("/api/v1/commitments/", headers=headers, json={
        **base, "due_on": "tomorrow"}), 422)["errors"]
