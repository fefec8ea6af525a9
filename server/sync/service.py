"""Push and pull: apply offline mutations at most once, merge field by field, serve changes.

Push is set-based: one query each for the mutation log, the entities, the
tasks, the memberships and the check items a batch touches, then plain
Python per mutation, then one bulk insert of the log. A refused mutation
touches nothing, so it never blocks the good ones in its batch.
"""
from __future__ import annotations

import base64
import hashlib
import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table, bindparam, func, insert, or_, select, update

from server import changefeed, events
from server.auth.policy import Permission, Principal, authorize_object
from server.codes.service import issued_code
from server.db_types import utcnow
from server.directory.models import Certificate, CheckItem, Device, DeviceKind, Enterprise
from server.errors import Problem
from server.extensions import db
from server.sync import hlc as hlc_stamps
from server.sync import records
from server.sync.entities import (
    ENTITY_RULES,
    MAX_PER_INSPECTION,
    SERVER_NODE,
    FieldError,
    Kind,
    clean_fields,
    inspection_id_for,
    parse_uuid,
)
from server.sync.models import MutationRecord, SyncConflict, SyncedEntity
from server.tasks.models import InspectionTask, TaskCheckItem, TaskMember, TaskStatus


@dataclass
class MutationResult:
    id: str
    status: str
    version: int | None = None
    code: str | None = None
    reason: str | None = None


class Rejected(Exception):
    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


# The same text as json.dumps(..., ensure_ascii=False, separators=(",", ":")) (stored digests must not change),
# with one encoder instead of a new one per mutation.
_HASH_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def content_hash(mutation: dict[str, Any]) -> str:
    """A digest of what a mutation says, to tell a replay from a reused id.

    Field order does not matter; everything else must match exactly.
    """
    fields = mutation.get("fields") or {}
    canonical = _HASH_ENCODER.encode([mutation["entity"], str(mutation["entity_id"]), mutation["op"],
                                      mutation["base_version"], mutation["hlc"], sorted(fields.items())])
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass
class EntityState:
    """A synced entity as the merge sees it: plain data, loaded and written in bulk."""

    id: uuid.UUID
    kind: str
    task_id: uuid.UUID
    inspection_id: uuid.UUID | None
    department_id: uuid.UUID
    created_by_id: uuid.UUID
    fields: dict[str, Any]
    clocks: dict[str, str]
    field_versions: dict[str, int]
    contenders: dict[str, dict[str, list[Any]]] | None
    deleted: bool
    version: int
    first_received_at: datetime
    last_received_at: datetime
    updated_at: datetime
    is_new: bool = False
    changed: bool = False

    def row(self) -> dict[str, Any]:
        row = dict(self.__dict__)
        del row["is_new"], row["changed"]
        return row


_ENTITY_COLUMNS = ("id", "kind", "task_id", "inspection_id", "department_id", "created_by_id", "fields", "clocks",
                   "field_versions", "contenders", "deleted", "version", "first_received_at", "last_received_at",
                   "updated_at")


@dataclass
class _Batch:
    """Everything a batch needs from the database, loaded up front."""

    principal: Principal
    device_id: str
    now: datetime
    max_skew: timedelta
    log: dict[uuid.UUID, tuple[str, int]]
    entities: dict[uuid.UUID, EntityState]
    tasks: dict[uuid.UUID, InspectionTask]
    member_of: set[uuid.UUID]
    check_items: dict[uuid.UUID, CheckItem]
    task_items: dict[uuid.UUID, set[uuid.UUID]]
    children: dict[tuple[uuid.UUID, str], int]  # live records per (inspection, kind), for MAX_PER_INSPECTION
    seen: dict[uuid.UUID, tuple[str, int]] = field(default_factory=dict)
    records: list[dict[str, Any]] = field(default_factory=list)
    conflicts: list[dict[str, Any]] = field(default_factory=list)


def _require_bound_device(principal: Principal) -> str:
    """Sync is a tablet's: the caller's log-in must be bound to an enrolled tablet (docs/field-app.md)."""
    if principal.device_id is None:
        raise Problem(403, "device-required", "同步须在已登记的执法平板上登录后进行（登录时提供平板的设备编号和密钥）")
    return principal.device_id


