"""A joint inspection captured offline on several tablets, then synced in any order.

Shared by the property test and ``benchmarks/merge.py``. Tablets are
simulated the way ``field_client`` behaves: every capture is a mutation in an
outbox, stamped with the tablet's HLC; a push sends the mutations heading
their entity's queue (at most one per entity), through the real
``server.sync.service.push``; an own write that made exactly ``base + 1``
rebases the entity's next mutations.
"""
from __future__ import annotations

import random
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete

from server.auth.policy import SYSTEM, Principal
from server.directory import service as directory
from server.directory.models import CheckItem, Department, User
from server.extensions import db
from server.joint.service import joint_record_json
from server.sync import service as sync
from server.sync.entities import inspection_id_for
from server.sync.models import MutationRecord, SyncConflict, SyncedEntity
from server.tasks.models import InspectionTask
from server.tasks.service import create_task
from tests.clock import office_today

MAX_SKEW = timedelta(minutes=5)
PASSWORD = "correct-horse-battery"
RESULTS = ("compliant", "non_compliant", "not_applicable")
SHARED_VALUES: dict[str, tuple[Any, ...]] = {
    "place": ("一号车间", "仓库", "污水处理站"),
    "representative": ("张经理", "李主任"),
    "conclusion": ("未发现问题", "责令限期整改", "移交立案"),
    "ended_at": ("2026-11-26T11:00:00+08:00", "2026-11-26T11:30:00+08:00"),
    "status": ("open", "finished"),
}
SOFT = ("现场提醒公示营业执照", "指导完善台账", "约谈企业负责人", "宣传法规")
NOTES = (None, "营业执照未悬挂", "台账不全", "已当场整改")


@dataclass
class JointTeam:
    task: InspectionTask
    departments: list[Department]
    inspectors: dict[str, list[User]]          # department code -> inspectors on the team
    items: dict[str, list[CheckItem]]          # department code -> the task's items of that department
    tablets: dict[str, tuple[User, Department]]  # device id -> (its inspector, department)


def build_team(departments: int, *, items_per_department: int = 3, tablets_per_department: int = 2,
               prefix: str = "JT") -> JointTeam:
    """Departments, two inspectors and tablets each, an enterprise and a dispatched task.

    Each department's first item is declared equivalent to the others' first
    item ("business licence displayed" asked once).
    """
    team_departments, inspectors, items, tablets, members, groups = [], {}, {}, {}, [], {}
    for d in range(departments):
        code = f"{prefix}{d}"
        department = directory.create_department(SYSTEM, code, f"第{d + 1}执法局")
        team_departments.append(department)
        inspectors[code] = []
        for n in range(2):
            user = directory.create_user(SYSTEM, {
                "username": f"{code.lower()}-insp{n}", "full_name": f"执法员{code}{n}", "password": PASSWORD,
                "role": "inspector", "department_id": department.id,
                "certificate": {"number": f"CERT-{code}-{n}", "valid_from": office_today() - timedelta(days=30),
                                "valid_until": office_today() + timedelta(days=300)}})
            inspectors[code].append(user)
            members.append(user.id)
        items[code] = [directory.create_check_item(SYSTEM, {
            "department_id": department.id, "code": f"{code}-{i:02d}",
            "title": "营业执照公示" if i == 0 else f"{code} 检查事项 {i}", "legal_basis": "《测试条例》第一条"})
            for i in range(items_per_department)]
        groups[items[code][0].id] = "licence"
        for t in range(tablets_per_department):
            device_id = f"{code}-TAB{t}"
            directory.create_device(SYSTEM, {"id": device_id, "kind": "tablet", "department_id": department.id,
                                             "inspector_id": None})
            tablets[device_id] = (inspectors[code][t % 2], department)
    enterprise = directory.create_enterprise(
        SYSTEM, {"credit_code": _credit_code(prefix), "name": "祁阳市联合检查示范有限公司",
                 "address": "祁阳市浯溪街道建设路8号"}, team_departments)
    now = datetime.now(UTC)
    task = create_task(SYSTEM, {
        "title": "综合查一次：示范公司", "enterprise_id": enterprise.id, "window_start": now - timedelta(hours=3),
        "window_end": now + timedelta(hours=8), "member_ids": members,
        "check_item_ids": [i.id for code in items for i in items[code]], "equivalence_groups": groups,
        "lead_department_id": team_departments[0].id})
    db.session.commit()
    return JointTeam(task, team_departments, inspectors, items, tablets)


