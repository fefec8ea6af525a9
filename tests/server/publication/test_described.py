"""The publication API's GET answers, with real decisions — due, overdue, beyond the calendar, published,
corrected, withdrawn — match the OpenAPI description (the demo city the every-GET walk uses has no decisions)."""
from __future__ import annotations

from datetime import date

from server.auth.policy import SYSTEM
from server.decisions.models import DecisionKind
from server.extensions import db
from server.publication import service
from tests.server.test_every_get import Description


def test_every_publication_get_answers_as_documented(client, auth, world, decide) -> None:
    description = Description(client.get("/api/v1/openapi.json").get_json())
    operations = dict(description.get_operations())
    decisions = [decide(DecisionKind.PENALTY, date(2026, 3, 2)),
                 decide(DecisionKind.NO_IRREGULARITY, date(2026, 1, 5)),
                 decide(DecisionKind.RECTIFY_ORDER, date(2026, 12, 24), department=world.ecology)]
    corrected = decide(DecisionKind.LICENSING, date(2026, 3, 3), department=world.ecology)
    service.correct(SYSTEM, service.publish(SYSTEM, corrected.id).id, "笔误", conclusion="更正后的结论")
    withdrawn = decide(DecisionKind.PENALTY, date(2026, 3, 4))
    service.withdraw(SYSTEM, service.publish(SYSTEM, withdrawn.id).id, "依法撤销")
    db.session.commit()
    urls = {
        "/api/v1/publications/deadlines": ["/api/v1/publications/deadlines",
                                           "/api/v1/publications/deadlines?department=STHJ",
                                           "/api/v1/publications/deadlines?department=NOPE",
                                           "/api/v1/publications/deadlines?department=bad-code"],
        "/api/v1/decisions/{decision_id}/publication": [
            f"/api/v1/decisions/{d.id}/publication" for d in [*decisions, corrected, withdrawn]],
    }
    answered = {}
    for who in ("admin", "m-sup", "e-sup", "m-insp", "e-head"):
        headers = auth.headers(who)
        for path, found in urls.items():
            for url in found:
                response = client.get(url, headers=headers)
                description.check(operations[path], url, response)
                answered[response.status_code] = answered.get(response.status_code, 0) + 1
    assert answered[200] > 10 and answered[422] and answered[404], answered