def _require_tablet(principal: Principal, device_id: str) -> None:
    bound = _require_bound_device(principal)
    if device_id != bound:
        raise Problem(403, "device-mismatch", f"本次登录绑定的是平板 {bound}，不能以设备 {device_id} 的名义同步",
                      errors={"device_id": [f"须为本次登录绑定的平板 {bound}"]})
    device = db.session.get(Device, device_id)
    if device is None or not device.active or device.kind != DeviceKind.TABLET:
        raise Problem(422, "unknown-device", f"设备 {device_id} 不是已登记的在用执法平板",
                      errors={"device_id": ["不是已登记的在用执法平板"]})
    authorize_object(principal, Permission.SYNC, device)


def _ids(values: Iterable[Any]) -> set[uuid.UUID]:
    out: set[uuid.UUID] = set()
    for value in {v for v in values if v is not None and not isinstance(v, (dict, list))}:
        try:
            out.add(value if isinstance(value, uuid.UUID) else parse_uuid(str(value)))
        except ValueError:
            continue
    return out


def _load_states(ids: set[uuid.UUID]) -> dict[uuid.UUID, EntityState]:
    if not ids:
        return {}
    columns = [getattr(SyncedEntity, name) for name in _ENTITY_COLUMNS]
    # Locked until the batch commits: a concurrent push, or the review app writing its decision onto the
    # record (``record_review``), waits and then merges into what this one wrote, instead of overwriting it.
    # In id order, so two batches lock the rows they share in the same order.
    rows = db.session.execute(select(*columns).where(SyncedEntity.id.in_(ids)).order_by(SyncedEntity.id)
                              .with_for_update(of=SyncedEntity))
    return {row.id: EntityState(**row._mapping) for row in rows}


def _load_batch(principal: Principal, device_id: str, mutations: list[dict[str, Any]], max_skew: timedelta) -> _Batch:
    entity_ids = _ids(m["entity_id"] for m in mutations)
    parent_ids = _ids((m.get("fields") or {}).get("inspection_id") for m in mutations)
    entities = _load_states(entity_ids | parent_ids)
    # Updates name only the entity; their inspections are needed for the task too.
    entities.update(_load_states({e.inspection_id for e in entities.values()
                                  if e.inspection_id and e.inspection_id not in entities}))
    task_ids = _ids((m.get("fields") or {}).get("task_id") for m in mutations) | {e.task_id for e in entities.values()}
    tasks = {t.id: t for t in db.session.scalars(
        select(InspectionTask).where(InspectionTask.id.in_(task_ids)))} if task_ids else {}
    member_of = set(db.session.scalars(select(TaskMember.task_id).where(
        TaskMember.user_id == principal.user_id, TaskMember.task_id.in_(task_ids)))) if task_ids else set()
    item_ids = _ids((m.get("fields") or {}).get("check_item_id") for m in mutations)
    check_items = {i.id: i for i in db.session.scalars(
        select(CheckItem).where(CheckItem.id.in_(item_ids)))} if item_ids else {}
    task_items: dict[uuid.UUID, set[uuid.UUID]] = {}
    if task_ids:
        for task_id, item_id in db.session.execute(select(TaskCheckItem.task_id, TaskCheckItem.check_item_id)
                                                   .where(TaskCheckItem.task_id.in_(task_ids))):
            task_items.setdefault(task_id, set()).add(item_id)
    mutation_ids = _ids(m["id"] for m in mutations)
    log = {row.id: (row.content_hash, row.version) for row in db.session.execute(
        select(MutationRecord.id, MutationRecord.content_hash, MutationRecord.version)
        .where(MutationRecord.id.in_(mutation_ids)))}
    inspections = {e.id for e in entities.values() if e.kind == Kind.INSPECTION}
    children = {(inspection_id, kind): count for inspection_id, kind, count in db.session.execute(
        select(SyncedEntity.inspection_id, SyncedEntity.kind, func.count())
        .where(SyncedEntity.inspection_id.in_(inspections), SyncedEntity.deleted.is_(False))
        .group_by(SyncedEntity.inspection_id, SyncedEntity.kind))} if inspections else {}
    return _Batch(principal, device_id, utcnow(), max_skew, log, entities, tasks, member_of, check_items, task_items,
                  children)


