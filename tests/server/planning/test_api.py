"""The planning endpoints as an office uses them: write plans, merge, draw, verify, declare; errors as problems."""
from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import update

from server.extensions import db
from server.planning.models import Draw
from tests.clock import office_today
from tests.conftest import World, assert_problem
from tests.server.planning.factories import add_enterprises, second_market_inspector, window


def _plan_body(world: World, department: str, **changes: object) -> dict[str, object]:
    today = office_today()
    item = world.check_items["m-licence" if department == "market" else "e-permit"]
    body: dict[str, object] = {
        "title": "年度双随机抽查计划", "subject_kind": "食品生产企业", "period_start": today.isoformat(),
        "period_end": (today + timedelta(days=90)).isoformat(), "target_filter": {"industries": ["食品"]},
        "check_item_ids": [str(item.id)], "sampling_ratio": 0.5}
    body.update(changes)
    return body


def test_an_office_plans_merges_draws_and_verifies(client, world: World, auth) -> None:
    second_market_inspector(world)
    add_enterprises(world, 6, industry="食品")
    m_sup, e_sup = auth.headers("m-sup"), auth.headers("e-sup")
    market = client.post("/api/v1/plans/", json=_plan_body(world, "market"), headers=m_sup)
    assert market.status_code == 201, market.get_json()
    assert market.get_json()["department_id"] == str(world.market.id)
    ecology = client.post("/api/v1/plans/", json=_plan_body(world, "ecology"), headers=e_sup).get_json()
    listed = client.get(f"/api/v1/plans/?department_id={world.ecology.id}", headers=m_sup).get_json()["items"]
    assert [p["id"] for p in listed] == [ecology["id"]]  # other departments' plans are readable, to merge them
    joint = client.post("/api/v1/joint-plans/", headers=m_sup, json={
        "title": "食品生产企业联合抽查", "plan_ids": [market.get_json()["id"], ecology["id"]],
        "target_filter": {"industries": ["食品"]}, "sampling_ratio": 0.5})
    assert joint.status_code == 201, joint.get_json()
    start, end = window()
    draw = client.post("/api/v1/draws/", headers=m_sup, json={
        "joint_plan_id": joint.get_json()["id"], "window_start": start.isoformat(), "window_end": end.isoformat()})
    assert draw.status_code == 201, draw.get_json()
    body = draw.get_json()
    assert len(body["result"]["targets"]) == 3 and len(body["task_ids"]) == 3
    assert len(body["seed"]) == 32 and len(body["input_hash"]) == 64
    verified = client.get(f"/api/v1/draws/{body['id']}/verify", headers=e_sup).get_json()
    assert verified["reproduced"] is True and verified["problems"] == []
    assert client.get("/api/v1/draws/", headers=e_sup).get_json()["items"][0]["id"] == body["id"]

    db.session.execute(update(Draw).where(Draw.id == uuid.UUID(body["id"])).values(seed="0" * 32))
    db.session.commit()
    tampered = client.get(f"/api/v1/draws/{body['id']}/verify", headers=e_sup).get_json()
    assert tampered["reproduced"] is False and tampered["input_hash_matches"] is False


def test_bad_bodies_are_problems_and_store_nothing(client, world: World, auth) -> None:
    headers = auth.headers("m-sup")
    for changes in ({"sampling_ratio": 0}, {"sampling_ratio": 1.5}, {"check_item_ids": []},
                    {"target_filter": {"colour": "red"}}, {"period_end": "2000-01-01"},
                    {"check_item_ids": [str(uuid.uuid4())]},
                    {"check_item_ids": [str(world.check_items["e-permit"].id)]}):
        response = client.post("/api/v1/plans/", json=_plan_body(world, "market", **changes), headers=headers)
        body = assert_problem(response, 422)
        assert body["errors"], changes
    assert client.get("/api/v1/plans/", headers=headers).get_json()["items"] == []
    start, end = window()
    draw = {"window_start": start.isoformat(), "window_end": end.isoformat()}
    assert_problem(client.post("/api/v1/draws/", json=draw, headers=headers), 422)  # neither plan nor joint plan
    assert_problem(client.post("/api/v1/draws/", json={**draw, "plan_id": str(uuid.uuid4())}, headers=headers), 422)
    assert_problem(client.post("/api/v1/draws/", json={**draw, "plan_id": str(uuid.uuid4()),
                                                      "inspectors_per_department": 1}, headers=headers), 422)
    assert_problem(client.post("/api/v1/joint-plans/", json={"title": "x", "plan_ids": [str(uuid.uuid4())] * 2,
                                                             "sampling_ratio": 1}, headers=headers), 422)
    assert_problem(client.put("/api/v1/frequency-rule/", json={"max_inspections": 0, "period_days": 1,
                                                              "fold_window_days": 0},
                              headers=auth.headers("admin")), 422)


