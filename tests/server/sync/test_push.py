"""Push: each mutation applied at most once, merged field by field, refusals change nothing."""
from __future__ import annotations

import itertools
import json
import time
import uuid
from typing import Any

from sqlalchemy import func, select

from server.extensions import db
from server.sync.entities import inspection_id_for
from server.sync.models import MutationRecord, SyncConflict, SyncedEntity
from tests.conftest import World, assert_problem

PUSH = "/api/v1/sync/push"
_counter = itertools.count()


def stamp(device: str, offset_ms: int = 0, counter: int | None = None) -> str:
    ms = int(time.time() * 1000) + offset_ms
    return f"{ms:013d}-{(next(_counter) if counter is None else counter) % 65536:04x}-{device}"


def mutation(entity: str, entity_id: str, fields: dict[str, Any], device: str, *, base: int = 0,
             op: str = "upsert", offset_ms: int = 0, mutation_id: str | None = None) -> dict[str, Any]:
    return {"id": mutation_id or str(uuid.uuid4()), "entity": entity, "entity_id": entity_id, "op": op,
            "base_version": base, "hlc": stamp(device, offset_ms), "fields": fields}


def push(client, headers, device: str, mutations: list[dict[str, Any]]):  # type: ignore[no-untyped-def]
    return client.post(PUSH, json={"device_id": device, "mutations": mutations}, headers=headers)


def counts() -> tuple[int, int, int]:
    return tuple(db.session.scalar(select(func.count()).select_from(m)) or 0  # type: ignore[return-value]
                 for m in (SyncedEntity, MutationRecord, SyncConflict))


def new_inspection(world: World, device: str = "SCJG-TAB1", **fields: Any) -> dict[str, Any]:
    """The task's one inspection record, as a tablet starts it."""
    return mutation("inspection", str(inspection_id_for(world.task.id)),
                    {"task_id": str(world.task.id), "place": "厂区", **fields}, device)


def test_a_whole_inspection_is_applied_in_one_batch(client, world: World, auth) -> None:
    headers = auth.headers("m-insp")
    inspection = new_inspection(world, started_at="2026-11-26T09:00:00+08:00")
    finding = mutation("finding", str(uuid.uuid4()), {
        "inspection_id": inspection["entity_id"], "check_item_id": str(world.check_items["m-licence"].id),
        "result": "non_compliant", "note": "营业执照未悬挂"}, "SCJG-TAB1")
    media = mutation("media", str(uuid.uuid4()), {
        "inspection_id": inspection["entity_id"], "sha256": "ab" * 32, "size": 1024, "proves": "certificate",
        "content_type": "image/jpeg"}, "SCJG-TAB1")
    response = push(client, headers, "SCJG-TAB1", [inspection, finding, media])
    assert response.status_code == 200
    assert [r["status"] for r in response.get_json()["results"]] == ["applied"] * 3
    assert [r["id"] for r in response.get_json()["results"]] == [inspection["id"], finding["id"], media["id"]]
    stored = db.session.get(SyncedEntity, uuid.UUID(inspection["entity_id"]))
    assert stored.fields["started_at"] == "2026-11-26T01:00:00+00:00"  # normalised to UTC
    record = db.session.get(MutationRecord, uuid.UUID(inspection["id"]))
    assert record.received_at is not None and record.device_time is not None  # both times kept


def test_a_replayed_batch_is_duplicate_and_changes_nothing(client, world: World, auth) -> None:
    headers = auth.headers("m-insp")
    batch = [new_inspection(world)]
    first = push(client, headers, "SCJG-TAB1", batch).get_json()["results"][0]
    before = counts()
    again = push(client, headers, "SCJG-TAB1", batch).get_json()["results"][0]
    assert again == {**first, "status": "duplicate"} or (
        again["status"] == "duplicate" and again["version"] == first["version"])
    assert counts() == before


def test_same_id_with_different_content_is_rejected(client, world: World, auth) -> None:
    headers = auth.headers("m-insp")
    original = new_inspection(world)
    push(client, headers, "SCJG-TAB1", [original])
    before = counts()
    tampered = {**original, "fields": {**original["fields"], "place": "别处"}}
    result = push(client, headers, "SCJG-TAB1", [tampered]).get_json()["results"][0]
    assert result["status"] == "rejected" and result["code"] == "id-reused" and result["reason"]
    assert counts() == before
    assert db.session.get(SyncedEntity, uuid.UUID(original["entity_id"])).fields["place"] == "厂区"


