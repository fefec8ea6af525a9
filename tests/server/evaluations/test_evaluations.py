"""The enterprise rates a visit and complains with its inspection code; the supervising office reads and replies;
the team never sees it (issue 18, "Evaluation and complaints")."""
from __future__ import annotations

import json
from datetime import timedelta

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from server.audit.models import AuditEntry
from server.evaluations.models import Complaint, EvaluationVersion, FollowUpStatus, VisitEvaluation
from server.extensions import db
from tests.conftest import VALID_CODE, World
from tests.server.evaluations.conftest import COMPLAINT, RATING, code_token, page_url, post, state_of


def _actions() -> list[str]:
    return list(db.session.scalars(select(AuditEntry.action).order_by(AuditEntry.seq)))


def test_one_evaluation_per_code_corrected_within_the_days_allowed_and_not_after(
        app: Flask, client: FlaskClient, world: World, clock) -> None:
    token = code_token(app, world.task)
    code_page = client.get(f"/public/c/{token}").get_data(as_text=True)
    assert f'href="{page_url(token)}"' in code_page  # the code's page leads to the evaluation
    page = client.get(page_url(token))
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and state_of(html) == "open"
    assert 'data-testid="rating-form"' in html and 'data-testid="complaint-form"' in html
    assert "不会发给检查人员" in html and VALID_CODE not in html

    first = post(client, token, RATING)
    assert first.status_code == 201, first.get_data(as_text=True)[:600]
    assert "评价已提交" in first.get_data(as_text=True)
    clock.shift(timedelta(days=6))
    corrected = post(client, token, {**RATING, "courtesy": "dissatisfied", "comment": "事后想来，态度生硬"})
    assert corrected.status_code == 200 and "评价已修改" in corrected.get_data(as_text=True)
    evaluation = db.session.scalars(select(VisitEvaluation)).one()  # still one evaluation for the code
    assert [(v.version, v.courtesy.value) for v in evaluation.versions] == [(1, "satisfied"), (2, "dissatisfied")]
    assert evaluation.current.comment == "事后想来，态度生硬"
    # Past the correction days (7 by default) the rating is final.
    clock.shift(timedelta(days=1, hours=1))
    late = post(client, token, {**RATING, "courtesy": "basically_satisfied"})
    assert late.status_code == 409 and "修改期限已过" in late.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.scalar(select(db.func.count()).select_from(EvaluationVersion)) == 2
    assert _actions().count("evaluation.submitted") == 1 and _actions().count("evaluation.corrected") == 1


def test_a_wrong_credit_code_is_refused_and_counted_and_floods_are_refused(app: Flask, client: FlaskClient,
                                                                           world: World) -> None:
    from server.directory.credit_code import make_credit_code

    token = code_token(app, world.task)
    other = make_credit_code("9", "1", "431121", "MA000001")  # a real code, of someone else
    for entered in (other, "ABC", other, other, other):
        refused = post(client, token, RATING, credit_code=entered)
        html = refused.get_data(as_text=True)
        assert refused.status_code == 403 and "统一社会信用代码与检查码对应的企业不符" in html
        assert 'data-testid="error-credit_code"' in html
    # Five wrong codes on this code: the next try is refused for a while, whoever makes it and with any code.
    for address in ("10.0.0.7", "10.9.9.9"):
        flooded = post(client, token, RATING, address=address)
        assert flooded.status_code == 429 and int(flooded.headers["Retry-After"]) > 0
        assert "失败次数过多" in flooded.get_data(as_text=True)
    assert db.session.scalar(select(db.func.count()).select_from(VisitEvaluation)) == 0

    # Submissions from one address: ten an hour (a rating and its corrections here), then 429.
    second = code_token(app, _second_task(world))
    for n in range(10):
        assert post(client, second, RATING, address="10.1.1.1").status_code == (201 if n == 0 else 200)
    flooded = post(client, second, RATING, address="10.1.1.1")
    assert flooded.status_code == 429 and "提交过于频繁" in flooded.get_data(as_text=True)
    assert flooded.headers["Retry-After"].isdigit()
    assert post(client, second, COMPLAINT, address="10.1.1.2").status_code == 201  # another phone is not slowed
    # Ten versions are the most an evaluation has (the first and nine corrections).
    final = post(client, second, RATING, address="10.1.1.3")
    assert final.status_code == 409 and "已达上限" in final.get_data(as_text=True)


