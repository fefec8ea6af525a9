"""Tablet enrolment: one-time codes (CLI and API), spending them, retiring tablets (docs/field-app.md)."""
from __future__ import annotations

import hashlib
import re
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from server.auth.policy import SYSTEM
from server.directory import enrolment
from server.directory.models import Device, EnrolmentCode
from server.extensions import db
from tests.conftest import PASSWORD, World, assert_problem

ENROL = "/api/v1/devices/enrol"
CODE = re.compile(r"^[2-9A-HJ-NP-Z]{4}-[2-9A-HJ-NP-Z]{4}-[2-9A-HJ-NP-Z]{4}$")


def enrol_tablet(runner: Any, *args: str) -> tuple[str, str]:
    """Run ``flask enrol-tablet``: (its whole output, the code on its last line)."""
    result = runner.invoke(args=["enrol-tablet", *args])
    assert result.exit_code == 0, result.output
    return result.output, result.output.strip().splitlines()[-1]


def tablet_login(client: Any, username: str, device_id: str, secret: str) -> Any:
    return client.post("/api/v1/auth/token", json={"username": username, "password": PASSWORD,
                                                   "device_id": device_id, "device_secret": secret})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_the_cli_issues_a_code_that_enrols_a_new_tablet(client, runner, world: World) -> None:
    output, code = enrol_tablet(runner, "--department", "SCJG", "--id", "SCJG-TAB7", "--label", "一中队 7 号平板")
    assert CODE.match(code), output
    assert "SCJG-TAB7" in output and "24 h" in output
    device = db.session.get(Device, "SCJG-TAB7")
    assert device is not None and device.kind.value == "tablet" and device.enrolled_at is None

    response = client.post(ENROL, json={"code": code})
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert set(body) == {"device_id", "device_secret", "department", "label"}
    assert body["device_id"] == "SCJG-TAB7" and body["label"] == "一中队 7 号平板"
    assert body["department"] == {"id": str(world.market.id), "code": "SCJG", "name": "市场监管局"}
    db.session.expire_all()
    assert db.session.get(Device, "SCJG-TAB7").enrolled_at is not None

    # The secret logs an inspector of the department in, bound to the tablet, and sync works with it.
    pair = tablet_login(client, "m-insp", "SCJG-TAB7", body["device_secret"])
    assert pair.status_code == 200, pair.get_json()
    me = client.get("/api/v1/auth/me", headers=bearer(pair.get_json()["access_token"])).get_json()
    assert me["device_id"] == "SCJG-TAB7"
    assert client.get("/api/v1/sync/pull", headers=bearer(pair.get_json()["access_token"])).status_code == 200


def test_without_an_id_the_next_tablet_id_of_the_department_is_used(runner, world: World) -> None:
    output, _ = enrol_tablet(runner, "--department", "SCJG")  # the world has SCJG-TAB1 already
    assert "registered tablet SCJG-TAB02" in output
    output, _ = enrol_tablet(runner, "--department", "SCJG")
    assert "registered tablet SCJG-TAB03" in output
    assert db.session.get(Device, "SCJG-TAB03") is not None


def test_only_the_codes_sha256_is_stored(runner, world: World) -> None:
    _, code = enrol_tablet(runner, "--department", "SCJG", "--id", "SCJG-TAB7")
    row = db.session.scalar(select(EnrolmentCode))
    assert row.code_hash == hashlib.sha256(code.replace("-", "").encode()).hexdigest()
    stored = " ".join(str(value) for value in row.__dict__.values())
    assert code not in stored and code.replace("-", "") not in stored


def test_a_code_is_spent_once(client, runner, world: World) -> None:
    _, code = enrol_tablet(runner, "--department", "SCJG", "--id", "SCJG-TAB7")
    first = client.post(ENROL, json={"code": code}).get_json()
    again = assert_problem(client.post(ENROL, json={"code": code}), 410, "enrolment-code-used")
    assert "只能用一次" in again["detail"] and again["errors"]["code"]
    # Nothing changed: the first enrolment's secret still works.
    assert tablet_login(client, "m-insp", "SCJG-TAB7", first["device_secret"]).status_code == 200