def _credit_code(prefix: str) -> str:
    from server.directory.credit_code import make_credit_code
    return make_credit_code("9", "1", "431121", f"JT{sum(map(ord, prefix)) % 10**6:06d}")


# ---- offline capture ----------------------------------------------------------------------------

@dataclass
class Tablet:
    """One tablet's offline session: its clock, its local view, its outbox."""

    device_id: str
    user: User
    department: Department
    task_id: uuid.UUID
    wall_ms: int
    counter: int = 0
    outbox: list[dict[str, Any]] = field(default_factory=list)
    view: dict[str, dict[str, Any]] = field(default_factory=dict)     # entity id -> fields as seen here
    findings: dict[uuid.UUID, str] = field(default_factory=dict)      # check item -> our finding id
    ids: random.Random = field(default_factory=random.Random)

    def tick(self, advance_ms: int) -> str:
        if advance_ms > 0:
            self.wall_ms += advance_ms
            self.counter = 0
        else:
            self.counter += 1
        return f"{self.wall_ms:013d}-{self.counter:04x}-{self.device_id}"

    def _new_id(self) -> uuid.UUID:
        return uuid.UUID(int=self.ids.getrandbits(128), version=4)

    def mutate(self, entity: str, entity_id: uuid.UUID, fields: dict[str, Any], advance_ms: int,
               op: str = "upsert") -> None:
        self.outbox.append({"id": self._new_id(), "entity": entity, "entity_id": entity_id, "op": op,
                            "base_version": 0, "hlc": self.tick(advance_ms), "fields": fields})
        if op == "upsert":
            self.view.setdefault(str(entity_id), {}).update(fields)

    @property
    def inspection_id(self) -> uuid.UUID:
        return inspection_id_for(self.task_id)

    def start(self, advance_ms: int) -> None:
        started = datetime.fromtimestamp(self.wall_ms / 1000, UTC).isoformat()
        self.mutate("inspection", self.inspection_id, {"task_id": str(self.task_id), "started_at": started,
                                                       "status": "open"}, advance_ms)

    def set_shared(self, name: str, value: Any, advance_ms: int) -> None:
        self.mutate("inspection", self.inspection_id, {name: value}, advance_ms)

    def add_soft_measure(self, text: str, advance_ms: int) -> None:
        measures = list(self.view[str(self.inspection_id)].get("soft_measures") or [])
        if text not in measures:
            self.mutate("inspection", self.inspection_id, {"soft_measures": measures + [text]}, advance_ms)

    def add_coercive_measure(self, kind: str, description: str, advance_ms: int) -> None:
        measures = list(self.view[str(self.inspection_id)].get("coercive_measures") or [])
        self.mutate("inspection", self.inspection_id,
                    {"coercive_measures": measures + [{"kind": kind, "description": description}]}, advance_ms)

    def record_finding(self, item: CheckItem, result: str, note: str | None, advance_ms: int,
                       evidence: Iterable[uuid.UUID] = ()) -> uuid.UUID:
        changes: dict[str, Any] = {"result": result, "note": note}
        if evidence:
            changes["evidence"] = [str(e) for e in evidence]
        existing = self.findings.get(item.id)
        if existing is not None:
            self.mutate("finding", uuid.UUID(existing), changes, advance_ms)
            return uuid.UUID(existing)
        finding_id = self._new_id()
        self.findings[item.id] = str(finding_id)
        self.mutate("finding", finding_id, {"inspection_id": str(self.inspection_id), "check_item_id": str(item.id),
                                            **changes}, advance_ms)
        return finding_id

    def delete_finding(self, item: CheckItem, advance_ms: int) -> None:
        finding_id = self.findings.pop(item.id, None)
        if finding_id is not None:
            self.mutate("finding", uuid.UUID(finding_id), {}, advance_ms, op="delete")

    def add_photo(self, sha256: str, size: int, advance_ms: int) -> uuid.UUID:
        media_id = self._new_id()
        self.mutate("media", media_id, {"inspection_id": str(self.inspection_id), "sha256": sha256, "size": size,
                                        "proves": "scene", "content_type": "image/jpeg",
                                        "file_name": f"IMG_{size % 10000:04d}.jpg", "device_id": self.device_id},
                    advance_ms)
        return media_id

    def sign(self, role: str, name: str, advance_ms: int) -> None:
        signed = datetime.fromtimestamp(self.wall_ms / 1000, UTC).isoformat()
        self.mutate("signature", self._new_id(), {"inspection_id": str(self.inspection_id), "signer_role": role,
                                                  "signer_name": name, "signed_at": signed}, advance_ms)