def _second_task(world: World):  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime

    from server.auth.policy import SYSTEM
    from server.tasks.service import create_task

    now = datetime.now(UTC)
    task = create_task(SYSTEM, {
        "title": "市场监管检查：浯溪食品", "enterprise_id": world.enterprise.id,
        "window_start": now - timedelta(days=2), "window_end": now - timedelta(days=2, hours=-4),
        "member_ids": [world.people["m-insp"].id], "check_item_ids": [world.check_items["m-licence"].id],
        "lead_department_id": world.market.id})
    db.session.commit()
    return task


def test_refusals_are_pages_that_say_why(app: Flask, client: FlaskClient, world: World, clock) -> None:
    import uuid

    from server.codes import service as codes
    from server.codes.token import Claims, sign
    from server.tasks.models import TaskStatus

    token = code_token(app, world.task)
    body, signature = token.split(".")
    forged = body[:-2] + ("A" if body[-2] != "A" else "B") + body[-1] + "." + signature
    unknown = sign(codes._key(), Claims(**{**codes.claims_for(world.task).__dict__, "task_id": uuid.uuid4()}))
    for bad, status in ((forged, 400), ("not-a-code", 400), (unknown, 404)):
        for answer in (client.get(page_url(bad)), post(client, bad, RATING, csrf_from=token)):
            html = answer.get_data(as_text=True)
            assert answer.status_code == status and answer.mimetype == "text/html", (bad, answer.status_code)
            assert state_of(html) in ("forged", "malformed", "unknown-task") and 'name="credit_code"' not in html
    # Forms: a missing CSRF token, an unknown button, fields left out, text no database stores.
    missing = client.post(page_url(token), data={**RATING, "credit_code": VALID_CODE})
    assert missing.status_code == 400 and "表单已过期" in missing.get_data(as_text=True)
    assert post(client, token, {"action": "vote"}).status_code == 400
    unfilled = post(client, token, {"action": "rate", "courtesy": "great"})
    html = unfilled.get_data(as_text=True)
    assert unfilled.status_code == 422 and "请选择检查人员是否出示了执法证件" in html
    assert "请选择满意、基本满意或不满意" in html
    assert post(client, token, {**COMPLAINT, "text": "有\x00空字符"}).status_code == 422
    assert post(client, token, {**COMPLAINT, "text": "长" * 2001}).status_code == 422

    # Before the window: nothing to rate yet; past the rating period: closed, but replies can still be read.
    clock.move_to(world.task.window_start - timedelta(minutes=5))
    assert state_of(client.get(page_url(token)).get_data(as_text=True)) == "not-open"
    assert post(client, token, RATING).status_code == 409
    clock.move_to(world.task.window_end + timedelta(days=30, minutes=5))
    closed = client.get(page_url(token))
    assert closed.status_code == 410 and "评价期限已过" in closed.get_data(as_text=True)
    assert 'data-testid="rating-form"' not in closed.get_data(as_text=True)
    assert post(client, token, RATING).status_code == 410
    assert post(client, token, {"action": "look-up"}).status_code == 200

    # A task cancelled before anyone visited has nothing to rate; one cancelled after the visit has.
    clock.move_to(world.task.window_start + timedelta(minutes=30))
    world.task.status = TaskStatus.CANCELLED
    db.session.commit()
    cancelled = client.get(page_url(token))
    assert cancelled.status_code == 410 and state_of(cancelled.get_data(as_text=True)) == "cancelled"
    assert post(client, token, COMPLAINT).status_code == 410
    from tests.server.evaluations.conftest import visit

    visit(world)
    assert state_of(client.get(page_url(token)).get_data(as_text=True)) == "open"
    assert post(client, token, COMPLAINT).status_code == 201


