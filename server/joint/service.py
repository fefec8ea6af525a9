"""The joint record of a task: what the whole team captured, merged into one canonical document.

Everything here is a pure function of the merged state the sync service keeps
(field values with their winning HLC clocks, and each device's latest write of
a field written by several devices). That state does not depend on the order
in which the team's tablets synced, so neither does the joint record: two
servers that received the same mutations in any order produce byte-identical
``joint_record_json``. Nothing order-dependent (entity versions, receive
times, the conflict detection log, the merge's own time) is part of it.
"""
from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import or_, select

from server.auth.policy import Principal
from server.directory.models import Certificate, CheckItem, Department, Device, User
from server.extensions import db
from server.sync import records
from server.sync.entities import MAX_PER_INSPECTION, Kind, inspection_id_for
from server.sync.models import SyncedEntity
from server.tasks.models import InspectionTask
from server.tasks.service import get_task
from server.uploads.models import Media

SHARED_FIELDS = ("started_at", "ended_at", "place", "representative", "conclusion", "status")
MEASURE_FIELDS = ("soft_measures", "coercive_measures")
NOT_UPLOADED = "not_uploaded"


@dataclass(frozen=True)
class JointRecord:
    """One task's joint inspection record; ``to_dict`` is its canonical form."""

    task: dict[str, Any]
    enterprise: dict[str, Any]
    departments: list[dict[str, Any]]
    team: list[dict[str, Any]]
    inspection: dict[str, Any]
    findings: list[dict[str, Any]]
    merged_findings: list[dict[str, Any]]
    soft_measures: list[dict[str, Any]]
    coercive_measures: list[dict[str, Any]]
    evidence: list[dict[str, Any]]
    signatures: list[dict[str, Any]]
    conflicts: list[dict[str, Any]]
    flags: list[dict[str, Any]]
    # Records of each kind the inspection holds; a list above holds at most MAX_PER_INSPECTION of them
    # (the smallest ids: the same subset on every server), which only records older than that cap exceed.
    totals: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data, every list in a fixed order (shares the record's lists: no deep copy)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


def joint_record_for(principal: Principal, task_id: uuid.UUID) -> JointRecord:
    """The joint record, for a team member or an office role of a participating department (else 404)."""
    get_task(principal, task_id)
    return joint_record(task_id)


def joint_record_json(task_id: uuid.UUID) -> bytes:
    """Canonical bytes of the joint record: sorted keys, no whitespace, UTF-8."""
    return canonical_json(joint_record(task_id).to_dict())


def canonical_json(data: Any) -> bytes:
    return json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _sort_key(value: Any) -> str:
    """A total order over JSON values (measures may be text or objects)."""
    return canonical_json(value).decode("utf-8")


def _node(clock: str | None) -> str | None:
    return clock.split("-", 2)[2] if clock else None


class _Directory:
    """Names the record shows for ids: departments, people, devices, check items."""

    def __init__(self, task: InspectionTask, entities: list[SyncedEntity]) -> None:
        nodes = {_node(c) for e in entities for c in e.clocks.values()}
        nodes |= {n for e in entities for per in (e.contenders or {}).values() for n in per}
        self.devices = {d.id: d for d in db.session.scalars(select(Device).where(Device.id.in_(nodes - {None})))}
        department_ids = {m.department_id for m in task.members} | {task.department_id}
        department_ids |= {e.department_id for e in entities} | {d.department_id for d in self.devices.values()}
        self.departments = {d.id: d for d in db.session.scalars(
            select(Department).where(Department.id.in_(department_ids)))}
        user_ids = {m.user_id for m in task.members} | {e.created_by_id for e in entities}
        self.users = {u.id: u for u in db.session.scalars(select(User).where(User.id.in_(user_ids)))}
        item_ids = {i.check_item_id for i in task.check_items}
        item_ids |= {uuid.UUID(e.fields["check_item_id"]) for e in entities if e.kind == Kind.FINDING}
        self.items = {i.id: i for i in db.session.scalars(select(CheckItem).where(CheckItem.id.in_(item_ids)))}

    def department(self, department_id: uuid.UUID | None) -> dict[str, Any] | None:
        department = self.departments.get(department_id) if department_id else None
        if department is None:
            return None
        return {"id": str(department.id), "code": department.code, "name": department.name}

    def device_department(self, node: str | None) -> dict[str, Any] | None:
        device = self.devices.get(node) if node else None
        return self.department(device.department_id) if device else None

    def person(self, user_id: uuid.UUID) -> dict[str, Any]:
        user = self.users.get(user_id)
        return {"id": str(user_id), "username": user.username if user else None,
                "full_name": user.full_name if user else None}

    def check_item(self, item_id: uuid.UUID) -> dict[str, Any]:
        item = self.items.get(item_id)
        if item is None:
            return {"id": str(item_id), "code": None, "title": None, "legal_basis": None, "department": None}
        return {"id": str(item.id), "code": item.code, "title": item.title, "legal_basis": item.legal_basis,
                "department": self.department(item.department_id)}


def joint_record(task_id: uuid.UUID) -> JointRecord:
    """Merge what the team of ``task_id`` captured into one record (no authorization: callers check)."""
    task = db.session.get(InspectionTask, task_id)
    if task is None:
        raise LookupError(f"no task {task_id}")
    # A deleted record still names its task's shared fields (as a tombstone); its parts are the live ones.
    inspection = db.session.get(SyncedEntity, inspection_id_for(task_id))
    totals = {kind.value: count for kind, count in records.part_counts(task_id).items()}
    live = [part for kind, cap in MAX_PER_INSPECTION.items()
            for part in records.parts_of_task(task_id, kind, limit=cap)]
    entities = ([inspection] if inspection is not None else []) + live
    names = _Directory(task, entities)
    findings = [_finding(e, names) for e in live if e.kind == Kind.FINDING]
    findings.sort(key=lambda f: (f["department"]["code"] if f["department"] else "", f["check_item"]["code"] or "",
                                 f["id"]))
    merged, flags = _merge_findings(task, findings, names)
    conflicts = _conflicts(entities, names)
    flags.extend({"kind": "conflict", "entity": c["entity"], "entity_id": c["entity_id"], "field": c["field"]}
                 for c in conflicts)
    return JointRecord(
        task=_task(task, names), enterprise=_enterprise(task), departments=_departments(task, names),
        team=_team(task, names), inspection=_inspection(task_id, inspection),
        findings=_by_department(findings), merged_findings=merged,
        soft_measures=_measures(inspection, "soft_measures", names),
        coercive_measures=_measures(inspection, "coercive_measures", names),
        evidence=_evidence(task_id, [e for e in live if e.kind == Kind.MEDIA], names),
        signatures=sorted((_signature(e, names) for e in live if e.kind == Kind.SIGNATURE),
                          key=lambda s: (s["signer_role"], s["signed_at"] or "", s["id"])),
        conflicts=conflicts, flags=flags, totals=totals)


def _task(task: InspectionTask, names: _Directory) -> dict[str, Any]:
    return {"id": str(task.id), "title": task.title, "status": task.status.value,
            "window_start": task.window_start.isoformat(), "window_end": task.window_end.isoformat(),
            "lead_department": names.department(task.department_id), "note": task.note}


def _enterprise(task: InspectionTask) -> dict[str, Any]:
    enterprise = task.enterprise
    return {"id": str(enterprise.id), "name": enterprise.name, "credit_code": enterprise.credit_code,
            "address": enterprise.address, "legal_representative": enterprise.legal_representative}


def _departments(task: InspectionTask, names: _Directory) -> list[dict[str, Any]]:
    ids = {m.department_id for m in task.members} | {task.department_id}
    shown = [names.department(i) for i in ids]
    return sorted((d for d in shown if d), key=lambda d: d["code"])


def _certificate(user_id: uuid.UUID) -> dict[str, Any] | None:
    certificate = db.session.scalars(select(Certificate).where(Certificate.holder_id == user_id)
                                     .order_by(Certificate.valid_until.desc(), Certificate.number)).first()
    if certificate is None:
        return None
    return {"number": certificate.number, "status": certificate.status.value,
            "valid_from": certificate.valid_from.isoformat(), "valid_until": certificate.valid_until.isoformat()}


def _team(task: InspectionTask, names: _Directory) -> list[dict[str, Any]]:
    team = [{**names.person(m.user_id), "department": names.department(m.department_id),
             "certificate": _certificate(m.user_id)} for m in task.members]
    return sorted(team, key=lambda m: (m["department"]["code"] if m["department"] else "", m["username"] or "",
                                       m["id"]))


def _inspection(task_id: uuid.UUID, entity: SyncedEntity | None) -> dict[str, Any]:
    """The shared fields with the clock of the write that won each."""
    fields = entity.fields if entity else {}
    clocks = entity.clocks if entity else {}
    return {"id": str(inspection_id_for(task_id)), "recorded": entity is not None,
            "deleted": bool(entity and entity.deleted),
            "fields": {name: {"value": fields.get(name), "clock": clocks.get(name)} for name in SHARED_FIELDS}}


def _finding(entity: SyncedEntity, names: _Directory) -> dict[str, Any]:
    fields = entity.fields
    return {"id": str(entity.id), "department": names.department(entity.department_id),
            "inspector": names.person(entity.created_by_id),
            "check_item": names.check_item(uuid.UUID(fields["check_item_id"])),
            "result": fields.get("result"), "note": fields.get("note"),
            "evidence": list(fields.get("evidence") or []), "recorded_at": fields.get("recorded_at"),
            "clock": entity.clocks.get("result"),
            "clocks": {name: entity.clocks[name] for name in sorted(entity.clocks)}}


def _by_department(findings: list[dict[str, Any]]) -> list[dict[str, Any]]:
    grouped: dict[str, dict[str, Any]] = {}
    for finding in findings:
        department = finding["department"]
        key = department["code"] if department else ""
        grouped.setdefault(key, {"department": department, "findings": []})["findings"].append(finding)
    return [grouped[key] for key in sorted(grouped)]


def _merge_findings(task: InspectionTask, findings: list[dict[str, Any]],
                    names: _Directory) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """One finding per question: equivalent check items (one group) are one question.

    Each department's finding on it becomes an attestation; different results
    are flagged as a disagreement and left for people to settle.
    """
    group_of = {i.check_item_id: i.equivalence_group for i in task.check_items}
    questions: dict[str, dict[str, Any]] = {}

    def question(item_id: uuid.UUID) -> dict[str, Any]:
        group = group_of.get(item_id)
        key = f"group:{group}" if group else f"item:{item_id}"
        if key not in questions:
            questions[key] = {"key": key, "equivalence_group": group, "check_items": {}, "attestations": []}
        questions[key]["check_items"][str(item_id)] = names.check_item(item_id)
        return questions[key]

    for item_id in group_of:
        question(item_id)
    for finding in findings:
        attestation = {"finding_id": finding["id"], "department": finding["department"],
                       "inspector": finding["inspector"], "check_item_id": finding["check_item"]["id"],
                       "result": finding["result"], "note": finding["note"], "evidence": finding["evidence"],
                       "recorded_at": finding["recorded_at"], "clock": finding["clock"]}
        question(uuid.UUID(finding["check_item"]["id"]))["attestations"].append(attestation)

    merged: list[dict[str, Any]] = []
    flags: list[dict[str, Any]] = []
    for key in sorted(questions, key=lambda k: _question_order(questions[k])):
        entry = questions[key]
        items = sorted(entry["check_items"].values(), key=lambda i: (i["code"] or "", i["id"]))
        attestations = sorted(entry["attestations"], key=lambda a: (
            a["department"]["code"] if a["department"] else "", a["check_item_id"], a["finding_id"]))
        results = sorted({a["result"] for a in attestations})
        disagreement = len(results) > 1
        merged.append({"key": key, "equivalence_group": entry["equivalence_group"], "check_items": items,
                       "attestations": attestations, "result": results[0] if len(results) == 1 else None,
                       "results": results, "answered": bool(attestations), "disagreement": disagreement})
        if disagreement:
            flags.append({"kind": "disagreement", "key": key,
                          "departments": sorted({a["department"]["code"] for a in attestations if a["department"]}),
                          "results": results})
    return merged, flags


def _question_order(entry: dict[str, Any]) -> tuple[str, str]:
    codes = sorted(i["code"] or "" for i in entry["check_items"].values())
    return (codes[0] if codes else "", entry["key"])


def _conflicts(entities: Iterable[SyncedEntity], names: _Directory) -> list[dict[str, Any]]:
    """Fields on which some device's latest word differs from the merged value."""
    out = []
    for entity in entities:
        for field in sorted(entity.contenders or {}):
            kept_value, kept_clock = entity.fields.get(field), entity.clocks.get(field)
            losers = sorted(([v, c] for v, c in entity.contenders[field].values()
                             if c != kept_clock and v != kept_value),
                            key=lambda w: w[1])
            if not losers:
                continue
            out.append({"entity": entity.kind, "entity_id": str(entity.id), "field": field,
                        "kept": _write(kept_value, kept_clock, names),
                        "overridden": [_write(v, c, names) for v, c in losers]})
    return sorted(out, key=lambda c: (c["entity"], c["entity_id"], c["field"]))


def _write(value: Any, clock: str | None, names: _Directory) -> dict[str, Any]:
    return {"value": value, "clock": clock, "device": _node(clock), "department": names.device_department(_node(clock))}


def _measures(inspection: SyncedEntity | None, field: str, names: _Directory) -> list[dict[str, Any]]:
    """Every device's measures, not only the list that won the field.

    Measures are appended on several tablets at once; the field keeps one
    list, but a measure another department took must still be in the report.
    Each measure lists the departments whose devices recorded it.
    """
    if inspection is None or field not in inspection.fields:
        return []
    writes = dict((inspection.contenders or {}).get(field) or {})
    if not writes:
        writes = {_node(inspection.clocks[field]): [inspection.fields[field], inspection.clocks[field]]}
    measures: dict[str, dict[str, Any]] = {}
    for node, (values, clock) in sorted(writes.items(), key=lambda w: w[1][1]):
        department = names.device_department(node)
        for index, measure in enumerate(values or []):
            key = _sort_key(measure)
            entry = measures.setdefault(key, {"measure": measure, "departments": {}, "order": (clock, index, key)})
            if department:
                entry["departments"][department["code"]] = department
    ordered = sorted(measures.values(), key=lambda m: m["order"])
    return [{"measure": m["measure"], "departments": [m["departments"][c] for c in sorted(m["departments"])]}
            for m in ordered]


def _evidence(task_id: uuid.UUID, synced: list[SyncedEntity], names: _Directory) -> list[dict[str, Any]]:
    """Media the team declared and files stored for the task, with their verification."""
    ids = {e.id for e in synced}
    stored = {m.id: m for m in db.session.scalars(
        select(Media).where(or_(Media.task_id == task_id, Media.id.in_(ids))))}
    out = []
    for entity in synced:
        fields, media = entity.fields, stored.get(entity.id)
        out.append({"id": str(entity.id), "sha256": media.sha256 if media else fields.get("sha256"),
                    "size": media.size if media else fields.get("size"), "content_type": fields.get("content_type"),
                    "file_name": fields.get("file_name"), "capture_start": fields.get("capture_start"),
                    "capture_end": fields.get("capture_end"), "device_id": fields.get("device_id"),
                    "proves": fields.get("proves"), "department": names.department(entity.department_id),
                    "uploaded": media is not None,
                    "verification": _verdict(media)})
    for media in stored.values():
        if media.id in ids:
            continue
        out.append({"id": str(media.id), "sha256": media.sha256, "size": media.size,
                    "content_type": media.content_type, "file_name": media.file_name,
                    "capture_start": media.capture_start.isoformat() if media.capture_start else None,
                    "capture_end": None, "device_id": media.device_id, "proves": "recording",
                    "department": names.department(media.department_id), "uploaded": True,
                    "verification": _verdict(media)})
    return sorted(out, key=lambda m: (m["capture_start"] or "", m["sha256"] or "", m["id"]))


def _verdict(media: Media | None) -> dict[str, Any]:
    """A file's verification as the record states it: the verdict and its reasons.

    Not the analysis behind it (measurements, detections, when it ran): those are the file's, served with
    the media, and would make the record depend on when a server verified rather than on what was synced.
    """
    if media is None:
        return {"status": NOT_UPLOADED, "reasons": []}
    return {"status": media.verification_status.value, "reasons": list(media.verification_reasons or [])}


def _signature(entity: SyncedEntity, names: _Directory) -> dict[str, Any]:
    fields = entity.fields
    return {"id": str(entity.id), "signer_role": fields.get("signer_role"), "signer_name": fields.get("signer_name"),
            "media_id": fields.get("media_id"), "signed_at": fields.get("signed_at"),
            "department": names.department(entity.department_id), "clock": entity.clocks.get("signer_role")}