def push(principal: Principal, device_id: str, mutations: list[dict[str, Any]],
         max_skew: timedelta) -> list[MutationResult]:
    """Apply a batch of mutations from one tablet; one result per mutation, in order."""
    _require_tablet(principal, device_id)
    batch = _load_batch(principal, device_id, mutations, max_skew)
    results = [_apply(batch, m) for m in mutations]
    _write(batch)
    _announce(batch)
    return results


def _announce(batch: _Batch) -> None:
    """Announce the inspections whose records changed (their evidence is re-assessed after the push commits)."""
    touched = {e.id if e.kind == Kind.INSPECTION else e.inspection_id
               for e in batch.entities.values() if e.is_new or e.changed}
    touched.discard(None)
    if touched:
        events.emit(events.Event.INSPECTIONS_CHANGED, inspection_ids=touched)


def _write(batch: _Batch) -> None:
    """Bulk-write what the batch changed, with change-feed numbers in the order of the writes."""
    inserts = [e for e in batch.entities.values() if e.is_new]
    updates = [e for e in batch.entities.values() if e.changed and not e.is_new]
    if inserts or updates:
        first = changefeed.reserve(db.session, len(inserts) + len(updates))
        rows = []
        for offset, entity in enumerate(inserts + updates):
            rows.append({**entity.row(), "change_seq": first + offset})
        if inserts:
            _insert_many(SyncedEntity.__table__, rows[:len(inserts)], _ENTITY_SHARED)
        if updates:
            db.session.execute(
                update(SyncedEntity.__table__).where(SyncedEntity.__table__.c.id == bindparam("entity_id")),
                [{**{k: v for k, v in row.items() if k != "id"}, "entity_id": row["id"]}
                 for row in rows[len(inserts):]])
    if batch.records:
        _insert_many(MutationRecord.__table__, batch.records, _RECORD_SHARED)
    if batch.conflicts:
        db.session.execute(insert(SyncConflict.__table__), batch.conflicts)


# Columns whose values a batch repeats (its one clock reading, the pushing user, device and department,
# the few tasks and inspections): converted for the database once per batch, not once per row.
_ENTITY_SHARED = frozenset({"kind", "task_id", "inspection_id", "department_id", "created_by_id", "deleted",
                            "version", "first_received_at", "last_received_at", "updated_at"})
_RECORD_SHARED = frozenset({"device_id", "user_id", "received_at", "status", "version"})


def _insert_many(table: Table, rows: list[dict[str, Any]], shared: frozenset[str]) -> None:
    """``INSERT`` many rows with one driver ``executemany``, converting each value as the column's type does.

    The same statement and the same conversions (the column types' own bind processors, e.g. JSON text,
    UTC datetimes, UUIDs) as ``session.execute(insert(table), rows)``, without the per-row parameter
    processing of a compiled Core statement; a value repeated in a column (``shared``) is converted once.
    Runs on the session's connection, so inside the push's transaction.
    """
    connection = db.session.connection()
    dialect = connection.dialect
    names = list(rows[0])
    compiled = insert(table).compile(dialect=dialect, column_keys=names)
    processors = [table.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in names]
    if set(compiled.positiontup or compiled.binds) != set(names):
        raise ValueError(f"{table.name}: every column must be given, none computed by a default")
    order = list(compiled.positiontup or names)  # positional styles: the statement's order
    position = {name: index for index, name in enumerate(names)}
    converted: list[list[Any]] = []
    caches: dict[str, dict[Any, Any]] = {name: {} for name in names if name in shared}
    for row in rows:
        values = []
        for name, process in zip(names, processors, strict=True):
            value = row[name]
            if process is not None and value is not None:
                cache = caches.get(name)
                if cache is None:
                    value = process(value)
                else:
                    hit = cache.get(value, cache)
                    if hit is cache:
                        hit = cache[value] = process(value)
                    value = hit
            values.append(value)
        converted.append(values)
    if compiled.positional:
        indexes = [position[name] for name in order]
        parameters: list[Any] = [tuple(values[i] for i in indexes) for values in converted]
    else:
        parameters = [dict(zip(names, values, strict=True)) for values in converted]
    connection.exec_driver_sql(compiled.string, parameters)