def test_departments_write_only_their_own_plans_and_draw_only_their_own(client, world: World, auth) -> None:
    e_plan = client.post("/api/v1/plans/", json=_plan_body(world, "ecology"), headers=auth.headers("e-sup")).get_json()
    other = _plan_body(world, "ecology", department_id=str(world.ecology.id))
    assert_problem(client.post("/api/v1/plans/", json=other, headers=auth.headers("m-sup")), 403)
    assert_problem(client.post("/api/v1/plans/", json=_plan_body(world, "market"), headers=auth.headers("m-insp")), 403)
    start, end = window()
    assert_problem(client.post("/api/v1/draws/", headers=auth.headers("m-sup"), json={
        "plan_id": e_plan["id"], "window_start": start.isoformat(), "window_end": end.isoformat()}), 403)
    assert_problem(client.get(f"/api/v1/plans/{uuid.uuid4()}", headers=auth.headers("m-sup")), 404)
    assert_problem(client.get(f"/api/v1/draws/{uuid.uuid4()}/verify", headers=auth.headers("m-sup")), 404)


def test_conflicts_are_declared_by_the_inspector_or_their_head(client, world: World, auth) -> None:
    body = {"user_id": str(world.people["e-insp"].id), "enterprise_id": str(world.enterprise.id),
            "reason": "近亲属任法定代表人"}
    assert_problem(client.post("/api/v1/conflicts-of-interest/", json=body, headers=auth.headers("e-insp2")), 403)
    assert_problem(client.post("/api/v1/conflicts-of-interest/", json=body, headers=auth.headers("m-head")), 404)
    assert_problem(client.post("/api/v1/conflicts-of-interest/", json={**body, "reason": ""},
                               headers=auth.headers("e-insp")), 422)
    mine = client.post("/api/v1/conflicts-of-interest/", json=body, headers=auth.headers("e-insp"))
    assert mine.status_code == 201 and mine.get_json()["declared_by_id"] == str(world.people["e-insp"].id)
    assert_problem(client.post("/api/v1/conflicts-of-interest/", json=body, headers=auth.headers("e-head")), 409)
    by_head = client.post("/api/v1/conflicts-of-interest/", headers=auth.headers("e-head"), json={
        **body, "user_id": str(world.people["e-insp2"].id)})
    assert by_head.status_code == 201
    assert len(client.get("/api/v1/conflicts-of-interest/", headers=auth.headers("e-sup")).get_json()["items"]) == 2
    assert len(client.get("/api/v1/conflicts-of-interest/", headers=auth.headers("e-insp")).get_json()["items"]) == 1
    assert client.get("/api/v1/conflicts-of-interest/", headers=auth.headers("m-head")).get_json()["items"] == []


def test_the_frequency_rule_has_defaults_and_an_administrator_sets_it(client, world: World, auth) -> None:
    rule = client.get("/api/v1/frequency-rule/", headers=auth.headers("m-sup")).get_json()
    assert rule == {"max_inspections": 2, "period_days": 365, "fold_window_days": 30}
    assert_problem(client.put("/api/v1/frequency-rule/", json=rule, headers=auth.headers("m-head")), 403)
    changed = client.put("/api/v1/frequency-rule/", json={**rule, "max_inspections": 1}, headers=auth.headers("admin"))
    assert changed.status_code == 200 and changed.get_json()["max_inspections"] == 1
    assert client.get("/api/v1/frequency-rule/", headers=auth.headers("e-sup")).get_json()["max_inspections"] == 1


def test_implausible_windows_are_refused_not_overflowed(client, world: World, auth) -> None:
    plan = client.post("/api/v1/plans/", json=_plan_body(world, "market"), headers=auth.headers("m-sup")).get_json()
    for start, end in (("0001-01-01T00:00:00+00:00", "0001-01-02T00:00:00+00:00"),
                       ("9999-12-31T00:00:00+00:00", "9999-12-31T23:00:00-08:00")):
        assert_problem(client.post("/api/v1/draws/", headers=auth.headers("m-sup"), json={
            "plan_id": plan["id"], "window_start": start, "window_end": end}), 422)
        assert_problem(client.post("/api/v1/tasks/", headers=auth.headers("m-head"), json={
            "title": "t", "enterprise_id": str(world.enterprise.id), "window_start": start, "window_end": end,
            "member_ids": [str(world.people["m-insp"].id)]}), 422)
