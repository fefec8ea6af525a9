"""Writes tests/protocol/vectors.json: the sync protocol's cases, each ``expect`` computed by the Python engine.

    .venv/bin/python -m tests.protocol.build_vectors

Run it after changing a case here or a rule of the engine (field_client/hlc.py, field_client/sync.py), then look
at the diff of vectors.json: every changed ``expect`` is a change of the protocol that the JavaScript app must
follow too (field_client/web/test/vectors.test.js runs the same file). ``test_vectors_python.py`` fails while
the file and the engine disagree.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.protocol.engine import DEVICE, RUNNERS

PATH = Path(__file__).with_name("vectors.json")

E1 = "11111111-1111-4111-8111-111111111111"  # an inspection
E2 = "22222222-2222-4222-8222-222222222222"  # a finding
E3 = "33333333-3333-4333-8333-333333333333"  # a media record
M = [f"{n:08x}-0000-4000-8000-{n:012x}" for n in range(1, 10)]  # mutation ids m1..m9 (M[0] is m1)

FORMAT: dict[str, Any] = {
    "about": "Sync protocol test vectors (docs/sync.md), shared by the Python engine (tests/protocol/"
             "test_vectors_python.py) and the JavaScript app (field_client/web/test/vectors.test.js). Each "
             "vector: {kind, name, input, expect}. 'expect' was computed by the Python engine "
             "(tests/protocol/build_vectors.py); an engine passes when, for every vector, running its rule on "
             "'input' gives exactly 'expect' (deep equality of JSON values; object key order does not matter).",
    "stamp": "An HLC stamp is the string '<wall ms, 13 decimal digits>-<counter, 4 lower-case hex digits>-<node>', "
             "node = device id matching ^[A-Za-z0-9][A-Za-z0-9-]{0,63}$. {'error': NAME} in an expect means the "
             "rule must refuse (raise/throw); NAME is the Python exception's and need not match.",
    "kinds": {
        "hlc.format": "input {wall_ms, counter, node} -> expect: the stamp string.",
        "hlc.parse": "input {text} -> expect {wall_ms, counter, node} or {error}.",
        "hlc.order": "input {stamps: [text]} -> expect: the stamps sorted by (wall, counter, node); this is also "
                     "their order as plain strings.",
        "hlc.tick": "input {last: text|null, now_ms, node} -> expect: the stamp of a new local change "
                    "(wall = max(now, last.wall); counter = last.counter+1 if the wall did not advance, else 0; a "
                    "counter past ffff borrows a millisecond), or {error} (bad node, wall past 13 digits).",
        "hlc.receive": "input {last: text|null, seen: [text], node, then_tick_at: ms|null} -> expect {last, tick?}: "
                       "'last' after folding each seen stamp in order (the greater (wall, counter) is kept, always "
                       "with our own node), then, if then_tick_at is given, the tick at that time.",
        "pull.seen": "input {change: a pulled change, node} -> expect: the stamps the change makes the clock see, "
                     "in order: its updated_at as a stamp with counter 0 and our node (milliseconds since the "
                     "epoch, truncated; a time without offset is UTC; unreadable times are skipped), then "
                     "meta.hlc if it parses.",
        "push.refused_batch": "input {batch_size, answer: {status, code, errors?}} -> expect: null when the "
                              "refusal is about the request itself (status not 400/413/422, code unknown-device, "
                              "or errors naming a field outside the mutations such as device_id), else an object "
                              "{index (string): [names of the envelope fields named, sorted; '' for the whole "
                              "mutation]} of the mutations the answer names (indices >= batch_size ignored; {} "
                              "when it names none: bisect).",
        "push.scenario": (
            "input {confirmed: [{entity, entity_id, version, fields, deleted?}] (the server states the tablet "
            "knows), outbox: [{id, entity, entity_id, op, base_version, fields, attempts?}] (oldest first; "
            "attempts > 0: sent before, answer never heard), rounds: [{answer}], batch_size?}. The client pushes "
            "until nothing is sendable; each push request is answered by the next round's answer: a list of "
            "per-mutation results ({id, status, version?, code?, reason?}) for a 200, or a problem {status, "
            "code, errors?} refusing the whole request. Rules: a batch holds at most one mutation per entity "
            "(the oldest pending one), oldest first, at most batch_size; applied/duplicate/conflict settle the "
            "mutation (state done, result = status); conflict also records a conflict to show the inspector; "
            "applied or duplicate with version == base_version + 1 confirms our own write: the entity's "
            "confirmed state becomes version base+1 with the mutation's fields merged over it (delete: deleted) "
            "if it was at base_version, and every pending never-sent (attempts 0) mutation of that entity based "
            "on base_version is rebased to base+1; rejected sets the mutation aside (state rejected, code; "
            "reason_from 'server' when the server's reason is Chinese and kept, 'client' when replaced by the "
            "client's Chinese text for the code); an unknown status leaves it pending. "
            "expect {sent: [[{id, entity_id, base_version}] per request], raised: problem code of a whole-request "
            "refusal that stopped the push, or null, report: {applied, duplicate, conflict, rejected} or null when "
            "raised, outbox: [{id, state: pending|done|rejected, base_version, result?, code?, reason_from?}], "
            "conflicts: [mutation ids, sorted], entities: {entity_id: {version, fields, deleted, view, "
            "view_deleted, unconfirmed}}} — 'view' is the local view (confirmed fields with every pending "
            "mutation, and every settled one whose version is past the confirmed one, merged over them in order; "
            "null if none), 'view_deleted' whether the view is deleted (a delete among them, or the confirmed "
            "state's), 'unconfirmed' whether any such mutation exists."),
    },
}


def stamp(wall: int, counter: int, node: str = DEVICE) -> str:
    return f"{wall:013d}-{counter:04x}-{node}"


def cases() -> list[tuple[str, str, dict[str, Any]]]:
    out: list[tuple[str, str, dict[str, Any]]] = []
    add = out.append
    # ---- format / parse
    add(("hlc.format", "pads the wall to 13 digits and the counter to 4 hex", {"wall_ms": 5, "counter": 255,
                                                                               "node": "a"}))
    add(("hlc.format", "a real stamp", {"wall_ms": 1764120000000, "counter": 1, "node": "SCJG-TAB1"}))
    add(("hlc.format", "the largest counter", {"wall_ms": 1764120000000, "counter": 65535, "node": "X"}))
    for text, name in (("1764120000000-0001-SCJG-TAB1", "a stamp"),
                       ("0000000000000-0000-a", "the smallest"),
                       ("1764120000000-ffff-" + "a" * 64, "a 64-character node"),
                       ("1764120000000-1-X", "a short counter"),
                       ("1764120000000-00FF-X", "upper-case hex"),
                       ("176412000000-0001-X", "a 12-digit wall"),
                       ("1764120000000-0001-", "no node"),
                       ("1764120000000-0001--x", "a node starting with a hyphen"),
                       ("1764120000000-0001-" + "a" * 65, "a 65-character node"),
                       ("1764120000000-0001-SCJG_TAB1", "an underscore in the node"),
                       ("yesterday", "not a stamp")):
        add(("hlc.parse", name, {"text": text}))
    # ---- order
    add(("hlc.order", "wall, then counter, then node", {"stamps": [
        stamp(1764120000001, 0, "A"), stamp(1764120000000, 2, "A"), stamp(1764120000000, 1, "B"),
        stamp(1764120000000, 1, "A")]}))
    add(("hlc.order", "a node that is a prefix of another sorts first", {"stamps": [
        stamp(1764120000000, 1, "SCJG-TAB10"), stamp(1764120000000, 1, "SCJG-TAB1"),
        stamp(1764120000000, 1, "SCJG-TAB1-B")]}))
    add(("hlc.order", "a counter in hex: 000a after 0009", {"stamps": [
        stamp(1764120000000, 10, "A"), stamp(1764120000000, 9, "A"), stamp(1764120000000, 255, "A"),
        stamp(1764120000000, 16, "A")]}))
    # ---- tick
    add(("hlc.tick", "the first change takes the clock's time", {"last": None, "now_ms": 1764120000000,
                                                                  "node": DEVICE}))
    add(("hlc.tick", "within the same millisecond the counter goes up", {
        "last": stamp(1764120000000, 0), "now_ms": 1764120000000, "node": DEVICE}))
    add(("hlc.tick", "a later clock resets the counter", {
        "last": stamp(1764120000000, 7), "now_ms": 1764120000001, "node": DEVICE}))
    add(("hlc.tick", "a clock set back never runs the stamps backwards", {
        "last": stamp(1764120000000, 2), "now_ms": 1764119000000, "node": DEVICE}))
    add(("hlc.tick", "a counter past ffff borrows a millisecond", {
        "last": stamp(1764120000010, 0xFFFF), "now_ms": 1764120000010, "node": DEVICE}))
    add(("hlc.tick", "last of another node (folded in) still orders our tick after it", {
        "last": stamp(1764120000500, 3, "STHJ-TAB1"), "now_ms": 1764120000100, "node": DEVICE}))
    add(("hlc.tick", "a node that cannot be a stamp's is refused", {"last": None, "now_ms": 1, "node": "bad node"}))
    add(("hlc.tick", "the wall cannot pass 13 digits", {"last": stamp(9999999999999, 0xFFFF),
                                                        "now_ms": 9999999999999, "node": DEVICE}))
    # ---- receive (fold)
    add(("hlc.receive", "a newer remote stamp is folded in under our node; the next tick orders after it", {
        "last": stamp(1764120000100, 0), "seen": [stamp(1764120000500, 3, "STHJ-TAB1")], "node": DEVICE,
        "then_tick_at": 1764120000100}))
    add(("hlc.receive", "an older remote stamp changes nothing", {
        "last": stamp(1764120000500, 3), "seen": [stamp(1764120000400, 9, "STHJ-TAB1")], "node": DEVICE,
        "then_tick_at": None}))
    add(("hlc.receive", "same wall: the greater counter wins", {
        "last": stamp(1764120000500, 3), "seen": [stamp(1764120000500, 4, "A"), stamp(1764120000500, 2, "B")],
        "node": DEVICE, "then_tick_at": 1764120000600}))
    add(("hlc.receive", "a fresh clock takes the first stamp it sees", {
        "last": None, "seen": [stamp(1764120000000, 1, "B")], "node": DEVICE, "then_tick_at": None}))
    add(("hlc.receive", "the same (wall, counter) from another node changes nothing", {
        "last": stamp(1764120000500, 3), "seen": [stamp(1764120000500, 3, "ZZZ")], "node": DEVICE,
        "then_tick_at": 1764120000000}))
    # ---- pull: what a change makes the clock see
    add(("pull.seen", "updated_at and meta.hlc", {"node": DEVICE, "change": {
        "entity": "inspection", "entity_id": E1, "op": "upsert", "version": 3, "fields": {},
        "updated_at": "2026-03-10T12:00:00.123456+08:00", "meta": {"hlc": stamp(1773115300000, 2, "STHJ-TAB1")}}}))
    add(("pull.seen", "a time without offset is UTC", {"node": DEVICE, "change": {
        "entity": "task", "entity_id": E1, "op": "upsert", "version": 1, "fields": {},
        "updated_at": "2026-03-10T04:00:00"}}))
    add(("pull.seen", "unreadable times and stamps are skipped", {"node": DEVICE, "change": {
        "entity": "finding", "entity_id": E2, "op": "upsert", "version": 1, "fields": {},
        "updated_at": "yesterday", "meta": {"hlc": "not-a-stamp"}}}))
    add(("pull.seen", "no updated_at: only meta.hlc", {"node": DEVICE, "change": {
        "entity": "finding", "entity_id": E2, "op": "upsert", "version": 1, "fields": {}, "updated_at": None,
        "meta": {"hlc": stamp(1773115300000, 0, "STHJ-TAB2")}}}))
    # ---- a refused batch
    for name, size, answer in (
            ("422 naming two mutations and their fields", 3,
             {"status": 422, "code": "validation-failed",
              "errors": {"mutations.0.hlc": ["bad"], "mutations.2.entity": ["unknown"], "mutations.2": ["x"]}}),
            ("indices past the batch are ignored", 2, {"status": 422, "code": "validation-failed",
                                                       "errors": {"mutations.5.op": ["bad"]}}),
            ("a refusal naming no mutation: bisect", 4, {"status": 422, "code": "validation-failed",
                                                         "errors": {"mutations": ["too many"]}}),
            ("413 without errors: bisect", 4, {"status": 413, "code": "payload-too-large"}),
            ("a field outside the mutations: the request itself", 2,
             {"status": 422, "code": "validation-failed", "errors": {"device_id": ["unknown"]}}),
            ("unknown-device is about the request", 2, {"status": 422, "code": "unknown-device",
                                                        "errors": {"device_id": ["x"]}}),
            ("403 device-mismatch is about the request", 2, {"status": 403, "code": "device-mismatch",
                                                             "errors": {"device_id": ["x"]}}),
            ("403 device-required is about the request", 2, {"status": 403, "code": "device-required"}),
            ("bracketed paths name mutations too", 3, {"status": 400, "code": "bad-request",
                                                       "errors": {"mutations[1].fields": ["x"]}})):
        add(("push.refused_batch", name, {"batch_size": size, "answer": answer}))
    # ---- push scenarios
    inspection = {"task_id": "44444444-4444-4444-8444-444444444444", "place": "厂区"}
    add(("push.scenario", "applied at base+1 confirms our write and rebases the next edit of the entity", {
        "confirmed": [],
        "outbox": [
            {"id": M[0], "entity": "inspection", "entity_id": E1, "op": "upsert", "base_version": 0,
             "fields": inspection},
            {"id": M[1], "entity": "inspection", "entity_id": E1, "op": "upsert", "base_version": 0,
             "fields": {"representative": "王五"}},
            {"id": M[2], "entity": "finding", "entity_id": E2, "op": "upsert", "base_version": 0,
             "fields": {"inspection_id": E1, "result": "compliant"}}],
        "rounds": [{"answer": [{"id": M[0], "status": "applied", "version": 1},
                               {"id": M[2], "status": "applied", "version": 1}]},
                   {"answer": [{"id": M[1], "status": "applied", "version": 2}]}]}))
    add(("push.scenario", "a teammate wrote in between (version > base+1): no rebase, the next edit keeps its base", {
        "confirmed": [{"entity": "inspection", "entity_id": E1, "version": 3, "fields": inspection}],
        "outbox": [
            {"id": M[0], "entity": "inspection", "entity_id": E1, "op": "upsert", "base_version": 3,
             "fields": {"place": "仓库"}},
            {"id": M[1], "entity": "inspection", "entity_id": E1, "op": "upsert", "base_version": 3,
             "fields": {"conclusion": "责令整改"}}],
        "rounds": [{"answer": [{"id": M[0], "status": "applied", "version": 6}]},
                   {"answer": [{"id": M[1], "status": "applied", "version": 7}]}]}))
    add(("push.scenario", "duplicate at base+1 (our answer was lost) confirms like applied", {
        "confirmed": [{"entity": "inspection", "entity_id": E1, "version": 1, "fields": inspection}],
        "outbox": [
            {"id": M[0], "entity": "inspection", "entity_id": E1, "op": "upsert", "base_version": 1,
             "fields": {"place": "仓库"}, "attempts": 1},
            {"id": M[1], "entity": "inspection", "entity_id": E1, "op": "upsert", "base_version": 1,
             "fields": {"conclusion": "合格"}}],
        "rounds": [{"answer": [{"id": M[0], "status": "duplicate", "version": 2}]},
                   {"answer": [{"id": M[1], "status": "applied", "version": 3}]}]}))
    add(("push.scenario", "a mutation sent before (answer never heard) is not rebased", {
        "confirmed": [{"entity": "inspection", "entity_id": E1, "version": 1, "fields": inspection}],
        "outbox": [
            {"id": M[0], "entity": "inspection", "entity_id": E1, "op": "upsert", "base_version": 1,
             "fields": {"place": "仓库"}},
            {"id": M[1], "entity": "inspection", "entity_id": E1, "op": "upsert", "base_version": 1,
             "fields": {"conclusion": "合格"}, "attempts": 1}],
        "rounds": [{"answer": [{"id": M[0], "status": "applied", "version": 2}]},
                   {"answer": [{"id": M[1], "status": "duplicate", "version": 3}]}]}))
    add(("push.scenario", "conflict: stored, shown to the inspector, never a rebase", {
        "confirmed": [{"entity": "inspection", "entity_id": E1, "version": 2, "fields": inspection}],
        "outbox": [
            {"id": M[0], "entity": "inspection", "entity_id": E1, "op": "upsert", "base_version": 2,
             "fields": {"place": "仓库"}},
            {"id": M[1], "entity": "inspection", "entity_id": E1, "op": "upsert", "base_version": 2,
             "fields": {"conclusion": "合格"}}],
        "rounds": [{"answer": [{"id": M[0], "status": "conflict", "version": 3}]},
                   {"answer": [{"id": M[1], "status": "applied", "version": 4}]}]}))
    add(("push.scenario", "rejected: set aside with the server's Chinese reason, or the client's text for the code", {
        "confirmed": [],
        "outbox": [
            {"id": M[0], "entity": "finding", "entity_id": E2, "op": "upsert", "base_version": 0,
             "fields": {"inspection_id": E1, "result": "compliant"}},
            {"id": M[1], "entity": "media", "entity_id": E3, "op": "upsert", "base_version": 0,
             "fields": {"inspection_id": E1, "sha256": "ab" * 32, "size": 10}},
            {"id": M[2], "entity": "inspection", "entity_id": E1, "op": "upsert", "base_version": 0,
             "fields": inspection}],
        "rounds": [{"answer": [
            {"id": M[0], "status": "rejected", "code": "task-closed", "reason": "检查任务已关闭"},
            {"id": M[1], "status": "rejected", "code": "forbidden", "reason": "Not on the task's team"},
            {"id": M[2], "status": "applied", "version": 1}]}]}))
    add(("push.scenario", "an unknown result status leaves the mutation pending", {
        "confirmed": [],
        "outbox": [{"id": M[0], "entity": "inspection", "entity_id": E1, "op": "upsert", "base_version": 0,
                    "fields": inspection}],
        "rounds": [{"answer": [{"id": M[0], "status": "postponed"}]}]}))
    add(("push.scenario", "a delete confirmed at base+1 leaves the entity deleted", {
        "confirmed": [{"entity": "media", "entity_id": E3, "version": 4,
                       "fields": {"inspection_id": E1, "sha256": "ab" * 32, "size": 10}}],
        "outbox": [{"id": M[0], "entity": "media", "entity_id": E3, "op": "delete", "base_version": 4, "fields": {}}],
        "rounds": [{"answer": [{"id": M[0], "status": "applied", "version": 5}]}]}))
    add(("push.scenario", "a batch refused naming one mutation: it is set aside, the rest go again", {
        "confirmed": [],
        "outbox": [
            {"id": M[0], "entity": "inspection", "entity_id": E1, "op": "upsert", "base_version": 0,
             "fields": inspection},
            {"id": M[1], "entity": "widget", "entity_id": E2, "op": "upsert", "base_version": 0, "fields": {}}],
        "rounds": [{"answer": {"status": 422, "code": "validation-failed",
                               "errors": {"mutations.1.entity": ["unknown kind"]}}},
                   {"answer": [{"id": M[0], "status": "applied", "version": 1}]}]}))
    add(("push.scenario", "a refusal of the request itself stops the push and keeps everything pending", {
        "confirmed": [],
        "outbox": [{"id": M[0], "entity": "inspection", "entity_id": E1, "op": "upsert", "base_version": 0,
                    "fields": inspection}],
        "rounds": [{"answer": {"status": 403, "code": "device-mismatch", "errors": {"device_id": ["x"]}}}]}))
    add(("push.scenario", "batches are at most batch_size, oldest first", {
        "batch_size": 2, "confirmed": [],
        "outbox": [{"id": M[n], "entity": "finding", "entity_id": f"5555555{n}-5555-4555-8555-555555555555",
                    "op": "upsert", "base_version": 0, "fields": {"result": "compliant"}} for n in range(3)],
        "rounds": [{"answer": [{"id": M[0], "status": "applied", "version": 1},
                               {"id": M[1], "status": "applied", "version": 1}]},
                   {"answer": [{"id": M[2], "status": "applied", "version": 1}]}]}))
    return out


def build() -> dict[str, Any]:
    vectors = [{"kind": kind, "name": name, "input": data, "expect": RUNNERS[kind](data)}
               for kind, name, data in cases()]
    return {"format": FORMAT, "vectors": vectors}


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, ensure_ascii=False, indent=1, sort_keys=False) + "\n"


if __name__ == "__main__":
    PATH.write_text(render(build()), encoding="utf-8")
    print(f"wrote {PATH} ({len(build()['vectors'])} vectors)")
