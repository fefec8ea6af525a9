"""The tablet's local view of its records, its hybrid logical clock, and reading them offline.

The local view of an entity is its confirmed state overlaid, in order, with
this tablet's mutations the server has not yet shown back on pull (pending
ones, and acknowledged ones newer than the confirmed version). Rejected
mutations are not part of the view; they stay in the outbox with the server's
code and reason until the inspector has seen them.
"""
from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from field_client import hlc
from field_client.errors import LocalError
from field_client.reports import ConflictItem, PendingItem, Rejection, Status, UploadItem
from field_client.session import Session
from field_client.store import EntityRow, MutationRow, Store

REFERENCE_KINDS = ("task", "check_item", "enterprise", "certificate")


def parse_id(value: str, what: str) -> str:
    """``value`` as a canonical UUID string, or a ``LocalError`` naming ``what``."""
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise LocalError(f"{what}编号无效：{value}") from None


def _same(a: Any, b: Any) -> bool:
    """Equal values; timestamps compare as instants (the server stores them in UTC)."""
    if a == b:
        return True
    if isinstance(a, str) and isinstance(b, str):
        try:
            x, y = datetime.fromisoformat(a), datetime.fromisoformat(b)
        except ValueError:
            return False
        return x.tzinfo is not None and y.tzinfo is not None and x == y
    return False