def test_a_wrong_code_is_refused_and_typing_does_not_matter(client, runner, world: World) -> None:
    _, code = enrol_tablet(runner, "--department", "SCJG", "--id", "SCJG-TAB7")
    for wrong in ("AAAA-BBBB-CCCC", "", "短", code[:-1], code + "2"):
        response = client.post(ENROL, json={"code": wrong})
        assert response.status_code in (400, 422), (wrong, response.get_json())
        assert response.mimetype == "application/problem+json"
    body = assert_problem(client.post(ENROL, json={"code": "AAAA-BBBB-CCCC"}), 400, "enrolment-code-invalid")
    assert body["errors"]["code"] == ["登记码不正确，请核对后重新输入"]
    assert db.session.get(Device, "SCJG-TAB7").enrolled_at is None
    # Lower case, spaces instead of hyphens: the same code.
    assert client.post(ENROL, json={"code": " " + code.lower().replace("-", " ") + " "}).status_code == 201


def test_a_code_expires_after_24_hours(client, runner, world: World, clock) -> None:
    _, code = enrol_tablet(runner, "--department", "SCJG", "--id", "SCJG-TAB7")
    clock.shift(timedelta(hours=24, seconds=1))
    body = assert_problem(client.post(ENROL, json={"code": code}), 410, "enrolment-code-expired")
    assert "24 小时" in body["detail"]
    assert db.session.get(Device, "SCJG-TAB7").enrolled_at is None


def test_a_code_is_still_good_just_before_24_hours(client, runner, world: World, clock) -> None:
    _, code = enrol_tablet(runner, "--department", "SCJG", "--id", "SCJG-TAB7")
    clock.shift(timedelta(hours=23, minutes=59))
    assert client.post(ENROL, json={"code": code}).status_code == 201


def test_a_new_code_revokes_the_unused_one(client, runner, world: World) -> None:
    _, old = enrol_tablet(runner, "--department", "SCJG", "--id", "SCJG-TAB7")
    output, new = enrol_tablet(runner, "--department", "SCJG", "--id", "SCJG-TAB7")
    assert "re-enrolling" in output and old != new
    assert "已作废" in assert_problem(client.post(ENROL, json={"code": old}), 400, "enrolment-code-invalid")["detail"]
    assert client.post(ENROL, json={"code": new}).status_code == 201


def test_re_enrolling_ends_the_old_secret_and_its_log_ins(client, runner, world: World) -> None:
    old_secret = world.devices["m-tab"].secret
    session = tablet_login(client, "m-insp", "SCJG-TAB1", old_secret).get_json()
    _, code = enrol_tablet(runner, "--department", "SCJG", "--id", "SCJG-TAB1")
    # Issuing alone changes nothing: the tablet still works until the code is spent.
    assert client.get("/api/v1/sync/pull", headers=bearer(session["access_token"])).status_code == 200
    new_secret = client.post(ENROL, json={"code": code}).get_json()["device_secret"]
    assert_problem(tablet_login(client, "m-insp", "SCJG-TAB1", old_secret), 401, "device-unknown")
    assert_problem(client.get("/api/v1/sync/pull", headers=bearer(session["access_token"])), 401, "device-unknown")
    assert_problem(client.post("/api/v1/auth/refresh", json={"refresh_token": session["refresh_token"]}), 401,
                   "device-unknown")
    assert tablet_login(client, "m-insp", "SCJG-TAB1", new_secret).status_code == 200


def test_codes_are_only_for_tablets_of_the_department(runner, world: World) -> None:
    for args, message in ((["--department", "SCJG", "--id", "SCJG-BC01"], "不是执法平板"),
                          (["--department", "SCJG", "--id", "STHJ-TAB1"], "不属于该部门"),
                          (["--department", "NOPE"], "不存在"),
                          (["--department", "SCJG", "--id", "bad id!"], "--id")):
        result = runner.invoke(args=["enrol-tablet", *args])
        assert result.exit_code != 0 and message in result.output, (args, result.output)
    assert db.session.scalar(select(EnrolmentCode)) is None


