"""A joint inspection (market regulation led, ecology on the team) approved by a supervisor, and legal reviewers."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient

from server.db_types import office_day
from server.directory.models import User
from server.extensions import db
from server.review import service as review
from server.review.models import DecisionKind
from server.review.sessions import principal_of
from server.sync.entities import inspection_id_for
from server.sync.models import SyncedEntity
from tests.conftest import World, new_user
from tests.server.review.conftest import entity, review_as  # noqa: F401 - the review app's log-in fixture


@dataclass
class Case:
    world: World
    inspection: SyncedEntity
    legal: dict[str, User]
    today: date

    @property
    def url(self) -> str:
        return f"/api/v1/inspections/{self.inspection.id}/decisions"


def approved_inspection(world: World) -> SyncedEntity:
    """The world task's joint record, finished by the team and approved by market regulation's supervisor."""
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    joint = entity("inspection", world.task, world.market.id, world.people["m-insp"].id,
                   entity_id=inspection_id_for(world.task.id), fields={
                       "task_id": str(world.task.id), "place": "厂区一号车间", "started_at": start.isoformat(),
                       "ended_at": (start + timedelta(minutes=40)).isoformat(), "representative": "张经理",
                       "soft_measures": [], "coercive_measures": [], "conclusion": "排污许可证过期",
                       "status": "finished"})
    db.session.commit()
    review.decide(principal_of(world.people["m-sup"]), joint.id, DecisionKind.APPROVE, None)
    db.session.commit()
    return joint


@pytest.fixture
def case(world: World) -> Case:
    legal = {"m-legal": new_user("m-legal", "legal_reviewer", world.market),
             "e-legal": new_user("e-legal", "legal_reviewer", world.ecology)}
    return Case(world, approved_inspection(world), legal, office_day(datetime.now(UTC)))


PENALTY = {"kind": "penalty", "conclusion": "排污许可证过期仍排放污染物", "amount_yuan": "50000.00",
           "legal_basis": "《排污许可管理条例》第三十三条"}
NOTICE = {"kind": "no_irregularity", "conclusion": "营业执照已按规定公示", "legal_basis": "《市场主体登记管理条例》"}


def record(client: FlaskClient, auth: Any, case: Case, who: str, body: dict[str, Any]) -> Any:
    return client.post(case.url, json=body, headers=auth.headers(who))