class LocalRecords:
    """Views, clock and read access over one store; no network."""

    def __init__(self, store: Store, session: Session) -> None:
        self.store = store
        self.session = session

    # ---- the clock ---------------------------------------------------------------------

    def tick(self, device_id: str) -> str:
        """Next HLC stamp; call inside the transaction that stores the change it stamps."""
        last_text = self.store.get("hlc_last")
        last = hlc.parse(last_text) if last_text else None
        stamp = hlc.tick(last, int(self.session.clock() * 1000), device_id)
        self.store.set("hlc_last", str(stamp))
        return str(stamp)

    def fold(self, seen: Iterable[hlc.Stamp]) -> None:
        """Fold stamps received from the server into the clock, so later edits order after them."""
        device = self.store.get("device_id") or "local"
        last_text = self.store.get("hlc_last")
        last = hlc.parse(last_text) if last_text else None
        folded = last
        for stamp in seen:
            folded = hlc.fold(folded, stamp, device)
        if folded is not None and folded != last:
            self.store.set("hlc_last", str(folded))

    def last_stamp(self) -> str | None:
        """The last HLC stamp this tablet issued or folded in."""
        value = self.store.get("hlc_last")
        return str(value) if value else None

    # ---- local view ----------------------------------------------------------------------

    def refresh_view(self, entity_id: str) -> None:
        """Recompute the entity's local view: confirmed state + our unconfirmed mutations."""
        row = self.store.entity(entity_id)
        if row is None:
            return
        fields = dict(row.server_fields) if row.server_fields is not None else None
        deleted = row.server_deleted
        overlay = [m for m in self.store.mutations(entity_id=entity_id)
                   if m.status == "pending" or (m.status == "done" and m.result_version is not None
                                                and m.result_version > row.server_version)]
        for mutation in overlay:
            if mutation.op == "delete":
                deleted = True
            else:
                fields = {**(fields or {}), **mutation.fields}
        self.store.set_view(entity_id, fields, deleted, bool(overlay))

    def visible(self, entity_id: str, kind: str, what: str) -> EntityRow:
        """The entity's row if it is in the local view as a ``kind``, else a ``LocalError``."""
        row = self.store.entity(entity_id)
        if row is None or row.kind != kind or not row.visible:
            raise LocalError(f"本机没有{what} {entity_id}（如是同事创建的，请先同步）")
        return row

    @staticmethod
    def entity_view(row: EntityRow) -> dict[str, Any]:
        """An entity as the client shows it: where it belongs, its version, and its view's fields."""
        return {"id": row.id, "kind": row.kind, "task_id": row.task_id, "inspection_id": row.inspection_id,
                "department_id": row.department_id, "created_by_id": row.created_by_id,
                "version": row.server_version, "unconfirmed": row.unconfirmed, **(row.view_fields or {})}

    # ---- reading the local store (offline) -----------------------------------------------------

    def tasks(self) -> list[dict[str, Any]]:
        """Tasks pulled to this tablet, with enterprise, check items and inspections."""
        items = {i["id"]: i for i in self.store.references("check_item", include_deleted=True)}
        out = []
        for task in self.store.references("task"):
            view = dict(task)
            view["check_items"] = [items.get(i, {"id": i}) for i in task.get("check_item_ids") or []]
            view["inspections"] = [self.entity_view(r) for r in self.store.entities("inspection", task_id=task["id"])
                                   if r.visible]
            out.append(view)
        return out

    def returned(self) -> list[dict[str, Any]]:
        """Inspection records a supervisor returned that the team has not finished again (docs/field-app.md)."""
        return [view for view in self.inspections()
                if view.get("status") == "returned" and (view.get("review") or {}).get("status") == "returned"]

    def task(self, task_id: str) -> dict[str, Any]:
        """One pulled task, as ``tasks()`` shows it."""
        task_id = parse_id(task_id, "检查任务")
        for task in self.tasks():
            if task["id"] == task_id:
                return task
        raise LocalError(f"本机没有检查任务 {task_id}（请先同步）")

    def inspections(self, task_id: str | None = None) -> list[dict[str, Any]]:
        """The inspection records in the local view (of one task, if given)."""
        return [self.entity_view(r) for r in self.store.entities("inspection", task_id=task_id) if r.visible]

    def inspection(self, inspection_id: str) -> dict[str, Any]:
        """An inspection's local view, with its findings, media and signatures."""
        row = self.visible(parse_id(inspection_id, "检查记录"), "inspection", "检查记录")
        view = self.entity_view(row)
        children = [r for r in self.store.entities(inspection_id=row.id) if r.visible]
        for kind, key in (("finding", "findings"), ("media", "media"), ("signature", "signatures")):
            view[key] = [self.entity_view(r) for r in children if r.kind == kind]
        return view

    def entity(self, entity_id: str) -> dict[str, Any] | None:
        """Any synced entity's local view, or None."""
        row = self.store.entity(entity_id)
        return self.entity_view(row) if row is not None and row.visible else None

    def resolve(self, kind: str, text: str) -> str:
        """A full id from an id, a unique id prefix (≥ 4 characters) or, for check items, a code."""
        text = text.strip()
        if kind in REFERENCE_KINDS:
            ids = [r["id"] for r in self.store.references(kind)]
            if kind == "check_item":
                by_code = [r["id"] for r in self.store.references(kind) if r.get("code") == text]
                if len(by_code) == 1:
                    return by_code[0]
        else:
            ids = [r.id for r in self.store.entities(kind) if r.visible]
        if text in ids:
            return text
        matches = [i for i in ids if len(text) >= 4 and i.startswith(text.lower())]
        if len(matches) == 1:
            return matches[0]
        names = {"task": "检查任务", "check_item": "检查事项", "inspection": "检查记录", "media": "证据文件"}
        if not ids:
            self.session.identity()  # a store that never logged in: say so rather than "not found"
        if len(matches) > 1:
            raise LocalError(f"编号 {text} 对应多条{names.get(kind, kind)}，请输入更长的编号")
        raise LocalError(f"本机没有{names.get(kind, kind)} {text}（请先同步）")

    def status(self) -> Status:
        """What waits to go up, what the server refused and why, and edits that met a concurrent one."""
        user = self.store.get("user_id")
        with self.store.snapshot():
            pending = [PendingItem(m.id, m.entity, m.entity_id, m.op, m.fields, m.attempts, m.error_code,
                                   m.error_reason, m.created_at)
                       for m in self.store.mutations(status="pending", user_id=user)]
            rejected = [self.rejection(m) for m in self.store.mutations(status="rejected", user_id=user)]
            conflicts = []
            for record in self.store.conflicts(user_id=user):
                row = self.store.entity(record["entity_id"])
                sent = self.store.mutation(record["mutation_id"])
                caught_up = (row is not None and sent is not None and sent.result_version is not None
                             and row.server_version >= sent.result_version)
                confirmed = (row.server_fields if row is not None else None) or {}
                # Which of our values lost is known once a pull has brought the merged version.
                overridden = {k: confirmed.get(k) for k, v in record["fields"].items()
                              if caught_up and k in confirmed and not _same(confirmed[k], v)}
                conflicts.append(ConflictItem(record["mutation_id"], record["entity"], record["entity_id"],
                                              record["fields"], overridden, record["detected_at"]))
            rows = self.store.uploads(user_id=user) if user else []
            uploads = [UploadItem(r["media_id"], r["sha256"], r["file_name"], r["size"], r["status"],
                                  r["upload_offset"], r["attempts"], r["error_code"], r["error_reason"],
                                  r["verification"], r["updated_at"]) for r in rows]
            # A file whose only upload failed for good is not "waiting": status lists it as failed.
            failed = {r["sha256"] for r in rows if r["status"] == "failed"}
            failed -= {r["sha256"] for r in rows if r["status"] in ("pending", "uploading")}
            waiting = [v for v in self.store.vault_entries(uploaded=False) if v["sha256"] not in failed]
            return Status(self.store.get("server_url"), self.store.get("username"), self.store.get("device_id"),
                          bool(self.store.get("access_token")), bool(self.store.get("needs_login")), pending,
                          rejected, conflicts, len(waiting), self.store.get("last_push_at"),
                          self.store.get("last_pull_at"), uploads)

    @staticmethod
    def rejection(m: MutationRow) -> Rejection:
        """A refused mutation as ``status()`` reports it."""
        return Rejection(m.id, m.entity, m.entity_id, m.error_code or "rejected", m.error_reason or "", m.fields,
                         m.updated_at)
