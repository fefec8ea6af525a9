"""Joint plans, frequency control and approval before dispatch."""
from __future__ import annotations

import time
import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from server.auth.policy import SYSTEM
from server.directory import service as directory
from server.errors import Problem
from server.extensions import db
from server.planning.approval import pending_approvals, reject_dispatch, task_approvals
from server.planning.draws import run_draw
from server.planning.frequency import set_frequency_rule
from server.planning.joint_plans import create_joint_plan
from server.planning.models import ApprovalStatus, FrequencyOverride, TaskApproval
from server.sync.entities import inspection_id_for
from server.tasks.models import InspectionTask, TaskStatus
from server.tasks.service import create_task
from tests.conftest import World, assert_problem
from tests.server.planning.factories import add_enterprises, plan, principal, second_market_inspector, window
from tests.server.sync.test_push import mutation, push


def _licence_items(world: World) -> dict[str, Any]:
    """Ecology also asks whether the licence is displayed: the same question as market's SCJG-01."""
    world.check_items["e-licence"] = directory.create_check_item(SYSTEM, {
        "department_id": world.ecology.id, "code": "STHJ-09", "title": "营业执照公示", "legal_basis": "同上"})
    db.session.commit()
    return world.check_items


def _joint(world: World, **overrides: Any) -> Any:
    _licence_items(world)
    market = plan(world, "market", industries=["食品"])
    ecology = plan(world, "ecology", industries=["食品"], items=["e-permit", "e-licence"])
    data = {"title": "食品生产企业联合抽查", "plan_ids": [market.id, ecology.id], "department_id": world.market.id,
            "target_filter": {"industries": ["食品"]}, "sampling_ratio": 1.0,
            "equivalences": [{"key": "licence-displayed", "title": "营业执照公示",
                              "check_item_ids": [world.check_items["m-licence"].id,
                                                 world.check_items["e-licence"].id]}]}
    data.update(overrides)
    joint = create_joint_plan(principal(world.people["m-sup"]), data)
    db.session.commit()
    return joint


def _joint_draw(world: World, joint: Any, seed: str = "joint-seed") -> Any:
    second_market_inspector(world)
    start, end = window()
    record = run_draw(principal(world.people["m-sup"]), {
        "joint_plan_id": joint.id, "window_start": start, "window_end": end, "inspectors_per_department": 2,
        "seed": seed})
    db.session.commit()
    return record


def test_a_joint_draw_makes_one_visit_with_both_teams_and_every_check_item(world: World) -> None:
    add_enterprises(world, 3, industry="食品")
    joint = _joint(world)
    assert joint.period_start == max(p.period_start for p in joint.plans)
    record = _joint_draw(world, joint)
    assert len(record.task_ids) == 3
    for task_id in record.task_ids:
        task = db.session.get(InspectionTask, uuid.UUID(task_id))
        per_department = {d: sum(1 for m in task.members if m.department_id == d)
                          for d in (world.market.id, world.ecology.id)}
        assert per_department == {world.market.id: 2, world.ecology.id: 2}
        groups = {i.check_item_id: i.equivalence_group for i in task.check_items}
        items = world.check_items
        assert groups == {items["m-licence"].id: "licence-displayed", items["e-licence"].id: "licence-displayed",
                          items["e-permit"].id: None}
        assert task.status == TaskStatus.PENDING_APPROVAL
        assert {a.department_id for a in task_approvals(task.id)} == {world.market.id, world.ecology.id}


