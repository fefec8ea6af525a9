"""Log-in, refresh rotation with reuse detection, logout, device credentials, throttling."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from server.auth.models import RefreshToken
from server.extensions import db
from tests.conftest import PASSWORD, World, assert_problem


def _refresh_rows() -> int:
    return db.session.scalar(select(func.count()).select_from(RefreshToken)) or 0


def test_login_returns_a_token_pair(client, world: World) -> None:
    response = client.post("/api/v1/auth/token", json={"username": "m-insp", "password": PASSWORD})
    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert body["token_type"] == "Bearer" and body["expires_in"] == 900
    me = client.get("/api/v1/auth/me", headers={"Authorization": "Bearer " + body["access_token"]})
    assert me.get_json()["id"] == str(world.people["m-insp"].id)


def test_refresh_tokens_are_stored_hashed(client, world: World, auth) -> None:
    raw = auth.login("m-insp")["refresh_token"]
    stored = db.session.scalars(select(RefreshToken.token_hash)).all()
    assert raw not in stored and len(stored) == 1


def test_wrong_password_and_unknown_user_look_the_same(client, world: World) -> None:
    wrong = client.post("/api/v1/auth/token", json={"username": "m-insp", "password": "nope-nope"})
    unknown = client.post("/api/v1/auth/token", json={"username": "nobody", "password": "nope-nope"})
    assert (assert_problem(wrong, 401, "invalid-credentials")["detail"]
            == assert_problem(unknown, 401, "invalid-credentials")["detail"])
    assert _refresh_rows() == 0


def test_inactive_account_cannot_log_in(client, world: World) -> None:
    world.people["e-insp"].active = False
    db.session.commit()
    assert_problem(client.post("/api/v1/auth/token", json={"username": "e-insp", "password": PASSWORD}), 401)


def test_login_is_throttled_after_repeated_failures(client, world: World) -> None:
    for _ in range(5):
        assert client.post("/api/v1/auth/token",
                           json={"username": "m-insp", "password": "guess-123"}).status_code == 401
    blocked = client.post("/api/v1/auth/token", json={"username": "m-insp", "password": PASSWORD})
    body = assert_problem(blocked, 429, "too-many-failures")
    assert int(blocked.headers["Retry-After"]) >= 1
    assert "秒" in body["detail"]
    assert _refresh_rows() == 0
    # Another account from the same address is not locked by this one's failures.
    assert client.post("/api/v1/auth/token", json={"username": "e-insp", "password": PASSWORD}).status_code == 200


def test_successful_logins_are_not_throttled(client, world: World) -> None:
    for _ in range(12):
        assert client.post("/api/v1/auth/token", json={"username": "m-insp", "password": PASSWORD}).status_code == 200


def test_refresh_rotates_and_the_old_token_stops_working(client, world: World, auth) -> None:
    first = auth.login("m-insp")
    second = client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert second.status_code == 200
    pair = second.get_json()
    assert pair["refresh_token"] != first["refresh_token"]
    assert client.get("/api/v1/auth/me", headers={"Authorization": "Bearer " + pair["access_token"]}).status_code == 200
    third = client.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert third.status_code == 200


def test_replaying_a_used_refresh_token_revokes_the_whole_family(client, world: World, auth) -> None:
    stolen = auth.login("m-insp")["refresh_token"]
    legit = client.post("/api/v1/auth/refresh", json={"refresh_token": stolen}).get_json()["refresh_token"]
    replay = client.post("/api/v1/auth/refresh", json={"refresh_token": stolen})
    assert_problem(replay, 401, "refresh-reused")
    # The legitimate holder's newer token is dead too: the family is revoked.
    assert_problem(client.post("/api/v1/auth/refresh", json={"refresh_token": legit}), 401, "refresh-revoked")
    revoked = db.session.scalars(select(RefreshToken.revoked_reason)).all()
    assert revoked and all(reason == "reuse-detected" for reason in revoked)
    # Other sessions of the same person (another family) are untouched.
    other = auth.login("m-insp")["refresh_token"]
    assert client.post("/api/v1/auth/refresh", json={"refresh_token": other}).status_code == 200


@pytest.mark.around_office_midnight
def test_expired_refresh_token_is_refused(client, world: World, auth) -> None:
    from datetime import timedelta
    raw = auth.login("m-insp")["refresh_token"]
    row = db.session.scalars(select(RefreshToken)).one()
    row.expires_at = row.issued_at - timedelta(seconds=1)
    db.session.commit()
    assert_problem(client.post("/api/v1/auth/refresh", json={"refresh_token": raw}), 401, "refresh-expired")
    assert _refresh_rows() == 1


def test_unknown_refresh_token_changes_nothing(client, world: World, auth) -> None:
    auth.login("m-insp")
    assert_problem(client.post("/api/v1/auth/refresh", json={"refresh_token": "made-up"}), 401, "refresh-invalid")
    row = db.session.scalars(select(RefreshToken)).one()
    assert row.used_at is None and row.revoked_at is None


def test_logout_revokes_the_session(client, world: World, auth) -> None:
    raw = auth.login("m-insp")["refresh_token"]
    assert client.post("/api/v1/auth/logout", json={"refresh_token": raw}).status_code == 204
    assert_problem(client.post("/api/v1/auth/refresh", json={"refresh_token": raw}), 401, "refresh-revoked")


def test_device_credentials(client, world: World) -> None:
    created = world.devices["e-dock"]
    ok = client.post("/api/v1/auth/device-token",
                     json={"device_id": created.device.id, "device_secret": created.secret})
    assert ok.status_code == 200 and ok.get_json()["token_type"] == "Bearer"
    wrong = client.post("/api/v1/auth/device-token", json={"device_id": created.device.id, "device_secret": "x" * 43})
    assert_problem(wrong, 401, "invalid-credentials")
    unknown = client.post("/api/v1/auth/device-token", json={"device_id": "NOPE", "device_secret": created.secret})
    assert_problem(unknown, 401, "invalid-credentials")


def test_device_secret_guessing_is_throttled(client, world: World) -> None:
    created = world.devices["e-dock"]
    for _ in range(5):
        client.post("/api/v1/auth/device-token", json={"device_id": created.device.id, "device_secret": "guess"})
    blocked = client.post("/api/v1/auth/device-token",
                          json={"device_id": created.device.id, "device_secret": created.secret})
    assert_problem(blocked, 429, "too-many-failures")


def test_passwords_are_stored_with_argon2id(world: World) -> None:
    stored = world.people["m-insp"].password_hash
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
