"""Fuzz every operation of the served OpenAPI description with schemathesis.

Each generated request is sent three times: without a valid token (whatever
Authorization header schemathesis made up, often none), as the admin and as an
inspector, so the handlers behind ``@requires`` are reached with both the
widest and a narrow role. Data is generated in positive (fits the schema) and
negative (violates it) mode. Some cases aim at real objects of the ``world``
(path ids, ``department_id``/``inspector_id`` in bodies) so the services run
past "not found" into their real rules.

The contract checked: never a 5xx, and every error (status >= 400) is RFC 9457
problem+json with ``type``, ``title``, ``status`` and ``detail``.

Bounded and reproducible: a fixed example budget shared by all operations,
``derandomize=True``, no example database written to the repository. A failure
names the operation, the mode and the identity, with a curl command to replay.
"""
from __future__ import annotations

import json
from typing import Any

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup

from server.directory.credit_code import make_credit_code
from server.extensions import db
from tests.conftest import AuthActions, World

pytestmark = pytest.mark.fuzz

# tus bodies (uploads) are raw bytes under their own media type.
schemathesis.serializer.alias("application/offset+octet-stream", "application/octet-stream")

# Generated examples for the whole API, shared out over (operation, generation
# mode) so the run stays bounded as operations are added; each example makes
# three requests (one per identity). About 30 s per database backend on 2 cores.
EXAMPLE_BUDGET = 1500
MIN_EXAMPLES = 10

IDENTITIES = {"anonymous": None, "admin": "admin", "inspector": "m-insp"}

FUZZ_SETTINGS = settings(
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=False,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
)


def _known_ids(world: World) -> dict[str, list[str]]:
    """Real ids by parameter / field name, so generated requests can reach real objects."""
    people = world.people
    known = {
        "department_id": [str(world.market.id), str(world.ecology.id)],
        "item_id": [str(item.id) for item in world.check_items.values()],
        "enterprise_id": [str(world.enterprise.id)],
        "user_id": [str(people[name].id) for name in ("admin", "m-insp", "e-insp")],
        "certificate_id": [str(people[name].certificates[0].id) for name in ("m-insp", "e-insp")],
        "device_id": [created.device.id for created in world.devices.values()],
        "inspector_id": [str(people["m-insp"].id), str(people["e-insp"].id)],
        "task_id": [str(world.task.id)],
    }
    db.session.commit()  # end the fixture session's transaction before the requests run
    return known


def _case_strategy(operation: Any, mode: GenerationMode, known: dict[str, list[str]]) -> st.SearchStrategy[Any]:
    """Generated cases; a share of them get real ids in the path and body."""
    strategies = [operation.as_strategy(mode)]
    path_names = [p.name for p in operation.path_parameters]
    if path_names and all(name in known for name in path_names):
        for i in range(max(len(known[name]) for name in path_names)):
            fixed = {name: known[name][i % len(known[name])] for name in path_names}
            strategies.append(operation.as_strategy(mode, path_parameters=fixed))

    def plant(drawn: tuple[Any, int | None, int]) -> Any:
        case, choice, serial = drawn
        if choice is not None and isinstance(case.body, dict):
            for field in ("department_id", "inspector_id"):
                if field in case.body:
                    case.body[field] = known[field][choice % len(known[field])]
            if "credit_code" in case.body:  # a valid check character is out of the generator's reach
                case.body["credit_code"] = make_credit_code("9", "1", "350100", f"MA{serial:06d}")
        return case

    choices = st.one_of(st.none(), st.integers(0, 1))
    return st.tuples(st.one_of(strategies), choices, st.integers(0, 999_999)).map(plant)


def _problem_errors(response: Any, method: str = "GET") -> list[str]:
    """Why ``response`` breaks the error contract (empty when it holds)."""
    if response.status_code >= 500:
        return [f"server error {response.status_code}"]
    if response.status_code < 400:
        return []
    content_type = (response.headers.get("content-type") or [""])[0]
    if content_type.split(";")[0].strip() != "application/problem+json":
        return [f"error {response.status_code} answered as {content_type!r}, not application/problem+json"]
    if method.upper() == "HEAD":
        return []  # the answer to HEAD has the headers of the problem, never its body
    try:
        body = json.loads(response.content)
    except ValueError:
        return [f"error {response.status_code} body is not JSON: {response.content[:200]!r}"]
    if not isinstance(body, dict):
        return [f"error {response.status_code} body is not an object: {body!r}"]
    problems = [f"problem lacks {key!r}" for key in ("type", "title", "status", "detail") if not body.get(key)]
    if body.get("status") != response.status_code:
        problems.append(f"problem status {body.get('status')!r} differs from HTTP status {response.status_code}")
    return problems


def test_fuzz_openapi(app: Flask, world: World, auth: AuthActions) -> None:
    tokens = {name: auth.headers(user) if user else None for name, user in IDENTITIES.items()}
    known = _known_ids(world)
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]

    spec = app.test_client().get("/api/v1/openapi.json").get_json()
    documented = {f"{method.upper()} {path}" for path, item in spec["paths"].items() for method in item
                  if method != "parameters"}
    assert {op.label for op in operations} == documented
    assert len(operations) >= 25

    per_run = settings(FUZZ_SETTINGS, max_examples=max(MIN_EXAMPLES, EXAMPLE_BUDGET // (2 * len(operations))))
    failures: list[str] = []
    exercised: dict[tuple[str, str, str], int] = {}

    for operation in operations:
        for mode in GenerationMode:

            @per_run
            @given(case=_case_strategy(operation, mode, known))
            def fuzz(case: Any) -> None:
                for identity, headers in tokens.items():
                    response = case.call(headers=headers)
                    # fuzz() is called below, in this same iteration: the loop variables are still the current ones.
                    key = (operation.label, mode.value, identity)  # noqa: B023
                    exercised[key] = exercised.get(key, 0) + 1
                    try:
                        case.validate_response(response, checks=[not_a_server_error], headers=headers)
                    except FailureGroup as failure:
                        failure.add_note(f"sent as {identity}")
                        raise
                    problems = _problem_errors(response, case.method)
                    assert not problems, (
                        f"{identity}: {case.method} {case.formatted_path} -> {response.status_code}: {problems}\n"
                        f"query={case.query!r} body={case.body!r}\n{response.content[:500]!r}")

            try:
                fuzz()
            except (Exception, FailureGroup) as exc:  # noqa: BLE001 - gather every failure, report them together
                notes = "\n".join(getattr(exc, "__notes__", []))
                failures.append(f"{operation.label} [{mode.value}]: {exc}\n{notes}")

    assert not failures, "\n\n".join(failures)
    missing = [(op.label, mode.value, who) for op in operations for mode in GenerationMode for who in IDENTITIES
               if not exercised.get((op.label, mode.value, who))]
    assert not missing, missing