def test_equivalences_are_validated(world: World) -> None:
    items = _licence_items(world)
    market = plan(world, "market")
    ecology = plan(world, "ecology", items=["e-permit", "e-licence"])
    other = directory.create_check_item(SYSTEM, {"department_id": world.ecology.id, "code": "STHJ-77",
                                                 "title": "不在计划中", "legal_basis": "无"})
    base = {"title": "联合", "plan_ids": [market.id, ecology.id], "target_filter": {}, "sampling_ratio": 0.5}

    def refused(equivalences: list[dict[str, Any]]) -> Problem:
        with pytest.raises(Problem) as caught:
            create_joint_plan(principal(world.people["m-sup"]), {**base, "equivalences": equivalences})
        db.session.rollback()
        return caught.value

    outside = refused([{"key": "a", "title": "a", "check_item_ids": [items["m-licence"].id, other.id]}])
    assert outside.code == 422 and "不属于参与合并的任何计划" in outside.detail
    twice = refused([{"key": "a", "title": "a", "check_item_ids": [items["m-licence"].id, items["e-licence"].id]},
                     {"key": "b", "title": "b", "check_item_ids": [items["m-licence"].id, items["e-permit"].id]}])
    assert twice.code == 422 and "已属于另一个等同事项组" in twice.detail
    one_department = refused([{"key": "a", "title": "a",
                               "check_item_ids": [items["e-licence"].id, items["e-permit"].id]}])
    assert one_department.code == 422


def test_only_plans_for_the_same_kind_and_overlapping_period_merge(world: World) -> None:
    market = plan(world, "market")
    ecology = plan(world, "ecology", kind="餐饮服务单位")
    with pytest.raises(Problem) as refused:
        create_joint_plan(principal(world.people["m-sup"]), {
            "title": "联合", "plan_ids": [market.id, ecology.id], "target_filter": {}, "sampling_ratio": 1.0})
    assert refused.value.code == 422
    db.session.rollback()
    ecology = plan(world, "ecology")
    ecology.period_start = market.period_end + timedelta(days=1)
    ecology.period_end = market.period_end + timedelta(days=30)
    db.session.commit()
    with pytest.raises(Problem) as refused:
        create_joint_plan(principal(world.people["m-sup"]), {
            "title": "联合", "plan_ids": [market.id, ecology.id], "target_filter": {}, "sampling_ratio": 1.0})
    assert "没有重叠" in refused.value.detail


def test_a_plan_joins_one_joint_plan_only(world: World) -> None:
    joint = _joint(world)
    with pytest.raises(Problem) as refused:
        create_joint_plan(principal(world.people["m-sup"]), {
            "title": "再次合并", "plan_ids": [p.id for p in joint.plans], "target_filter": {}, "sampling_ratio": 1.0})
    assert refused.value.code == 409


# ---- frequency control ---------------------------------------------------------------------------

def _market_visit(world: World, who: str = "m-head", days_ahead: int = 10) -> InspectionTask:
    start, end = window(days_ahead)
    task = create_task(principal(world.people[who]), {
        "title": "市场监管检查", "enterprise_id": world.enterprise.id, "window_start": start, "window_end": end,
        "member_ids": [world.people["m-insp"].id], "check_item_ids": [world.check_items["m-licence"].id]})
    db.session.commit()
    return task


@pytest.mark.around_office_midnight
def test_a_visit_beyond_the_cap_is_refused(world: World) -> None:
    set_frequency_rule(SYSTEM, {"max_inspections": 2, "period_days": 365, "fold_window_days": 5})
    db.session.commit()
    _market_visit(world)  # the world's task and this one: two visits this year
    with pytest.raises(Problem) as refused:
        _market_visit(world, days_ahead=40)
    assert refused.value.code == 409 and refused.value.slug == "frequency-cap-reached"
    assert refused.value.errors == {"enterprise_id": ["检查频次已达上限"]}


