"""The decisions' GET answers, with real decisions, reviews and commitments, match the OpenAPI description
(the every-GET walk runs over the demo city, which has commitments but no decisions)."""
from __future__ import annotations

from tests.server.decisions.conftest import NOTICE, PENALTY, Case, record
from tests.server.test_every_get import Description


def test_every_decision_get_answers_as_documented(client, auth, case: Case) -> None:
    description = Description(client.get("/api/v1/openapi.json").get_json())
    operations = dict(description.get_operations())
    major = record(client, auth, case, "e-sup", PENALTY).get_json()
    ordinary = record(client, auth, case, "m-sup", NOTICE).get_json()
    client.post(f"/api/v1/decisions/{major['id']}/legal-review", headers=auth.headers("e-legal"),
                json={"outcome": "approved", "opinion": "同意", "reviewed_on": case.today.isoformat()})
    client.post(f"/api/v1/decisions/{ordinary['id']}/make", headers=auth.headers("m-sup"),
                json={"decided_on": case.today.isoformat()})
    commitment = client.post("/api/v1/commitments/", headers=auth.headers("e-sup"), json={
        "enterprise_id": str(case.world.enterprise.id), "matter": "排污登记", "promise": "已建设污水处理设施",
        "due_on": case.today.isoformat()}).get_json()
    client.post(f"/api/v1/commitments/{commitment['id']}/result", headers=auth.headers("e-sup"),
                json={"result": "untrue", "note": "未建设", "checked_on": case.today.isoformat()})
    urls = {
        "/api/v1/inspections/{inspection_id}/decisions": [case.url],
        "/api/v1/decisions/": ["/api/v1/decisions/", "/api/v1/decisions/?awaiting_review=true",
                               "/api/v1/decisions/?status=made"],
        "/api/v1/decisions/{decision_id}": [f"/api/v1/decisions/{major['id']}", f"/api/v1/decisions/{ordinary['id']}"],
        "/api/v1/departments/{department_id}/decision-rule": [
            f"/api/v1/departments/{case.world.ecology.id}/decision-rule"],
        "/api/v1/commitments/": ["/api/v1/commitments/", "/api/v1/commitments/?result=untrue"],
        "/api/v1/commitments/{commitment_id}": [f"/api/v1/commitments/{commitment['id']}"],
        "/api/v1/enterprises/{enterprise_id}": [f"/api/v1/enterprises/{case.world.enterprise.id}"],
    }
    answered = 0
    for who in ("admin", "e-sup", "m-sup", "e-legal", "m-insp", "e-insp2"):
        headers = auth.headers(who)
        for path, found in urls.items():
            for url in found:
                response = client.get(url, headers=headers)
                description.check(operations[path], url, response)
                answered += response.status_code == 200
    assert answered > 30
