"""Two to four tablets edit offline and sync through a faulty network.

Requests are lost, answers are lost, deliveries are duplicated or held back and
delivered later (reordered), and tablets crash between steps (the process is
gone; the store on disk is all that remains). After everything is delivered
and every tablet has synced once more over a good network:

- every tablet and the server hold the same state;
- no captured mutation is lost, and none is applied twice;
- the merged state is the one the delivered mutations determine whatever the
  order: per field, the value written with the greatest HLC.
"""
from __future__ import annotations

import shutil
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, func, select, text

from field_client.engine import FieldClient, FieldClientError
from field_client.transport import Response, TransportError
from server.extensions import db
from server.sync.models import MutationRecord, SyncedEntity
from tests.conftest import PASSWORD, TABLETS, World, _build_app, build_world, new_device

SERVER = "http://inspect-once.test"
# Faults first: hypothesis leans towards the first choices, and faults are what this test is about.
FAULTS = ("lost", "duplicate", "delay", "offline", "ok")
# (user, tablet): two market inspectors' tablets and two ecology ones, all on the one task.
SEATS = [("m-insp", "SCJG-TAB1"), ("e-insp", "STHJ-TAB1"), ("m-insp", "SCJG-TAB2"), ("e-insp", "STHJ-TAB2")]
PLACES = ["一号车间", "二号车间", "仓库", "办公楼"]
PEOPLE = ["张经理", "李主任", "王会计"]


class FaultyNetwork:
    """Delivers requests to the app, or loses, duplicates or holds them back as told."""

    def __init__(self, app: Flask) -> None:
        self.client = app.test_client()
        self.plan: list[str] = []
        self.held: list[tuple[str, str, Any, Mapping[str, Any] | None, dict[str, str]]] = []
        self.delivered_pushes: list[dict[str, Any]] = []

    def _deliver(self, method: str, path: str, body: Any, query: Mapping[str, Any] | None,
                 headers: dict[str, str]) -> Response:
        answer = self.client.open(path, method=method, json=body, query_string=dict(query or {}), headers=headers)
        if path.endswith("/sync/push"):
            self.delivered_pushes.append(body)
        return Response(answer.status_code, dict(answer.headers), answer.get_json(silent=True))

    def request(self, method: str, path: str, *, json_body: Any = None, query: Mapping[str, Any] | None = None,
                headers: Mapping[str, str] | None = None) -> Response:
        fault = self.plan.pop(0) if self.plan else "ok"
        headers = dict(headers or {})
        if fault == "offline":
            raise TransportError("no network")
        if fault == "delay" and path.endswith("/sync/push"):
            self.held.append((method, path, json_body, query, headers))
            raise TransportError("timed out (the request arrives later)")
        answer = self._deliver(method, path, json_body, query, headers)
        if fault == "duplicate":
            answer = self._deliver(method, path, json_body, query, headers)
        if fault == "lost":
            raise TransportError("connection reset after the server answered")
        return answer

    def release(self, index: int) -> None:
        if self.held:
            self._deliver(*self.held.pop(index % len(self.held)))

    def release_all(self) -> None:
        while self.held:
            self.release(0)


def _fresh_database(database_url: str, path: Path, template: Path | None) -> str:
    if database_url.startswith("sqlite"):
        assert template is not None
        shutil.copyfile(template, path)
        return f"sqlite:///{path}"
    engine = create_engine(database_url)
    with engine.begin() as conn:
        tables = ", ".join(f'"{t.name}"' for t in db.metadata.sorted_tables)
        conn.execute(text(f"TRUNCATE {tables} CASCADE"))
    engine.dispose()
    return database_url


step = st.one_of(
    st.tuples(st.just("place"), st.integers(0, 3), st.sampled_from(PLACES)),
    st.tuples(st.just("representative"), st.integers(0, 3), st.sampled_from(PEOPLE)),
    st.tuples(st.just("finding"), st.integers(0, 3), st.sampled_from(["compliant", "non_compliant", "not_applicable"])),
    st.tuples(st.just("measure"), st.integers(0, 3), st.sampled_from(["口头提醒", "书面告知"])),
    st.tuples(st.just("sync"), st.integers(0, 3), st.lists(st.sampled_from(FAULTS), min_size=1, max_size=6)),
    st.tuples(st.just("crash"), st.integers(0, 3), st.none()),
    st.tuples(st.just("release"), st.integers(0, 3), st.integers(0, 10)),
)