def test_two_visits_scheduled_at_once_cannot_both_pass_the_cap(app, world: World, database_url: str) -> None:
    """Request A has counted and added its visit but not committed when request B counts."""
    import threading

    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite runs one writer at a time; the race needs concurrent transactions")
    set_frequency_rule(SYSTEM, {"max_inspections": 2, "period_days": 365, "fold_window_days": 5})
    db.session.commit()
    a_added, b_started = threading.Event(), threading.Event()
    outcomes: dict[str, str] = {}

    def schedule(name: str, days_ahead: int) -> None:
        with app.app_context():
            try:
                if name == "B":
                    a_added.wait(10)
                    b_started.set()
                start, end = window(days_ahead)
                create_task(SYSTEM, {"title": name, "enterprise_id": world.enterprise.id, "window_start": start,
                                     "window_end": end, "member_ids": [world.people["m-insp"].id],
                                     "check_item_ids": [world.check_items["m-licence"].id],
                                     "lead_department_id": world.market.id})
                if name == "A":
                    a_added.set()
                    b_started.wait(10)
                    time.sleep(0.5)  # B is now counting (or waiting for A)
                db.session.commit()
                outcomes[name] = "created"
            except Problem as problem:
                db.session.rollback()
                outcomes[name] = problem.slug
            finally:
                db.session.remove()

    threads = [threading.Thread(target=schedule, args=("A", 40)), threading.Thread(target=schedule, args=("B", 80))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert outcomes == {"A": "created", "B": "frequency-cap-reached"}


@pytest.mark.around_office_midnight
def test_a_draw_skips_enterprises_at_the_cap(world: World) -> None:
    set_frequency_rule(SYSTEM, {"max_inspections": 1, "period_days": 365, "fold_window_days": 0})
    second_market_inspector(world)
    fresh = add_enterprises(world, 3, industry="食品")
    db.session.commit()
    start, end = window()
    record = run_draw(principal(world.people["m-sup"]), {
        "plan_id": plan(world, "market").id, "window_start": start, "window_end": end,
        "inspectors_per_department": 2, "seed": "cap-seed"})
    drawn = {t["enterprise_id"] for t in record.result["targets"]}
    assert drawn == {str(e.id) for e in fresh}  # the world's enterprise already had its one visit
    capped = [c for c in record.inputs["candidates"] if c["enterprise_id"] == str(world.enterprise.id)]
    assert capped == [{"enterprise_id": str(world.enterprise.id), "inspections_in_period": 1, "override_id": None,
                       "eligible": False}]


def test_an_override_needs_a_reason_and_the_heads_approval_and_is_recorded(world: World, client, auth) -> None:
    set_frequency_rule(SYSTEM, {"max_inspections": 1, "period_days": 365, "fold_window_days": 0})
    db.session.commit()
    headers = auth.headers("m-sup")
    assert_problem(client.post("/api/v1/frequency-overrides/", json={"enterprise_id": str(world.enterprise.id)},
                               headers=headers), 422)  # no reason
    response = client.post("/api/v1/frequency-overrides/", headers=headers,
                           json={"enterprise_id": str(world.enterprise.id), "reason": "群众投诉食品安全问题"})
    assert response.status_code == 201, response.get_json()
    override_id = response.get_json()["id"]
    with pytest.raises(Problem):
        _market_visit(world, who="m-sup")  # requested, not yet approved
    db.session.rollback()
    assert_problem(client.post(f"/api/v1/frequency-overrides/{override_id}/approve", headers=headers), 403)
    assert_problem(client.post(f"/api/v1/frequency-overrides/{override_id}/approve",
                               headers=auth.headers("e-head")), 404)
    approved = client.post(f"/api/v1/frequency-overrides/{override_id}/approve", headers=auth.headers("m-head"))
    assert approved.status_code == 200 and approved.get_json()["status"] == "approved"
    assert_problem(client.post(f"/api/v1/frequency-overrides/{override_id}/approve",
                               headers=auth.headers("m-head")), 409)
    task = _market_visit(world, who="m-sup")
    override = db.session.get(FrequencyOverride, uuid.UUID(override_id))
    assert override.used_by_task_id == task.id
    assert override.decided_by_id == world.people["m-head"].id and override.decided_at is not None
    assert override.requested_by_id == world.people["m-sup"].id and override.reason == "群众投诉食品安全问题"
    with pytest.raises(Problem):  # used up: the next visit is refused again
        _market_visit(world, who="m-sup", days_ahead=60)


def test_another_departments_request_is_folded_into_the_existing_visit(world: World) -> None:
    market_task = _market_visit(world)
    assert market_task.status == TaskStatus.DISPATCHED  # its head made it, for their department alone
    start, end = window(12)
    folded = create_task(principal(world.people["e-sup"]), {
        "title": "生态环境检查", "enterprise_id": world.enterprise.id, "window_start": start, "window_end": end,
        "member_ids": [world.people["e-insp"].id, world.people["e-insp2"].id],
        "check_item_ids": [world.check_items["e-permit"].id]})
    db.session.commit()
    assert folded.id == market_task.id  # no second visit
    assert {m.user_id for m in folded.members} == {world.people[u].id for u in ("m-insp", "e-insp", "e-insp2")}
    assert {i.check_item_id for i in folded.check_items} == {world.check_items["m-licence"].id,
                                                             world.check_items["e-permit"].id}
    # Ecology's head has not approved yet: the visit waits again before anyone sees the new team.
    assert folded.status == TaskStatus.PENDING_APPROVAL
    assert db.session.scalar(select(InspectionTask.id).where(InspectionTask.title == "生态环境检查")) is None


# ---- approval --------------------------------------------------------------------------------------

def _pull_task_ids(client, headers) -> set[str]:  # type: ignore[no-untyped-def]
    changes = client.get("/api/v1/sync/pull?limit=500", headers=headers).get_json()["changes"]
    return {c["entity_id"] for c in changes if c["entity"] == "task" and c["op"] == "upsert"}


def test_a_task_is_dispatched_only_after_every_participating_head_approves(world: World, client, auth) -> None:
    [target] = add_enterprises(world, 1, industry="食品")
    record = _joint_draw(world, _joint(world))
    [task_id] = record.task_ids
    task = db.session.get(InspectionTask, uuid.UUID(task_id))
    inspector = next(m.user for m in task.members if m.department_id == world.ecology.id).username
    tablet = "STHJ-TAB1"
    insp_headers = auth.headers(inspector)
    assert task_id not in _pull_task_ids(client, insp_headers)
    assert_problem(client.get(f"/api/v1/tasks/{task_id}", headers=insp_headers), 404)
    inspection = mutation("inspection", str(inspection_id_for(uuid.UUID(task_id))), {"task_id": task_id}, tablet)
    refused = push(client, insp_headers, tablet, [inspection]).get_json()["results"][0]
    assert refused["status"] == "rejected" and refused.get("code", refused.get("reason"))
    assert "批准" in refused["reason"]

    assert {t.id for t in pending_approvals(principal(world.people["m-head"]))} == {task.id}
    approved = client.post(f"/api/v1/tasks/{task_id}/approve", headers=auth.headers("m-head"))
    assert approved.status_code == 200 and approved.get_json()["status"] == "pending_approval"
    assert_problem(client.post(f"/api/v1/tasks/{task_id}/approve", headers=auth.headers("m-head")), 409)
    assert task_id not in _pull_task_ids(client, insp_headers)

    assert [t.id for t in pending_approvals(principal(world.people["e-head"]))] == [task.id]
    body = client.post(f"/api/v1/tasks/{task_id}/approve", headers=auth.headers("e-head")).get_json()
    assert body["status"] == "dispatched"
    assert {a["status"] for a in body["approvals"]} == {"approved"}
    assert task_id in _pull_task_ids(client, insp_headers)
    inspection = mutation("inspection", str(inspection_id_for(uuid.UUID(task_id))), {"task_id": task_id}, tablet)
    assert push(client, insp_headers, tablet, [inspection]).get_json()["results"][0]["status"] == "applied"
    assert pending_approvals(principal(world.people["e-head"])) == []


def test_a_rejection_carries_a_reason_and_stops_dispatch(world: World, client, auth) -> None:
    add_enterprises(world, 1, industry="食品")
    [task_id] = _joint_draw(world, _joint(world)).task_ids
    headers = auth.headers("e-head")
    assert_problem(client.post(f"/api/v1/tasks/{task_id}/reject", json={}, headers=headers), 422)
    assert_problem(client.post(f"/api/v1/tasks/{task_id}/reject", json={"reason": ""}, headers=headers), 422)
    with pytest.raises(Problem):
        reject_dispatch(uuid.UUID(task_id), principal(world.people["e-head"]), "   ")
    db.session.rollback()
    body = client.post(f"/api/v1/tasks/{task_id}/reject", json={"reason": "与环保专项检查时间冲突"},
                       headers=headers).get_json()
    assert body["status"] == "rejected"
    ecology = next(a for a in body["approvals"] if a["department_id"] == str(world.ecology.id))
    assert ecology["status"] == "rejected" and ecology["reason"] == "与环保专项检查时间冲突"
    assert ecology["decided_by_id"] == str(world.people["e-head"].id)
    assert_problem(client.post(f"/api/v1/tasks/{task_id}/approve", headers=auth.headers("m-head")), 409)
    for user in ("m-insp", "m-insp2", "e-insp", "e-insp2"):
        assert task_id not in _pull_task_ids(client, auth.headers(user))
    approval = db.session.scalar(select(TaskApproval).where(TaskApproval.task_id == uuid.UUID(task_id),
                                                            TaskApproval.department_id == world.ecology.id))
    assert approval.status == ApprovalStatus.REJECTED
    from server.audit.models import AuditEntry

    actions = set(db.session.scalars(select(AuditEntry.action)))
    assert "draw.run" in actions and "task.reject" in actions
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "task.reject"))
    assert entry.details == {"reason": "与环保专项检查时间冲突"} and entry.actor_username == "e-head"


