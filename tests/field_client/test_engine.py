"""The engine against a scripted server: capture offline, batches, retries, backoff, token refresh."""
from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest

from field_client.engine import AuthRequired, FieldClient, LocalError, NotLoggedIn, ServerRefused, ServerUnavailable
from field_client.transport import Response, TransportError
from tests.field_client.conftest import MY_ITEM, OTHER_ITEM, TASK_ID, FakeServer

PUSH = "/api/v1/sync/push"
PULL = "/api/v1/sync/pull"


def test_capture_works_offline_and_the_view_overlays_pending_edits(
        offline_tablet: Callable[..., FieldClient], fake_server: FakeServer) -> None:
    client = offline_tablet()
    fake_server.script = [TransportError("offline")] * 100  # nothing below may need the network
    inspection = client.start_inspection(TASK_ID, place="车间")
    assert client.start_inspection(TASK_ID) == inspection  # one visit, one record: joined
    first = client.record_finding(inspection, MY_ITEM, "compliant", note="已公示")
    again = client.record_finding(inspection, MY_ITEM, "non_compliant", note="未公示")
    assert again == first  # the same finding, upserted
    client.add_measure(inspection, soft="提醒限期公示")
    client.add_measure(inspection, coercive_kind="seizure", description="查封过期原料")
    client.finish(inspection, conclusion="责令整改")
    view = client.inspection(inspection)
    assert view["place"] == "车间" and view["status"] == "finished" and view["conclusion"] == "责令整改"
    assert view["soft_measures"] == ["提醒限期公示"]
    assert view["coercive_measures"] == [{"kind": "seizure", "description": "查封过期原料"}]
    (finding,) = view["findings"]
    assert finding["result"] == "non_compliant" and finding["note"] == "未公示" and finding["unconfirmed"]
    assert [m.base_version for m in client.store.mutations()] == [0] * 6
    assert len(client.status().pending) == 6
    assert fake_server.count(PUSH) == 0


@pytest.mark.parametrize("call, message", [
    (lambda c, i: c.record_finding(i, OTHER_ITEM, "compliant"), "其他部门"),
    (lambda c, i: c.record_finding(i, MY_ITEM, "fine"), "检查结论应为"),
    (lambda c, i: c.record_finding(i, "00000000-0000-4000-8000-000000000bad", "compliant"), "没有检查事项"),
    (lambda c, i: c.add_measure(i), "柔性措施"),
    (lambda c, i: c.add_measure(i, coercive_kind="arrest"), "强制措施类型"),
    (lambda c, i: c.set_inspection_fields(i, task_id="x"), "task_id"),
    (lambda c, i: c.set_inspection_fields(i, started_at="2026-01-05 10:00"), "时区"),
    (lambda c, i: c.start_inspection("00000000-0000-4000-8000-000000000bad"), "没有检查任务"),
    (lambda c, i: c.record_finding("not-a-uuid", MY_ITEM, "compliant"), "编号无效"),
])
def test_local_refusals_are_clear_and_change_nothing(offline_tablet: Callable[..., FieldClient],
                                                     call: Callable[[FieldClient, str], Any], message: str) -> None:
    client = offline_tablet()
    inspection = client.start_inspection(TASK_ID)
    with pytest.raises(LocalError, match=message):
        call(client, inspection)
    assert len(client.store.mutations()) == 1


def test_capture_needs_one_login_first(tmp_path) -> None:  # type: ignore[no-untyped-def]
    client = FieldClient(tmp_path / "field.db")
    with pytest.raises(NotLoggedIn):
        client.start_inspection(TASK_ID)
    with pytest.raises(NotLoggedIn):
        client.sync()
    client.close()


