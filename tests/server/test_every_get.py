"""Every GET endpoint of the OpenAPI description, with every id that exists in the demo city after the worker ran.

Random ids (the fuzzer's) find the 404 paths; this walk finds what real data does to the answers: a
verified file in a joint record, a draw with its tasks, a certificate with its history. Every answer
must be below 500 and match what the description documents for it (the success schema, or problem+json).
"""
from __future__ import annotations

import copy
import re
import uuid
from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from server.archive.models import LegalHold
from server.decisions.models import Commitment, EnforcementDecision
from server.directory.models import Certificate, CheckItem, Department, Device, Enterprise, User
from server.evaluations.models import Complaint
from server.extensions import db
from server.jobs.queue import current_queue
from server.planning.models import ConflictOfInterest, Draw, FrequencyOverride, JointPlan, SpotCheckPlan
from server.seed import DEMO_PASSWORD, seed_demo_city
from server.sync.models import SyncedEntity
from server.tasks.models import InspectionTask
from server.uploads.models import Media
from server.verification.models import InspectionFlag

CALLERS = ("admin", "scjg-supervisor", "scjg-insp1", "sthj-head")


def _ids(model: Any, column: Any = None, *where: Any) -> list[str]:
    column = column if column is not None else model.id
    return sorted(str(value) for value in db.session.scalars(select(column).where(*where)))


def _path_ids() -> dict[str, list[str]]:
    """Every id that exists, by the path parameter's name."""
    return {
        "plan_id": _ids(SpotCheckPlan), "joint_plan_id": _ids(JointPlan), "draw_id": _ids(Draw),
        "conflict_id": _ids(ConflictOfInterest), "override_id": _ids(FrequencyOverride),
        "task_id": _ids(InspectionTask), "department_id": _ids(Department), "item_id": _ids(CheckItem),
        "enterprise_id": _ids(Enterprise), "user_id": _ids(User), "certificate_id": _ids(Certificate),
        "device_id": _ids(Device), "media_id": _ids(Media),
        "inspection_id": _ids(SyncedEntity, SyncedEntity.id, SyncedEntity.kind == "inspection"),
        "hold_id": _ids(LegalHold),
        "decision_id": _ids(EnforcementDecision), "commitment_id": _ids(Commitment),
        "complaint_id": _ids(Complaint),
    }


def _query_values(ids: dict[str, list[str]]) -> dict[str, list[str | None]]:
    """Values for a list endpoint's filters: none (the default listing), then every real one."""
    flags = sorted(set(db.session.scalars(select(InspectionFlag.code))))
    return {
        "department_id": [None, *ids["department_id"]], "task_id": ids["task_id"], "flag": [None, *flags],
        "sha256": sorted(set(db.session.scalars(select(Media.sha256)))),
        "role": [None, "inspector", "supervisor", "legal_reviewer", "head", "admin"],
        "q": [None, "食品"], "object_type": [None, "inspection", "media", "task"],
    }


@pytest.fixture
def demo_city(app: Flask) -> Flask:
    """``seed-demo``, then a worker run until nothing is left to do."""
    seed_demo_city()
    db.session.commit()
    queue = current_queue(app)
    while queue.run_pending():
        pass
    assert db.session.scalars(select(Media.verification_status)).all(), "the demo city has verified evidence"
    return app


def _json_schema(node: Any) -> Any:
    """OpenAPI 3.0 schema objects as JSON Schema: ``nullable`` becomes a null type."""
    if isinstance(node, list):
        return [_json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _json_schema(v) for k, v in node.items() if k not in ("nullable", "example")}
    if node.get("nullable") and "type" in node:
        out["type"] = [node["type"], "null"]
    return out


