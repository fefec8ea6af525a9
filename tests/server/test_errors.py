"""Bad input gets a clear problem+json answer and changes nothing."""
from __future__ import annotations

from sqlalchemy import func, select

from server.directory.models import Enterprise
from server.extensions import db
from tests.conftest import VALID_CODE, World, assert_problem

ENTERPRISES = "/api/v1/enterprises/"
OTHER_VALID_CODE = "91110000600037341L"


def _count() -> int:
    return db.session.scalar(select(func.count()).select_from(Enterprise)) or 0


def _good(**overrides: object) -> dict[str, object]:
    body: dict[str, object] = {"credit_code": OTHER_VALID_CODE, "name": "祁阳市新城超市有限公司",
                               "address": "祁阳市长虹街道人民路8号"}
    body.update(overrides)
    return body


def test_a_good_request_is_stored(client, world: World, auth) -> None:
    before = _count()
    response = client.post(ENTERPRISES, json=_good(), headers=auth.headers("m-sup"))
    assert response.status_code == 201
    assert _count() == before + 1


def test_malformed_json(client, world: World, auth) -> None:
    before = _count()
    response = client.post(ENTERPRISES, data=b'{"credit_code": "9135', content_type="application/json",
                           headers=auth.headers("m-sup"))
    assert_problem(response, 400, "malformed-json")
    assert _count() == before


def test_unknown_fields_are_refused_not_dropped(client, world: World, auth) -> None:
    before = _count()
    body = assert_problem(client.post(ENTERPRISES, json=_good(owner="x"), headers=auth.headers("m-sup")), 422,
                          "validation-failed")
    assert "owner" in body["errors"]
    assert _count() == before


def test_wrong_types_name_each_field(client, world: World, auth) -> None:
    before = _count()
    response = client.post(ENTERPRISES, json=_good(name=123, address=["x"], risk_level=True),
                           headers=auth.headers("m-sup"))
    body = assert_problem(response, 422, "validation-failed")
    assert {"name", "address", "risk_level"} <= set(body["errors"])
    assert all(isinstance(m, list) and m for m in body["errors"].values())
    assert _count() == before


def test_missing_required_fields(client, world: World, auth) -> None:
    body = assert_problem(client.post(ENTERPRISES, json={}, headers=auth.headers("m-sup")), 422)
    assert {"credit_code", "name", "address"} <= set(body["errors"])


def test_a_body_that_is_not_an_object(client, world: World, auth) -> None:
    before = _count()
    assert_problem(client.post(ENTERPRISES, json=[_good()], headers=auth.headers("m-sup")), 422)
    assert_problem(client.post(ENTERPRISES, json="text", headers=auth.headers("m-sup")), 422)
    assert _count() == before


def test_one_wrong_check_character_in_the_credit_code(client, world: World, auth) -> None:
    before = _count()
    wrong = OTHER_VALID_CODE[:-1] + ("M" if OTHER_VALID_CODE[-1] != "M" else "N")
    body = assert_problem(client.post(ENTERPRISES, json=_good(credit_code=wrong), headers=auth.headers("m-sup")), 422)
    assert "校验位" in body["errors"]["credit_code"][0]
    assert _count() == before


def test_oversized_body(client, world: World, auth) -> None:
    before = _count()
    huge = _good(name="祁" * 1_500_000)
    assert_problem(client.post(ENTERPRISES, json=huge, headers=auth.headers("m-sup")), 413, "payload-too-large")
    assert _count() == before


def test_duplicate_credit_code_is_a_conflict(client, world: World, auth) -> None:
    before = _count()
    body = assert_problem(client.post(ENTERPRISES, json=_good(credit_code=VALID_CODE), headers=auth.headers("m-sup")),
                          409, "duplicate")
    assert "credit_code" in body["errors"]
    assert _count() == before


def test_bad_query_parameters(client, world: World, auth) -> None:
    headers = auth.headers("m-sup")
    body = assert_problem(client.get(ENTERPRISES + "?limit=0", headers=headers), 422)
    assert "query.limit" in body["errors"]
    assert_problem(client.get(ENTERPRISES + "?limit=abc", headers=headers), 422)
    assert_problem(client.get(ENTERPRISES + "?after=not-a-cursor", headers=headers), 422)
    assert_problem(client.get(ENTERPRISES + "?department_id=123", headers=headers), 422)


def test_unknown_path_and_wrong_method(client, world: World, auth) -> None:
    assert_problem(client.get("/api/v1/nothing-here"), 404, "not-found")
    response = client.delete(ENTERPRISES, headers=auth.headers("m-sup"))
    assert_problem(response, 405, "method-not-allowed")
    assert "GET" in response.headers["Allow"]


def test_unexpected_errors_do_not_leak_internals(app, client) -> None:
    @app.get("/boom-for-test")
    def boom() -> str:
        raise RuntimeError("secret internals")

    response = client.get("/boom-for-test")
    body = assert_problem(response, 500, "internal-error")
    assert "secret internals" not in response.get_data(as_text=True)
    assert body["detail"]


def test_openapi_document_is_generated_from_the_code(client) -> None:
    spec = client.get("/api/v1/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    for path in ("/api/v1/auth/token", "/api/v1/auth/refresh", "/api/v1/auth/device-token",
                 "/api/v1/enterprises/", "/api/v1/certificates/{certificate_id}/status"):
        assert path in spec["paths"], path
    assert "bearerAuth" in spec["components"]["securitySchemes"]
    page = client.get("/api/v1/docs")
    assert page.status_code == 200 and b"/api/v1/docs/assets/swagger-ui-bundle.js" in page.data
    # The UI's assets come from this server, not a CDN the office may not reach.
    with client.get("/api/v1/docs/assets/swagger-ui-bundle.js") as asset:
        assert asset.status_code == 200 and asset.mimetype.endswith("javascript")
    assert_problem(client.get("/api/v1/docs/assets/../../../../etc/passwd"), 404)