def _apply(batch: _Batch, mutation: dict[str, Any]) -> MutationResult:
    mutation_id: uuid.UUID = mutation["id"]
    digest = content_hash(mutation)
    previous = batch.log.get(mutation_id) or batch.seen.get(mutation_id)
    if previous is not None:
        if previous[0] == digest:
            return MutationResult(str(mutation_id), "duplicate", version=previous[1])
        return MutationResult(str(mutation_id), "rejected", code="id-reused",
                              reason="该变更编号已用于内容不同的另一项变更，已拒绝")
    try:
        stamp = _check_clock(batch, mutation["hlc"])
        status, version = _merge(batch, mutation)
    except Rejected as rejected:
        return MutationResult(str(mutation_id), "rejected", code=rejected.code, reason=rejected.reason)
    batch.seen[mutation_id] = (digest, version)
    batch.records.append({
        "id": mutation_id, "content_hash": digest, "entity_id": mutation["entity_id"], "device_id": batch.device_id,
        "user_id": batch.principal.user_id, "hlc": mutation["hlc"], "device_time": stamp.wall_time,
        "received_at": batch.now, "status": status, "version": version})
    return MutationResult(str(mutation_id), status, version=version)


def _check_clock(batch: _Batch, value: str) -> hlc_stamps.Stamp:
    try:
        stamp = hlc_stamps.parse(value)
    except ValueError:
        raise Rejected("invalid-fields", "时间戳（hlc）格式不正确，应形如 1764120000000-0001-设备编号") from None
    if stamp.node != batch.device_id:
        raise Rejected("hlc-node-mismatch", "时间戳的设备编号与推送设备不一致")
    if stamp.wall_time > batch.now + batch.max_skew:
        raise Rejected("clock-skew",
                       f"设备时间 {stamp.wall_time:%Y-%m-%d %H:%M:%S}Z 超前服务器时间过多，请校准平板时钟后重试")
    return stamp


def _merge(batch: _Batch, mutation: dict[str, Any]) -> tuple[str, int]:
    try:
        kind = ENTITY_RULES[Kind(mutation["entity"])]
    except ValueError:
        shown = str(mutation["entity"]).encode("utf-8", "backslashreplace").decode()
        raise Rejected("unknown-entity-kind", f"服务器不认识记录类型“{shown}”（可能来自较新版本的执法终端），"
                                              "该条变更未保存，其余变更不受影响") from None
    entity = batch.entities.get(mutation["entity_id"])
    if entity is not None and entity.kind != kind.kind:
        raise Rejected("invalid-fields", f"该编号已属于 {entity.kind}，不能作为 {kind.kind}")
    deleting = mutation["op"] == "delete"
    raw_fields = mutation.get("fields") or {}
    if deleting and raw_fields:
        raise Rejected("invalid-fields", "删除操作不应携带字段")
    if entity is None and deleting:
        raise Rejected("unknown-entity", "要删除的记录在服务器上不存在")
    try:
        fields = clean_fields(kind, raw_fields, creating=entity is None, current=entity.fields if entity else None)
    except FieldError as exc:
        raise Rejected(exc.code, str(exc)) from None

    task, department_id = _authorize(batch, kind.kind, entity, fields)
    if task.status in (TaskStatus.PENDING_APPROVAL, TaskStatus.REJECTED):
        raise Rejected("task-not-dispatched", "检查任务尚未经各参与部门负责人批准派发，不能提交检查记录")
    if task.status == TaskStatus.CANCELLED:
        raise Rejected("task-closed", "检查任务已取消，不能再提交或修改其记录")
    if task.status != TaskStatus.DISPATCHED:
        raise Rejected("task-closed", "检查任务已关闭，不能再修改其记录")
    if entity is None and kind.kind == Kind.INSPECTION:
        expected = inspection_id_for(task.id)
        if mutation["entity_id"] != expected:
            raise Rejected("inspection-id", f"每个检查任务只有一份联合检查记录，其编号应为 {expected}；"
                                            "请更新执法终端后重新开始检查")
        department_id = task.department_id  # the shared record belongs to the lead department, whoever started it

    if entity is None:
        entity = _create(batch, mutation, kind.kind.value, task, department_id, fields)
        return "applied", entity.version
    return _update(batch, mutation, entity, fields, deleting)


