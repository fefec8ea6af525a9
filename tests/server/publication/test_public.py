"""The public page and feed: no log-in, corrections and withdrawals shown as such, and nothing personal."""
from __future__ import annotations

from datetime import date

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from server.auth.policy import SYSTEM
from server.decisions.models import DecisionKind, EnforcementDecision
from server.directory.models import Certificate, Role, User
from server.extensions import db
from server.planning.models import Draw
from server.publication import service
from server.seed import seed_demo_city
from server.tasks.models import InspectionTask
from tests.server.publication.conftest import made_decision


def test_the_page_shows_a_correction_as_a_correction_and_a_withdrawal_as_withdrawn(client: FlaskClient, world,
                                                                                     decide) -> None:
    first = service.publish(SYSTEM, decide(DecisionKind.RECTIFY_ORDER, date(2026, 3, 2), conclusion="旧结论甲").id)
    service.correct(SYSTEM, first.id, "结论笔误", conclusion="新结论乙")
    gone = service.publish(SYSTEM, decide(DecisionKind.PENALTY, date(2026, 3, 3), department=world.ecology,
                                          conclusion="罚款结论丙").id)
    service.withdraw(SYSTEM, gone.id, "决定已被复议撤销")
    db.session.commit()
    page = client.get("/public/")
    assert page.status_code == 200 and "text/html" in page.content_type
    html = page.get_data(as_text=True)
    assert "更正（第 2 版）" in html and "更正说明：结论笔误" in html and "新结论乙" in html
    assert "<del>旧结论甲</del>" in html  # the earlier text, struck through, under the correction
    assert "已撤销" in html and "撤销理由：决定已被复议撤销" in html and "罚款结论丙" not in html
    assert "https://" not in html and "<script" not in html  # nothing from a CDN, no script
    feed = client.get("/public/feed.json").get_json()
    by_state = {r["state"]: r for r in feed["results"]}
    assert by_state["published"]["corrected"] is True and by_state["published"]["version"] == 2
    assert by_state["published"]["earlier_versions"][0]["conclusion"] == "旧结论甲"
    assert by_state["withdrawn"]["withdrawn"] is True and by_state["withdrawn"]["withdrawal_reason"]
    assert feed["next"] is None


def test_bad_pages_are_refused_plainly(client: FlaskClient, world) -> None:
    for query in ("page=0", "page=abc", "page=99999999", "plans_page=-1", "page=%00"):
        answer = client.get(f"/public/?{query}")
        assert answer.status_code == 400 and "text/html" in answer.content_type, query
        assert "页码无效" in answer.get_data(as_text=True)
    answer = client.get("/public/feed.json?page=x")
    assert answer.status_code == 400 and answer.mimetype == "application/problem+json"


def _every_public_response(client: FlaskClient) -> list[str]:
    texts = []
    for first in ("/public/", "/public/feed.json"):
        url: str | None = first
        while url:
            answer = client.get(url)
            assert answer.status_code == 200, url
            texts.append(answer.get_data(as_text=True))
            url = answer.get_json()["next"] if answer.is_json else None
    page = 2
    while True:  # the HTML pages after the first, of both lists
        answer = client.get(f"/public/?page={page}&plans_page={page}")
        texts.append(answer.get_data(as_text=True))
        if "下一页" not in texts[-1]:
            break
        page += 1
    css = client.get("/public/static/public.css")
    texts.append(css.get_data(as_text=True))
    css.close()
    return texts


def test_no_public_response_names_an_inspector_or_a_certificate(on_publication_day: None, app: Flask,
                                                                client: FlaskClient) -> None:
    seed_demo_city()
    db.session.commit()
    # A decision on every task the demo city drew, published: the plans list their results too.
    drawn = {tid for draw in db.session.scalars(select(Draw)) for tid in draw.task_ids}
    tasks = list(db.session.scalars(select(InspectionTask)))
    published = 0
    for task in tasks:
        for department_id in sorted({m.department_id for m in task.members}, key=str):
            if db.session.scalar(select(EnforcementDecision.id).where(  # the demo's own (some published already)
                    EnforcementDecision.task_id == task.id, EnforcementDecision.department_id == department_id)):
                continue
            kind = DecisionKind.PENALTY if published % 3 else DecisionKind.NO_IRREGULARITY
            decision = made_decision(task, department_id, kind, date(2026, 3, 2), conclusion=f"{task.title}：依法处理")
            publication = service.publish(SYSTEM, decision.id)
            if published % 5 == 1:
                service.correct(SYSTEM, publication.id, "更正结论", conclusion="更正后的结论")
            elif published % 7 == 2:
                service.withdraw(SYSTEM, publication.id, "依法撤销")
            published += 1
    db.session.commit()
    assert published > 10 and drawn
    inspectors = list(db.session.scalars(select(User).where(User.role == Role.INSPECTOR)))
    names = {u.full_name for u in inspectors} | {u.username for u in inspectors}
    numbers = set(db.session.scalars(select(Certificate.number)))
    assert len(names) > 10 and len(numbers) > 10
    texts = _every_public_response(client)
    assert any("双随机" in t for t in texts) and any("更正" in t for t in texts)
    for text in texts:
        for secret in names | numbers:
            assert secret not in text, f"{secret!r} is on a public page"


def test_the_feed_is_paged_without_overlap_and_the_page_links_on(client: FlaskClient, world, decide) -> None:
    from server.publication.public import PAGE_SIZE

    made = {service.publish(SYSTEM, decide(DecisionKind.NO_IRREGULARITY, date(2026, 3, 2)).id).id
            for _ in range(PAGE_SIZE + 5)}
    db.session.commit()
    first = client.get("/public/feed.json").get_json()
    assert len(first["results"]) == PAGE_SIZE and first["next"] == "/public/feed.json?page=2"
    second = client.get(first["next"]).get_json()
    assert len(second["results"]) == 5 and second["next"] is None
    seen = [r["id"] for r in first["results"] + second["results"]]
    assert len(set(seen)) == len(seen) == len(made) and {str(m) for m in made} == set(seen)
    html = client.get("/public/").get_data(as_text=True)
    assert html.count('data-testid="result"') == PAGE_SIZE and "page=2" in html and "下一页" in html
    assert client.get("/public/?page=2").get_data(as_text=True).count('data-testid="result"') == 5
