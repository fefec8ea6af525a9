"""Helpers for the enterprise's evaluation page: the world task's code, its page, and a form posted with the
page's CSRF token, as a phone would (log-in-free, from one client address)."""
from __future__ import annotations

import re
from typing import Any

from flask import Flask, g
from flask.testing import FlaskClient

from server.codes import service as codes
from server.sync.entities import inspection_id_for
from server.sync.models import SyncedEntity
from server.tasks.models import InspectionTask
from tests.conftest import VALID_CODE, World
from tests.server.review.conftest import entity, review_as  # noqa: F401 - review_as: the log-in fixture

RATING = {"action": "rate", "certificate_shown": "yes", "courtesy": "satisfied", "disturbed_production": "no",
          "comment": "检查人员主动亮证，态度很好"}
COMPLAINT = {"action": "complain", "text": "检查人员要求提供与检查事项无关的财务资料", "contact": "13800138000"}
_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
_STATE = re.compile(r'data-testid="evaluation-state" data-state="([^"]+)"')


def code_token(app: Flask, task: InspectionTask) -> str:
    with app.test_request_context("/"):
        issued = codes.issued_code(task)
    assert issued is not None
    return issued.token


def page_url(token: str) -> str:
    return f"/public/c/{token}/evaluation"


def state_of(html: str) -> str | None:
    found = _STATE.search(html)
    return found.group(1) if found else None


def csrf(client: FlaskClient, token: str) -> str:
    g.pop("csrf_token", None)  # a new request on a server would not find the last one's (see review's conftest)
    found = _TOKEN.search(client.get(page_url(token)).get_data(as_text=True))
    assert found, "the page carries a form"
    return found.group(1)


def post(client: FlaskClient, token: str, data: dict[str, Any], *, credit_code: str | None = VALID_CODE,
         address: str = "10.0.0.7", csrf_from: str | None = None) -> Any:
    """The form posted from the evaluation page of ``token`` (or of ``csrf_from``, for a token without forms)."""
    body = {**data, "csrf_token": csrf(client, csrf_from or token)}
    if credit_code is not None:
        body["credit_code"] = credit_code
    return client.post(page_url(token), data=body, environ_base={"REMOTE_ADDR": address})


def visit(world: World) -> SyncedEntity:
    """The world task's joint inspection record, as market regulation's tablet left it."""
    from server.extensions import db

    record = entity("inspection", world.task, world.market.id, world.people["m-insp"].id,
                    entity_id=inspection_id_for(world.task.id),
                    fields={"task_id": str(world.task.id), "place": "厂区", "status": "finished"})
    db.session.commit()
    return record


def lodge_complaint(app: Flask, world: World) -> str:
    """A complaint on the world task, lodged through the public page; its id."""
    from server.evaluations.models import Complaint
    from server.extensions import db

    client = app.test_client()
    answer = post(client, code_token(app, world.task), COMPLAINT)
    assert answer.status_code == 201, answer.get_data(as_text=True)[:800]
    return str(db.session.scalars(db.select(Complaint.id).order_by(Complaint.submitted_at.desc())).first())