def _authorize(batch: _Batch, kind: str, entity: EntityState | None,
               fields: dict[str, Any]) -> tuple[InspectionTask, uuid.UUID]:
    principal = batch.principal
    if kind == Kind.INSPECTION:
        task_id = entity.task_id if entity else parse_uuid(fields["task_id"])
    else:
        parent_id = entity.inspection_id if entity else parse_uuid(fields["inspection_id"])
        parent = batch.entities.get(parent_id)  # type: ignore[arg-type]
        if parent is None or parent.kind != Kind.INSPECTION:
            raise Rejected("unknown-entity", "所属检查记录在服务器上不存在，请先同步检查记录")
        task_id = parent.task_id
    task = batch.tasks.get(task_id)
    if task is None:
        raise Rejected("unknown-entity", "检查任务不存在")
    if task_id not in batch.member_of:
        raise Rejected("forbidden", "您不是该检查任务的检查组成员")
    if kind == Kind.FINDING:
        if entity is not None and entity.department_id != principal.department_id:
            raise Rejected("forbidden", "检查结论归属其他部门，只有该部门执法人员可以修改")
        if entity is None:
            item = batch.check_items.get(parse_uuid(fields["check_item_id"]))
            allowed = batch.task_items.get(task_id)
            if item is None or not item.active or (allowed and item.id not in allowed):
                raise Rejected("unknown-check-item", "检查事项不存在、已停用或不在本次检查任务中")
            if item.department_id != principal.department_id:
                raise Rejected("forbidden", "只能就本部门的检查事项作出检查结论")
    return task, (entity.department_id if entity else principal.department_id)  # type: ignore[return-value]


def _create(batch: _Batch, mutation: dict[str, Any], kind: str, task: InspectionTask, department_id: uuid.UUID,
            fields: dict[str, Any]) -> EntityState:
    inspection_id = parse_uuid(fields["inspection_id"]) if "inspection_id" in fields else None
    if inspection_id is not None:
        held = batch.children.get((inspection_id, kind), 0)
        cap = MAX_PER_INSPECTION.get(Kind(kind))
        if cap is not None and held >= cap:
            raise Rejected("record-full", f"一份检查记录最多 {cap} 条该类记录，已达上限，未保存")
        batch.children[(inspection_id, kind)] = held + 1
    entity = EntityState(
        id=mutation["entity_id"], kind=kind, task_id=task.id, inspection_id=inspection_id, department_id=department_id,
        created_by_id=batch.principal.user_id,  # type: ignore[arg-type]
        fields=fields, clocks=dict.fromkeys(fields, mutation["hlc"]),
        field_versions=dict.fromkeys(fields, 1), contenders={}, deleted=False, version=1,
        first_received_at=batch.now, last_received_at=batch.now, updated_at=batch.now, is_new=True)
    batch.entities[entity.id] = entity
    return entity


