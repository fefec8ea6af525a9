"""Made decisions as the decisions service leaves them (its rules are tested in tests/server/decisions)."""
from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from server.auth.policy import SYSTEM
from server.decisions.models import DecisionKind, DecisionStatus, EnforcementDecision
from server.directory import service as directory
from server.directory.credit_code import make_credit_code
from server.directory.models import Enterprise
from server.extensions import db
from server.sync.entities import inspection_id_for
from server.tasks.service import create_task
from tests.conftest import World


def made_decision(task: Any, department_id: Any, kind: DecisionKind, decided_on: date,
                  conclusion: str = "经检查，未发现违法违规行为") -> EnforcementDecision:
    decision = EnforcementDecision(
        inspection_id=inspection_id_for(task.id), task_id=task.id, department_id=department_id,
        enterprise_id=task.enterprise_id, kind=kind, conclusion=conclusion, legal_basis="《行政处罚法》第二十八条",
        amount_yuan=Decimal("5000.00") if kind is DecisionKind.PENALTY else None, circumstances=[],
        decided_on=decided_on, status=DecisionStatus.MADE, major=False, major_reasons=[])
    db.session.add(decision)
    db.session.commit()
    return decision


def visit(world: World, department: Any) -> Any:
    """A past visit of ``department`` alone to the world's enterprise (one decision per department per visit)."""
    member = world.people["m-insp" if department.id == world.market.id else "e-insp2"]
    start = datetime.now(UTC) - timedelta(days=3)
    serial = len(db.session.scalars(select(Enterprise.id)).all())
    enterprise = directory.create_enterprise(SYSTEM, {
        "credit_code": make_credit_code("9", "1", "431121", f"PB{serial:06d}"), "name": f"祁阳市第{serial}商贸有限公司",
        "address": "祁阳市长虹街道"}, [world.market, world.ecology])
    task = create_task(SYSTEM, {"title": f"{department.name}检查", "enterprise_id": enterprise.id,
                                "window_start": start, "window_end": start + timedelta(hours=4),
                                "member_ids": [member.id], "check_item_ids": [], "lead_department_id": department.id})
    db.session.commit()
    return task


#: The day the deadlines are looked at in these tests: Tuesday 10 March 2026, noon in the offices. The tests name
#: decision dates around the holidays, so they fix "today" too (whatever ``TEST_NOW`` the session runs at).
PUBLICATION_NOW = datetime(2026, 3, 10, 4, 0, tzinfo=UTC)


@pytest.fixture
def on_publication_day(clock: Any) -> None:
    """Move the suite's clock to ``PUBLICATION_NOW`` (it ticks on from there)."""
    clock.move_to(PUBLICATION_NOW)


@pytest.fixture
def decide(on_publication_day: None, world: World) -> Callable[..., EnforcementDecision]:
    """``decide(kind, decided_on, department=world.market)``: a made decision; the first of the market's is on
    the world's joint task, every other on a visit of its own."""
    used: set[Any] = set()

    def make(kind: DecisionKind, decided_on: date, department: Any = None, **fields: Any) -> EnforcementDecision:
        department = department or world.market
        task = world.task if department.id not in used else visit(world, department)
        used.add(department.id)
        return made_decision(task, department.id, kind, decided_on, **fields)
    return make
