"""What a tablet does when the server refuses: a bad mutation never blocks the outbox, and the inspector reads Chinese.

Most of these run against the real server (SQLite and PostgreSQL). A damaged
outbox row — a kind from a newer app, an unreadable id — is written straight
into the store, as a bug or a newer version of the app would leave it.
"""
from __future__ import annotations

import io
import re
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from field_client.cli import main
from field_client.engine import AuthRequired, FieldClient, ServerRefused, ServerUnavailable
from field_client.transport import Response
from server.extensions import db
from server.sync.models import SyncedEntity
from tests.conftest import PASSWORD, World
from tests.field_client.conftest import TASK_ID, FakeServer, FlaskTransport

Tablet = Callable[..., FieldClient]
PUSH = "/api/v1/sync/push"
CJK = re.compile(r"[\u4e00-\u9fff]")
# 2026-01-05 09:00 in the offices' zone: the tablets' clock in these tests, never the machine's.
FIXED_NOW = 1767574800.0


def fixed_clock() -> float:
    return FIXED_NOW


def _server_kinds() -> list[str]:
    db.session.expire_all()
    return sorted(e.kind for e in db.session.scalars(select(SyncedEntity)))


def damaged(client: FieldClient, **overrides: Any) -> str:
    """Put a mutation in the outbox that the app itself would never write; returns its id."""
    device, user, _ = client.session.identity()
    values: dict[str, Any] = {"id": str(uuid.uuid4()), "entity": "inspection", "entity_id": str(uuid.uuid4()),
                              "op": "upsert", "base_version": 0, "fields": {"note": "来自新版本应用"}}
    values.update(overrides)
    with client.store.transaction():
        client.store.add_mutation(user_id=user, hlc=client.records.tick(device), now=client.session.now(), **values)
    return str(values["id"])


def pushed_batches(transport: FlaskTransport) -> list[tuple[str, ...]]:
    return [tuple(m["id"] for m in body["mutations"]) for method, path, body in transport.requests
            if method == "POST" and path == PUSH]


def test_a_mutation_of_a_kind_the_server_does_not_know_is_set_aside_and_the_rest_go_up(
        world: World, tablet: Tablet) -> None:
    market = tablet("m-insp", "SCJG-TAB1", clock=fixed_clock)
    market.sync()
    inspection = market.start_inspection(str(world.task.id), place="车间")
    newer = damaged(market, entity="checklist_photo")  # a kind a newer app knows, this server does not
    market.record_finding(inspection, str(world.check_items["m-licence"].id), "compliant")
    transport = market.transport()
    assert isinstance(transport, FlaskTransport)
    transport.requests.clear()

    report = market.sync()
    assert report.push.applied == 2
    assert [(r.mutation_id, r.code) for r in report.push.rejected] == [(newer, "unknown-entity-kind")]
    (rejection,) = report.push.rejected
    assert CJK.search(rejection.reason) and "Must be one of" not in rejection.reason
    assert _server_kinds() == ["finding", "inspection"]
    assert len(pushed_batches(transport)) <= 2

    # Kept on the tablet and shown, never sent again.
    status = market.status()
    assert status.pending == [] and [r.mutation_id for r in status.rejected] == [newer]
    assert status.rejected[0].fields == {"note": "来自新版本应用"}
    transport.requests.clear()
    market.sync()
    assert pushed_batches(transport) == []
    out, err = io.StringIO(), io.StringIO()
    assert main(["--store", str(market.store.path), "status"], transport=transport, stdout=out, stderr=err) == 0
    assert "被服务器拒绝：1 条" in out.getvalue() and rejection.reason in out.getvalue()


def test_an_unreadable_mutation_named_by_the_422_is_set_aside(world: World, tablet: Tablet) -> None:
    market = tablet("m-insp", "SCJG-TAB1", clock=fixed_clock)
    market.sync()
    inspection = market.start_inspection(str(world.task.id))
    bad = damaged(market, id="damaged-outbox-row")  # the server cannot even name it in a result: a 422
    market.sign(inspection, "witness", "证人甲")
    transport = market.transport()
    assert isinstance(transport, FlaskTransport)
    transport.requests.clear()

    report = market.sync()
    assert report.push.applied == 2 and [r.mutation_id for r in report.push.rejected] == [bad]
    (rejection,) = report.push.rejected
    assert rejection.code == "invalid-mutation" and CJK.search(rejection.reason)
    assert "Not a valid UUID" not in rejection.reason
    batches = pushed_batches(transport)
    assert len(batches) == 2 and bad in batches[0] and bad not in batches[1]
    assert _server_kinds() == ["inspection", "signature"]


