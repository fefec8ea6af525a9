"""Tablets against the real server (SQLite and PostgreSQL): offline capture, sync, teammates, trouble."""
from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from field_client.engine import AuthRequired, FieldClient, LocalError, ServerRefused, ServerUnavailable
from server.auth.policy import SYSTEM
from server.extensions import db
from server.sync.models import MutationRecord, SyncConflict, SyncedEntity
from server.tasks.service import close_task, create_task
from tests.conftest import World
from tests.field_client.conftest import FlaskTransport

Tablet = Callable[..., FieldClient]


def _server_entities(kind: str | None = None) -> list[SyncedEntity]:
    db.session.expire_all()
    query = select(SyncedEntity)
    if kind:
        query = query.where(SyncedEntity.kind == kind)
    return list(db.session.scalars(query))


def _ids(world: World) -> tuple[str, str, str]:
    return str(world.task.id), str(world.check_items["m-licence"].id), str(world.check_items["e-permit"].id)


def test_inspect_offline_sync_and_the_teammate_sees_it(world: World, tablet: Tablet, tmp_path: Any) -> None:
    task_id, m_item, e_item = _ids(world)
    market = tablet("m-insp", "SCJG-TAB1")
    market.sync()
    (task,) = market.tasks()
    assert task["id"] == task_id and task["enterprise"]["credit_code"] == world.enterprise.credit_code
    assert {i["code"] for i in task["check_items"]} == {"SCJG-01", "STHJ-01"}
    assert {m["certificate_number"] for m in task["team"]} == {"CERT-M-001", "CERT-E-001"}

    # On site, no network.
    transport = market.transport()
    assert isinstance(transport, FlaskTransport)
    transport.offline = True
    inspection = market.start_inspection(task_id, place="浯溪食品生产车间")
    photo = tmp_path / "licence.jpg"
    photo.write_bytes(b"\xff\xd8 licence on the wall")
    licence = market.attach(inspection, photo, "certificate")
    market.record_finding(inspection, m_item, "non_compliant", note="营业执照未公示", evidence=[licence])
    market.record_finding(inspection, m_item, "compliant", note="已当场整改公示", evidence=[licence])
    market.add_measure(inspection, soft="提醒按期公示年报")
    market.sign(inspection, "representative", "王经理")
    with pytest.raises(ServerUnavailable):
        market.sync()
    assert len(market.status().pending) == 6 and _server_entities() == []

    transport.offline = False
    report = market.sync()
    assert report.push.applied == 6 and report.push.conflict == 0 and report.push.rejected == []
    assert report.uploads.uploaded == 1 and report.uploads.waiting == 0 and report.uploads.failed == []
    assert market.status().uploads_waiting == 0
    assert {e.kind for e in _server_entities()} == {"inspection", "media", "finding", "signature"}
    (finding,) = _server_entities("finding")
    assert finding.fields["result"] == "compliant" and finding.fields["evidence"] == [licence]

    # The ecology inspector, on another tablet, joins the same record.
    ecology = tablet("e-insp", "STHJ-TAB1")
    ecology.sync()
    assert ecology.start_inspection(task_id) == inspection
    seen = ecology.inspection(inspection)
    assert seen["place"] == "浯溪食品生产车间" and seen["soft_measures"] == ["提醒按期公示年报"]
    assert [f["note"] for f in seen["findings"]] == ["已当场整改公示"]
    assert seen["media"][0]["sha256"] == market.entity(licence)["sha256"]  # type: ignore[index]
    ecology.record_finding(inspection, e_item, "compliant", note="排污许可证在有效期内")
    ecology.finish(inspection, conclusion="联合检查完毕，责令市场主体按期公示")
    assert ecology.sync().push.applied == 2

    market.sync()
    final = market.inspection(inspection)
    assert final["status"] == "finished" and final["conclusion"].startswith("联合检查完毕")
    assert {f["note"] for f in final["findings"]} == {"已当场整改公示", "排污许可证在有效期内"}
    assert market.status().conflicts == [] and ecology.status().conflicts == []
    db.session.expire_all()
    assert db.session.scalar(select(func.count()).select_from(SyncConflict)) == 0
    assert market.status().pending == [] and market.status().rejected == []


