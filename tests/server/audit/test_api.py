"""GET /api/v1/audit: office roles read their department's entries, admins all, inspectors nothing."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from server.audit.service import record
from server.auth.policy import Principal
from server.extensions import db
from tests.conftest import AuthActions, World, assert_problem

AUDIT = "/api/v1/audit"


def _principal(world: World, name: str) -> Principal:
    user = world.people[name]
    return Principal("user", str(user.id), user.role.value, user.department_id)


@pytest.fixture
def log(world: World) -> World:
    """One market action on a market object, one ecology action, one market user touching an ecology object."""
    record("test.market", object_type="user", object_id=str(world.people["m-insp"].id),
           actor=_principal(world, "m-sup"))
    record("test.ecology", object_type="user", object_id=str(world.people["e-insp"].id),
           actor=_principal(world, "e-sup"))
    record("test.cross", object_type="user", object_id=str(world.people["e-insp"].id),
           actor=_principal(world, "m-head"), outcome="denied")
    db.session.commit()
    return world


def _actions(response) -> list[str]:  # type: ignore[no-untyped-def]
    assert response.status_code == 200, response.get_data(as_text=True)
    return [e["action"] for e in response.get_json()["items"] if e["action"].startswith("test.")]


def test_admin_reads_everything_newest_first(client, log: World, auth: AuthActions) -> None:
    body = client.get(AUDIT, headers=auth.headers("admin")).get_json()
    assert [e["action"] for e in body["items"] if e["action"].startswith("test.")] == ["test.cross", "test.ecology",
                                                                                       "test.market"]
    entry = next(e for e in body["items"] if e["action"] == "test.cross")
    assert entry["actor"] == {"kind": "user", "id": str(log.people["m-head"].id), "username": "m-head",
                              "department_id": str(log.market.id)}
    assert entry["department_id"] == str(log.ecology.id) and entry["outcome"] == "denied"
    assert len(entry["hash"]) == 64 and len(entry["prev_hash"]) == 64


@pytest.mark.parametrize("who, expected", [
    ("e-sup", ["test.cross", "test.ecology"]),   # an ecology object was touched by market's head: ecology sees it
    ("e-head", ["test.cross", "test.ecology"]),
    ("m-sup", ["test.cross", "test.market"]),    # market's head acted: market sees it too
])
def test_office_roles_read_their_departments_entries(client, log: World, auth: AuthActions, who: str,
                                                     expected: list[str]) -> None:
    assert _actions(client.get(AUDIT, headers=auth.headers(who))) == expected


def test_inspectors_and_strangers_read_nothing(client, log: World, auth: AuthActions) -> None:
    assert_problem(client.get(AUDIT, headers=auth.headers("m-insp")), 403)
    assert_problem(client.get(AUDIT), 401)


def test_filters_and_pages(client, log: World, auth: AuthActions) -> None:
    headers = auth.headers("admin")
    assert _actions(client.get(AUDIT, query_string={"action": "test.ecology"}, headers=headers)) == ["test.ecology"]
    assert _actions(client.get(AUDIT, query_string={"actor": "m-head"}, headers=headers)) == ["test.cross"]
    assert _actions(client.get(AUDIT, query_string={"outcome": "denied"}, headers=headers)) == ["test.cross"]
    by_object = client.get(AUDIT, query_string={"object_type": "user", "object_id": str(log.people["e-insp"].id)},
                           headers=headers)
    assert _actions(by_object) == ["test.cross", "test.ecology"]
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert _actions(client.get(AUDIT, query_string={"since": later}, headers=headers)) == []
    assert _actions(client.get(AUDIT, query_string={"until": later, "action": "test.market"}, headers=headers)) == [
        "test.market"]

    seen, after = [], None
    while True:
        query = {"limit": 2, **({"after": after} if after else {})}
        body = client.get(AUDIT, query_string=query, headers=headers).get_json()
        seen += [e["seq"] for e in body["items"]]
        after = body["next_after"]
        if after is None:
            break
    assert seen == sorted(seen, reverse=True) and len(seen) == len(set(seen)) and seen[-1] == 1


@pytest.mark.parametrize("query", [{"after": "abc"}, {"limit": 0}, {"outcome": "maybe"}, {"since": "yesterday"},
                                   {"actions": "x"}, {"after": -1},
                                   {"since": "0001-01-01T00:00:00+01:00"}, {"until": "9999-12-31T23:59:59-05:00"}])
def test_bad_filters_answer_422(client, log: World, auth: AuthActions, query: dict[str, object]) -> None:
    assert_problem(client.get(AUDIT, query_string=query, headers=auth.headers("admin")), 422)