class HidesWhichMutation(FlaskTransport):
    """The real server's answers, with a 422's field paths taken out (an older server, a proxy)."""

    def request(self, method: str, path: str, *, json_body: Any = None, query: Mapping[str, Any] | None = None,
                headers: Mapping[str, str] | None = None) -> Response:
        answer = super().request(method, path, json_body=json_body, query=query, headers=headers)
        if answer.status == 422 and isinstance(answer.body, dict):
            answer.body = {k: v for k, v in answer.body.items() if k != "errors"} | {"detail": "提交的数据未通过校验"}
        return answer


def test_a_refusal_that_names_no_mutation_is_bisected_to_the_bad_one(world: World, tablet: Tablet, app: Any) -> None:
    transport = HidesWhichMutation(app)
    market = tablet("m-insp", "SCJG-TAB1", clock=fixed_clock, transport=transport)
    market.sync()
    inspection = market.start_inspection(str(world.task.id))
    for n in range(3):
        market.sign(inspection, "witness", f"证人{n}")
    bad = damaged(market, id="damaged-outbox-row")
    for n in range(3, 6):
        market.sign(inspection, "witness", f"证人{n}")
    transport.requests.clear()

    report = market.sync()
    assert report.push.applied == 7 and [r.mutation_id for r in report.push.rejected] == [bad]
    assert CJK.search(report.push.rejected[0].reason)
    batches = pushed_batches(transport)
    assert len(batches) == len(set(batches)), "a refused batch was sent again unchanged"
    assert len(batches[0]) == 8 and len(batches) <= 7
    assert _server_kinds() == ["inspection"] + ["signature"] * 6
    transport.requests.clear()
    market.sync()
    assert pushed_batches(transport) == []


def test_a_retired_tablet_is_told_in_chinese_and_nothing_is_set_aside(
        world: World, tablet: Tablet, tmp_path: Path) -> None:
    from server.auth.policy import SYSTEM
    from server.directory import enrolment

    market = tablet("m-insp", "SCJG-TAB1", clock=fixed_clock)
    market.sync()
    inspection = market.start_inspection(str(world.task.id))
    market.sign(inspection, "witness", "证人甲")
    enrolment.retire(SYSTEM, "SCJG-TAB1")  # the tablet was reported lost
    db.session.commit()
    transport = market.transport()
    assert isinstance(transport, FlaskTransport)
    transport.requests.clear()
    with pytest.raises(AuthRequired) as refused:
        market.push()
    assert "device-unknown" in str(refused.value) and "已停用" in str(refused.value)
    assert CJK.search(str(refused.value)) and "device_id" not in str(refused.value)
    assert len(pushed_batches(transport)) == 1  # a problem of the device, not of a record: no bisection
    status = market.status()
    assert len(status.pending) == 2 and status.rejected == [] and status.needs_login

    out, err = io.StringIO(), io.StringIO()
    assert main(["--store", str(market.store.path), "sync"], transport=transport, stdout=out, stderr=err,
                client_options={"clock": fixed_clock}) == 1
    assert "fieldsync login" in err.getvalue() and "Traceback" not in err.getvalue()
    out = io.StringIO()
    assert main(["--store", str(market.store.path), "status"], stdout=out, stderr=io.StringIO()) == 0
    assert "待推送：2 条" in out.getvalue() and "重新登录" in out.getvalue()


# ---- against the scripted stand-in: answers the real server does not give (yet) ---------------

def _problem(status: int, slug: str, detail: str, **extra: Any) -> Response:
    return Response(status, {"Content-Type": "application/problem+json"},
                    {"type": f"/problems/{slug}", "title": "Request refused", "status": status, "detail": detail,
                     **extra})


