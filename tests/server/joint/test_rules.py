"""Who may write what in a joint inspection, and the one record per task."""
from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from server.auth.policy import SYSTEM
from server.extensions import db
from server.sync.entities import inspection_id_for
from server.sync.models import SyncConflict, SyncedEntity
from server.tasks.models import TaskCheckItem
from server.tasks.service import create_task
from tests.conftest import World, assert_problem
from tests.server.sync.test_push import mutation, new_inspection, push


def _results(response) -> list[tuple[str, str | None]]:  # type: ignore[no-untyped-def]
    assert response.status_code == 200, response.get_json()
    return [(r["status"], r.get("code")) for r in response.get_json()["results"]]


def _finding(inspection_id: str, item: uuid.UUID, device: str, result: str = "compliant", **kw) -> dict:  # type: ignore[no-untyped-def]
    return mutation("finding", str(uuid.uuid4()), {"inspection_id": inspection_id, "check_item_id": str(item),
                                                   "result": result}, device, **kw)


def test_tablets_starting_offline_share_one_record(client, world: World, auth) -> None:
    ecology = new_inspection(world, "STHJ-TAB1", representative="张经理")
    market = new_inspection(world, "SCJG-TAB1", place="一号车间")  # stamped later
    assert market["entity_id"] == ecology["entity_id"] == str(inspection_id_for(world.task.id))
    assert _results(push(client, auth.headers("e-insp"), "STHJ-TAB1", [ecology])) == [("applied", None)]
    # Both set the place ("厂区" on ecology's tablet): merged by clock, the other value kept.
    assert _results(push(client, auth.headers("m-insp"), "SCJG-TAB1", [market])) == [("conflict", None)]
    (record,) = db.session.scalars(select(SyncedEntity).where(SyncedEntity.kind == "inspection"))
    assert record.fields["place"] == "一号车间" and record.fields["representative"] == "张经理"
    # Whoever started it, the shared record belongs to the task's lead department.
    assert record.department_id == world.market.id


def test_a_second_inspection_id_for_the_task_is_refused(client, world: World, auth) -> None:
    stray = mutation("inspection", str(uuid.uuid4()), {"task_id": str(world.task.id)}, "SCJG-TAB1")
    response = push(client, auth.headers("m-insp"), "SCJG-TAB1", [stray])
    assert _results(response) == [("rejected", "inspection-id")]
    assert str(inspection_id_for(world.task.id)) in response.get_json()["results"][0]["reason"]
    assert db.session.scalar(select(SyncedEntity.id)) is None


def test_any_team_member_edits_the_shared_fields(client, world: World, auth) -> None:
    inspection = new_inspection(world, "SCJG-TAB1")
    push(client, auth.headers("m-insp"), "SCJG-TAB1", [inspection])
    edit = mutation("inspection", inspection["entity_id"], {
        "conclusion": "未发现问题", "ended_at": "2026-11-26T11:00:00+08:00", "representative": "李主任",
        "status": "finished"}, "STHJ-TAB1", base=1)
    assert _results(push(client, auth.headers("e-insp"), "STHJ-TAB1", [edit])) == [("applied", None)]
    sign = mutation("signature", str(uuid.uuid4()), {"inspection_id": inspection["entity_id"],
                                                     "signer_role": "representative", "signer_name": "李主任"},
                    "STHJ-TAB1")
    assert _results(push(client, auth.headers("e-insp"), "STHJ-TAB1", [sign])) == [("applied", None)]


def test_findings_stay_with_their_department(client, world: World, auth) -> None:
    inspection = new_inspection(world, "SCJG-TAB1")
    finding = _finding(inspection["entity_id"], world.check_items["m-licence"].id, "SCJG-TAB1")
    push(client, auth.headers("m-insp"), "SCJG-TAB1", [inspection, finding])
    takeover = mutation("finding", finding["entity_id"], {"result": "non_compliant"}, "STHJ-TAB1", base=1)
    response = push(client, auth.headers("e-insp"), "STHJ-TAB1", [takeover])
    assert _results(response) == [("rejected", "forbidden")]
    assert "其他部门" in response.get_json()["results"][0]["reason"]
    # Nor may a department answer another department's check item.
    foreign = _finding(inspection["entity_id"], world.check_items["m-licence"].id, "STHJ-TAB1")
    assert _results(push(client, auth.headers("e-insp"), "STHJ-TAB1", [foreign])) == [("rejected", "forbidden")]


