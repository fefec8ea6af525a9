"""Text no database can store (NUL, lone surrogates) is refused as input, never a 500.

Found by the fuzz run (tests/server/test_fuzz.py): on PostgreSQL a NUL in any
text that reached a query ("PostgreSQL text fields cannot contain NUL (0x00)
bytes") answered 500; a lone surrogate escape ("\\ud800") in JSON failed the
UTF-8 encoding on both backends.
"""
from __future__ import annotations

import pytest

from tests.conftest import World, assert_problem


@pytest.mark.parametrize("url, body, field", [
    ("/api/v1/auth/token", {"username": "admin\x00", "password": "x"}, "username"),
    ("/api/v1/auth/device-token", {"device_id": "SCJG-BC01\x00", "device_secret": "x"}, "device_id"),
    ("/api/v1/auth/refresh", {"refresh_token": "\x00"}, "refresh_token"),
    ("/api/v1/departments/", {"code": "NEW", "name": "新\x00局"}, "name"),
])
def test_nul_in_a_body_field_is_a_validation_error(client, world: World, auth, url: str, body: dict[str, str],
                                                   field: str) -> None:
    response = client.post(url, json=body, headers=auth.headers("admin"))
    assert field in assert_problem(response, 422, "validation-failed")["errors"]


def test_nul_in_a_nested_field_is_named_by_its_path(client, world: World, auth) -> None:
    body = {"username": "new-insp", "full_name": "新人", "password": "long-enough-pw", "role": "inspector",
            "department_id": str(world.market.id),
            "certificate": {"number": "CERT\x00", "valid_from": "2025-01-01", "valid_until": "2030-01-01"}}
    response = client.post("/api/v1/users/", json=body, headers=auth.headers("admin"))
    assert "certificate.number" in assert_problem(response, 422, "validation-failed")["errors"]


def test_check_item_update_with_nul_changes_nothing(client, world: World, auth) -> None:
    item = world.check_items["m-licence"]
    url = f"/api/v1/check-items/{item.id}"
    assert_problem(client.patch(url, json={"title": "\x00"}, headers=auth.headers("admin")), 422, "validation-failed")
    assert client.get(url, headers=auth.headers("admin")).get_json()["title"] == "营业执照公示"


@pytest.mark.parametrize("query", ["after=a%00b", "q=a%00b", "limit=5&after=%00"])
def test_nul_in_a_query_parameter_is_a_validation_error(client, world: World, auth, query: str) -> None:
    listing = "/api/v1/enterprises/" if query.startswith("q=") else "/api/v1/devices/"
    assert_problem(client.get(f"{listing}?{query}", headers=auth.headers("admin")), 422, "validation-failed")


def test_nul_in_a_path_segment_names_nothing(client, world: World, auth) -> None:
    assert_problem(client.get("/api/v1/devices/SCJG-BC01%00", headers=auth.headers("admin")), 404, "not-found")


def test_lone_surrogates_in_json_are_a_validation_error(client, world: World, auth) -> None:
    headers = auth.headers("admin")
    value = client.post("/api/v1/departments/", data='{"code": "NEW", "name": "\\ud800"}',
                        content_type="application/json", headers=headers)
    assert "name" in assert_problem(value, 422, "validation-failed")["errors"]
    # As a key it is echoed back escaped, so the answer itself can be encoded.
    key = client.post("/api/v1/departments/", data='{"code": "NEW", "name": "x", "\\udc00": 1}',
                      content_type="application/json", headers=headers)
    assert "\\udc00" in assert_problem(key, 422, "validation-failed")["errors"]