def test_bad_mutations_do_not_block_good_ones(client, world: World, auth) -> None:
    headers = auth.headers("m-insp")
    inspection = new_inspection(world)
    good_finding = mutation("finding", str(uuid.uuid4()), {
        "inspection_id": inspection["entity_id"], "check_item_id": str(world.check_items["m-licence"].id),
        "result": "compliant"}, "SCJG-TAB1")
    unknown_item = mutation("finding", str(uuid.uuid4()), {
        "inspection_id": inspection["entity_id"], "check_item_id": str(uuid.uuid4()), "result": "compliant"},
        "SCJG-TAB1")
    other_department_item = mutation("finding", str(uuid.uuid4()), {
        "inspection_id": inspection["entity_id"], "check_item_id": str(world.check_items["e-permit"].id),
        "result": "compliant"}, "SCJG-TAB1")
    future = new_inspection(world)
    future["hlc"] = stamp("SCJG-TAB1", offset_ms=3_600_000)
    bad_field = new_inspection(world, status="maybe")
    unknown_field = new_inspection(world, colour="red")
    missing_required = mutation("finding", str(uuid.uuid4()), {"inspection_id": inspection["entity_id"]}, "SCJG-TAB1")
    orphan = mutation("media", str(uuid.uuid4()), {"inspection_id": str(uuid.uuid4()), "sha256": "cd" * 32, "size": 1},
                      "SCJG-TAB1")
    wrong_node = new_inspection(world, device="STHJ-TAB1")
    results = push(client, headers, "SCJG-TAB1", [inspection, unknown_item, good_finding, other_department_item, future,
                                                  bad_field, unknown_field, missing_required, orphan, wrong_node]
                   ).get_json()["results"]
    assert [(r["status"], r.get("code")) for r in results] == [
        ("applied", None), ("rejected", "unknown-check-item"), ("applied", None), ("rejected", "forbidden"),
        ("rejected", "clock-skew"), ("rejected", "invalid-fields"), ("rejected", "invalid-fields"),
        ("rejected", "invalid-fields"), ("rejected", "unknown-entity"), ("rejected", "hlc-node-mismatch")]
    assert all(r["reason"] for r in results if r["status"] == "rejected")
    assert "status" in results[5]["reason"] and "colour" in results[6]["reason"]
    assert counts()[:2] == (2, 2)


def test_someone_not_on_the_team_is_refused(client, world: World, auth) -> None:
    headers = auth.headers("e-insp2", device="STHJ-TAB2")
    result = push(client, headers, "STHJ-TAB2", [new_inspection(world, device="STHJ-TAB2")]).get_json()
    assert result["results"][0]["code"] == "forbidden"
    assert counts() == (0, 0, 0)


def test_another_departments_finding_cannot_be_changed(client, world: World, auth) -> None:
    inspection = new_inspection(world)
    finding = mutation("finding", str(uuid.uuid4()), {
        "inspection_id": inspection["entity_id"], "check_item_id": str(world.check_items["m-licence"].id),
        "result": "compliant"}, "SCJG-TAB1")
    push(client, auth.headers("m-insp"), "SCJG-TAB1", [inspection, finding])
    before = counts()
    overwrite = mutation("finding", finding["entity_id"], {"result": "non_compliant"}, "STHJ-TAB1", base=1)
    result = push(client, auth.headers("e-insp"), "STHJ-TAB1", [overwrite]).get_json()["results"][0]
    assert (result["status"], result["code"]) == ("rejected", "forbidden")
    assert counts() == before
    # Shared inspection fields are the team's: the ecology inspector may set them.
    shared = mutation("inspection", inspection["entity_id"], {"representative": "张经理"}, "STHJ-TAB1", base=1)
    assert push(client, auth.headers("e-insp"), "STHJ-TAB1", [shared]).get_json()["results"][0]["status"] == "applied"


def test_immutable_fields_and_kind_changes_are_refused(client, world: World, auth) -> None:
    headers = auth.headers("m-insp")
    inspection = new_inspection(world)
    push(client, headers, "SCJG-TAB1", [inspection])
    move = mutation("inspection", inspection["entity_id"], {"task_id": str(uuid.uuid4())}, "SCJG-TAB1", base=1)
    as_media = mutation("media", inspection["entity_id"], {"inspection_id": inspection["entity_id"],
                                                           "sha256": "ab" * 32, "size": 3}, "SCJG-TAB1")
    results = push(client, headers, "SCJG-TAB1", [move, as_media]).get_json()["results"]
    assert [r["code"] for r in results] == ["immutable-field", "invalid-fields"]


