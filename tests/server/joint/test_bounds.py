"""The joint record is bounded whatever a record holds: a cap on what sync adds, and for records older than
the cap, the first of each kind (by id: the same subset on every server) with the totals."""
from __future__ import annotations

import uuid

import pytest

from server.joint.service import joint_record, joint_record_json
from server.sync.entities import MAX_PER_INSPECTION, Kind
from tests.conftest import World
from tests.server.sync.test_push import mutation, new_inspection, push


def test_a_record_older_than_the_cap_shows_a_bounded_slice_and_its_totals(client, world: World, auth,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    headers = auth.headers("m-insp")
    inspection = new_inspection(world)
    cap = MAX_PER_INSPECTION[Kind.SIGNATURE]
    signatures = [mutation("signature", str(uuid.uuid4()), {"inspection_id": inspection["entity_id"],
                                                            "signer_role": "witness", "signer_name": f"证人{n}"},
                           "SCJG-TAB1") for n in range(cap + 10)]
    with monkeypatch.context() as before_the_cap:
        before_the_cap.setitem(MAX_PER_INSPECTION, Kind.SIGNATURE, 10 ** 6)
        answer = push(client, headers, "SCJG-TAB1", [inspection, *signatures])
        assert {r["status"] for r in answer.get_json()["results"]} == {"applied"}

    record = joint_record(world.task.id)
    assert record.totals == {"finding": 0, "media": 0, "signature": cap + 10}
    assert len(record.signatures) == cap
    smallest = sorted(m["entity_id"] for m in signatures)[:cap]
    assert sorted(s["id"] for s in record.signatures) == smallest
    assert joint_record_json(world.task.id) == joint_record_json(world.task.id)
    served = client.get(f"/api/v1/tasks/{world.task.id}/joint-record", headers=auth.headers("m-sup"))
    assert served.status_code == 200 and served.get_json()["totals"]["signature"] == cap + 10
