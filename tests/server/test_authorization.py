"""Object-level authorization on every endpoint that takes an id.

Department-owned objects (people, certificates, devices) are invisible to
other departments: they answer 404, so ids cannot be probed. The shared
directory (departments, check items, enterprises) is readable by all, but
only its owners change it.
"""
from __future__ import annotations

import uuid
from typing import Any, Callable

import pytest

from tests.conftest import World, assert_problem


def _ids(world: World) -> dict[str, str]:
    return {
        "department": str(world.ecology.id),
        "check_item": str(world.check_items["e-permit"].id),
        "enterprise": str(world.enterprise.id),
        "user": str(world.people["e-insp"].id),
        "certificate": str(world.people["e-insp"].certificates[0].id),
        "device": world.devices["e-dock"].device.id,
        "task": str(world.task.id),
    }


# (method, path template, body, actor, expected status); every object belongs to 生态环境局 (ecology).
CASES: list[tuple[str, str, Any, str, int]] = [
    ("GET", "/api/v1/departments/{department}", None, "m-insp", 200),
    ("GET", "/api/v1/check-items/{check_item}", None, "m-insp", 200),
    ("PATCH", "/api/v1/check-items/{check_item}", {"title": "改"}, "m-head", 403),
    ("PATCH", "/api/v1/check-items/{check_item}", {"title": "改"}, "e-insp", 403),
    ("PATCH", "/api/v1/check-items/{check_item}", {"title": "改"}, "e-head", 200),
    ("GET", "/api/v1/enterprises/{enterprise}", None, "e-insp", 200),
    ("PATCH", "/api/v1/enterprises/{enterprise}", {"industry": "食品"}, "e-insp", 403),
    ("PATCH", "/api/v1/enterprises/{enterprise}", {"industry": "食品"}, "e-sup", 200),
    ("GET", "/api/v1/users/{user}", None, "m-insp", 404),
    ("GET", "/api/v1/users/{user}", None, "m-head", 404),
    ("GET", "/api/v1/users/{user}", None, "e-sup", 200),
    ("GET", "/api/v1/users/{user}", None, "admin", 200),
    ("GET", "/api/v1/certificates/{certificate}", None, "m-head", 404),
    ("GET", "/api/v1/certificates/{certificate}", None, "e-insp", 200),
    ("POST", "/api/v1/certificates/{certificate}/status", {"status": "suspended", "reason": "r"}, "m-head", 404),
    ("POST", "/api/v1/certificates/{certificate}/status", {"status": "suspended", "reason": "r"}, "e-insp", 403),
    ("POST", "/api/v1/certificates/{certificate}/status", {"status": "suspended", "reason": "r"}, "e-sup", 403),
    ("POST", "/api/v1/certificates/{certificate}/status", {"status": "suspended", "reason": "r"}, "e-head", 200),
    ("POST", "/api/v1/certificates/{certificate}/status", {"status": "suspended", "reason": "r"}, "admin", 200),
    ("GET", "/api/v1/devices/{device}", None, "m-head", 404),
    ("GET", "/api/v1/devices/{device}", None, "m-insp", 404),
    ("GET", "/api/v1/devices/{device}", None, "e-insp", 200),
    # The task is led by market regulation, with one inspector of each department on the team.
    ("GET", "/api/v1/tasks/{task}", None, "e-insp2", 404),
    ("GET", "/api/v1/tasks/{task}", None, "e-insp", 200),
    ("GET", "/api/v1/tasks/{task}", None, "e-sup", 200),
    ("POST", "/api/v1/tasks/{task}/close", None, "e-insp2", 403),
    ("POST", "/api/v1/tasks/{task}/close", None, "e-sup", 403),
    ("POST", "/api/v1/tasks/{task}/close", None, "m-insp", 403),
    ("POST", "/api/v1/tasks/{task}/close", None, "e-head", 403),
    ("POST", "/api/v1/tasks/{task}/close", None, "m-sup", 200),
]


@pytest.mark.parametrize("method, template, body, actor, expected", CASES,
                         ids=[f"{m} {t} as {a}" for m, t, _, a, _ in CASES])
def test_object_level_access(client, world: World, auth, method: str, template: str, body: Any, actor: str, expected: int) -> None:
    url = template.format(**_ids(world))
    read_url = url.removesuffix("/status").removesuffix("/close")
    before = client.get(read_url, headers=auth.headers("admin")).get_json()
    response = client.open(url, method=method, json=body, headers=auth.headers(actor))
    if expected >= 400:
        assert_problem(response, expected)
        # A refused change leaves the object as it was.
        assert client.get(read_url, headers=auth.headers("admin")).get_json() == before
    else:
        assert response.status_code == expected, response.get_json()


@pytest.mark.parametrize("template", sorted({t for _, t, _, _, _ in CASES}))
def test_unknown_ids_answer_404(client, world: World, auth, template: str) -> None:
    ids = {k: (str(uuid.uuid4()) if k != "device" else "NO-SUCH-DEVICE") for k in _ids(world)}
    method = "POST" if template.endswith(("/status", "/close")) else "GET"
    body = {"status": "suspended", "reason": "r"} if method == "POST" else None
    assert_problem(client.open(template.format(**ids), method=method, json=body, headers=auth.headers("admin")), 404)


def test_listings_are_scoped_to_the_department(client, world: World, auth) -> None:
    headers = auth.headers("m-insp")
    users = {u["username"] for u in client.get("/api/v1/users/?limit=200", headers=headers).get_json()["items"]}
    assert users == {"admin", "m-head", "m-sup", "m-insp"}
    devices = {d["id"] for d in client.get("/api/v1/devices/", headers=headers).get_json()["items"]}
    assert devices == {"SCJG-BC01", "SCJG-TAB1"}
    numbers = {c["number"] for c in client.get("/api/v1/certificates/", headers=headers).get_json()["items"]}
    assert numbers == {"CERT-M-001"}
    everyone = client.get("/api/v1/users/?limit=200", headers=auth.headers("admin")).get_json()["items"]
    assert len(everyone) == len(world.people)


def test_every_endpoint_with_an_id_is_covered_here(app) -> None:
    """A new endpoint that takes an id must be added to CASES."""
    covered = {t.replace("{", "<").split("<")[0] for _, t, _, _, _ in CASES}
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/v1/") and rule.arguments and "docs" not in rule.rule:
            assert rule.rule.split("<")[0] in covered, f"{rule.rule} lacks object-level authorization tests"


def test_every_api_route_declares_its_permission(app) -> None:
    public = {"auth.token", "auth.refresh", "auth.logout", "auth.device_token", "api-docs.openapi_json",
              "api-docs.openapi_swagger_ui"}
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1/") or rule.endpoint in public or "docs" in rule.rule:
            continue
        view: Callable[..., Any] = app.view_functions[rule.endpoint]
        view_class = getattr(view, "view_class", None)
        methods = [getattr(view_class, m.lower()) for m in rule.methods - {"HEAD", "OPTIONS"}] if view_class else [view]
        for method in methods:
            assert hasattr(method, "_required_permission"), f"{rule.endpoint} {method.__name__} has no @requires"
