"""Log-ons, refusals and changes of state land in the audit log, without secrets, even when the answer is an error."""
from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select

from server.audit.models import AuditEntry
from server.audit.service import verify_chain
from server.extensions import db
from tests.conftest import PASSWORD, AuthActions, World, assert_problem


def entries(action: str | None = None) -> list[AuditEntry]:
    db.session.expire_all()
    query = select(AuditEntry).order_by(AuditEntry.seq)
    if action:
        query = query.where(AuditEntry.action == action)
    return list(db.session.scalars(query))


def whole_log_text() -> str:
    rows = db.session.execute(select(AuditEntry.__table__)).mappings().all()
    return json.dumps([dict(r) for r in rows], default=str, ensure_ascii=False)


def test_a_log_on_is_recorded_with_who_and_from_where(client, world: World, auth: AuthActions) -> None:
    auth.login("e-sup")
    [entry] = entries("auth.login")
    assert entry.outcome.value == "success" and entry.actor_kind.value == "user"
    assert entry.actor_username == "e-sup" and entry.actor_id == str(world.people["e-sup"].id)
    assert entry.actor_department_id == world.ecology.id == entry.department_id
    assert (entry.object_type, entry.object_id) == ("user", str(world.people["e-sup"].id))
    assert entry.client_ip == "127.0.0.1"
    assert PASSWORD not in whole_log_text()


def test_a_failed_log_on_persists_although_the_answer_is_401(client, world: World) -> None:
    response = client.post("/api/v1/auth/token", json={"username": "e-sup", "password": "Wrong-guess-12345"})
    assert_problem(response, 401)
    response = client.post("/api/v1/auth/token", json={"username": "nobody", "password": "Another-guess-999"})
    assert_problem(response, 401)
    failed = entries("auth.login_failed")
    assert [(e.details["username"], e.object_id, e.outcome.value, e.actor_kind.value) for e in failed] == [
        ("e-sup", str(world.people["e-sup"].id), "failed", "anonymous"), ("nobody", None, "failed", "anonymous")]
    assert failed[0].department_id == world.ecology.id  # the account's supervisors can read it
    text = whole_log_text()
    assert "Wrong-guess-12345" not in text and "Another-guess-999" not in text
    assert verify_chain().ok


def test_refresh_and_logout_are_recorded_without_tokens(client, world: World, auth: AuthActions) -> None:
    pair = auth.login("m-insp")
    rotated = client.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert rotated.status_code == 200
    reused = client.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert_problem(reused, 401, "refresh-reused")
    assert client.post("/api/v1/auth/logout",
                       json={"refresh_token": rotated.get_json()["refresh_token"]}).status_code == 204
    assert [(e.action, e.outcome.value, e.details.get("reason")) for e in entries() if e.action != "auth.login"] == [
        ("auth.refresh", "success", None), ("auth.refresh_failed", "failed", "refresh-reused"),
        ("auth.logout", "success", None)]
    text = whole_log_text()
    assert pair["refresh_token"] not in text and pair["access_token"] not in text
    assert rotated.get_json()["refresh_token"] not in text


def test_device_tokens_are_recorded_and_failures_kept(client, world: World) -> None:
    dock = world.devices["e-dock"]
    assert client.post("/api/v1/auth/device-token",
                       json={"device_id": dock.device.id, "device_secret": dock.secret}).status_code == 200
    wrong = client.post("/api/v1/auth/device-token", json={"device_id": dock.device.id, "device_secret": "x" * 40})
    assert_problem(wrong, 401)
    [ok] = entries("auth.device_token")
    [failed] = entries("auth.device_token_failed")
    assert (ok.actor_kind.value, ok.actor_id, ok.department_id) == ("device", dock.device.id, world.ecology.id)
    assert (failed.outcome.value, failed.object_id, failed.department_id) == (
        "failed", dock.device.id, world.ecology.id)
    assert dock.secret not in whole_log_text()


def test_certificate_status_changes_and_task_close_are_recorded(client, world: World, auth: AuthActions) -> None:
    certificate = world.people["e-insp"].certificates[0]
    response = client.post(f"/api/v1/certificates/{certificate.id}/status", headers=auth.headers("e-head"),
                           json={"status": "suspended", "reason": "调查中"})
    assert response.status_code == 200, response.get_json()
    [change] = entries("certificate.status_change")
    assert change.actor_username == "e-head" and change.department_id == world.ecology.id
    assert change.details == {"number": "CERT-E-001", "status": "suspended", "reason": "调查中"}

    assert client.post(f"/api/v1/tasks/{world.task.id}/close", headers=auth.headers("m-sup")).status_code == 200
    [close] = entries("task.close")
    assert (close.actor_username, close.object_id, close.department_id) == (
        "m-sup", str(world.task.id), world.market.id)


def test_a_refused_change_records_nothing_but_what_it_says(client, world: World, auth: AuthActions) -> None:
    before = len(entries())
    response = client.post(f"/api/v1/tasks/{world.task.id}/close", headers=auth.headers("e-insp2"))
    assert response.status_code in (403, 404)
    assert [e.action for e in entries()[before:]] == ["auth.login"]


def test_the_operator_command_records_as_system(runner: Any, world: World) -> None:
    result = runner.invoke(args=["set-certificate-status", "CERT-M-001", "revoked", "--reason", "离职"])
    assert result.exit_code == 0, result.output
    [change] = entries("certificate.status_change")
    assert (change.actor_kind.value, change.actor_username, change.client_ip) == ("system", "system", None)
    assert change.department_id == world.market.id