def _update(batch: _Batch, mutation: dict[str, Any], entity: EntityState, fields: dict[str, Any],
            deleting: bool) -> tuple[str, int]:
    """Field-level last-writer-wins by HLC; a concurrent loser is kept as a conflict."""
    stamp = mutation["hlc"]
    base = mutation["base_version"]
    version = entity.version + 1
    values, clocks, versions = dict(entity.fields), dict(entity.clocks), dict(entity.field_versions)
    contenders = dict(entity.contenders or {})
    node = _node(stamp)
    conflicted = False
    if deleting:
        if clocks.get("_deleted") is None or stamp > clocks["_deleted"]:
            clocks["_deleted"] = stamp
        entity.deleted = True
    for name, value in fields.items():
        current_clock = clocks.get(name)
        current_node = _node(current_clock) if current_clock else node
        # Concurrent: the field changed after the version this edit was based on,
        # by another device (a tablet has always seen its own earlier edits).
        seen = versions.get(name, 0) <= base
        concurrent = not seen and current_node != node and values.get(name) != value
        _contend(contenders, name, node, value, stamp, current=(current_node, values.get(name), current_clock),
                 resolves=seen and current_node != node)
        if current_clock is None or stamp > current_clock:
            if concurrent:
                _record_conflict(batch, entity, mutation, name, kept=(value, stamp),
                                 lost=(values.get(name), current_clock))
                conflicted = True
            values[name], clocks[name], versions[name] = value, stamp, version
        elif concurrent:
            _record_conflict(batch, entity, mutation, name, kept=(values.get(name), current_clock), lost=(value, stamp))
            conflicted = True
    entity.fields, entity.clocks, entity.field_versions = values, clocks, versions
    entity.contenders = contenders
    entity.version = version
    entity.last_received_at = entity.updated_at = batch.now
    entity.changed = True
    return ("conflict" if conflicted else "applied"), version


def _node(stamp: str) -> str:
    return stamp.split("-", 2)[2]


def _contend(contenders: dict[str, dict[str, list[Any]]], name: str, node: str, value: Any, stamp: str, *,
             current: tuple[str, Any, str | None], resolves: bool) -> None:
    """Keep each device's latest write of a field once a second device writes it.

    Until then the field's own value and clock are its sole writer's latest.
    ``resolves``: the writer had seen the current value (another device's), so
    the older writes it replaced are settled, not contenders.
    """
    current_node, current_value, current_clock = current
    per_node = contenders.get(name)
    if per_node is None:
        if current_clock is None or current_node == node:
            return
        per_node = {current_node: [current_value, current_clock]}
    else:
        per_node = dict(per_node)
    if resolves and current_clock is not None:
        per_node = {n: w for n, w in per_node.items() if n == node or w[1] > current_clock}
    mine = per_node.get(node)
    if mine is None or stamp > mine[1]:
        per_node[node] = [value, stamp]
    contenders[name] = per_node


def _record_conflict(batch: _Batch, entity: EntityState, mutation: dict[str, Any], name: str,
                     kept: tuple[Any, str | None], lost: tuple[Any, str | None]) -> None:
    batch.conflicts.append({
        "id": uuid.uuid4(), "entity_id": entity.id, "task_id": entity.task_id, "field": name,
        "kept_value": kept[0], "kept_hlc": kept[1] or "", "lost_value": lost[0], "lost_hlc": lost[1] or "",
        "mutation_id": mutation["id"], "detected_at": batch.now})


# ---- server changes: the review app's decision on a record ------------------------------------

def _server_stamp(clocks: dict[str, str], now: datetime) -> str:
    """An HLC stamp of the server, after every write the entity holds (so it wins them, and tablets that fold
    it order their next edits after it)."""
    stamps = []
    for value in clocks.values():
        try:
            stamps.append(hlc_stamps.parse(value))
        except (TypeError, ValueError):
            continue
    wall = int(now.timestamp() * 1000)
    last = max(stamps, default=None)
    if last is None or wall > last.wall_ms:
        return f"{wall:013d}-0000-{SERVER_NODE}"
    wall, counter = (last.wall_ms, last.counter + 1) if last.counter < 0xFFFF else (last.wall_ms + 1, 0)
    return f"{wall:013d}-{counter:04x}-{SERVER_NODE}"


