"""The legal reviewer's queue and sign-off form in the review app, and the decisions on an inspection's page."""
from __future__ import annotations

from typing import Any

from sqlalchemy import select

from server.decisions.models import EnforcementDecision, LegalReview
from server.extensions import db
from tests.server.decisions.conftest import NOTICE, PENALTY, Case, record
from tests.server.review.conftest import post_form


def _penalty(client: Any, auth: Any, case: Case) -> str:
    answer = record(client, auth, case, "e-sup", PENALTY)
    assert answer.status_code == 201
    return answer.get_json()["id"]  # type: ignore[no-any-return]


def test_the_queue_lists_what_waits_and_the_form_signs_it_off(client, auth, case: Case, review_as) -> None:
    decision_id = _penalty(client, auth, case)
    assert record(client, auth, case, "m-sup", NOTICE).status_code == 201  # ordinary: never in the queue
    page = review_as("e-legal").get("/review/legal").get_data(as_text=True)
    assert page.count('data-testid="legal-row"') == 1 and decision_id in page
    assert "行政处罚" in page and "罚款超过 10000.00 元" in page and "祁阳市浯溪食品有限公司" in page
    assert f'/review/inspections/{case.inspection.id}' in page
    form = client.get(f"/review/legal/{decision_id}").get_data(as_text=True)
    assert "排污许可证过期仍排放污染物" in form and 'data-testid="sign-off-form"' in form

    refused = post_form(client, f"/review/legal/{decision_id}", {"outcome": "approved", "opinion": " ",
                                                                 "reviewed_on": case.today.isoformat()},
                        page=f"/review/legal/{decision_id}")
    assert refused.status_code == 422 and "请填写审核意见" in refused.get_data(as_text=True)
    assert db.session.scalar(select(db.func.count()).select_from(LegalReview)) == 0

    done = post_form(client, f"/review/legal/{decision_id}", {"outcome": "approved", "opinion": "同意作出处罚决定",
                                                              "reviewed_on": case.today.isoformat()},
                     page=f"/review/legal/{decision_id}")
    assert done.status_code == 303
    review = db.session.scalar(select(LegalReview))
    assert review is not None and review.opinion == "同意作出处罚决定"
    assert db.session.get(EnforcementDecision, review.decision_id).legal_review_id == review.id  # type: ignore[union-attr]
    assert 'data-testid="legal-empty"' in client.get("/review/legal").get_data(as_text=True)


def test_only_legal_reviewers_of_the_department_see_it(client, auth, case: Case, review_as) -> None:
    decision_id = _penalty(client, auth, case)
    assert 'data-testid="legal-empty"' in review_as("m-legal").get("/review/legal").get_data(as_text=True)
    assert client.get(f"/review/legal/{decision_id}").status_code == 200  # market took part: may read it
    refused = post_form(client, f"/review/legal/{decision_id}", {"outcome": "approved", "opinion": "同意",
                                                                 "reviewed_on": case.today.isoformat()},
                        page="/review/legal")
    assert refused.status_code == 403
    assert review_as("e-sup").get("/review/legal").status_code == 403


def test_the_inspection_page_lists_its_decisions(client, auth, case: Case, review_as) -> None:
    _penalty(client, auth, case)
    page = review_as("m-sup").get(f"/review/inspections/{case.inspection.id}").get_data(as_text=True)
    section = page.split('<section class="card" id="enforcement-decisions">')[1].split("</section>")[0]
    assert "生态环境局" in section and "行政处罚" in section and "重大执法决定" in section and "草稿" in section