@pytest.mark.parametrize("seats", [2, 4], ids=["2-tablets", "4-tablets"])
@settings(max_examples=20, deadline=None, database=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(steps=st.lists(step, min_size=4, max_size=22))
def test_tablets_converge_through_a_faulty_network(request: pytest.FixtureRequest, database_url: str, tmp_path: Path,
                                                   seats: int, steps: list[tuple[str, int, Any]]) -> None:
    example = tmp_path / uuid.uuid4().hex[:8]
    example.mkdir()
    template = request.getfixturevalue("sqlite_template") if database_url.startswith("sqlite") else None
    app = _build_app(_fresh_database(database_url, example / "server.db", template), example / "var")
    with app.app_context():
        try:
            _run(app, example, seats, steps)
        finally:
            db.session.remove()
            db.engine.dispose()


def _run(app: Flask, example: Path, seats: int, steps: list[tuple[str, int, Any]]) -> None:
    world = build_world()
    new_device("SCJG-TAB2", "tablet", world.market)
    network = FaultyNetwork(app)
    store_paths = [example / f"tablet{n}" / "field.db" for n in range(seats)]
    no_sleep = {"sleep": lambda seconds: None, "max_attempts": 2}
    tablets = [FieldClient(path, network, **no_sleep) for path in store_paths]
    items = {"m-insp": str(world.check_items["m-licence"].id), "e-insp": str(world.check_items["e-permit"].id)}
    task_id = str(world.task.id)
    try:
        for (user, device), tablet in zip(SEATS, tablets, strict=False):
            tablet.remember_device(SERVER, device, TABLETS[device][1])
            tablet.login(SERVER, user, PASSWORD, device)
            tablet.pull()
        # One tablet opens the inspection and syncs it; the team joins it.
        inspection = tablets[0].start_inspection(task_id, place="厂区")
        tablets[0].sync()
        for tablet in tablets[1:]:
            tablet.pull()
            assert tablet.start_inspection(task_id) == inspection

        for action, who, arg in steps:
            n = who % seats
            tablet, user = tablets[n], SEATS[n][0]
            if action == "place":
                tablet.set_inspection_fields(inspection, place=arg)
            elif action == "representative":
                tablet.set_inspection_fields(inspection, representative=arg)
            elif action == "finding":
                tablet.record_finding(inspection, items[user], arg, note=f"{SEATS[n][1]} 记录")
            elif action == "measure":
                tablet.add_measure(inspection, soft=arg)
            elif action == "sync":
                network.plan = list(arg)
                try:
                    tablet.sync()
                except FieldClientError:
                    pass  # what did not get through stays queued
                network.plan = []
            elif action == "crash":
                tablet.close()  # nothing in memory survives; the next process opens the same store
                tablets[n] = FieldClient(store_paths[n], network, **no_sleep)
            elif action == "release":
                network.release(arg)

        network.release_all()
        for _ in range(2):
            for tablet in tablets:
                tablet.sync()
        for tablet in tablets:
            tablet.pull()
        _check(world, tablets, network)
    finally:
        for tablet in tablets:
            tablet.close()


def _check(world: World, tablets: list[FieldClient], network: FaultyNetwork) -> None:
    db.session.expire_all()
    entities = {str(e.id): e for e in db.session.scalars(select(SyncedEntity))}
    records = {str(r.id): r for r in db.session.scalars(select(MutationRecord))}

    # Nothing waits, nothing was refused: every captured mutation reached the server, once.
    captured: set[str] = set()
    for tablet in tablets:
        outbox = tablet.store.mutations()
        assert [m for m in outbox if m.status != "done"] == []
        captured |= {m.id for m in outbox}
    assert captured == set(records)
    for entity in entities.values():
        applied = db.session.scalar(select(func.count()).select_from(MutationRecord)
                                    .where(MutationRecord.entity_id == entity.id))
        assert entity.version == applied, "a mutation was applied twice or not counted"

    # The state is the one the mutations determine, whatever order they arrived in.
    sent: dict[str, dict[str, Any]] = {}
    for body in network.delivered_pushes:
        for mutation in body["mutations"]:
            assert sent.setdefault(mutation["id"], mutation) == mutation, "one id, two contents"
    expected: dict[str, dict[str, tuple[str, Any]]] = {}
    for mutation_id in records:
        mutation = sent[mutation_id]
        winners = expected.setdefault(mutation["entity_id"], {})
        for name, value in mutation["fields"].items():
            if name not in winners or mutation["hlc"] > winners[name][0]:
                winners[name] = (mutation["hlc"], value)
    for entity_id, winners in expected.items():
        stored = entities[entity_id].fields
        for name, (_, value) in winners.items():
            assert stored[name] == _normalised(name, value, stored[name]), (entity_id, name)

    # Every tablet sees exactly what the server holds.
    for tablet in tablets:
        for entity_id, entity in entities.items():
            view = tablet.entity(entity_id)
            assert view is not None, f"{entity_id} missing on a tablet"
            assert view["version"] == entity.version and not view["unconfirmed"]
            assert {k: view.get(k) for k in entity.fields} == entity.fields


def _normalised(name: str, sent: Any, stored: Any) -> Any:
    # Timestamps are stored in UTC; the instant, not the spelling, must match.
    if name.endswith("_at") and isinstance(sent, str) and isinstance(stored, str):
        from datetime import datetime
        return stored if datetime.fromisoformat(sent) == datetime.fromisoformat(stored) else sent
    return sent

