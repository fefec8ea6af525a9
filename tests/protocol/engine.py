"""Runs the Python engine (field_client) on one protocol vector's input and returns what it did.

``build_vectors.py`` writes each vector's ``expect`` from this; ``test_vectors_python.py`` checks that the
engine still does exactly that. The JavaScript app runs the same file with its own engine
(field_client/web/test/vectors.test.js). The format is described in ``vectors.json`` itself (``format``).
"""
from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from field_client import hlc
from field_client.engine import FieldClient, ServerRefused
from field_client.messages import is_chinese
from field_client.sync import _hlc_from_time, refused_mutations
from field_client.transport import Response

DEVICE = "SCJG-TAB1"
USER = "00000000-0000-4000-8000-000000000001"
NOW = "2026-03-10T12:00:00+08:00"


def _error(exc: Exception) -> dict[str, str]:
    return {"error": type(exc).__name__}


# ---- HLC ------------------------------------------------------------------------------------

def hlc_format(case: Mapping[str, Any]) -> Any:
    return str(hlc.Stamp(case["wall_ms"], case["counter"], case["node"]))


def hlc_parse(case: Mapping[str, Any]) -> Any:
    try:
        stamp = hlc.parse(case["text"])
    except (ValueError, TypeError) as exc:
        return _error(exc)
    return {"wall_ms": stamp.wall_ms, "counter": stamp.counter, "node": stamp.node}


def hlc_order(case: Mapping[str, Any]) -> Any:
    return [str(s) for s in sorted(hlc.parse(t) for t in case["stamps"])]


def hlc_tick(case: Mapping[str, Any]) -> Any:
    last = hlc.parse(case["last"]) if case["last"] else None
    try:
        return str(hlc.tick(last, case["now_ms"], case["node"]))
    except ValueError as exc:
        return _error(exc)


def hlc_receive(case: Mapping[str, Any]) -> Any:
    """Fold ``seen`` stamps one by one into ``last``, then (``then_tick_at``) tick once."""
    last = hlc.parse(case["last"]) if case["last"] else None
    for text in case["seen"]:
        last = hlc.fold(last, hlc.parse(text), case["node"])
    result: dict[str, Any] = {"last": str(last) if last else None}
    if case.get("then_tick_at") is not None:
        result["tick"] = str(hlc.tick(last, case["then_tick_at"], case["node"]))
    return result


def pull_seen(case: Mapping[str, Any]) -> Any:
    """The stamps a pulled change makes the clock see: its ``updated_at`` (counter 0) and ``meta.hlc``."""
    change = case["change"]
    seen = []
    updated = _hlc_from_time(change.get("updated_at") if isinstance(change.get("updated_at"), str) else None,
                             case["node"])
    if updated is not None:
        seen.append(str(updated))
    meta = change.get("meta") if isinstance(change.get("meta"), dict) else {}
    if isinstance(meta.get("hlc"), str):
        try:
            seen.append(str(hlc.parse(meta["hlc"])))
        except ValueError:
            pass
    return seen


# ---- a refused batch: which mutations the answer names ------------------------------------------

def refused_batch(case: Mapping[str, Any]) -> Any:
    answer = case["answer"]
    body = {"type": f"/problems/{answer['code']}", "title": "t", "status": answer["status"], "detail": "d"}
    if answer.get("errors") is not None:
        body["errors"] = answer["errors"]
    named = refused_mutations(Response(answer["status"], {"Content-Type": "application/problem+json"}, body),
                              case["batch_size"])
    return None if named is None else {str(k): sorted(v) for k, v in sorted(named.items())}


# ---- push: batches, per-mutation results, rebasing on our own confirmed writes ----------------------

