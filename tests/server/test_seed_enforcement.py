"""seed-demo's enforcement: decisions on two earlier visits, the legal reviewer's queue, publication deadlines, the
public results page and a legal hold — what a new user sees after ``make run``, made through the services."""
from __future__ import annotations

from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from server.archive.models import HeldObject, LegalHold
from server.auth.policy import SYSTEM
from server.db_types import office_day, utcnow
from server.decisions.models import DecisionStatus, EnforcementDecision, LegalReview, ReviewOutcome
from server.directory.models import Department
from server.extensions import db
from server.publication import calendar
from server.publication import service as publication
from server.publication.models import Publication, PublicationState
from server.seed import DEMO_PASSWORD, seed_demo_city
from tests.server.review.conftest import log_in


def _seeded() -> dict[str, EnforcementDecision]:
    seed_demo_city()
    db.session.commit()
    codes = {d.id: d.code for d in db.session.scalars(select(Department))}
    decisions = list(db.session.scalars(select(EnforcementDecision)))
    return {f"{codes[d.department_id]}-{d.kind.value}": d for d in decisions}


def _expected(state: str, decided_on: Any, seven_days: bool) -> str:
    """The state the lists show: ``state``, or "unknown" where chinesecalendar does not reach the deadline."""
    try:
        calendar.publication_deadline(decided_on, seven_days)
    except calendar.CalendarOutOfRange:
        return "unknown"
    return state


def test_the_demo_city_has_decisions_in_every_state(app: Flask) -> None:
    made = _seeded()
    today = office_day(utcnow())
    assert set(made) == {"SCJG-penalty", "STHJ-penalty", "YJGL-rectify_order", "SCJG-rectify_order"}
    pending, signed, order, routine = (made["SCJG-penalty"], made["STHJ-penalty"], made["YJGL-rectify_order"],
                                       made["SCJG-rectify_order"])
    assert pending.inspection_id == signed.inspection_id == order.inspection_id != routine.inspection_id
    # A major draft without a sign-off: what scjg-legal's queue holds.
    assert pending.status is DecisionStatus.DRAFT and pending.major and pending.legal_review_id is None
    assert "penalty_above:10000.00" in pending.major_reasons
    # A major decision signed off, made and served; ordinary ones made and served on earlier days.
    review = db.session.get(LegalReview, signed.legal_review_id)
    assert signed.major and review is not None and review.outcome is ReviewOutcome.APPROVED and review.opinion
    assert signed.status is DecisionStatus.SERVED and signed.decided_on == signed.served_on == today
    assert not order.major and order.status is DecisionStatus.SERVED and order.decided_on < today
    assert routine.status is DecisionStatus.SERVED and routine.decided_on < today

    states = {d.decision.id: d.state for d in publication.deadlines(SYSTEM)}
    assert states == {signed.id: _expected("due", signed.decided_on, True),
                      order.id: _expected("soon", order.decided_on, False)}, states

    versions = list(db.session.scalars(select(Publication).order_by(Publication.version)))
    assert [(p.decision_id, p.version, p.state) for p in versions] == [
        (routine.id, 1, PublicationState.CORRECTED), (routine.id, 2, PublicationState.PUBLISHED)]
    assert versions[1].correction_note and versions[1].conclusion != versions[0].conclusion

    [hold] = db.session.scalars(select(LegalHold)).all()
    assert hold.object_type is HeldObject.INSPECTION and hold.object_id == pending.inspection_id
    assert hold.reason and hold.lifted_at is None


def test_the_legal_reviewer_and_the_public_see_them(app: Flask, client: FlaskClient) -> None:
    made = _seeded()
    page = client.get("/public/").get_data(as_text=True)
    latest = db.session.scalars(select(Publication).where(Publication.version == 2)).one()
    assert latest.enterprise_name in page and latest.conclusion in page and "更正" in page

    assert log_in(client, "scjg-legal", DEMO_PASSWORD).status_code == 303
    queue = client.get("/review/legal")
    assert queue.status_code == 200
    text = queue.get_data(as_text=True)
    assert str(made["SCJG-penalty"].id) in text
    assert str(made["STHJ-penalty"].id) not in text  # another department's, and signed off already
