"""Two tablets of a joint team start the inspection offline: one record on the server, both merged in."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import select

from field_client.engine import FieldClient, inspection_id_for
from server.extensions import db
from server.sync.entities import inspection_id_for as server_inspection_id_for
from server.sync.models import SyncedEntity
from tests.conftest import World
from tests.field_client.conftest import FlaskTransport

Tablet = Callable[..., FieldClient]


def _offline(client: FieldClient, offline: bool) -> None:
    transport = client.transport()
    assert isinstance(transport, FlaskTransport)
    transport.offline = offline


def test_both_tablets_start_the_same_record_offline(world: World, tablet: Tablet) -> None:
    task_id = str(world.task.id)
    assert inspection_id_for(task_id) == str(server_inspection_id_for(world.task.id))
    market, ecology = tablet("m-insp", "SCJG-TAB1"), tablet("e-insp", "STHJ-TAB1")
    market.sync()
    ecology.sync()
    for client in (market, ecology):
        _offline(client, True)
    ours = market.start_inspection(task_id, place="生产车间")
    theirs = ecology.start_inspection(task_id)
    assert ours == theirs == inspection_id_for(task_id)
    market.record_finding(ours, str(world.check_items["m-licence"].id), "compliant")
    ecology.record_finding(theirs, str(world.check_items["e-permit"].id), "non_compliant", note="无排污许可证")
    ecology.set_inspection_fields(theirs, representative="王经理")
    for client in (market, ecology):
        _offline(client, False)
    assert not ecology.sync().push.rejected
    assert not market.sync().push.rejected
    ecology.sync()
    db.session.expire_all()
    (record,) = db.session.scalars(select(SyncedEntity).where(SyncedEntity.kind == "inspection"))
    assert str(record.id) == ours
    assert (record.fields["place"], record.fields["representative"]) == ("生产车间", "王经理")
    seen: dict[str, Any] = ecology.inspection(theirs)
    assert seen["place"] == "生产车间"
    assert len(db.session.scalars(select(SyncedEntity).where(SyncedEntity.kind == "finding")).all()) == 2
    # Joining later adds nothing: the record is already here.
    before = len(market.status().pending)
    assert market.start_inspection(task_id) == ours and len(market.status().pending) == before