class _Scripted:
    """A server that answers each push with the next round's answer and records what was sent."""

    def __init__(self, rounds: list[Mapping[str, Any]]) -> None:
        self.rounds = list(rounds)
        self.sent: list[list[dict[str, Any]]] = []

    def request(self, method: str, path: str, *, json_body: Any = None, query: Any = None,
                headers: Any = None) -> Response:
        if path != "/api/v1/sync/push" or not self.rounds:
            return Response(599, {}, {"type": "/problems/test", "title": "t", "status": 599, "detail": "脚本已用完"})
        self.sent.append([{"id": m["id"], "entity_id": m["entity_id"], "base_version": m["base_version"]}
                          for m in json_body["mutations"]])
        answer = self.rounds.pop(0)["answer"]
        if isinstance(answer, dict):  # a refusal of the whole batch
            return Response(answer["status"], {"Content-Type": "application/problem+json"},
                            {"type": f"/problems/{answer['code']}", "title": "t", "status": answer["status"],
                             "detail": answer.get("detail", "请求被拒绝"), **({"errors": answer["errors"]}
                                                                        if "errors" in answer else {})})
        return Response(200, {}, {"results": answer})


def push_scenario(case: Mapping[str, Any]) -> Any:
    """Set up the confirmed states and the outbox, push through the scripted rounds, report the outcome."""
    with tempfile.TemporaryDirectory() as folder:
        server = _Scripted(case["rounds"])
        client = FieldClient(Path(folder) / "field.db", server, sleep=lambda s: None, max_attempts=1,
                             clock=lambda: 1773115200.0, batch_size=case.get("batch_size", 500))
        try:
            store = client.store
            for key, value in (("device_id", DEVICE), ("user_id", USER), ("department_id", "d"),
                               ("access_token", "token"), ("refresh_token", "refresh")):
                store.set(key, value)
            for entity in case["confirmed"]:
                store.ensure_entity(entity["entity_id"], entity["entity"], task_id=None, inspection_id=None,
                                    department_id=None, created_by_id=None)
                store.set_server_state(entity["entity_id"], entity["fields"], entity["version"],
                                       entity.get("deleted", False), None)
            for n, mutation in enumerate(case["outbox"]):
                store.ensure_entity(mutation["entity_id"], mutation["entity"], task_id=None, inspection_id=None,
                                    department_id=None, created_by_id=None)
                store.add_mutation(id=mutation["id"], entity=mutation["entity"], entity_id=mutation["entity_id"],
                                   user_id=USER, op=mutation["op"], base_version=mutation["base_version"],
                                   hlc=f"{1773115200000 + n:013d}-0000-{DEVICE}", fields=mutation["fields"], now=NOW)
                for _ in range(mutation.get("attempts", 0)):
                    store.note_attempt([mutation["id"]], NOW)
                client.records.refresh_view(mutation["entity_id"])
            raised = None
            report = None
            try:
                report = client.push()
            except ServerRefused as exc:
                raised = exc.code
            outbox = []
            for row in store.mutations():
                item: dict[str, Any] = {"id": row.id, "state": row.status, "base_version": row.base_version}
                if row.result is not None:
                    item["result"] = row.result
                if row.status == "rejected":
                    item["code"] = row.error_code
                    server_reasons = {r.get("id"): r.get("reason") for rnd in case["rounds"]
                                      if isinstance(rnd["answer"], list) for r in rnd["answer"]}
                    given = server_reasons.get(row.id)
                    item["reason_from"] = "server" if given is not None and row.error_reason == given else "client"
                    if item["reason_from"] == "client":
                        assert is_chinese(row.error_reason), row.error_reason
                outbox.append(item)
            entities = {}
            for row in store.entities():
                entities[row.id] = {"version": row.server_version, "fields": row.server_fields,
                                    "deleted": row.server_deleted, "view": row.view_fields,
                                    "view_deleted": row.view_deleted, "unconfirmed": row.unconfirmed}
            return {
                "sent": server.sent,
                "raised": raised,
                "report": None if report is None else {"applied": report.applied, "duplicate": report.duplicate,
                                                       "conflict": report.conflict,
                                                       "rejected": len(report.rejected)},
                "outbox": outbox,
                "conflicts": sorted(c["mutation_id"] for c in store.conflicts()),
                "entities": entities,
            }
        finally:
            client.close()


RUNNERS = {
    "hlc.format": hlc_format,
    "hlc.parse": hlc_parse,
    "hlc.order": hlc_order,
    "hlc.tick": hlc_tick,
    "hlc.receive": hlc_receive,
    "pull.seen": pull_seen,
    "push.refused_batch": refused_batch,
    "push.scenario": push_scenario,
}