def test_push_sends_batches_of_at_most_500_in_order_with_progress(
        offline_tablet: Callable[..., FieldClient], fake_server: FakeServer) -> None:
    seen: list[tuple[str, int, int]] = []
    client = offline_tablet(progress=lambda *p: seen.append(p))
    inspection = client.start_inspection(TASK_ID)
    for n in range(1100):
        client.sign(inspection, "witness", f"证人{n}")
    report = client.push()
    batches = [body["mutations"] for _, path, body, _ in fake_server.calls if path == PUSH]
    assert [len(b) for b in batches] == [500, 500, 101]
    assert batches[0][0]["entity"] == "inspection"  # the parent goes first
    sent = [m["id"] for b in batches for m in b]
    assert sent == [m.id for m in client.store.mutations()]
    assert report.applied == 1101 and report.batches == 3
    assert [p for p in seen if p[0] == "push"] == [("push", 500, 1101), ("push", 1000, 1101), ("push", 1101, 1101)]
    assert client.status().pending == []


def test_edits_of_one_entity_go_one_per_batch_and_are_rebased_on_our_own_write(
        offline_tablet: Callable[..., FieldClient], fake_server: FakeServer) -> None:
    client = offline_tablet()
    inspection = client.start_inspection(TASK_ID)
    client.record_finding(inspection, MY_ITEM, "compliant")
    client.add_measure(inspection, soft="提醒")
    client.finish(inspection)
    report = client.push()
    batches = [[(m["entity"], m["base_version"]) for m in body["mutations"]]
               for _, path, body, _ in fake_server.calls if path == PUSH]
    # Each later edit is based on the version our previous write made: no false conflicts.
    assert batches == [[("inspection", 0), ("finding", 0)], [("inspection", 1)], [("inspection", 2)]]
    assert report.applied == 4
    view = client.inspection(inspection)
    assert view["version"] == 3 and not view["unconfirmed"] and view["status"] == "finished"


def test_whole_request_failures_are_retried_with_bounded_full_jitter_backoff(
        offline_tablet: Callable[..., FieldClient], fake_server: FakeServer) -> None:
    sleeps: list[float] = []
    client = offline_tablet(sleep=sleeps.append, rng=random.Random(7), max_attempts=5, backoff_base=1.0,
                            backoff_cap=8.0)
    client.start_inspection(TASK_ID)
    busy = Response(503, {"Retry-After": "3"}, {"type": "/problems/unavailable", "detail": "维护中"})
    fake_server.script = [TransportError("reset"), Response(500, {}, None), busy,
                          Response(429, {}, {"type": "/problems/too-many-requests", "detail": "慢点"})]
    report = client.push()
    assert report.applied == 1 and fake_server.count(PUSH) == 5
    assert len(sleeps) == 4
    ceilings = [1.0, 2.0, 4.0, 8.0]
    assert all(0 <= s <= c for s, c in zip(sleeps, ceilings, strict=True))
    assert sleeps[2] >= 3  # Retry-After is honoured
    (mutation,) = client.store.mutations()
    assert mutation.status == "done" and mutation.attempts == 5


def test_retries_are_bounded_and_nothing_is_lost(offline_tablet: Callable[..., FieldClient],
                                                 fake_server: FakeServer) -> None:
    client = offline_tablet(max_attempts=3)
    client.start_inspection(TASK_ID)
    fake_server.script = [TransportError("无信号")] * 3
    with pytest.raises(ServerUnavailable, match="已尝试 3 次"):
        client.sync()
    (pending,) = client.status().pending
    assert pending.attempts == 3 and pending.error_code == "network" and "无信号" in (pending.error_reason or "")
    assert client.sync().push.applied == 1


def test_a_refused_request_is_not_retried(offline_tablet: Callable[..., FieldClient], fake_server: FakeServer) -> None:
    client = offline_tablet()
    client.start_inspection(TASK_ID)
    fake_server.script = [Response(422, {}, {"type": "/problems/unknown-device", "status": 422,
                                             "detail": "设备 SCJG-TAB1 不是已登记的在用执法平板"})]
    with pytest.raises(ServerRefused) as refused:
        client.push()
    assert refused.value.code == "unknown-device" and "不是已登记" in refused.value.reason
    assert fake_server.count(PUSH) == 1
    (pending,) = client.status().pending
    assert pending.error_code == "unknown-device"