def test_a_head_issues_codes_for_their_department_only(world: World) -> None:
    issued = enrolment.issue_code(_principal(world, "m-head"), world.market.id, None, "平板")
    assert issued.device.department_id == world.market.id and CODE.match(issued.code)
    for who in ("e-head", "m-sup", "m-insp"):
        try:
            enrolment.issue_code(_principal(world, who), world.market.id)
        except Exception as exc:  # noqa: BLE001 - the refusal is what is checked
            assert getattr(exc, "code", None) == 403, (who, exc)
        else:
            raise AssertionError(f"{who} issued a code")
    assert enrolment.issue_code(SYSTEM, world.ecology.id).device.id == "STHJ-TAB03"


def _principal(world: World, username: str) -> Any:
    from server.auth.policy import Principal
    user = world.people[username]
    return Principal("user", str(user.id), user.role.value, user.department_id)


def test_retiring_ends_the_tablet_at_once(client, runner, world: World, auth) -> None:
    secret = world.devices["m-tab"].secret
    session = tablet_login(client, "m-insp", "SCJG-TAB1", secret).get_json()
    _, code = enrol_tablet(runner, "--department", "SCJG", "--id", "SCJG-TAB1")  # an unused code, too
    response = client.post("/api/v1/devices/SCJG-TAB1/retire", headers=auth.headers("m-head"))
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["active"] is False and response.get_json()["retired_at"]
    # Its tokens at their next request, its refresh token, its secret and its unused code: all refused.
    assert_problem(client.get("/api/v1/auth/me", headers=bearer(session["access_token"])), 401, "device-unknown")
    assert_problem(client.post("/api/v1/auth/refresh", json={"refresh_token": session["refresh_token"]}), 401,
                   "device-unknown")
    assert_problem(tablet_login(client, "m-insp", "SCJG-TAB1", secret), 401, "device-unknown")
    assert_problem(client.post(ENROL, json={"code": code}), 400, "enrolment-code-invalid")
    result = runner.invoke(args=["enrol-tablet", "--department", "SCJG", "--id", "SCJG-TAB1"])
    assert result.exit_code != 0 and "已停用" in result.output
    # Retiring again changes nothing.
    assert client.post("/api/v1/devices/SCJG-TAB1/retire", headers=auth.headers("admin")).status_code == 200


def test_who_may_retire_a_tablet(client, world: World, auth) -> None:
    url = "/api/v1/devices/SCJG-TAB1/retire"
    assert_problem(client.post(url, headers=auth.headers("e-head")), 404)      # another department's: hidden
    assert_problem(client.post(url, headers=auth.headers("m-sup")), 403)       # the role may not
    assert_problem(client.post(url, headers=auth.headers("m-insp")), 403)
    assert_problem(client.post(url), 401)
    assert_problem(client.post("/api/v1/devices/NO-SUCH/retire", headers=auth.headers("admin")), 404)
    assert_problem(client.post("/api/v1/devices/TAB%00/retire", headers=auth.headers("admin")), 404)
    db.session.expire_all()
    assert db.session.get(Device, "SCJG-TAB1").retired_at is None
    assert client.post(url, headers=auth.headers("admin")).status_code == 200


def test_failed_enrolments_are_throttled_like_log_ins(client, runner, world: World) -> None:
    _, code = enrol_tablet(runner, "--department", "SCJG", "--id", "SCJG-TAB7")
    statuses = [client.post(ENROL, json={"code": f"AAAA-BBBB-{n:04d}".replace("0", "A").replace("1", "B")}).status_code
                for n in range(40)]
    assert 429 in statuses
    blocked = assert_problem(client.post(ENROL, json={"code": code}), 429, "too-many-failures")
    assert blocked["detail"].startswith("失败次数过多")
    assert db.session.get(Device, "SCJG-TAB7").enrolled_at is None


def test_enrolment_refusals_are_audited(client, runner, world: World) -> None:
    from server.audit.models import AuditEntry
    client.post(ENROL, json={"code": "AAAA-BBBB-CCCC"})
    _, code = enrol_tablet(runner, "--department", "SCJG", "--id", "SCJG-TAB7")
    client.post(ENROL, json={"code": code})
    actions = list(db.session.scalars(select(AuditEntry.action).order_by(AuditEntry.seq)))
    assert actions[-3:] == ["device.enrol_failed", "device.enrolment_code_issued", "device.enrolled"]
