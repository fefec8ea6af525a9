"""Log-in on a tablet binds the session to the tablet; sync needs such a log-in (docs/field-app.md)."""
from __future__ import annotations

import jwt
from sqlalchemy import func, select

from server.auth.models import RefreshToken
from server.extensions import db
from tests.conftest import PASSWORD, World, assert_problem
from tests.server.sync.test_push import new_inspection, push

TOKEN = "/api/v1/auth/token"


def _login(client, username: str, device_id: str | None = None, secret: str | None = None,  # type: ignore[no-untyped-def]
           password: str = PASSWORD):
    body = {"username": username, "password": password}
    if device_id is not None:
        body["device_id"] = device_id
    if secret is not None:
        body["device_secret"] = secret
    return client.post(TOKEN, json=body)


def _claims(token: str) -> dict:  # type: ignore[type-arg]
    return jwt.decode(token, options={"verify_signature": False})


def _refresh_rows() -> int:
    return db.session.scalar(select(func.count()).select_from(RefreshToken)) or 0


def test_a_log_in_on_a_tablet_carries_the_device_and_refresh_keeps_it(client, world: World) -> None:
    response = _login(client, "m-insp", "SCJG-TAB1", world.devices["m-tab"].secret)
    assert response.status_code == 200, response.get_json()
    pair = response.get_json()
    assert _claims(pair["access_token"])["dev"] == "SCJG-TAB1"
    assert db.session.scalar(select(RefreshToken.device_id)) == "SCJG-TAB1"
    renewed = client.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]}).get_json()
    assert _claims(renewed["access_token"])["dev"] == "SCJG-TAB1"
    me = client.get("/api/v1/auth/me", headers={"Authorization": "Bearer " + renewed["access_token"]}).get_json()
    assert me["device_id"] == "SCJG-TAB1"
    pulled = client.get("/api/v1/sync/pull", headers={"Authorization": "Bearer " + renewed["access_token"]})
    assert pulled.status_code == 200


def test_another_departments_inspector_cannot_use_the_tablet(client, world: World) -> None:
    body = assert_problem(_login(client, "e-insp", "SCJG-TAB1", world.devices["m-tab"].secret), 403,
                          "device-not-allowed")
    assert "其他部门" in body["detail"] and body["errors"]["device_id"]
    assert _refresh_rows() == 0


def test_unknown_retired_or_wrong_secret_tablets_are_refused(client, world: World, auth) -> None:
    cases = [("NO-SUCH-TAB", "whatever-secret"),                     # never registered
             ("SCJG-TAB1", "not-its-secret"),                        # wrong secret
             ("SCJG-TAB1", world.devices["e-tab"].secret),           # another tablet's secret
             ("SCJG-BC01", world.devices["m-cam"].secret)]           # a bodycam is no tablet
    for device_id, secret in cases:
        body = assert_problem(_login(client, "m-insp", device_id, secret), 401, "device-unknown")
        assert "未登记" in body["detail"], device_id
    assert client.post("/api/v1/devices/SCJG-TAB1/retire", headers=auth.headers("m-head")).status_code == 200
    assert_problem(_login(client, "m-insp", "SCJG-TAB1", world.devices["m-tab"].secret), 401, "device-unknown")
    assert db.session.scalar(select(func.count()).select_from(RefreshToken)
                             .where(RefreshToken.device_id.is_not(None))) == 0


def test_the_password_is_checked_before_the_tablet(client, world: World) -> None:
    """Someone without the password learns nothing about which tablets exist."""
    assert_problem(_login(client, "m-insp", "NO-SUCH-TAB", "x", password="wrong-password"), 401,
                   "invalid-credentials")
    assert_problem(_login(client, "e-insp", "SCJG-TAB1", world.devices["m-tab"].secret, password="wrong-password"),
                   401, "invalid-credentials")


def test_device_id_and_secret_come_together(client, world: World) -> None:
    body = assert_problem(_login(client, "m-insp", "SCJG-TAB1"), 422)
    assert body["errors"]["device_secret"] == ["登录平板时须同时提供设备密钥"]
    body = assert_problem(_login(client, "m-insp", secret="s"), 422)
    assert "device_id" in body["errors"]


def test_wrong_tablet_secrets_are_throttled(client, world: World) -> None:
    statuses = [_login(client, "m-insp", "SCJG-TAB1", f"guess-{n}").status_code for n in range(8)]
    assert statuses[0] == 401 and statuses[-1] == 429
    assert_problem(_login(client, "m-insp", "SCJG-TAB1", world.devices["m-tab"].secret), 429, "too-many-failures")


def test_sync_needs_a_log_in_bound_to_a_tablet(client, world: World, auth) -> None:
    unbound = auth.headers("m-insp", device=None)
    body = assert_problem(push(client, unbound, "SCJG-TAB1", [new_inspection(world)]), 403, "device-required")
    assert "已登记的执法平板" in body["detail"]
    assert_problem(client.get("/api/v1/sync/pull", headers=unbound), 403, "device-required")
    # Everything else an inspector does works unbound.
    assert client.get("/api/v1/tasks/", headers=unbound).status_code == 200


def test_a_push_in_another_tablets_name_is_refused(client, world: World, auth) -> None:
    headers = auth.headers("e-insp", device="STHJ-TAB1")
    body = assert_problem(push(client, headers, "STHJ-TAB2", [new_inspection(world, device="STHJ-TAB2")]), 403,
                          "device-mismatch")
    assert body["errors"]["device_id"] == ["须为本次登录绑定的平板 STHJ-TAB1"]
    assert push(client, headers, "STHJ-TAB1", [new_inspection(world, device="STHJ-TAB1")]).status_code == 200


def test_a_tablet_retired_after_log_in_is_refused_at_its_next_request(client, world: World, auth) -> None:
    headers = auth.headers("m-insp")  # on SCJG-TAB1
    assert push(client, headers, "SCJG-TAB1", [new_inspection(world)]).status_code == 200
    assert client.post("/api/v1/devices/SCJG-TAB1/retire", headers=auth.headers("admin")).status_code == 200
    body = assert_problem(push(client, headers, "SCJG-TAB1", [new_inspection(world)]), 401, "device-unknown")
    assert "已停用" in body["detail"]
    assert_problem(client.get("/api/v1/tasks/", headers=headers), 401, "device-unknown")


def test_the_docking_stations_device_token_still_works(client, world: World) -> None:
    response = client.post("/api/v1/auth/device-token",
                           json={"device_id": "STHJ-DOCK1", "device_secret": world.devices["e-dock"].secret})
    assert response.status_code == 200
    media = client.get("/api/v1/media", query_string={"sha256": "ab" * 32},
                       headers={"Authorization": "Bearer " + response.get_json()["access_token"]})
    assert media.status_code == 200
