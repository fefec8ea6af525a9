"""A record a supervisor returns comes back to the team's tablets; corrected and finished again, it is resubmitted."""
from __future__ import annotations

import io
import uuid
from collections.abc import Callable

import pytest
from sqlalchemy import select

from field_client.cli import main
from field_client.engine import FieldClient, LocalError
from server.extensions import db
from server.review import service as review
from server.review.models import DecisionKind
from server.review.sessions import principal_of
from server.sync.models import SyncConflict, SyncedEntity
from tests.conftest import World

Tablet = Callable[..., FieldClient]
COMMENT = "请补拍营业执照照片并补充整改期限"


def _cli(client: FieldClient, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(["--store", str(client.store.path), *argv], transport=client.transport(), stdout=out, stderr=err,
                client_options={"sleep": lambda s: None})
    return code, out.getvalue(), err.getvalue()


def _finished_and_returned(world: World, market: FieldClient) -> str:
    market.sync()
    inspection = market.start_inspection(str(world.task.id), place="生产车间")
    market.record_finding(inspection, str(world.check_items["m-licence"].id), "non_compliant", note="执照未公示")
    market.finish(inspection, conclusion="责令整改")
    market.sync()
    review.decide(principal_of(world.people["m-sup"]), uuid.UUID(inspection), DecisionKind.RETURN, COMMENT)
    db.session.commit()
    return inspection


def test_the_team_sees_the_return_with_its_comment(world: World, tablet: Tablet) -> None:
    market = tablet("m-insp", "SCJG-TAB1")
    ecology = tablet("e-insp", "STHJ-TAB1")
    inspection = _finished_and_returned(world, market)
    code, out, _ = _cli(market, "sync")
    assert code == 0 and "有 1 份检查记录被审核退回" in out
    (returned,) = market.returned()
    assert returned["id"] == inspection and returned["status"] == "returned"
    assert returned["review"]["comment"] == COMMENT and returned["review"]["decided_by"]["full_name"] == "测试m-sup"

    code, out, _ = _cli(market, "status")
    assert code == 0 and "被审核退回、待修改：1 份" in out
    code, out, _ = _cli(market, "tasks")
    assert code == 0 and f"被退回：{COMMENT}（测试m-sup" in out and f"fieldsync finish {inspection}" in out
    code, out, _ = _cli(market, "inspect", "show", inspection[:8])
    assert code == 0 and f"被退回：{COMMENT}" in out
    code, out, _ = _cli(market, "inspect", "start", str(world.task.id))
    assert code == 0 and "已被退回" in out and COMMENT in out

    ecology.sync()  # the other department's inspector on the team sees it too
    assert [r["id"] for r in ecology.returned()] == [inspection]


def test_corrected_and_finished_again_it_is_resubmitted_without_a_conflict(world: World, tablet: Tablet) -> None:
    market = tablet("m-insp", "SCJG-TAB1")
    inspection = _finished_and_returned(world, market)
    market.sync()
    code, out, _ = _cli(market, "inspect", "reopen", inspection)
    assert code == 0 and "已重新打开" in out
    assert market.inspection(inspection)["status"] == "open"
    market.attach(inspection, _photo(market), "certificate")
    market.finish(inspection, conclusion="已补拍执照，限期七日整改")
    report = market.sync()
    assert report.push.conflict == 0 and not report.push.rejected
    assert market.returned() == []
    code, out, _ = _cli(market, "inspect", "show", inspection)
    assert "已修改并重新提交，等待审核" in out and COMMENT in out

    db.session.expire_all()
    stored = db.session.get(SyncedEntity, uuid.UUID(inspection))
    assert stored.fields["status"] == "finished" and stored.fields["conclusion"] == "已补拍执照，限期七日整改"
    assert stored.fields["review"]["status"] == "returned"
    assert review.review_status(stored.id) == review.ReviewStatus.RESUBMITTED
    assert db.session.scalar(select(SyncConflict)) is None

    review.decide(principal_of(world.people["m-sup"]), stored.id, DecisionKind.APPROVE, "同意")
    db.session.commit()
    market.sync()
    code, out, _ = _cli(market, "inspect", "show", inspection)
    assert "已批准：同意" in out


def test_a_finish_without_reopening_resubmits_too(world: World, tablet: Tablet) -> None:
    market = tablet("m-insp", "SCJG-TAB1")
    inspection = _finished_and_returned(world, market)
    market.sync()
    market.finish(inspection)
    market.sync()
    assert review.review_status(uuid.UUID(inspection)) == review.ReviewStatus.RESUBMITTED


def test_the_tablet_cannot_write_the_review(world: World, tablet: Tablet) -> None:
    market = tablet("m-insp", "SCJG-TAB1")
    inspection = _finished_and_returned(world, market)
    market.sync()
    with pytest.raises(LocalError, match="review"):
        market.set_inspection_fields(inspection, review={"status": "approved"})
    with pytest.raises(LocalError, match="status"):
        market.set_inspection_fields(inspection, status="returned")
    market.reopen(inspection)
    with pytest.raises(LocalError, match="进行中"):
        market.reopen(inspection)
    status = market.status()
    assert status.rejected == [] and len(status.pending) == 1  # only the reopening waits to go up


def _photo(client: FieldClient):  # type: ignore[no-untyped-def]
    path = client.store.path.parent / "licence.jpg"
    path.write_bytes(b"\xff\xd8 licence photo")
    return path