def test_a_complaint_reaches_the_supervising_office_and_never_the_team(app: Flask, client: FlaskClient,
                                                                       world: World, auth, make_user,
                                                                       review_as) -> None:
    from tests.server.evaluations.conftest import lodge_complaint, visit
    from tests.server.sync.test_pull import pull_all

    make_user("m-legal", "legal_reviewer", world.market)
    inspection = visit(world)
    token = code_token(app, world.task)
    assert post(client, token, RATING).status_code == 201
    complaint_id = lodge_complaint(app, world)
    url = f"/api/v1/tasks/{world.task.id}/evaluations"

    seen = {}
    for who in ("m-legal", "m-head", "m-sup", "e-head", "admin"):
        answer = client.get(url, headers=auth.headers(who))
        assert answer.status_code == 200, (who, answer.get_json())
        seen[who] = answer.get_json()
    assert seen["m-legal"]["complaints"][0]["contact"] == COMPLAINT["contact"]
    assert seen["admin"]["complaints"][0]["contact"] == COMPLAINT["contact"]
    for who in ("m-head", "m-sup", "e-head"):  # the inspecting departments: what was said, not who said it
        complaint = seen[who]["complaints"][0]
        assert complaint["text"] == COMPLAINT["text"] and complaint["contact"] is None and complaint["has_contact"]
        assert seen[who]["evaluation"]["current"]["courtesy"] == "satisfied"
    assert seen["m-sup"]["inspection_id"] == str(inspection.id)
    by_inspection = client.get(f"/api/v1/inspections/{inspection.id}/evaluations", headers=auth.headers("m-legal"))
    assert by_inspection.get_json()["complaints"][0]["id"] == complaint_id
    queue = client.get("/api/v1/complaints/", headers=auth.headers("m-legal")).get_json()
    assert [c["id"] for c in queue["items"]] == [complaint_id]

    # The team: refused by the API, and nothing of it in what their tablets pull.
    for who in ("m-insp", "e-insp", "e-insp2"):
        for path in (url, f"/api/v1/inspections/{inspection.id}/evaluations", "/api/v1/complaints/",
                     f"/api/v1/complaints/{complaint_id}"):
            assert client.get(path, headers=auth.headers(who)).status_code == 403, (who, path)
    for who in ("m-insp", "e-insp"):
        pulled = json.dumps(pull_all(client, auth.headers(who))[0], ensure_ascii=False)
        assert COMPLAINT["text"] not in pulled and COMPLAINT["contact"] not in pulled
        assert RATING["comment"] not in pulled and "satisfied" not in pulled

    # In the review app, beside the record: the supervisor reads the rating and the complaint but not the contact.
    page = review_as("m-sup").get(f"/review/inspections/{inspection.id}").get_data(as_text=True)
    assert 'data-testid="enterprise-evaluation"' in page and "企业评价" in page and "满意" in page
    assert COMPLAINT["text"] in page and COMPLAINT["contact"] not in page and "仅法制审核人员可见" in page
    client.post("/review/logout", data={})
    page = review_as("m-legal").get(f"/review/inspections/{inspection.id}").get_data(as_text=True)
    assert COMPLAINT["contact"] in page
    # The log has that it happened, never what was said nor the contact.
    details = json.dumps([e.details for e in db.session.scalars(select(AuditEntry))], ensure_ascii=False)
    assert "complaint.lodged" in _actions() and COMPLAINT["text"] not in details and COMPLAINT["contact"] not in details


def test_a_follow_up_is_closed_with_a_reply_the_enterprise_reads_back(app: Flask, client: FlaskClient,
                                                                      world: World, auth, review_as) -> None:
    from tests.server.evaluations.conftest import lodge_complaint, visit
    from tests.server.review.conftest import post_form

    visit(world)
    complaint_id = lodge_complaint(app, world)
    token = code_token(app, world.task)
    waiting = post(client, token, {"action": "look-up"}).get_data(as_text=True)
    assert 'data-status="open"' in waiting and "尚未答复" in waiting and COMPLAINT["text"] not in waiting
    reply_url = f"/api/v1/complaints/{complaint_id}/reply"
    assert client.post(reply_url, json={"reply": "已核实"}, headers=auth.headers("m-sup")).status_code == 403

    # The head answers from the follow-up queue of the review app.
    office = review_as("m-head")
    queue = office.get("/review/complaints").get_data(as_text=True)
    assert COMPLAINT["text"] in queue and 'data-testid="reply-form"' in queue and COMPLAINT["contact"] not in queue
    answer = post_form(office, f"/review/complaints/{complaint_id}/reply",
                       {"reply": "经核实，检查人员已被批评教育，今后将严格按检查事项检查。"}, page="/review/complaints")
    assert answer.status_code == 303
    assert "没有待答复的投诉" in office.get("/review/complaints").get_data(as_text=True)
    complaint = db.session.get(Complaint, __import__("uuid").UUID(complaint_id))
    db.session.refresh(complaint)
    assert complaint.status is FollowUpStatus.CLOSED and complaint.replied_by_id == world.people["m-head"].id
    again = client.post(reply_url, json={"reply": "再答复"}, headers=auth.headers("admin"))
    assert again.status_code == 409 and again.get_json()["type"] == "/problems/follow-up-closed"
    assert "complaint.closed" in _actions()

    # The enterprise comes back with its credit code and reads the reply.
    back = post(client, token, {"action": "look-up"}).get_data(as_text=True)
    assert 'data-status="closed"' in back and "经核实，检查人员已被批评教育" in back
    assert COMPLAINT["contact"] not in back
