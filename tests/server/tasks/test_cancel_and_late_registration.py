"""Cancelling a task (its code then says so, tablets drop it) and registering a visit late (issue 18)."""
from __future__ import annotations

import re
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from server.audit.models import AuditEntry
from server.extensions import db
from server.sync.entities import inspection_id_for
from tests.conftest import AuthActions, World, assert_problem
from tests.server.sync.test_pull import pull_all
from tests.server.sync.test_push import mutation, push

TASKS = "/api/v1/tasks/"


def _cancel(client: FlaskClient, auth: AuthActions, task_id: Any, who: str, body: Any = None) -> Any:
    body = {"reason": "企业已停产，本次检查取消"} if body is None else body
    return client.post(f"{TASKS}{task_id}/cancel", json=body, headers=auth.headers(who))


def test_the_lead_departments_supervisor_cancels_a_dispatched_task(app: Flask, client: FlaskClient, world: World,
                                                                   auth: AuthActions) -> None:
    changes, cursor = pull_all(client, auth.headers("m-insp"))
    token = next(c for c in changes if c["entity"] == "task")["fields"]["inspection_code"]["token"]
    answer = _cancel(client, auth, world.task.id, "m-sup")
    assert answer.status_code == 200, answer.get_json()
    task = answer.get_json()
    assert (task["status"], task["cancel_reason"]) == ("cancelled", "企业已停产，本次检查取消")
    assert task["cancelled_at"]
    [entry] = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "task.cancel")).all()
    assert entry.object_id == str(world.task.id) and entry.details["reason"] == "企业已停产，本次检查取消"
    assert entry.actor_username == "m-sup"
    # The team's tablets drop it at their next pull; it stays readable for them, cancelled.
    changes, _ = pull_all(client, auth.headers("e-insp"), cursor)
    assert [(c["entity"], c["op"]) for c in changes if c["entity"] == "task"] == [("task", "delete")]
    assert client.get(f"{TASKS}{world.task.id}", headers=auth.headers("m-insp")).get_json()["status"] == "cancelled"
    # The code the enterprise is shown afterwards says the visit was cancelled.
    page = client.get(f"/public/c/{token}")
    assert page.status_code == 410
    html = page.get_data(as_text=True)
    assert re.search(r'data-testid="verdict" data-state="cancelled"', html) and "检查任务已取消" in html
    # Nothing more can be recorded on it.
    record = mutation("inspection", str(inspection_id_for(world.task.id)), {
        "task_id": str(world.task.id), "place": "厂区", "inspection_code": token}, "SCJG-TAB1")
    refused = push(client, auth.headers("m-insp"), "SCJG-TAB1", [record]).get_json()["results"]
    assert [r["status"] for r in refused] == ["rejected"] and refused[0]["code"] == "task-closed"
    assert "已取消" in refused[0]["reason"]


def test_a_task_waiting_for_approval_can_be_cancelled_and_never_reaches_the_team(
        client: FlaskClient, world: World, auth: AuthActions) -> None:
    now = datetime.now(UTC)
    created = client.post(TASKS, json={
        "title": "市场监管检查", "enterprise_id": str(world.enterprise.id),
        "member_ids": [str(world.people["m-insp"].id)], "window_start": (now + timedelta(days=40)).isoformat(),
        "window_end": (now + timedelta(days=40, hours=4)).isoformat(),
    }, headers=auth.headers("m-sup"))
    assert created.status_code == 201 and created.get_json()["status"] == "pending_approval", created.get_json()
    task_id = created.get_json()["id"]

    def waiting() -> set[str]:
        answer = client.get(f"{TASKS}pending-approval", headers=auth.headers("m-head"))
        return {t["id"] for t in answer.get_json()["items"]}

    assert task_id in waiting()
    assert _cancel(client, auth, task_id, "m-head").get_json()["status"] == "cancelled"
    assert task_id not in waiting()
    assert_problem(client.post(f"{TASKS}{task_id}/approve", headers=auth.headers("m-head")), 409)
    assert_problem(client.get(f"{TASKS}{task_id}", headers=auth.headers("m-insp")), 404)
    assert task_id not in {t["id"] for t in client.get(TASKS, headers=auth.headers("m-insp")).get_json()["items"]}


