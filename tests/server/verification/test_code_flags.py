"""Inspections flagged for their code, their window, their late registration and their recorders (issue 18):
a tablet pushes the record as it would, the worker assesses it."""
from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import delete, select

from server.auth.policy import SYSTEM
from server.directory import service as directory
from server.extensions import db
from server.tasks.models import InspectionTask, TaskMember
from server.tasks.service import create_task
from server.verification import flags as rules
from server.verification.inspections import assess_inspection, inspections_needing_assessment
from server.verification.models import InspectionAssessment
from tests.conftest import World, inspection_code
from tests.server.verification.test_inspection_flags import Visit, codes


def _flag(assessment: dict[str, Any], code: str) -> dict[str, Any]:
    [flag] = [f for f in assessment["flags"] if f["code"] == code]
    return flag


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _other_task(world: World) -> InspectionTask:
    enterprise = directory.create_enterprise(SYSTEM, {"credit_code": "91350100M000200Y43", "name": "祁阳市另一家公司",
                                                      "address": "祁阳市浯溪街道"}, [world.market])
    task = create_task(SYSTEM, {"title": "日常检查", "enterprise_id": enterprise.id,
                                "lead_department_id": world.market.id, "member_ids": [world.people["m-insp"].id],
                                "window_start": _now() - timedelta(hours=2), "window_end": _now() + timedelta(hours=4)})
    db.session.commit()
    return task


def test_a_visit_with_its_own_code_in_its_window_is_not_flagged_for_it(app, client, auth, world) -> None:
    visit = Visit(client, auth, world, _now() - timedelta(minutes=30), 15)
    found = codes(visit.assessment(app))
    assert not {"code-missing", "outside-window", "late-registration", "not-on-team"} & set(found), found


@pytest.mark.parametrize("case", ["none", "forged", "another-task"])
def test_a_visit_without_a_valid_code_of_its_own_is_flagged(app, client, auth, world, case: str) -> None:
    token = inspection_code(world.task)
    recorded = {"none": None,
                "forged": token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB"),
                "another-task": inspection_code(_other_task(world)) if case == "another-task" else None}[case]
    visit = Visit(client, auth, world, _now() - timedelta(minutes=30), 15, inspection_code=recorded)
    flag = _flag(visit.assessment(app), "code-missing")
    assert flag["severity"] == "error" and flag["label"] == "未凭有效检查码检查"
    expected = {"none": ["absent"], "forged": ["not-ours"], "another-task": ["other-task"]}[case]
    assert flag["details"]["reasons"] == expected, flag
    assert {"none": "未附检查码", "forged": "不是本系统签发", "another-task": "其他检查任务"}[case] in flag["message"]


def test_a_visit_begun_before_its_window_is_flagged(app, client, auth, world) -> None:
    # After the task was dispatched (its code existed), but eight minutes before the window it was approved for.
    visit = Visit(client, auth, world, world.task.window_start - timedelta(minutes=8), 15)
    assessment = visit.assessment(app)
    flag = _flag(assessment, "outside-window")
    assert flag["severity"] == "error" and flag["details"]["window_of"] == "code" and "之前" in flag["message"]
    assert "code-missing" not in codes(assessment)


def _registered(client, auth, world: World, reason: str | None) -> InspectionTask:  # type: ignore[no-untyped-def]
    """Market regulation's head registers, now, a visit whose window began two days ago."""
    start = _now() - timedelta(days=2)
    body = {"title": "群众举报核查", "enterprise_id": str(world.enterprise.id),
            "member_ids": [str(world.people["m-insp"].id)], "window_start": start.isoformat(),
            "window_end": (start + timedelta(hours=3)).isoformat(),
            **({"late_registration_reason": reason} if reason else {})}
    answer = client.post("/api/v1/tasks/", json=body, headers=auth.headers("m-head"))
    assert answer.status_code == 201, answer.get_json()
    task = db.session.get(InspectionTask, uuid.UUID(answer.get_json()["id"]))
    assert task is not None
    return task


def test_a_late_registration_is_flagged_as_such_with_its_reason(app, client, auth, world) -> None:
    task = _registered(client, auth, world, "接群众举报，当晚现场处置，无法事先登记")
    # The tablet pulls the task and its code after the office registered it, and records the visit as it began.
    visit = Visit(client, auth, world, task.window_start + timedelta(minutes=10), 600, task=task)
    assessment = visit.assessment(app)
    flag = _flag(assessment, "late-registration")
    assert flag["severity"] == "warning" and "接群众举报，当晚现场处置，无法事先登记" in flag["message"]
    assert flag["details"]["started_before_code"] is True
    assert not {"code-missing", "outside-window"} & set(codes(assessment))


def test_a_visit_begun_before_its_code_existed_without_a_reason_is_code_missing(app, client, auth, world) -> None:
    task = _registered(client, auth, world, None)
    visit = Visit(client, auth, world, task.window_start + timedelta(minutes=10), 600, task=task)
    flag = _flag(visit.assessment(app), "code-missing")
    assert flag["details"]["reasons"] == ["before-issue"] and "检查码尚未签发" in flag["message"]


def test_records_by_someone_no_longer_on_the_team_are_flagged(app, client, auth, world) -> None:
    from tests.server.sync.test_push import mutation, push

    visit = Visit(client, auth, world, _now() - timedelta(minutes=30), 15)
    finding = mutation("finding", str(uuid.uuid4()), {
        "inspection_id": visit.id, "check_item_id": str(world.check_items["e-permit"].id), "result": "compliant"},
        "STHJ-TAB1")
    assert push(client, auth.headers("e-insp"), "STHJ-TAB1", [finding]).status_code == 200
    assert "not-on-team" not in codes(visit.assessment(app))
    # Ecology's inspector is taken off the team: what they recorded is now a stranger's.
    db.session.execute(delete(TaskMember).where(TaskMember.task_id == world.task.id,
                                                TaskMember.user_id == world.people["e-insp"].id))
    assess_inspection(uuid.UUID(visit.id))
    db.session.commit()
    flag = _flag(visit.assessment(app), "not-on-team")
    assert flag["severity"] == "error" and flag["details"]["user_id"] == str(world.people["e-insp"].id)
    assert flag["details"]["kinds"] == ["finding"] and "检查结论" in flag["message"]


def test_assessments_made_by_older_rules_are_made_again_by_the_sweeper(app, client, auth, world) -> None:
    visit = Visit(client, auth, world, _now() - timedelta(minutes=30), 15)
    visit.assessment(app)
    assert inspections_needing_assessment() == []
    assessment = db.session.scalar(select(InspectionAssessment))
    assert assessment is not None and assessment.rules_version == rules.RULES_VERSION
    assessment.rules_version = rules.RULES_VERSION - 1  # as the migration leaves those made before an upgrade
    db.session.commit()
    assert inspections_needing_assessment() == [uuid.UUID(visit.id)]