def test_a_rejected_mutation_is_reported_with_its_reason_and_blocks_nothing(world: World, tablet: Tablet) -> None:
    task_id, m_item, _ = _ids(world)
    now = datetime.now(UTC)
    second = create_task(SYSTEM, {"title": "复查：浯溪食品", "enterprise_id": world.enterprise.id,
                                  "window_start": now - timedelta(hours=1), "window_end": now + timedelta(hours=2),
                                  "member_ids": [world.people["m-insp"].id],
                                  "check_item_ids": [world.check_items["m-licence"].id],
                                  "lead_department_id": world.market.id})
    db.session.commit()
    market = tablet("m-insp", "SCJG-TAB1")
    market.sync()
    closed_inspection = market.start_inspection(str(second.id), place="仓库")
    market.record_finding(closed_inspection, m_item, "compliant")
    inspection = market.start_inspection(task_id)
    market.record_finding(inspection, m_item, "non_compliant", note="未公示")

    close_task(SYSTEM, second.id)  # the office closed the follow-up while the tablet was offline
    db.session.commit()
    report = market.sync()
    assert report.push.applied == 2
    assert [(r.entity, r.code) for r in report.push.rejected] == [("inspection", "task-closed"),
                                                                  ("finding", "unknown-entity")]
    status = market.status()
    assert status.pending == []
    reasons = {r.entity: r.reason for r in status.rejected}
    assert "已关闭" in reasons["inspection"] and reasons["finding"]
    assert status.rejected[0].fields["place"] == "仓库"  # nothing captured is lost
    assert {e.kind for e in _server_entities()} == {"inspection", "finding"}

    # Rejected mutations are not sent again; the closed task is closed here too now.
    transport = market.transport()
    assert isinstance(transport, FlaskTransport)
    transport.requests.clear()
    market.sync()
    assert "/api/v1/sync/push" not in transport.paths()
    with pytest.raises(LocalError, match="已关闭"):
        market.start_inspection(str(second.id))


def test_a_lost_answer_is_repushed_and_nothing_is_applied_twice(world: World, tablet: Tablet) -> None:
    task_id, m_item, _ = _ids(world)
    market = tablet("m-insp", "SCJG-TAB1", max_attempts=1)
    market.sync()
    inspection = market.start_inspection(task_id, place="车间")
    market.record_finding(inspection, m_item, "compliant")
    transport = market.transport()
    assert isinstance(transport, FlaskTransport)

    transport.fail_next("lost")  # the server commits, the answer never arrives
    with pytest.raises(ServerUnavailable):
        market.push()
    assert [p.attempts for p in market.status().pending] == [1, 1]
    assert len(_server_entities()) == 2

    report = market.sync()
    assert report.push.duplicate == 2 and report.push.applied == 0
    db.session.expire_all()
    assert db.session.scalar(select(func.count()).select_from(MutationRecord)) == 2
    assert {e.version for e in _server_entities()} == {1}
    assert market.status().pending == [] and not market.inspection(inspection)["unconfirmed"]

    # The same again, retried automatically within one push.
    market.max_attempts = 3
    market.set_inspection_fields(inspection, representative="王经理")
    transport.fail_next("lost")
    report = market.push()
    assert report.duplicate == 1 and report.applied == 0
    assert [e.version for e in _server_entities("inspection")] == [2]


def test_an_expired_access_token_is_refreshed_and_a_dead_session_asks_for_login(world: World, tablet: Tablet) -> None:
    task_id, _, _ = _ids(world)
    market = tablet("m-insp", "SCJG-TAB1")
    market.sync()
    market.start_inspection(task_id)
    old_refresh = market.store.get("refresh_token")
    market.store.set("access_token", "expired.or.garbage")
    assert market.sync().push.applied == 1
    transport = market.transport()
    assert isinstance(transport, FlaskTransport)
    assert transport.paths().count("/api/v1/auth/refresh") == 1
    assert market.store.get("refresh_token") != old_refresh

    # The old refresh token was rotated away; presenting it again ends the session.
    market.start_inspection(task_id, new=True)
    market.store.set("access_token", "expired.again")
    market.store.set("refresh_token", old_refresh)
    with pytest.raises(AuthRequired, match="重新登录"):
        market.sync()
    status = market.status()
    assert status.needs_login and len(status.pending) == 1
    market.login("http://inspect-once.test", "m-insp", "correct-horse-battery", "SCJG-TAB1")
    assert market.sync().push.applied == 1


def test_concurrent_edits_of_one_field_show_as_a_conflict(world: World, tablet: Tablet) -> None:
    task_id, _, _ = _ids(world)
    market = tablet("m-insp", "SCJG-TAB1")
    market.sync()
    inspection = market.start_inspection(task_id, place="车间")
    market.sync()
    ecology = tablet("e-insp", "STHJ-TAB1", clock=lambda: time.time() - 60)  # a minute behind
    ecology.sync()

    market.set_inspection_fields(inspection, place="一号车间")
    ecology.set_inspection_fields(inspection, place="污水处理站", representative="李主任")
    market.sync()
    report = ecology.sync()
    assert report.push.conflict == 1
    (conflict,) = ecology.status().conflicts
    assert conflict.entity_id == inspection
    # The market edit has the later stamp and keeps the field; ours is kept for supervisors.
    assert conflict.overridden == {"place": "一号车间"}
    assert ecology.inspection(inspection)["representative"] == "李主任"
    db.session.expire_all()
    (kept,) = db.session.scalars(select(SyncConflict))
    assert (kept.field, kept.kept_value, kept.lost_value) == ("place", "一号车间", "污水处理站")