def test_expired_access_token_is_refreshed_once(offline_tablet: Callable[..., FieldClient],
                                                fake_server: FakeServer) -> None:
    client = offline_tablet()
    client.start_inspection(TASK_ID)
    fake_server.access = "rotated-by-time"  # the tablet's access token no longer works
    fake_server.refresh = "refresh-1"
    assert client.push().applied == 1
    assert fake_server.count("/api/v1/auth/refresh") == 1
    assert client.store.get("refresh_token") == fake_server.refresh != "refresh-1"


def test_a_dead_session_asks_for_login_and_keeps_everything(offline_tablet: Callable[..., FieldClient],
                                                             fake_server: FakeServer) -> None:
    client = offline_tablet()
    client.start_inspection(TASK_ID)
    fake_server.access, fake_server.refresh = "elsewhere", "elsewhere"
    with pytest.raises(AuthRequired, match="重新登录"):
        client.sync()
    assert fake_server.count("/api/v1/auth/refresh") == 1
    status = client.status()
    assert status.needs_login and not status.logged_in and len(status.pending) == 1
    client.login("http://inspect-once.test", "m-insp", "pw", "SCJG-TAB1")
    assert client.sync().push.applied == 1 and not client.status().needs_login


def test_pull_follows_has_more_and_saves_the_cursor_page_by_page(
        offline_tablet: Callable[..., FieldClient], fake_server: FakeServer, tmp_path) -> None:  # type: ignore[no-untyped-def]
    fake_server.page_size = 1
    client = offline_tablet(tmp_path / "paged" / "field.db")
    pulls = [c for c in fake_server.calls if c[1] == PULL]
    assert len(pulls) == 4 and client.store.get("cursor") == "4"
    # A failure on a later page keeps what the earlier pages brought, and the place.
    fake_server.changes.append({"entity": "certificate", "entity_id": "cert-1", "op": "upsert", "version": 9,
                                "fields": {"number": "CERT-M-001", "status": "suspended"}, "updated_at": None})
    fake_server.changes.append({"entity": "task", "entity_id": TASK_ID, "op": "delete", "version": 10,
                                "fields": {"title": "联合检查：浯溪食品", "status": "cancelled"}, "updated_at": None})
    original = fake_server.request
    calls = {"n": 0}

    def flaky(method: str, path: str, **kw: Any) -> Response:
        if path == PULL:
            calls["n"] += 1
            if calls["n"] == 2:
                raise TransportError("掉线")
        return original(method, path, **kw)

    client.session.set_transport(type("T", (), {"request": staticmethod(flaky)})())
    client.max_attempts = 1
    with pytest.raises(ServerUnavailable):
        client.pull()
    assert client.store.get("cursor") == "5"
    assert client.store.reference("certificate", "cert-1")["status"] == "suspended"  # type: ignore[index]
    client.pull()
    assert client.store.get("cursor") == "6"
    assert client.tasks() == []  # the cancelled task is a tombstone now
    assert client.store.reference("task", TASK_ID)["deleted"]  # type: ignore[index]


def test_a_token_another_process_refreshed_is_used_not_rotated_again(
        offline_tablet: Callable[..., FieldClient], fake_server: FakeServer) -> None:
    client = offline_tablet()
    client.start_inspection(TASK_ID)
    app = FieldClient(client.store.path, fake_server)  # the tablet app, on the same store

    def app_refreshes_meanwhile() -> Response:
        app.session.refresh()
        return Response(401, {}, {"type": "/problems/token-expired", "detail": "访问令牌已过期"})

    fake_server.script = [app_refreshes_meanwhile]
    assert client.push().applied == 1
    assert fake_server.count("/api/v1/auth/refresh") == 1  # only the app's
    assert client.store.get("refresh_token") == fake_server.refresh
    app.close()
