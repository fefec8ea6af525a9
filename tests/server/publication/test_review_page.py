"""/review/publication: what each department has to publish, and the publish button."""
from __future__ import annotations

import re
from datetime import date

from flask_babel import refresh
from sqlalchemy import select

from server.decisions.models import DecisionKind
from server.extensions import db
from server.publication.models import Publication
from tests.server.review.conftest import post_form, review_as  # noqa: F401 - the log-in fixture


def _rows(html: str) -> dict[str, str]:
    """decision id -> its state, as the page's rows say."""
    return {decision: state for state, decision in re.findall(r'data-state="(\w+)" data-decision="([0-9a-f-]+)"', html)}


def test_a_supervisor_sees_their_departments_deadlines_and_publishes_one(review_as, world, decide) -> None:  # noqa: F811
    soon = decide(DecisionKind.PENALTY, date(2026, 3, 2))
    overdue = decide(DecisionKind.NO_IRREGULARITY, date(2026, 1, 5))
    theirs = decide(DecisionKind.PENALTY, date(2026, 3, 2), department=world.ecology)
    client = review_as("m-sup")
    page = client.get("/review/publication")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    rows = _rows(html)
    assert rows == {str(soon.id): "soon", str(overdue.id): "overdue"} and str(theirs.id) not in html
    assert "公开期限" in html and "已逾期" in html and "剩余 1 个工作日" in html
    answer = post_form(client, f"/review/publication/{soon.id}", {}, page="/review/publication")
    assert answer.status_code == 303
    after = client.get("/review/publication").get_data(as_text=True)
    assert "已公开" in after and str(soon.id) not in _rows(after)
    assert db.session.scalar(select(Publication.decision_id)) == soon.id
    # Twice: said plainly, nothing new.
    again = post_form(client, f"/review/publication/{soon.id}", {}, page="/review/publication")
    assert again.status_code == 303
    assert "已公开" in client.get("/review/publication").get_data(as_text=True)
    assert len(db.session.scalars(select(Publication)).all()) == 1


def test_another_departments_decision_cannot_be_published_from_the_page(review_as, world, decide) -> None:  # noqa: F811
    theirs = decide(DecisionKind.PENALTY, date(2026, 3, 2), department=world.ecology)
    client = review_as("m-sup")
    answer = post_form(client, f"/review/publication/{theirs.id}", {}, page="/review/publication")
    assert answer.status_code == 404
    assert post_form(client, "/review/publication/not-a-uuid", {}, page="/review/publication").status_code in (400, 404)
    assert db.session.scalars(select(Publication)).all() == []


def test_a_legal_reviewer_sees_the_deadlines_without_a_publish_button(review_as, make_user, world, decide) -> None:  # noqa: F811
    decide(DecisionKind.PENALTY, date(2026, 3, 2))
    make_user("m-legal", "legal_reviewer", world.market)
    html = review_as("m-legal").get("/review/publication").get_data(as_text=True)
    assert 'data-state="soon"' in html and "review/publication/" not in html.split("<main>")[1]


def test_the_admin_filters_by_department_and_an_unknown_one_is_404(review_as, world, decide) -> None:  # noqa: F811
    decide(DecisionKind.PENALTY, date(2026, 3, 2))
    decide(DecisionKind.PENALTY, date(2026, 3, 2), department=world.ecology)
    client = review_as("admin")
    both = client.get("/review/publication").get_data(as_text=True)
    assert 'data-department="SCJG"' in both and 'data-department="STHJ"' in both
    one = client.get("/review/publication?department=STHJ").get_data(as_text=True)
    assert 'data-department="SCJG"' not in one and 'data-department="STHJ"' in one
    assert client.get("/review/publication?department=NOPE").status_code == 404


def test_the_page_in_english(review_as, world, decide) -> None:  # noqa: F811
    decide(DecisionKind.PENALTY, date(2026, 3, 2))
    decide(DecisionKind.NO_IRREGULARITY, date(2026, 12, 24))
    client = review_as("m-sup")
    post_form(client, "/review/language", {"lang": "en", "next": "/review/publication"}, page="/review/publication")
    refresh()  # the test's requests share one app context, where Flask-Babel keeps the locale it chose
    html = client.get("/review/publication").get_data(as_text=True)
    assert "Publication deadlines" in html and "Working days left: 1" in html and "Publish" in html
    assert "The statutory calendar does not cover this period yet" in html


def test_a_published_result_is_corrected_then_withdrawn_from_the_page(review_as, world, decide) -> None:  # noqa: F811
    decision = decide(DecisionKind.RECTIFY_ORDER, date(2026, 3, 2), conclusion="责令3月底前改正")
    client = review_as("m-sup")
    post_form(client, f"/review/publication/{decision.id}", {}, page="/review/publication")
    first = db.session.scalar(select(Publication))
    html = client.get("/review/publication").get_data(as_text=True)
    assert f'data-publication="{first.id}" data-state="published"' in html and "更正或撤销" in html
    # A correction without its reason: refused, said, nothing changes.
    refused = post_form(client, f"/review/publication/entries/{first.id}/correct", {"note": " ", "conclusion": "x"},
                        page="/review/publication")
    assert refused.status_code == 303
    assert "请填写更正说明" in client.get("/review/publication").get_data(as_text=True)
    assert len(db.session.scalars(select(Publication)).all()) == 1
    post_form(client, f"/review/publication/entries/{first.id}/correct",
              {"note": "期限笔误", "conclusion": "责令4月底前改正"}, page="/review/publication")
    html = client.get("/review/publication").get_data(as_text=True)
    assert "已更正" in html and "更正（第 2 版）" in html and "责令4月底前改正" in html
    second = db.session.scalar(select(Publication).where(Publication.version == 2))
    # The earlier version is no longer the one to act on.
    stale = post_form(client, f"/review/publication/entries/{first.id}/withdraw", {"reason": "x"},
                      page="/review/publication")
    assert stale.status_code == 303 and "已被更正" in client.get("/review/publication").get_data(as_text=True)
    post_form(client, f"/review/publication/entries/{second.id}/withdraw", {"reason": "决定已撤销"},
              page="/review/publication")
    html = client.get("/review/publication").get_data(as_text=True)
    assert f'data-publication="{second.id}" data-state="withdrawn"' in html and "决定已撤销" in html
    # Another department's supervisor: not theirs to see.
    other = review_as("e-sup")
    assert post_form(other, f"/review/publication/entries/{second.id}/withdraw", {"reason": "x"},
                     page="/review/publication").status_code == 404