def test_findings_from_outside_the_team_the_task_or_its_time_are_refused(client, world: World, auth, make_user) -> None:
    from server.directory import service as directory

    inspection = new_inspection(world, "SCJG-TAB1")
    push(client, auth.headers("m-insp"), "SCJG-TAB1", [inspection])
    # e-insp2 is an ecology inspector, not on this task's team.
    outsider = _finding(inspection["entity_id"], world.check_items["e-permit"].id, "STHJ-TAB2")
    response = push(client, auth.headers("e-insp2", device="STHJ-TAB2"), "STHJ-TAB2", [outsider])
    assert _results(response) == [("rejected", "forbidden")]
    assert "检查组成员" in response.get_json()["results"][0]["reason"]
    # A check item of the team's department, but not one of this task's.
    extra = directory.create_check_item(SYSTEM, {"department_id": world.ecology.id, "code": "STHJ-99",
                                                 "title": "危险废物台账", "legal_basis": "《固体废物污染环境防治法》"})
    db.session.commit()
    outside = _finding(inspection["entity_id"], extra.id, "STHJ-TAB1")
    response = push(client, auth.headers("e-insp"), "STHJ-TAB1", [outside])
    assert _results(response) == [("rejected", "unknown-check-item")]
    assert "不在本次检查任务中" in response.get_json()["results"][0]["reason"]
    # Once the lead department closed the task, nothing more is taken.
    assert client.post(f"/api/v1/tasks/{world.task.id}/close", headers=auth.headers("m-sup")).status_code == 200
    late = _finding(inspection["entity_id"], world.check_items["e-permit"].id, "STHJ-TAB1")
    response = push(client, auth.headers("e-insp"), "STHJ-TAB1", [late])
    assert _results(response) == [("rejected", "task-closed")]
    assert "已关闭" in response.get_json()["results"][0]["reason"]
    assert db.session.scalars(select(SyncedEntity.kind)).all() == ["inspection"]


def test_a_tablets_own_later_edit_is_no_conflict(client, world: World, auth) -> None:
    inspection = mutation("inspection", str(inspection_id_for(world.task.id)), {"task_id": str(world.task.id)},
                          "SCJG-TAB1", offset_ms=-6000)
    first = mutation("inspection", inspection["entity_id"], {"place": "仓库"}, "SCJG-TAB1", offset_ms=-5000)
    second = mutation("inspection", inspection["entity_id"], {"place": "车间"}, "SCJG-TAB1", offset_ms=-4000)
    theirs = mutation("inspection", inspection["entity_id"], {"place": "污水处理站"}, "STHJ-TAB1", offset_ms=-4500)
    headers = auth.headers("m-insp")
    # Both made offline on version 0 (never confirmed): still one tablet's sequence, not a conflict.
    for m in (inspection, first, second):
        assert _results(push(client, headers, "SCJG-TAB1", [m]))[0][0] == "applied"
    assert _results(push(client, auth.headers("e-insp"), "STHJ-TAB1", [theirs])) == [("conflict", None)]
    (conflict,) = db.session.scalars(select(SyncConflict))
    assert (conflict.kept_value, conflict.lost_value) == ("车间", "污水处理站")


def test_tasks_declare_equivalent_check_items(app, world: World) -> None:
    import pytest

    from server.errors import Problem

    now = datetime.now(UTC)
    items = [world.check_items["m-licence"].id, world.check_items["e-permit"].id]
    data = {"title": "等同事项", "enterprise_id": world.enterprise.id, "window_start": now + timedelta(days=40),
            "window_end": now + timedelta(days=40, hours=4), "member_ids": [world.people["m-insp"].id,
                                                                               world.people["e-insp"].id],
            "check_item_ids": items, "lead_department_id": world.market.id}
    with pytest.raises(Problem) as refused:
        create_task(SYSTEM, {**data, "equivalence_groups": {uuid.uuid4(): "licence"}})
    assert "equivalence_groups" in refused.value.errors  # type: ignore[attr-defined]
    task = create_task(SYSTEM, {**data, "equivalence_groups": {items[0]: "licence", items[1]: "licence"}})
    db.session.flush()
    groups = db.session.scalars(select(TaskCheckItem.equivalence_group).where(TaskCheckItem.task_id == task.id)).all()
    assert groups == ["licence", "licence"]
    # Without groups nothing changes for existing callers.
    assert db.session.scalars(select(TaskCheckItem.equivalence_group)
                              .where(TaskCheckItem.task_id == world.task.id)).all() == [None, None]


def test_the_joint_record_endpoint_answers_the_team_and_its_offices_only(client, world: World, auth, make_department,
                                                                         make_user) -> None:
    from server.joint.service import joint_record_json

    push(client, auth.headers("m-insp"), "SCJG-TAB1", [new_inspection(world, "SCJG-TAB1")])
    response = client.get(f"/api/v1/tasks/{world.task.id}/joint-record", headers=auth.headers("e-head"))
    assert response.status_code == 200
    db.session.expire_all()
    assert response.get_data() == joint_record_json(world.task.id)
    transport = make_department("JTYS", "交通运输局")
    make_user("t-sup", "supervisor", transport)
    assert_problem(client.get(f"/api/v1/tasks/{world.task.id}/joint-record", headers=auth.headers("t-sup")), 404)
    assert_problem(client.get(f"/api/v1/tasks/{uuid.uuid4()}/joint-record", headers=auth.headers("admin")), 404)