def test_an_edit_made_after_seeing_a_fast_clock_still_wins(world: World, tablet: Tablet) -> None:
    """A teammate's tablet runs ahead (within the allowed skew); our later edit must not lose silently."""
    task_id, _, _ = _ids(world)
    market = tablet("m-insp", "SCJG-TAB1", clock=lambda: time.time() + 200)
    market.sync()
    inspection = market.start_inspection(task_id, place="车间")
    market.sync()
    ecology = tablet("e-insp", "STHJ-TAB1")
    ecology.sync()
    ecology.set_inspection_fields(inspection, place="仓库")
    assert ecology.sync().push.applied == 1
    market.sync()
    assert market.inspection(inspection)["place"] == "仓库"
    assert [e.fields["place"] for e in _server_entities("inspection")] == ["仓库"]


def test_pull_pages_until_done_with_progress(world: World, tablet: Tablet) -> None:
    task_id, m_item, _ = _ids(world)
    market = tablet("m-insp", "SCJG-TAB1")
    market.sync()
    inspection = market.start_inspection(task_id)
    market.record_finding(inspection, m_item, "compliant")
    for n in range(5):
        market.sign(inspection, "witness", f"证人{n}")
    market.sync()
    progress: list[tuple[str, int, int]] = []
    fresh = tablet("m-insp", "SCJG-TAB1", name="second-tablet", pull_limit=3, progress=lambda *p: progress.append(p))
    report = fresh.pull()
    # task, enterprise, two check items, two teammates' certificates, inspection, finding, five signatures
    assert report.changes == 13 and report.pages == 5
    assert len(fresh.inspection(inspection)["signatures"]) == 5
    assert [p[1] for p in progress if p[0] == "pull"] == sorted(p[1] for p in progress if p[0] == "pull")


def test_an_unregistered_tablet_cannot_log_in(world: World, tablet: Tablet) -> None:
    market = tablet("m-insp", "SCJG-TAB9", login=False)
    with pytest.raises(LocalError, match="尚未登记为执法平板") as refused:
        market.login("http://inspect-once.test", "m-insp", "correct-horse-battery", "SCJG-TAB9")
    assert "fieldsync enrol" in str(refused.value)
    market.remember_device("http://inspect-once.test", "SCJG-TAB9", "a-guessed-secret")
    with pytest.raises(AuthRequired, match="未登记、已停用或设备密钥不正确"):
        market.login("http://inspect-once.test", "m-insp", "correct-horse-battery")
    assert market.store.get("access_token") is None


def test_a_retired_tablet_is_refused_and_keeps_its_records(world: World, tablet: Tablet) -> None:
    from server.directory import enrolment

    task_id, _, _ = _ids(world)
    market = tablet("m-insp", "SCJG-TAB1")
    market.sync()
    market.start_inspection(task_id)
    enrolment.retire(SYSTEM, "SCJG-TAB1")
    db.session.commit()
    with pytest.raises(AuthRequired, match="已停用"):
        market.sync()
    status = market.status()
    assert len(status.pending) == 1 and status.needs_login
    assert db.session.scalar(select(func.count()).select_from(SyncedEntity)) == 0


def test_another_user_cannot_take_over_unsynced_records(world: World, tablet: Tablet) -> None:
    task_id, m_item, _ = _ids(world)
    shared = tablet("m-insp", "SCJG-TAB1")
    shared.sync()
    inspection = shared.start_inspection(task_id)
    shared.record_finding(inspection, m_item, "compliant")
    with pytest.raises(LocalError, match="未同步"):
        shared.login("http://inspect-once.test", "e-insp", "correct-horse-battery")
    assert shared.store.get("username") == "m-insp"
    shared.sync()
    # Synced, but the tablet is market regulation's: an ecology inspector cannot log in on it at all.
    with pytest.raises(ServerRefused) as refused:
        shared.login("http://inspect-once.test", "e-insp", "correct-horse-battery")
    assert refused.value.code == "device-not-allowed" and "其他部门" in refused.value.reason
    assert shared.store.get("username") == "m-insp" and shared.tasks()