def tablets_for(team: JointTeam, start_ms: int, rng: random.Random) -> list[Tablet]:
    """A fresh offline session per tablet, clocks a little apart, each started on the inspection."""
    tablets = []
    for device_id in sorted(team.tablets):
        user, department = team.tablets[device_id]
        tablet = Tablet(device_id, user, department, team.task.id, start_ms + rng.randrange(0, 120_000),
                        ids=random.Random(rng.getrandbits(64)))
        tablet.start(0)
        tablets.append(tablet)
    return tablets


# ---- sync ---------------------------------------------------------------------------------------

@dataclass
class Outcome:
    statuses: dict[str, int]


class Outbox:
    """A tablet's outbox as ``field_client`` drains it: one mutation per entity per batch, rebasing."""

    def __init__(self, tablet: Tablet) -> None:
        self.tablet = tablet
        self.pending = [dict(m) for m in tablet.outbox]
        self.principal = Principal("user", str(tablet.user.id), "inspector", tablet.department.id,
                                   tablet.device_id)  # logged in on its tablet

    def sendable(self, limit: int) -> list[dict[str, Any]]:
        batch, entities = [], set()
        for mutation in self.pending:
            if mutation["entity_id"] in entities:
                continue
            entities.add(mutation["entity_id"])
            batch.append(mutation)
            if len(batch) == limit:
                break
        return batch

    def push(self, limit: int, statuses: dict[str, int]) -> None:
        batch = self.sendable(limit)
        results = sync.push(self.principal, self.tablet.device_id, batch, MAX_SKEW)
        sent = {id(m) for m in batch}
        self.pending = [m for m in self.pending if id(m) not in sent]
        for mutation, result in zip(batch, results, strict=True):
            statuses[result.status] = statuses.get(result.status, 0) + 1
            if result.status == "rejected":
                raise AssertionError(f"{self.tablet.device_id} {mutation['entity']}: {result.code} {result.reason}")
            if result.version == mutation["base_version"] + 1:
                for later in self.pending:
                    if (later["entity_id"] == mutation["entity_id"]
                            and later["base_version"] == mutation["base_version"]):
                        later["base_version"] = result.version


def reset_sync_state() -> None:
    """Forget every push (a fresh server for the next order); the directory and task stay."""
    for model in (SyncConflict, MutationRecord, SyncedEntity):
        db.session.execute(delete(model))
    db.session.flush()


def sync_in_order(tablets: list[Tablet], schedule: Iterable[tuple[int, int]]) -> Outcome:
    """Push per ``schedule`` — (tablet index, batch size) steps — then drain whatever is left, in turn."""
    outboxes = [Outbox(t) for t in tablets]
    statuses: dict[str, int] = {}
    for index, size in schedule:
        outbox = outboxes[index % len(outboxes)]
        if outbox.pending:
            outbox.push(size, statuses)
    while any(o.pending for o in outboxes):
        for outbox in outboxes:
            if outbox.pending:
                outbox.push(500, statuses)
    return Outcome(statuses)


def merged_bytes(team: JointTeam) -> bytes:
    db.session.expire_all()
    return joint_record_json(team.task.id)
