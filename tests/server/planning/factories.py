"""Planning objects built through the services, for the planning tests and the authorization table."""
from __future__ import annotations

from datetime import datetime, time, timedelta, timezone
from typing import Any

from server.auth.policy import SYSTEM, Principal
from server.directory import service as directory
from server.directory.credit_code import make_credit_code
from server.directory.models import Enterprise, User
from server.extensions import db
from server.planning.conflicts import declare_conflict
from server.planning.draws import run_draw
from server.planning.frequency import request_override
from server.planning.joint_plans import create_joint_plan
from server.planning.plans import create_plan
from tests.clock import office_today
from tests.conftest import World, new_user

OFFICE = timezone(timedelta(hours=8))


def principal(user: User) -> Principal:
    return Principal("user", str(user.id), user.role.value, user.department_id)


def window(days_ahead: int = 10, length_days: int = 1) -> tuple[datetime, datetime]:
    """A visit window starting at 09:00 office time ``days_ahead`` days from today."""
    start = datetime.combine(office_today() + timedelta(days=days_ahead), time(9), OFFICE)
    return start, start + timedelta(days=length_days - 1, hours=8)


def add_enterprises(world: World, count: int, *, industry: str, address: str = "祁阳市浯溪街道", start: int = 0,
                    departments: list[Any] | None = None) -> list[Enterprise]:
    made = []
    for n in range(start, start + count):
        code = make_credit_code("9", "1", "431121", f"PL{n:06d}")
        made.append(directory.create_enterprise(SYSTEM, {
            "credit_code": code, "name": f"{industry}企业{n}", "address": f"{address}{n}号", "industry": industry},
            departments or [world.market, world.ecology]))
    db.session.commit()
    return made


def second_market_inspector(world: World) -> User:
    """Market regulation needs two qualified inspectors for a team."""
    user = new_user("m-insp2", "inspector", world.market, certificate="CERT-M-002")
    world.people["m-insp2"] = user
    return user


def plan(world: World, department: str, *, ratio: float = 1.0, industries: list[str] | None = None,
         kind: str = "食品生产企业", items: list[str] | None = None, author: str | None = None) -> Any:
    dept = world.market if department == "market" else world.ecology
    item_keys = items or (["m-licence"] if department == "market" else ["e-permit"])
    today = office_today()
    created = create_plan(principal(world.people[author]) if author else SYSTEM, {
        "title": f"{dept.name}{today.year}年度抽查计划", "subject_kind": kind, "department_id": dept.id,
        "period_start": today, "period_end": today + timedelta(days=180),
        "target_filter": {"industries": industries or []}, "sampling_ratio": ratio,
        "check_item_ids": [world.check_items[k].id for k in item_keys]})
    db.session.commit()
    return created


def ecology_planning_objects(world: World) -> dict[str, str]:
    """One of each planning object belonging to ecology (生态环境局), for the authorization table."""
    ecology_plan = plan(world, "ecology")
    market_plan = plan(world, "market")
    joint = create_joint_plan(SYSTEM, {
        "title": "食品企业联合抽查", "plan_ids": [ecology_plan.id, market_plan.id], "department_id": world.ecology.id,
        "target_filter": {}, "sampling_ratio": 1.0, "equivalences": []})
    second_market_inspector(world)
    start, end = window()
    draw = run_draw(principal(world.people["e-sup"]), {
        "joint_plan_id": joint.id, "window_start": start, "window_end": end, "inspectors_per_department": 2,
        "seed": "authorization-table"})
    conflict = declare_conflict(SYSTEM, {"user_id": world.people["e-insp"].id,
                                         "enterprise_id": world.enterprise.id, "reason": "亲属任职"})
    override = request_override(principal(world.people["e-sup"]), {
        "enterprise_id": world.enterprise.id, "reason": "群众举报", "department_id": None})
    db.session.commit()
    return {"plan": str(ecology_plan.id), "joint_plan": str(joint.id), "draw": str(draw.id),
            "conflict": str(conflict.id), "override": str(override.id), "pending_task": draw.task_ids[0]}


# The ids ecology_planning_objects hands out, by name (the authorization table's path parameters).
PLANNING_KEYS = ("plan", "joint_plan", "draw", "conflict", "override", "pending_task")