def test_approval_refusals_are_problems(world: World, client, auth) -> None:
    add_enterprises(world, 1, industry="食品")
    record = _joint_draw(world, _joint(world))
    [task_id] = record.task_ids
    assert_problem(client.post(f"/api/v1/tasks/{uuid.uuid4()}/approve", headers=auth.headers("m-head")), 404)
    assert_problem(client.post(f"/api/v1/tasks/{task_id}/approve", headers=auth.headers("m-sup")), 403)
    assert_problem(client.post(f"/api/v1/tasks/{task_id}/approve", headers=auth.headers("admin")), 403)
    assert_problem(client.post(f"/api/v1/tasks/{world.task.id}/approve", headers=auth.headers("m-head")), 409)
    assert_problem(client.post(f"/api/v1/tasks/{task_id}/reject", json={"reason": "x", "extra": 1},
                               headers=auth.headers("m-head")), 422)
    pending = client.get("/api/v1/tasks/pending-approval", headers=auth.headers("m-head")).get_json()["items"]
    assert [t["id"] for t in pending] == [task_id]


def test_a_dispatched_visit_folded_back_to_approval_leaves_tablets_until_approved(world: World, client, auth) -> None:
    market_task = _market_visit(world)
    headers = auth.headers("m-insp")
    assert str(market_task.id) in _pull_task_ids(client, headers)
    start, end = window(11)
    create_task(principal(world.people["e-sup"]), {
        "title": "生态环境检查", "enterprise_id": world.enterprise.id, "window_start": start, "window_end": end,
        "member_ids": [world.people["e-insp"].id], "check_item_ids": [world.check_items["e-permit"].id]})
    db.session.commit()
    changes = client.get("/api/v1/sync/pull?limit=500", headers=headers).get_json()["changes"]
    ops = [c["op"] for c in changes if c["entity_id"] == str(market_task.id)]
    assert ops == ["delete"]  # the team drops it until ecology's head approves the enlarged visit
    assert str(market_task.id) not in _pull_task_ids(client, auth.headers("e-insp"))
    assert client.post(f"/api/v1/tasks/{market_task.id}/approve", headers=auth.headers("e-head")).status_code == 200
    assert str(market_task.id) in _pull_task_ids(client, headers)
    assert str(market_task.id) in _pull_task_ids(client, auth.headers("e-insp"))