def record_review(inspection_id: uuid.UUID, review: dict[str, Any], *, status: str | None = None) -> SyncedEntity:
    """Write a review decision onto an inspection record as a server change (docs/field-app.md).

    Sets the read-only field ``review`` (and ``status`` when given, ``"returned"`` for a return) with a server
    HLC stamped after every write the record holds, as a new version of the entity: the team's tablets get it
    on their next pull like any change, and an edit they make after seeing it is not a conflict with it. The
    server has seen every earlier write of these fields, so it settles their contenders. The caller (the
    review app) has authorized the decision; this only records it.
    """
    entity = db.session.scalar(select(SyncedEntity).where(SyncedEntity.id == inspection_id).with_for_update()
                               .execution_options(populate_existing=True))
    if entity is None or entity.kind != Kind.INSPECTION or entity.deleted:
        raise Problem(404, "not-found", "检查记录不存在")
    now = utcnow()
    stamp = _server_stamp(entity.clocks or {}, now)
    version = entity.version + 1
    changes: dict[str, Any] = {"review": review}
    if status is not None:
        changes["status"] = status
    fields, clocks = dict(entity.fields or {}), dict(entity.clocks or {})
    versions, contenders = dict(entity.field_versions or {}), dict(entity.contenders or {})
    for name, value in changes.items():
        fields[name], clocks[name], versions[name] = value, stamp, version
        contenders.pop(name, None)
    entity.fields, entity.clocks, entity.field_versions, entity.contenders = fields, clocks, versions, contenders
    entity.version = version
    entity.updated_at = now
    db.session.flush()
    events.emit(events.Event.INSPECTIONS_CHANGED, inspection_ids={entity.id})
    return entity


# ---- pull ----------------------------------------------------------------------

_TEAM_VISIBLE = (TaskStatus.DISPATCHED, TaskStatus.CLOSED, TaskStatus.CANCELLED)

CURSOR_PREFIX = "v1:"


def encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"{CURSOR_PREFIX}{seq}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if not raw.startswith(CURSOR_PREFIX):
            raise ValueError
        seq = int(raw[len(CURSOR_PREFIX):])
        if seq < 0:
            raise ValueError
        return seq
    except (ValueError, UnicodeDecodeError):
        raise Problem(422, "invalid-cursor", "同步游标无效，请不带游标重新拉取",
                      errors={"query.cursor": ["Not a cursor returned by this server."]}) from None


@dataclass
class Change:
    seq: int
    entity: str
    entity_id: str
    op: str
    version: int
    fields: dict[str, Any]
    updated_at: datetime | None
    meta: dict[str, str] | None = None


@dataclass
class PullPage:
    changes: list[Change]
    cursor: str
    has_more: bool


def _task_change(task: InspectionTask) -> Change:
    enterprise = task.enterprise
    team = []
    for member in task.members:
        certificate = max(member.user.certificates, key=lambda c: c.valid_until, default=None)
        team.append({"user_id": str(member.user_id), "username": member.user.username,
                     "full_name": member.user.full_name,
                     "department_id": str(member.department_id),
                     "certificate_number": certificate.number if certificate else None,
                     "certificate_status": certificate.status.value if certificate else None})
    fields = {
        "title": task.title, "status": task.status.value, "department_id": str(task.department_id),
        "window_start": task.window_start.isoformat(), "window_end": task.window_end.isoformat(),
        "enterprise": {"id": str(enterprise.id), "name": enterprise.name, "credit_code": enterprise.credit_code,
                       "address": enterprise.address},
        "team": team, "check_item_ids": [str(i.check_item_id) for i in task.check_items],
    }
    code = issued_code(task)
    if code is not None:
        # Shown offline to the enterprise (扫码入企); the tablet records the token on the inspection it starts.
        fields["inspection_code"] = {"token": code.token, "url": code.url, "expires_at": code.expires_at.isoformat()}
    op = "upsert" if task.status in (TaskStatus.DISPATCHED, TaskStatus.CLOSED) else "delete"
    return Change(task.change_seq, "task", str(task.id), op, task.change_seq, fields, task.created_at)


def _entity_change(entity: SyncedEntity) -> Change:
    meta = {"department_id": str(entity.department_id), "created_by_id": str(entity.created_by_id),
            "task_id": str(entity.task_id)}
    if entity.clocks:
        # The newest HLC behind this state: tablets fold it into their clock
        # (docs/sync.md) so an edit made after seeing it orders after it.
        meta["hlc"] = max(entity.clocks.values())
    return Change(entity.change_seq, entity.kind, str(entity.id), "delete" if entity.deleted else "upsert",
                  entity.version, entity.fields, entity.updated_at, meta)


