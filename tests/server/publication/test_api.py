"""The publication API: deadlines, a decision's publication (422 where the calendar cannot count), publishing,
correcting and withdrawing over HTTP."""
from __future__ import annotations

from datetime import date

from server.decisions.models import DecisionKind
from tests.conftest import assert_problem


def test_deadlines_publish_correct_withdraw_over_http(client, auth, world, decide) -> None:
    decision = decide(DecisionKind.PENALTY, date(2026, 3, 2), conclusion="处罚款五千元")
    headers = auth.headers("m-sup")
    listed = client.get("/api/v1/publications/deadlines", headers=headers)
    assert listed.status_code == 200
    [row] = listed.get_json()["items"]
    assert row == {"decision_id": str(decision.id), "department_code": "SCJG", "enterprise_name": world.enterprise.name,
                   "kind": "penalty", "decided_on": "2026-03-02", "deadline": "2026-03-11", "days_left": 1,
                   "state": "soon", "calendar_error": None}
    status = client.get(f"/api/v1/decisions/{decision.id}/publication", headers=headers).get_json()
    assert (status["working_days"], status["deadline"], status["state"], status["versions"]) == (7, "2026-03-11",
                                                                                                 "soon", [])
    published = client.post(f"/api/v1/decisions/{decision.id}/publication", headers=headers)
    assert published.status_code == 201, published.get_json()
    first = published.get_json()
    assert first["version"] == 1 and first["decision_kind"] == "行政处罚" and first["state"] == "published"
    assert_problem(client.post(f"/api/v1/decisions/{decision.id}/publication", headers=headers), 409,
                   "already-published")
    refused = client.post(f"/api/v1/publications/{first['id']}/correction", headers=headers, json={"note": ""})
    assert "note" in assert_problem(refused, 422)["errors"]
    corrected = client.post(f"/api/v1/publications/{first['id']}/correction", headers=headers,
                            json={"note": "金额笔误", "conclusion": "处罚款三千元"})
    assert corrected.status_code == 201
    second = corrected.get_json()
    assert second["version"] == 2 and second["corrects_id"] == first["id"] and second["conclusion"] == "处罚款三千元"
    assert_problem(client.post(f"/api/v1/publications/{first['id']}/withdrawal", headers=headers,
                               json={"reason": "x"}), 409, "publication-superseded")
    withdrawn = client.post(f"/api/v1/publications/{second['id']}/withdrawal", headers=headers,
                            json={"reason": "复议撤销"})
    assert withdrawn.status_code == 200 and withdrawn.get_json()["state"] == "withdrawn"
    status = client.get(f"/api/v1/decisions/{decision.id}/publication", headers=headers).get_json()
    assert status["state"] == "withdrawn" and [v["state"] for v in status["versions"]] == ["corrected", "withdrawn"]
    assert client.get("/api/v1/publications/deadlines", headers=headers).get_json()["items"] == []


def test_a_deadline_beyond_the_calendar_is_422_not_a_guess(client, auth, world, decide) -> None:
    decision = decide(DecisionKind.NO_IRREGULARITY, date(2026, 12, 24))
    headers = auth.headers("m-sup")
    body = assert_problem(client.get(f"/api/v1/decisions/{decision.id}/publication", headers=headers), 422,
                          "calendar-out-of-range")
    assert "2026" in body["detail"] and "2027" in body["errors"]["deadline"][0]
    [row] = client.get("/api/v1/publications/deadlines", headers=headers).get_json()["items"]
    assert row["state"] == "unknown" and row["deadline"] is None and "2026" in row["calendar_error"]
    # Publishing is not refused for the calendar's sake: the entry simply has no deadline.
    published = client.post(f"/api/v1/decisions/{decision.id}/publication", headers=headers)
    assert published.status_code == 201 and published.get_json()["deadline"] is None


def test_other_departments_roles_and_bad_input(client, auth, world, decide) -> None:
    decision = decide(DecisionKind.PENALTY, date(2026, 3, 2))
    assert_problem(client.post(f"/api/v1/decisions/{decision.id}/publication", headers=auth.headers("e-sup")), 404)
    assert_problem(client.post(f"/api/v1/decisions/{decision.id}/publication", headers=auth.headers("m-insp")), 403)
    assert_problem(client.get("/api/v1/publications/deadlines", headers=auth.headers("m-insp")), 403)
    assert_problem(client.get("/api/v1/publications/deadlines?department=bad%20code", headers=auth.headers("admin")),
                   422)
    assert_problem(client.get("/api/v1/publications/deadlines?department=NOPE", headers=auth.headers("admin")), 404)
    assert_problem(client.get("/api/v1/publications/deadlines"), 401)
    headers = auth.headers("m-sup")
    publication = client.post(f"/api/v1/decisions/{decision.id}/publication", headers=headers).get_json()
    too_long = client.post(f"/api/v1/publications/{publication['id']}/withdrawal", headers=headers,
                           json={"reason": "长" * 2001})
    assert "reason" in assert_problem(too_long, 422)["errors"]
    unknown = client.post(f"/api/v1/publications/{publication['id']}/withdrawal", headers=headers,
                          json={"reason": "x", "extra": 1})
    assert_problem(unknown, 422)