@pytest.mark.parametrize("who, body, status", [
    ("e-sup", None, 403),             # a participating department, not the lead
    ("m-insp", None, 403),            # an inspector's token
    ("m-sup", {}, 422),               # no reason
    ("m-sup", {"reason": "   "}, 422),
    ("m-sup", {"reason": "x", "extra": 1}, 422),
], ids=["other-department", "inspector", "no-reason", "blank-reason", "unknown-field"])
def test_cancelling_is_refused_to_others_and_without_a_reason(client: FlaskClient, world: World, auth: AuthActions,
                                                              who: str, body: Any, status: int) -> None:
    problem = assert_problem(_cancel(client, auth, world.task.id, who, body), status)
    if status == 422 and body != {"reason": "x", "extra": 1}:
        assert "reason" in problem["errors"]
    assert client.get(f"{TASKS}{world.task.id}", headers=auth.headers("admin")).get_json()["status"] == "dispatched"


def test_only_a_task_waiting_for_approval_or_dispatched_can_be_cancelled(client: FlaskClient, world: World,
                                                                          auth: AuthActions) -> None:
    assert _cancel(client, auth, world.task.id, "admin").status_code == 200
    assert_problem(_cancel(client, auth, world.task.id, "m-sup"), 409, "task-not-cancellable")
    closed = _late_task(client, auth, world, days_ago=1, reason=None).get_json()["id"]
    assert client.post(f"{TASKS}{closed}/close", headers=auth.headers("m-sup")).status_code == 200
    assert_problem(_cancel(client, auth, closed, "m-sup"), 409, "task-not-cancellable")
    assert_problem(_cancel(client, auth, uuid.uuid4(), "m-sup"), 404)


# ---- late registration --------------------------------------------------------------------------

def _late_task(client: FlaskClient, auth: AuthActions, world: World, *, days_ago: float, reason: str | None,
               who: str = "m-head") -> Any:
    """Market regulation's head registers a visit to the world's enterprise whose window began days ago."""
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=days_ago)
    body = {"title": "群众举报核查", "enterprise_id": str(world.enterprise.id),
            "member_ids": [str(world.people["m-insp"].id)],
            "check_item_ids": [str(world.check_items["m-licence"].id)],
            "window_start": start.isoformat(),
            "window_end": (start + timedelta(days=max(days_ago, 0), hours=2)).isoformat()}
    if reason is not None:
        body["late_registration_reason"] = reason
    return client.post(TASKS, json=body, headers=auth.headers(who))


def test_a_visit_begun_days_ago_is_registered_late_with_its_reason(client: FlaskClient, world: World,
                                                                   auth: AuthActions) -> None:
    answer = _late_task(client, auth, world, days_ago=2, reason="  接群众举报，当晚现场处置，无法事先登记  ")
    assert answer.status_code == 201, answer.get_json()
    task = answer.get_json()
    assert task["late_registration_reason"] == "接群众举报，当晚现场处置，无法事先登记"
    assert task["status"] == "dispatched"
    again = client.get(f"{TASKS}{task['id']}", headers=auth.headers("m-insp")).get_json()
    assert again["late_registration_reason"] == task["late_registration_reason"]
    [entry] = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "task.late_registration")).all()
    assert entry.object_id == task["id"] and entry.details == {"reason": "接群众举报，当晚现场处置，无法事先登记"}
    # A window that began an hour ago is an ordinary registration (today's 8:00 visit registered at 9:00).
    assert world.task.late_registration_reason is None


def test_a_visit_begun_more_than_the_allowed_days_ago_is_refused_reason_or_not(app: Flask, client: FlaskClient,
                                                                               world: World, auth: AuthActions) -> None:
    for reason in ("接群众举报，现场处置", None):
        problem = assert_problem(_late_task(client, auth, world, days_ago=3.1, reason=reason), 422, "validation-failed")
        assert "3 天" in problem["errors"]["window_start"][0] and "补登记" in problem["errors"]["window_start"][0]
    # The number of days is a setting.
    app.config["SETTINGS"] = replace(app.config["SETTINGS"], late_registration_days=5)
    assert _late_task(client, auth, world, days_ago=4, reason="接群众举报，现场处置").status_code == 201


def test_a_reason_for_a_visit_not_yet_begun_is_refused(client: FlaskClient, world: World, auth: AuthActions) -> None:
    problem = assert_problem(_late_task(client, auth, world, days_ago=-1, reason="补登记"), 422)
    assert "late_registration_reason" in problem["errors"]
