"""Pull: everything the caller may see since the cursor, in pages, each entity once, newest state."""
from __future__ import annotations

import uuid

from sqlalchemy import event

from server.auth.policy import SYSTEM
from server.directory import service as directory
from server.directory.models import CertificateStatus
from server.extensions import db
from tests.conftest import World, assert_problem
from tests.server.sync.test_push import mutation, new_inspection, push

PULL = "/api/v1/sync/pull"


def pull_all(client, headers, cursor: str | None = None, limit: int = 200) -> tuple[list[dict], str]:  # type: ignore[no-untyped-def]
    changes: list[dict] = []
    while True:
        url = f"{PULL}?limit={limit}" + (f"&cursor={cursor}" if cursor else "")
        page = client.get(url, headers=headers).get_json()
        changes += page["changes"]
        cursor = page["cursor"]
        if not page["has_more"]:
            return changes, cursor  # type: ignore[return-value]


def test_first_pull_brings_the_task_with_everything_needed_offline(client, world: World, auth) -> None:
    changes, _ = pull_all(client, auth.headers("m-insp"))
    by_kind: dict[str, list[dict]] = {}
    for change in changes:
        by_kind.setdefault(change["entity"], []).append(change)
    task = by_kind["task"][0]
    assert task["entity_id"] == str(world.task.id)
    assert task["fields"]["enterprise"]["credit_code"] == world.enterprise.credit_code
    assert {m["certificate_number"] for m in task["fields"]["team"]} == {"CERT-M-001", "CERT-E-001"}
    assert set(task["fields"]["check_item_ids"]) == {str(i.id) for i in world.check_items.values()}
    assert {c["entity_id"] for c in by_kind["check_item"]} >= {str(i.id) for i in world.check_items.values()}
    assert {c["fields"]["number"] for c in by_kind["certificate"]} == {"CERT-M-001", "CERT-E-001"}


def test_teammates_changes_arrive_and_outsiders_see_nothing(client, world: World, auth) -> None:
    _, market_cursor = pull_all(client, auth.headers("m-insp"))
    inspection = new_inspection(world, device="STHJ-TAB1")
    finding = mutation("finding", str(uuid.uuid4()), {
        "inspection_id": inspection["entity_id"], "check_item_id": str(world.check_items["e-permit"].id),
        "result": "non_compliant"}, "STHJ-TAB1")
    push(client, auth.headers("e-insp"), "STHJ-TAB1", [inspection, finding])
    changes, _ = pull_all(client, auth.headers("m-insp"), market_cursor)
    assert {(c["entity"], c["entity_id"]) for c in changes} == {("inspection", inspection["entity_id"]),
                                                               ("finding", finding["entity_id"])}
    assert next(c for c in changes if c["entity"] == "finding")["meta"]["department_id"] == str(world.ecology.id)
    outsider, _ = pull_all(client, auth.headers("e-insp2"))
    assert {c["entity"] for c in outsider} == {"check_item"}


def test_each_entity_once_with_its_newest_state(client, world: World, auth) -> None:
    headers = auth.headers("m-insp")
    _, cursor = pull_all(client, headers)
    inspection = new_inspection(world)
    push(client, headers, "SCJG-TAB1", [inspection])
    for version, place in enumerate(["一号车间", "二号车间", "仓库"], start=1):
        push(client, headers, "SCJG-TAB1",
             [mutation("inspection", inspection["entity_id"], {"place": place}, "SCJG-TAB1", base=version)])
    changes, _ = pull_all(client, headers, cursor)
    assert len(changes) == 1
    assert changes[0]["fields"]["place"] == "仓库" and changes[0]["version"] == 4


def test_paging_returns_every_change_exactly_once(client, world: World, auth) -> None:
    headers = auth.headers("m-insp")
    inspections = [new_inspection(world) for _ in range(23)]
    push(client, headers, "SCJG-TAB1", inspections)
    small, _ = pull_all(client, headers, limit=4)
    large, _ = pull_all(client, headers, limit=1000)
    assert [c["entity_id"] for c in small] == [c["entity_id"] for c in large]
    assert len({c["entity_id"] for c in small}) == len(small)
    assert {i["entity_id"] for i in inspections} <= {c["entity_id"] for c in small}


def test_certificate_status_changes_of_teammates_reach_the_tablet(client, world: World, auth) -> None:
    headers = auth.headers("m-insp")
    _, cursor = pull_all(client, headers)
    directory.change_certificate_status(SYSTEM, world.people["e-insp"].certificates[0], CertificateStatus.SUSPENDED,
                                        "暂扣")
    db.session.commit()
    changes, cursor = pull_all(client, headers, cursor)
    assert [(c["entity"], c["fields"]["status"]) for c in changes] == [("certificate", "suspended")]
    assert pull_all(client, headers, cursor)[0] == []


def test_deletions_come_as_tombstones(client, world: World, auth) -> None:
    headers = auth.headers("m-insp")
    inspection = new_inspection(world)
    push(client, headers, "SCJG-TAB1", [inspection])
    _, cursor = pull_all(client, headers)
    push(client, headers, "SCJG-TAB1",
         [mutation("inspection", inspection["entity_id"], {}, "SCJG-TAB1", base=1, op="delete")])
    changes, _ = pull_all(client, headers, cursor)
    assert [(c["entity_id"], c["op"]) for c in changes] == [(inspection["entity_id"], "delete")]


def test_bad_cursor_and_limit(client, world: World, auth) -> None:
    headers = auth.headers("m-insp")
    for query in ("cursor=garbage", "cursor=djE6LTU", "limit=0", "limit=1001", "limit=x", "colour=red"):
        assert_problem(client.get(f"{PULL}?{query}", headers=headers), 422)
    assert_problem(client.get(PULL), 401)


def test_the_cost_of_a_pull_does_not_grow_with_history(client, world: World, auth, app) -> None:
    headers = auth.headers("m-insp")
    statements: list[str] = []

    def count(conn, cursor, statement, *args):  # type: ignore[no-untyped-def]
        statements.append(statement)

    def statements_for_pull(cursor: str) -> int:
        statements.clear()
        event.listen(db.engine, "before_cursor_execute", count)
        try:
            client.get(f"{PULL}?cursor={cursor}", headers=headers)
        finally:
            event.remove(db.engine, "before_cursor_execute", count)
        return len(statements)

    _, cursor = pull_all(client, headers)
    short_history = statements_for_pull(cursor)
    for _ in range(5):
        push(client, headers, "SCJG-TAB1", [new_inspection(world) for _ in range(40)])
    _, cursor = pull_all(client, headers)
    assert statements_for_pull(cursor) == short_history
