"""Returned records come back to the team (docs/field-app.md): the decision written onto the record as a server
change, pulled by the tablets, not writable by them; finished again, the record shows as resubmitted."""
from __future__ import annotations

import re
import uuid
from typing import Any

from sqlalchemy import select

from server.extensions import db
from server.review import service
from server.review.models import DecisionKind
from server.review.sessions import principal_of
from server.sync.hlc import parse
from server.sync.models import SyncConflict, SyncedEntity
from tests.conftest import World
from tests.server.review.conftest import post_form
from tests.server.sync.test_push import mutation, new_inspection, push

PULL = "/api/v1/sync/pull"


def _finished_record(client, world: World, auth) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    inspection = new_inspection(world, status="finished", conclusion="合格")
    assert push(client, auth.headers("m-insp"), "SCJG-TAB1", [inspection]).get_json()["results"][0]["status"] \
        == "applied"
    return inspection


def _pulled_inspection(client, headers, inspection_id: str) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    changes = client.get(PULL, headers=headers).get_json()["changes"]
    (found,) = [c for c in changes if c["entity"] == "inspection" and c["entity_id"] == inspection_id]
    return found  # type: ignore[no-any-return]


def _return(world: World, inspection_id: str, comment: str = "请补拍营业执照照片") -> None:
    service.decide(principal_of(world.people["m-sup"]), uuid.UUID(inspection_id),
                   DecisionKind.RETURN, comment)
    db.session.commit()


def test_a_return_reaches_every_tablet_of_the_team_on_its_next_pull(client, world: World, auth) -> None:
    inspection = _finished_record(client, world, auth)
    before = db.session.get(SyncedEntity, uuid.UUID(inspection["entity_id"])).version
    _return(world, inspection["entity_id"])
    for user in ("m-insp", "e-insp"):  # the joint record's whole team, both departments
        change = _pulled_inspection(client, auth.headers(user), inspection["entity_id"])
        review = change["fields"]["review"]
        assert change["fields"]["status"] == "returned" and change["version"] == before + 1
        assert review["status"] == "returned" and review["comment"] == "请补拍营业执照照片"
        assert review["decided_by"] == {"id": str(world.people["m-sup"].id), "full_name": "测试m-sup"}
        assert review["decided_at"]
        # A server stamp, after the tablet's write: folded in, the tablets' next edits order after it.
        stamp = parse(change["meta"]["hlc"])
        assert stamp.node == "SERVER" and stamp > parse(inspection["hlc"])
        assert change["fields"]["conclusion"] == "合格"  # the team's fields are untouched


def test_a_tablet_may_not_write_the_review(client, world: World, auth) -> None:
    inspection = _finished_record(client, world, auth)
    _return(world, inspection["entity_id"])
    version = db.session.get(SyncedEntity, uuid.UUID(inspection["entity_id"])).version
    forged = mutation("inspection", inspection["entity_id"], {"review": {"status": "approved"}}, "SCJG-TAB1",
                      base=version)
    sneaky = mutation("inspection", inspection["entity_id"], {"status": "returned"}, "SCJG-TAB1", base=version)
    fine = mutation("inspection", inspection["entity_id"], {"place": "仓库"}, "SCJG-TAB1", base=version)
    results = push(client, auth.headers("m-insp"), "SCJG-TAB1", [forged, sneaky, fine]).get_json()["results"]
    assert [(r["status"], r.get("code")) for r in results] == [
        ("rejected", "immutable-field"), ("rejected", "invalid-fields"), ("applied", None)]
    assert "审核意见由审核端写入" in results[0]["reason"]
    db.session.expire_all()
    stored = db.session.get(SyncedEntity, uuid.UUID(inspection["entity_id"]))
    assert stored.fields["review"]["status"] == "returned" and stored.fields["status"] == "returned"
    # Creating a record with a review is refused the same way.
    other = mutation("inspection", inspection["entity_id"], {"review": None}, "SCJG-TAB1", base=0)
    assert push(client, auth.headers("m-insp"), "SCJG-TAB1", [other]).get_json()["results"][0]["code"] \
        == "immutable-field"


def test_finishing_again_after_the_return_is_no_conflict_and_shows_resubmitted(client, world: World, auth,
                                                                               review_as) -> None:
    inspection = _finished_record(client, world, auth)
    _return(world, inspection["entity_id"])
    headers = auth.headers("m-insp")
    pulled = _pulled_inspection(client, headers, inspection["entity_id"])
    server = parse(pulled["meta"]["hlc"])
    # The tablet folded the server's stamp in: its next stamp orders after it, whatever its own clock says.
    stamp = f"{server.wall_ms:013d}-{server.counter + 1:04x}-SCJG-TAB1"
    again = {**mutation("inspection", inspection["entity_id"], {"status": "finished", "conclusion": "已补拍，合格"},
                        "SCJG-TAB1", base=pulled["version"]), "hlc": stamp}
    result = push(client, headers, "SCJG-TAB1", [again]).get_json()["results"][0]
    assert result["status"] == "applied", result
    assert db.session.scalar(select(SyncConflict)) is None
    stored = db.session.get(SyncedEntity, uuid.UUID(inspection["entity_id"]))
    assert stored.fields["status"] == "finished" and stored.fields["review"]["status"] == "returned"
    assert service.review_status(stored.id) == service.ReviewStatus.RESUBMITTED

    client = review_as("m-sup")
    queue = client.get("/review/").get_data(as_text=True)
    row = re.search(r'<tr data-testid="queue-row">(?:(?!</tr>).)*' + inspection["entity_id"], queue, re.S)
    assert row and "已重新提交" in queue
    resubmitted = client.get("/review/?status=resubmitted").get_data(as_text=True)
    assert inspection["entity_id"] in resubmitted
    assert inspection["entity_id"] not in client.get("/review/?status=returned").get_data(as_text=True)
    page = client.get(f"/review/inspections/{inspection['entity_id']}").get_data(as_text=True)
    assert 'data-testid="review-status">已重新提交' in page

    # The approval goes onto the record too; its status stays the team's.
    decided = post_form(client, f"/review/inspections/{inspection['entity_id']}/decisions",
                        {"kind": "approve", "comment": "同意"}, f"/review/inspections/{inspection['entity_id']}")
    assert decided.status_code == 303
    approved = _pulled_inspection(client, headers, inspection["entity_id"])
    assert approved["fields"]["review"]["status"] == "approved" and approved["fields"]["review"]["comment"] == "同意"
    assert approved["fields"]["status"] == "finished"


def test_a_return_while_a_tablet_was_offline_wins_over_its_older_finish(client, world: World, auth) -> None:
    """A tablet that finished the record before seeing the return (an older stamp) does not undo the return."""
    inspection = _finished_record(client, world, auth)
    version = db.session.get(SyncedEntity, uuid.UUID(inspection["entity_id"])).version
    late = mutation("inspection", inspection["entity_id"], {"status": "finished"}, "STHJ-TAB1", base=version,
                    offset_ms=-60_000)
    _return(world, inspection["entity_id"])
    push(client, auth.headers("e-insp"), "STHJ-TAB1", [late])
    db.session.expire_all()
    stored = db.session.get(SyncedEntity, uuid.UUID(inspection["entity_id"]))
    assert stored.fields["status"] == "returned"
    assert service.review_status(stored.id) == service.ReviewStatus.RETURNED