def test_concurrent_edits_resolve_by_clock_and_keep_the_loser(client, world: World, auth) -> None:
    inspection = new_inspection(world)
    push(client, auth.headers("m-insp"), "SCJG-TAB1", [inspection])
    # Both edit the conclusion offline, each based on version 1; the ecology tablet's clock is later.
    market_edit = mutation("inspection", inspection["entity_id"], {"conclusion": "责令整改"}, "SCJG-TAB1", base=1)
    ecology_edit = mutation("inspection", inspection["entity_id"], {"conclusion": "未发现问题"}, "STHJ-TAB1", base=1,
                            offset_ms=5)
    first = push(client, auth.headers("e-insp"), "STHJ-TAB1", [ecology_edit]).get_json()["results"][0]
    second = push(client, auth.headers("m-insp"), "SCJG-TAB1", [market_edit]).get_json()["results"][0]
    assert first["status"] == "applied" and second["status"] == "conflict"
    entity = db.session.get(SyncedEntity, uuid.UUID(inspection["entity_id"]))
    assert entity.fields["conclusion"] == "未发现问题" and entity.version == 3
    conflict = db.session.scalars(select(SyncConflict)).one()
    assert (conflict.field, conflict.kept_value, conflict.lost_value) == ("conclusion", "未发现问题", "责令整改")
    listed = client.get(f"/api/v1/sync/conflicts?task_id={world.task.id}", headers=auth.headers("m-sup")).get_json()
    assert listed[0]["lost_value"] == "责令整改"
    assert_problem(client.get(f"/api/v1/sync/conflicts?task_id={world.task.id}", headers=auth.headers("m-insp")), 403)


def test_a_later_edit_that_saw_the_earlier_one_is_no_conflict(client, world: World, auth) -> None:
    inspection = new_inspection(world)
    push(client, auth.headers("m-insp"), "SCJG-TAB1", [inspection])
    edit = mutation("inspection", inspection["entity_id"], {"place": "仓库"}, "STHJ-TAB1", base=1)
    assert push(client, auth.headers("e-insp"), "STHJ-TAB1", [edit]).get_json()["results"][0]["status"] == "applied"
    later = mutation("inspection", inspection["entity_id"], {"place": "车间"}, "SCJG-TAB1", base=2)
    assert push(client, auth.headers("m-insp"), "SCJG-TAB1", [later]).get_json()["results"][0]["status"] == "applied"
    assert counts()[2] == 0


def test_delete_leaves_a_tombstone(client, world: World, auth) -> None:
    headers = auth.headers("m-insp")
    inspection = new_inspection(world)
    media = mutation("media", str(uuid.uuid4()), {"inspection_id": inspection["entity_id"], "sha256": "ef" * 32,
                                                 "size": 10}, "SCJG-TAB1")
    push(client, headers, "SCJG-TAB1", [inspection, media])
    gone = mutation("media", media["entity_id"], {}, "SCJG-TAB1", base=1, op="delete")
    assert push(client, headers, "SCJG-TAB1", [gone]).get_json()["results"][0]["status"] == "applied"
    entity = db.session.get(SyncedEntity, uuid.UUID(media["entity_id"]))
    assert entity.deleted and entity.fields["sha256"] == "ef" * 32


def test_closed_task_refuses_changes(client, world: World, auth) -> None:
    headers = auth.headers("m-insp")
    inspection = new_inspection(world)
    push(client, headers, "SCJG-TAB1", [inspection])
    assert client.post(f"/api/v1/tasks/{world.task.id}/close", headers=auth.headers("m-sup")).status_code == 200
    late = mutation("inspection", inspection["entity_id"], {"conclusion": "补记"}, "SCJG-TAB1", base=1)
    result = push(client, headers, "SCJG-TAB1", [late]).get_json()["results"][0]
    assert (result["status"], result["code"]) == ("rejected", "task-closed")


def test_a_mutation_of_an_unknown_kind_is_refused_alone(client, world: World, auth) -> None:
    """A tablet running a newer app, or one damaged outbox row, never blocks the rest of the outbox."""
    headers = auth.headers("m-insp")
    inspection = new_inspection(world)
    newer = mutation("witness_statement", str(uuid.uuid4()), {"inspection_id": inspection["entity_id"],
                                                              "text": "证人陈述"}, "SCJG-TAB1")
    finding = mutation("finding", str(uuid.uuid4()), {
        "inspection_id": inspection["entity_id"], "check_item_id": str(world.check_items["m-licence"].id),
        "result": "compliant"}, "SCJG-TAB1")
    response = push(client, headers, "SCJG-TAB1", [inspection, newer, finding])
    assert response.status_code == 200, response.get_json()
    results = response.get_json()["results"]
    assert [(r["status"], r.get("code")) for r in results] == [
        ("applied", None), ("rejected", "unknown-entity-kind"), ("applied", None)]
    assert "witness_statement" in results[1]["reason"]
    assert counts()[:2] == (2, 2)
    # Sent again (the tablet has not set it aside yet): the same answer, nothing more stored.
    again = push(client, headers, "SCJG-TAB1", [newer])
    assert again.get_json()["results"][0]["code"] == "unknown-entity-kind"
    assert counts()[:2] == (2, 2)


