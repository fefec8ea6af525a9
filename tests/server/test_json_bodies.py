"""Bodies that Python's JSON parser chokes on get a 400 problem, on every JSON endpoint, before log-in too."""
from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from flask.testing import FlaskClient

from server.errors import Problem
from server.jsonbody import MAX_DEPTH, parse_json_body
from tests.conftest import assert_problem

HOSTILE = {
    "a 5,000-digit integer": b'{"username": ' + b"9" * 5000 + b', "password": "x"}',
    "a bare 5,000-digit integer": b"1" * 5000,
    "100,000 levels of nesting": b"[" * 100_000 + b"]" * 100_000,
    "100,000 levels of objects": b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
    "nesting past the limit": b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1),
    "NaN": b'{"username": NaN, "password": "x"}',
    "Infinity": b'{"username": "u", "password": -Infinity}',
    "a float out of range": b'{"username": "u", "password": 1e999}',
    "bytes that are not UTF-8": b'{"username": "\xff\xfe", "password": "x"}',
    "truncated JSON": b'{"username": "u", "password": ',
}


def _json_operations(client: FlaskClient) -> list[tuple[str, str]]:
    spec = client.get("/api/v1/openapi.json").get_json()
    found = []
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if method not in ("post", "put", "patch", "delete"):
                continue
            content = (operation.get("requestBody") or {}).get("content") or {}
            if "application/json" in content:
                found.append((method.upper(), re.sub(r"{\w+}", str(uuid.UUID(int=7)), path)))
    return sorted(found)


@pytest.mark.parametrize("what", sorted(HOSTILE))
@pytest.mark.parametrize("path", ["/api/v1/auth/token", "/api/v1/auth/refresh", "/api/v1/auth/device-token"])
def test_a_hostile_body_before_log_in_is_a_400(client: FlaskClient, path: str, what: str) -> None:
    answer = client.post(path, data=HOSTILE[what], content_type="application/json")
    body = assert_problem(answer, 400, "malformed-json")
    assert body["errors"]["_body"], body


def test_every_json_endpoint_refuses_hostile_bodies_with_a_400(client: FlaskClient, auth: Any, world: Any) -> None:
    operations = _json_operations(client)
    assert ("POST", "/api/v1/sync/push") in operations and len(operations) > 20
    headers = auth.headers("admin")
    read = 0
    for method, path in operations:
        for what in ("a bare 5,000-digit integer", "100,000 levels of nesting", "NaN"):
            answer = client.open(path, method=method, data=HOSTILE[what], content_type="application/json",
                                 headers=headers)
            # A role refused the action is answered before its body is read; every body read is a 400.
            assert answer.status_code in (400, 403), (method, path, what, answer.get_data(as_text=True)[:300])
            if answer.status_code == 400:
                assert answer.get_json()["type"] == "/problems/malformed-json"
                read += 1
    assert read > 0.8 * 3 * len(operations)


def test_the_sync_push_of_an_inspector_refuses_deep_nesting(client: FlaskClient, auth: Any, world: Any) -> None:
    deep = b'{"device_id": "SCJG-TAB1", "mutations": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    answer = client.post("/api/v1/sync/push", data=deep, content_type="application/json",
                         headers=auth.headers("m-insp"))
    assert_problem(answer, 400, "malformed-json")


def test_parse_json_body_keeps_good_documents_and_names_what_is_wrong() -> None:
    assert parse_json_body(b'{"a": [1, 2.5, {"b": null}], "c": "\xe4\xb8\xad"}') == {"a": [1, 2.5, {"b": None}],
                                                                                     "c": "中"}
    assert parse_json_body("[" * MAX_DEPTH + "]" * MAX_DEPTH) is not None
    with pytest.raises(Problem) as refused:
        parse_json_body(b"1" * 5000)
    assert "整数" in (refused.value.detail or "")
    with pytest.raises(Problem) as refused:
        parse_json_body(b"[" * 5000 + b"]" * 5000)
    assert "嵌套" in (refused.value.detail or "")