def test_a_single_mutation_too_large_for_the_server_is_set_aside(
        offline_tablet: Callable[..., FieldClient], fake_server: FakeServer) -> None:
    client = offline_tablet(clock=fixed_clock)
    client.start_inspection(TASK_ID)
    fake_server.script = [_problem(413, "payload-too-large", "Request Entity Too Large")]
    report = client.push()
    (rejection,) = report.rejected
    assert rejection.code == "payload-too-large" and "过大" in rejection.reason
    assert "Entity" not in rejection.reason
    assert client.push().sent == 0 and fake_server.count(PUSH) == 1


def test_a_batch_refused_for_its_size_is_split_until_it_goes_through(
        offline_tablet: Callable[..., FieldClient], fake_server: FakeServer) -> None:
    client = offline_tablet(clock=fixed_clock)
    inspection = client.start_inspection(TASK_ID)
    for n in range(7):
        client.sign(inspection, "witness", f"证人{n}")
    original = fake_server.request

    def at_most_two(method: str, path: str, **kw: Any) -> Response:
        if path == PUSH and len(kw["json_body"]["mutations"]) > 2:
            return _problem(413, "payload-too-large", "too large")
        return original(method, path, **kw)

    client.session.set_transport(type("T", (), {"request": staticmethod(at_most_two)})())
    report = client.push()
    assert report.applied == 8 and report.rejected == []
    assert client.status().pending == []


def test_a_race_between_two_server_processes_is_retried_not_set_aside(
        offline_tablet: Callable[..., FieldClient], fake_server: FakeServer) -> None:
    client = offline_tablet(clock=fixed_clock)
    client.start_inspection(TASK_ID)
    fake_server.script = [_problem(409, "conflict", "与现有数据冲突"), _problem(408, "timeout", "请求超时")]
    report = client.push()
    assert report.applied == 1 and report.rejected == [] and fake_server.count(PUSH) == 3

    client.set_inspection_fields(client.inspections()[0]["id"], place="仓库")
    client.max_attempts = 2
    fake_server.script = [_problem(409, "conflict", "与现有数据冲突")] * 2
    with pytest.raises(ServerUnavailable):
        client.push()
    (pending,) = client.status().pending
    assert pending.error_code == "conflict" and client.status().rejected == []


def test_a_rejection_without_a_chinese_reason_is_explained_from_its_code(
        offline_tablet: Callable[..., FieldClient], fake_server: FakeServer) -> None:
    client = offline_tablet(clock=fixed_clock)
    inspection = client.start_inspection(TASK_ID)
    client.sign(inspection, "witness", "证人甲")
    client.sign(inspection, "witness", "证人乙")
    client.sign(inspection, "witness", "证人丙")

    def answer() -> Response:
        ids = [m["id"] for m in fake_server.calls[-1][2]["mutations"]]
        return Response(200, {}, {"results": [
            {"id": ids[0], "status": "rejected", "code": "clock-skew", "reason": "device clock is ahead"},
            {"id": ids[1], "status": "rejected", "code": "unknown-entity-kind"},
            {"id": ids[2], "status": "rejected", "code": "brand-new-code", "reason": "something new"},
            {"id": ids[3], "status": "rejected", "code": "task-closed", "reason": "检查任务已关闭，不能再修改其记录"}]})

    fake_server.script = [answer]
    report = client.push()
    reasons = [r.reason for r in report.rejected]
    assert len(reasons) == 4 and all(CJK.search(r) for r in reasons)
    assert "时钟" in reasons[0] and "device clock" not in reasons[0]
    assert "不认识这种记录" in reasons[1]
    assert "brand-new-code" in reasons[2] and "something new" not in reasons[2]
    assert reasons[3] == "检查任务已关闭，不能再修改其记录"
    assert [r.reason for r in client.status().rejected] == reasons


def test_a_refusal_of_the_log_in_is_shown_in_chinese(tmp_path: Path, fake_server: FakeServer) -> None:
    fake_server.script = [_problem(403, "forbidden", "Account disabled",
                                   errors={"username": ["Account is disabled."]})]
    client = FieldClient(tmp_path / "t" / "field.db", fake_server)
    client.remember_device("http://inspect-once.test", "SCJG-TAB1", "fake-tablet-secret")
    with pytest.raises(ServerRefused) as refused:
        client.login("http://inspect-once.test", "m-insp", PASSWORD, "SCJG-TAB1")
    client.close()
    assert CJK.search(str(refused.value)) and "disabled" not in str(refused.value)