def test_a_record_holds_a_bounded_number_of_signatures(client, world: World, auth) -> None:
    """What mutations may add to one record is bounded: a load test once left 17,000 signatures on one."""
    from server.sync.entities import MAX_PER_INSPECTION, Kind

    headers = auth.headers("m-insp")
    inspection = new_inspection(world)
    cap = MAX_PER_INSPECTION[Kind.SIGNATURE]
    signatures = [mutation("signature", str(uuid.uuid4()), {"inspection_id": inspection["entity_id"],
                                                            "signer_role": "witness", "signer_name": f"证人{n}"},
                           "SCJG-TAB1") for n in range(cap + 2)]
    response = push(client, headers, "SCJG-TAB1", [inspection, *signatures])
    results = response.get_json()["results"]
    assert [r["status"] for r in results[1:]] == ["applied"] * cap + ["rejected"] * 2
    assert {r.get("code") for r in results[cap + 1:]} == {"record-full"}
    # A later batch cannot add one more either; an edit of one already there still applies.
    later = push(client, headers, "SCJG-TAB1", [mutation("signature", str(uuid.uuid4()), {
        "inspection_id": inspection["entity_id"], "signer_role": "witness"}, "SCJG-TAB1"),
        mutation("signature", signatures[0]["entity_id"], {"signer_name": "证人甲"}, "SCJG-TAB1", base=1)])
    assert [(r["status"], r.get("code")) for r in later.get_json()["results"]] == [
        ("rejected", "record-full"), ("applied", None)]


def test_malformed_batches_are_refused_whole(client, world: World, auth) -> None:
    headers = auth.headers("m-insp")
    good = new_inspection(world)
    cases = [
        {"device_id": "SCJG-TAB1"},
        {"device_id": "SCJG-TAB1", "mutations": []},
        {"device_id": "SCJG-TAB1", "mutations": [good, {**good, "id": "not-a-uuid"}]},
        {"device_id": "SCJG-TAB1", "mutations": [good, {**good, "op": "explode"}]},
        {"device_id": "SCJG-TAB1", "mutations": [good, {**good, "hlc": "yesterday"}]},
        {"device_id": "SCJG-TAB1", "mutations": [good, {**good, "base_version": "1"}]},
        {"device_id": "SCJG-TAB1", "mutations": [good], "extra": 1},
        {"device_id": "SCJG-TAB1", "mutations": [good] * 501},
    ]
    for body in cases:
        assert_problem(client.post(PUSH, json=body, headers=headers), 422)
    assert_problem(client.post(PUSH, data=b"{", content_type="application/json", headers=headers), 400)
    # Any device but the tablet the log-in is bound to: not registered, another department's, a bodycam.
    for other in ("NO-SUCH-TAB", "STHJ-TAB1", "SCJG-BC01"):
        body = assert_problem(push(client, headers, other, [good]), 403, "device-mismatch")
        assert "SCJG-TAB1" in body["errors"]["device_id"][0]
    assert counts() == (0, 0, 0)


def test_only_inspectors_push(client, world: World, auth) -> None:
    assert_problem(push(client, auth.headers("m-sup"), "SCJG-TAB1", [new_inspection(world)]), 403)


def test_text_that_no_database_can_store_is_refused(client, world: World, auth) -> None:
    headers = auth.headers("m-insp")
    nul = new_inspection(world, place="厂\x00区")
    surrogate_key = new_inspection(world)
    surrogate_key["fields"]["\ud800"] = "x"
    nested = new_inspection(world, soft_measures=["劝导\ud800"])
    for bad in (nul, surrogate_key, nested):
        body = json.dumps({"device_id": "SCJG-TAB1", "mutations": [bad]})  # escapes lone surrogates as \ud800
        response = client.post(PUSH, data=body, content_type="application/json", headers=headers)
        result = response.get_json()["results"][0]
        assert (result["status"], result["code"]) == ("rejected", "invalid-fields"), result
    assert counts() == (0, 0, 0)


def test_a_push_racing_a_copy_of_itself_is_refused_whole(client, world: World, auth, monkeypatch) -> None:
    """Two server processes applying the same mutation at once: the loser's insert hits the key."""
    from server.sync import service

    headers = auth.headers("m-insp")
    inspection = new_inspection(world)
    push(client, headers, "SCJG-TAB1", [inspection])
    before = counts()
    real_load = service._load_batch

    def racing(*args, **kwargs):  # type: ignore[no-untyped-def]
        batch = real_load(*args, **kwargs)
        batch.log.clear()  # this request's look-up missed the record the other process committed
        return batch

    monkeypatch.setattr(service, "_load_batch", racing)
    assert_problem(push(client, headers, "SCJG-TAB1", [inspection]), 409, "conflict")
    monkeypatch.undo()
    assert counts() == before
    assert push(client, headers, "SCJG-TAB1", [inspection]).get_json()["results"][0]["status"] == "duplicate"