def _check_item_change(item: CheckItem) -> Change:
    return Change(item.change_seq, "check_item", str(item.id), "upsert" if item.active else "delete", item.change_seq,
                  {"department_id": str(item.department_id), "code": item.code, "title": item.title,
                   "legal_basis": item.legal_basis, "method": item.method}, item.updated_at)


def _enterprise_change(enterprise: Enterprise) -> Change:
    return Change(enterprise.change_seq, "enterprise", str(enterprise.id), "upsert", enterprise.change_seq,
                  {"credit_code": enterprise.credit_code, "name": enterprise.name, "address": enterprise.address,
                   "legal_representative": enterprise.legal_representative, "industry": enterprise.industry},
                  enterprise.updated_at)


def _certificate_change(certificate: Certificate) -> Change:
    return Change(certificate.change_seq, "certificate", str(certificate.id), "upsert", certificate.change_seq,
                  {"number": certificate.number, "holder_id": str(certificate.holder_id),
                   "status": certificate.status.value, "valid_from": certificate.valid_from.isoformat(),
                   "valid_until": certificate.valid_until.isoformat()}, certificate.updated_at)


def pull(principal: Principal, cursor: str | None, limit: int) -> PullPage:
    """Everything the caller may see that changed after ``cursor``, oldest first."""
    _require_bound_device(principal)
    after = decode_cursor(cursor)
    user_id = principal.user_id
    # A task reaches its team once dispatched (every participating head approved); one
    # sent back to approval after that reaches it again, as a removal.
    task_ids = list(db.session.scalars(
        select(TaskMember.task_id).join(InspectionTask, InspectionTask.id == TaskMember.task_id).where(
            TaskMember.user_id == user_id,
            or_(InspectionTask.status.in_(_TEAM_VISIBLE), InspectionTask.dispatched_at.is_not(None)))))
    teammates = select(TaskMember.user_id).where(TaskMember.task_id.in_(task_ids)).scalar_subquery()
    enterprises = select(InspectionTask.enterprise_id).where(InspectionTask.id.in_(task_ids)).scalar_subquery()
    sources = [
        (InspectionTask, InspectionTask.id.in_(task_ids), _task_change),
        (SyncedEntity, SyncedEntity.task_id.in_(task_ids), _entity_change),
        (CheckItem, None, _check_item_change),
        (Enterprise, Enterprise.id.in_(enterprises), _enterprise_change),
        (Certificate, Certificate.holder_id.in_(teammates), _certificate_change),
    ]
    changes: list[Change] = []
    for model, condition, to_change in sources:
        query = select(model).where(model.change_seq > after)
        if condition is not None:
            query = query.where(condition)
        rows = db.session.scalars(query.order_by(model.change_seq).limit(limit + 1))
        changes.extend(to_change(row) for row in rows)
    changes.sort(key=lambda c: c.seq)
    has_more = len(changes) > limit
    changes = changes[:limit]
    last = changes[-1].seq if changes else after
    return PullPage(changes, encode_cursor(last), has_more)


def list_conflicts(principal: Principal, task_id: uuid.UUID) -> list[SyncConflict]:
    from server.tasks.service import get_task
    get_task(principal, task_id)
    return list(db.session.scalars(select(SyncConflict).where(SyncConflict.task_id == task_id)
                                   .order_by(SyncConflict.detected_at)))


@dataclass(frozen=True)
class SyncedMedia:
    """A synced ``media`` record as other capabilities may read it (uploads check files against it)."""

    id: uuid.UUID
    task_id: uuid.UUID
    department_id: uuid.UUID
    fields: dict[str, Any]


def synced_media(media_id: uuid.UUID) -> SyncedMedia | None:
    """The live (not deleted) synced media record with this id, or None."""
    entity = records.media_record(media_id)
    if entity is None:
        return None
    return SyncedMedia(entity.id, entity.task_id, entity.department_id, dict(entity.fields))