class Description:
    """The served OpenAPI description: what each GET answers."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.components = _json_schema(copy.deepcopy(spec.get("components", {})))

    def get_operations(self) -> Iterator[tuple[str, dict[str, Any]]]:
        for path, operations in sorted(self.spec["paths"].items()):
            if "get" in operations:
                yield path, operations["get"]

    def check(self, operation: dict[str, Any], url: str, response: Any) -> None:
        status = response.status_code
        assert status < 500, f"GET {url} answered {status}: {response.get_data(as_text=True)[:500]}"
        documented = operation["responses"]
        assert str(status) in documented or "default" in documented, f"GET {url}: {status} is not documented"
        if status >= 400:
            assert response.mimetype == "application/problem+json", f"GET {url}: {status} as {response.mimetype}"
            self._validate(response.get_json(), {"$ref": "#/components/schemas/Problem"}, url)
            return
        content = documented.get(str(status), {}).get("content") or {}
        if response.mimetype == "application/json":
            assert "application/json" in content, f"GET {url}: JSON answer not documented"
            self._validate(response.get_json(), content["application/json"].get("schema", {}), url)
        else:
            served = response.mimetype
            assert any(kind == served or (kind.endswith("/*") and served.startswith(kind[:-1])) for kind in content), \
                f"GET {url}: {served} not among the documented {sorted(content)}"

    def _validate(self, body: Any, schema: dict[str, Any], url: str) -> None:
        document = {**_json_schema(schema), "components": self.components}
        try:
            jsonschema.validate(body, document, format_checker=jsonschema.FormatChecker())
        except jsonschema.ValidationError as error:
            raise AssertionError(f"GET {url}: body does not match the description: {error.message} "
                                 f"at {'/'.join(map(str, error.absolute_path))}") from None


def _login(client: FlaskClient, username: str) -> dict[str, str]:
    answer = client.post("/api/v1/auth/token", json={"username": username, "password": DEMO_PASSWORD})
    assert answer.status_code == 200, answer.get_json()
    return {"Authorization": f"Bearer {answer.get_json()['access_token']}"}


def _urls(path: str, operation: dict[str, Any], ids: dict[str, list[str]],
          queries: dict[str, list[str | None]]) -> Iterator[str]:
    names = re.findall(r"{(\w+)}", path)
    for name in names:
        assert name in ids, f"{path}: no ids known for {{{name}}}; add where they come from to _path_ids"
    if names:
        assert len(names) == 1, f"{path}: walk several path parameters"
        values = ids[names[0]]
        for value in values:
            yield path.replace(f"{{{names[0]}}}", value)
        return
    query = [p for p in operation.get("parameters", []) if p["in"] == "query" and p["name"] in queries]
    required = [p["name"] for p in operation.get("parameters", []) if p["in"] == "query" and p.get("required")]
    for name in required:
        assert name in queries, f"{path}: no values known for the required ?{name}="
    if not query:
        yield path
        return
    for parameter in query:
        for value in queries[parameter["name"]]:
            if value is None:
                if not any(r for r in required):
                    yield path
                continue
            yield f"{path}?{parameter['name']}={value}"


def test_every_get_endpoint_answers_every_real_id_as_documented(demo_city: Flask, client: FlaskClient) -> None:
    description = Description(client.get("/api/v1/openapi.json").get_json())
    ids = _path_ids()
    queries = _query_values(ids)
    assert all(ids[name] for name in ("plan_id", "joint_plan_id", "draw_id", "conflict_id", "override_id",
                                      "task_id", "media_id", "inspection_id")), "the demo city has one of each"
    headers = {who: _login(client, who) for who in CALLERS}
    walked, ok = 0, dict.fromkeys(CALLERS, 0)
    for path, operation in description.get_operations():
        for url in set(_urls(path, operation, ids, queries)):
            for who in CALLERS:
                response = client.get(url, headers=headers[who])
                description.check(operation, url, response)
                walked += 1
                ok[who] += response.status_code < 300
    assert walked > 1000
    # The walk reached real answers, not only refusals: the administrator sees everything.
    assert ok["admin"] > 0.9 * walked / len(CALLERS), ok
    assert all(ok.values()), ok


def test_the_joint_record_of_a_verified_inspection_is_served(demo_city: Flask, client: FlaskClient) -> None:
    """The reported defect: a joint record once any of its evidence was verified answered 500."""
    inspection = db.session.scalars(select(SyncedEntity).where(SyncedEntity.kind == "inspection")).first()
    assert inspection is not None
    verified = db.session.scalar(select(Media).where(Media.task_id == inspection.task_id))
    assert verified is not None and verified.verification_status.value != "pending"
    answer = client.get(f"/api/v1/tasks/{inspection.task_id}/joint-record", headers=_login(client, "scjg-supervisor"))
    assert answer.status_code == 200, answer.get_data(as_text=True)[:300]
    evidence = {e["id"]: e for e in answer.get_json()["evidence"]}
    assert evidence[str(verified.id)]["verification"]["status"] == verified.verification_status.value
    assert uuid.UUID(answer.get_json()["task"]["id"]) == inspection.task_id
