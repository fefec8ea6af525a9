"""Capture on the tablet, offline: inspections, findings, measures, evidence files, signatures.

Every capture becomes a mutation in the local outbox in one durable
transaction, stamped with the tablet's hybrid logical clock, and the entity's
local view is updated in the same transaction. Nothing here needs the network.
"""
from __future__ import annotations

import contextlib
import hashlib
import mimetypes
import os
import tempfile
import time
import unicodedata
import uuid
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from field_client.errors import LocalError
from field_client.records import LocalRecords, parse_id
from field_client.session import Session
from field_client.store import EntityRow, Store
from field_client.times import iso_local

HASH_BLOCK = 1 << 20

RESULTS = ("compliant", "non_compliant", "not_applicable")
PROVES = ("certificate", "scene", "signature", "other")
COERCIVE_KINDS = ("seizure", "impoundment", "demolition", "closure", "other")
SIGNER_ROLES = ("inspector", "representative", "witness")
INSPECTION_FIELDS = ("started_at", "ended_at", "place", "representative", "soft_measures", "coercive_measures",
                     "conclusion", "status")

#: Longest inspection code token the server accepts on a record (server/sync/entities.py).
MAX_CODE_LENGTH = 2048

# The server's namespace for the one inspection record of a task (server/sync/entities.py).
INSPECTION_NAMESPACE = uuid.UUID("6f1d3c2e-9b7a-5e40-8c21-4a0f3d9e7b15")


def inspection_id_for(task_id: str) -> str:
    """The id every tablet gives the task's inspection record."""
    return str(uuid.uuid5(INSPECTION_NAMESPACE, str(uuid.UUID(task_id))))


def inspection_code_of(task: dict[str, Any]) -> str | None:
    """The token of the inspection code the task was pulled with (``inspection_code.token``), or None.

    The inspection records it when it begins: it is the code shown to the enterprise (扫码入企), and the
    server flags a visit begun without one. A task from an older server carries none.
    """
    code = task.get("inspection_code")
    token = code.get("token") if isinstance(code, dict) else None
    return token if isinstance(token, str) and 0 < len(token) <= MAX_CODE_LENGTH else None


def display_name(path: Path) -> str:
    """A file's name as metadata: its last component, normalised, no path separators."""
    name = unicodedata.normalize("NFC", path.name).replace("/", "_").replace("\\", "_").replace("\x00", "")
    return name[-255:] or "file"


def _text(value: Any, name: str, limit: int) -> str:
    if not isinstance(value, str):
        raise LocalError(f"{name}应为文本")
    if len(value) > limit:
        raise LocalError(f"{name}不能超过 {limit} 个字符")
    return value


class Capture:
    """The local writes: each public method is one durable change in the outbox and the view."""

    def __init__(self, store: Store, session: Session, records: LocalRecords) -> None:
        self.store = store
        self.session = session
        self.records = records

    def _mutate(self, kind: str, entity_id: str, fields: dict[str, Any], *, task_id: str,
                inspection_id: str | None = None, op: str = "upsert") -> str:
        """Record one local change: a mutation in the outbox, the view updated, in one transaction."""
        device, user, department = self.session.identity()
        with self.store.transaction():
            row = self.store.entity(entity_id)
            creating = row is None or row.view_fields is None
            self.store.ensure_entity(entity_id, kind, task_id=task_id, inspection_id=inspection_id,
                                     department_id=department if creating else None,
                                     created_by_id=user if creating else None)
            self.store.add_mutation(id=str(uuid.uuid4()), entity=kind, entity_id=entity_id, user_id=user, op=op,
                                    base_version=row.server_version if row else 0, hlc=self.records.tick(device),
                                    fields=fields, now=self.session.now())
            self.records.refresh_view(entity_id)
        return entity_id

    def _open_task(self, task_id: str) -> dict[str, Any]:
        self.session.identity()
        task = self.store.reference("task", task_id)
        if task is None or task["deleted"]:
            raise LocalError(f"本机没有检查任务 {task_id}（请先同步；已撤销的任务不能检查）")
        if task.get("status") != "dispatched":
            raise LocalError(f"检查任务已关闭（{task.get('status')}），不能再修改其记录")
        user = self.store.get("user_id")
        if user and task.get("team") and all(m.get("user_id") != user for m in task["team"]):
            raise LocalError("您不是该检查任务的检查组成员")
        return task

    def _inspection(self, inspection_id: str) -> tuple[EntityRow, dict[str, Any]]:
        inspection_id = parse_id(inspection_id, "检查记录")
        row = self.records.visible(inspection_id, "inspection", "检查记录")
        task = self._open_task(str(row.task_id))
        return row, task

    def start_inspection(self, task_id: str, place: str | None = None, *, new: bool = False) -> str:
        """Open the inspection record of a task; returns its id.

        One visit, one record: the id is derived from the task id, so every
        tablet of the team — even offline — starts the same record and the
        server merges their edits. If it is already here (ours or a teammate's,
        pulled) it is joined; ``new`` stamps a fresh start on it instead.
        """
        task_id = parse_id(task_id, "检查任务")
        task = self._open_task(task_id)
        if place is not None:
            _text(place, "检查地点", 300)
        inspection_id = inspection_id_for(task_id)
        row = self.store.entity(inspection_id)
        if not new and row is not None and row.visible:
            return inspection_id
        fields: dict[str, Any] = {"task_id": task_id, "started_at": self.session.now(), "status": "open",
                                  "inspection_code": inspection_code_of(task)}
        if place is not None:
            fields["place"] = place
        return self._mutate("inspection", inspection_id, fields, task_id=task_id)

    def record_finding(self, inspection_id: str, check_item_id: str, result: str, note: str | None = None,
                       evidence: Iterable[str] = ()) -> str:
        """Record (or change) this department's finding for a check item; returns the finding id."""
        row, task = self._inspection(inspection_id)
        check_item_id = parse_id(check_item_id, "检查事项")
        if result not in RESULTS:
            raise LocalError("检查结论应为：" + "、".join(RESULTS))
        item = self.store.reference("check_item", check_item_id)
        if item is None or item["deleted"]:
            raise LocalError(f"本机没有检查事项 {check_item_id}，或该事项已停用")
        if task.get("check_item_ids") and check_item_id not in task["check_item_ids"]:
            raise LocalError(f"检查事项「{item.get('title')}」不在本次检查任务中")
        department = self.store.get("department_id")
        if department and item.get("department_id") != department:
            raise LocalError(f"检查事项「{item.get('title')}」属于其他部门，只能就本部门的检查事项作出检查结论")
        media_ids = [parse_id(m, "证据文件") for m in evidence]
        for media_id in media_ids:
            self.records.visible(media_id, "media", "证据文件")
        changes: dict[str, Any] = {"result": result, "recorded_at": self.session.now()}
        if note is not None:
            changes["note"] = _text(note, "说明", 4000)
        if media_ids:
            changes["evidence"] = media_ids
        existing = next((f for f in self.store.entities("finding", inspection_id=row.id)
                         if f.visible and (f.view_fields or {}).get("check_item_id") == check_item_id
                         and (not department or f.department_id in (None, department))), None)
        if existing is not None:
            return self._mutate("finding", existing.id, changes, task_id=str(row.task_id), inspection_id=row.id)
        fields = {"inspection_id": row.id, "check_item_id": check_item_id, **changes}
        return self._mutate("finding", str(uuid.uuid4()), fields, task_id=str(row.task_id), inspection_id=row.id)

    def add_measure(self, inspection_id: str, *, soft: str | None = None, coercive_kind: str | None = None,
                    description: str | None = None) -> None:
        """Add a soft measure (persuasion, guidance, reminder) or a coercive measure to the record."""
        row, task = self._inspection(inspection_id)
        view = row.view_fields or {}
        if (soft is None) == (coercive_kind is None):
            raise LocalError("请给出一项柔性措施（soft）或一项强制措施（coercive_kind）")
        if soft is not None:
            measures = list(view.get("soft_measures") or []) + [_text(soft, "柔性措施", 1000)]
            if len(measures) > 50:
                raise LocalError("柔性措施最多 50 项")
            changes: dict[str, Any] = {"soft_measures": measures}
        else:
            if coercive_kind not in COERCIVE_KINDS:
                raise LocalError("强制措施类型应为：" + "、".join(COERCIVE_KINDS))
            measure = {"kind": coercive_kind, "description": _text(description or "", "措施说明", 1000)}
            coercive = list(view.get("coercive_measures") or []) + [measure]
            if len(coercive) > 20:
                raise LocalError("强制措施最多 20 项")
            changes = {"coercive_measures": coercive}
        self._mutate("inspection", row.id, changes, task_id=str(row.task_id))

    def set_inspection_fields(self, inspection_id: str, **fields: Any) -> None:
        """Change the inspection's shared fields (place, representative, conclusion, …)."""
        row, task = self._inspection(inspection_id)
        unknown = sorted(set(fields) - set(INSPECTION_FIELDS))
        if unknown:
            raise LocalError(f"检查记录没有这些可修改的字段：{', '.join(unknown)}")
        if not fields:
            raise LocalError("没有要修改的字段")
        limits = {"place": 300, "representative": 100, "conclusion": 4000}
        for name, value in fields.items():
            if name in limits and value is not None:
                _text(value, name, limits[name])
            if name in ("started_at", "ended_at") and value is not None:
                try:
                    if datetime.fromisoformat(str(value)).tzinfo is None:
                        raise ValueError
                except ValueError:
                    raise LocalError(f"{name} 应为带时区的 ISO 8601 时间") from None
            if name == "status" and value not in ("open", "finished"):
                raise LocalError("status 应为 open 或 finished")
            if name in ("soft_measures", "coercive_measures") and not isinstance(value, list):
                raise LocalError(f"{name} 应为列表")
        self._mutate("inspection", row.id, dict(fields), task_id=str(row.task_id))

    def reopen(self, inspection_id: str) -> None:
        """Open a finished or returned record again for corrections (``finish`` then submits it again)."""
        row, _ = self._inspection(inspection_id)
        if (row.view_fields or {}).get("status") == "open":
            raise LocalError("该检查记录本来就在进行中，无需重新打开")
        self.set_inspection_fields(inspection_id, status="open")

    def finish(self, inspection_id: str, conclusion: str | None = None) -> None:
        """Close the record on site: end time now, status finished, and the conclusion."""
        changes: dict[str, Any] = {"ended_at": self.session.now(), "status": "finished"}
        if conclusion is not None:
            changes["conclusion"] = conclusion
        self.set_inspection_fields(inspection_id, **changes)

    def attach(self, inspection_id: str, path: str | os.PathLike[str], proves: str, *,
               capture_start: str | None = None, capture_end: str | None = None,
               content_type: str | None = None) -> str:
        """Keep a photo, audio or video as evidence; returns the media id.

        The file is hashed (SHA-256, streamed in blocks) while it is copied into
        the vault, where it is named by that hash: the name the user gave it is
        only metadata. Capture times default to the file's modification time.
        """
        row, task = self._inspection(inspection_id)
        device, _, _ = self.session.identity()
        if proves not in PROVES:
            raise LocalError("证据用途应为：" + "、".join(PROVES))
        source = Path(path)
        if not source.is_file():
            raise LocalError(f"找不到文件：{source}")
        try:
            modified = source.stat().st_mtime
            digest, size = self._copy_into_vault(source)
        except OSError as exc:
            raise LocalError(f"无法读取或保存文件 {source}：{exc.strerror or exc}") from None
        kind = content_type or mimetypes.guess_type(source.name)[0] or "application/octet-stream"
        fields = {"inspection_id": row.id, "sha256": digest, "size": size, "content_type": kind,
                  "file_name": display_name(source), "capture_start": capture_start or iso_local(modified),
                  "capture_end": capture_end or capture_start or iso_local(modified), "device_id": device,
                  "proves": proves}
        with self.store.transaction():
            self.store.add_vault(digest, size, kind, self.session.now())
            return self._mutate("media", str(uuid.uuid4()), fields, task_id=str(row.task_id), inspection_id=row.id)

    def _copy_into_vault(self, source: Path) -> tuple[str, int]:
        vault = self.store.vault_dir
        vault.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Copies a crash interrupted: never indexed, safe to drop once clearly stale. Compared with
        # the files' own modification times, so the file system's clock, not the injected one.
        for stale in vault.glob(".incoming-*"):
            with contextlib.suppress(OSError):
                if time.time() - stale.stat().st_mtime > 3600:
                    stale.unlink()
        digest = hashlib.sha256()
        size = 0
        handle, temporary = tempfile.mkstemp(dir=vault, prefix=".incoming-")
        try:
            with source.open("rb") as reader, os.fdopen(handle, "wb") as writer:
                while block := reader.read(HASH_BLOCK):
                    digest.update(block)
                    writer.write(block)
                    size += len(block)
                writer.flush()
                os.fsync(writer.fileno())
            name = digest.hexdigest()
            os.replace(temporary, self.store.vault_path(name))
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
        with contextlib.suppress(OSError):  # make the rename itself durable
            directory = os.open(vault, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
        return name, size

    def sign(self, inspection_id: str, signer_role: str, signer_name: str | None = None,
             media_id: str | None = None) -> str:
        """Record a signature (the image of it attached as media with ``proves="signature"``)."""
        row, task = self._inspection(inspection_id)
        if signer_role not in SIGNER_ROLES:
            raise LocalError("签名人身份应为：" + "、".join(SIGNER_ROLES))
        fields: dict[str, Any] = {"inspection_id": row.id, "signer_role": signer_role,
                                  "signed_at": self.session.now()}
        if signer_name is not None:
            fields["signer_name"] = _text(signer_name, "签名人姓名", 100)
        if media_id is not None:
            fields["media_id"] = self.records.visible(parse_id(media_id, "签名文件"), "media", "签名文件").id
        return self._mutate("signature", str(uuid.uuid4()), fields, task_id=str(row.task_id), inspection_id=row.id)
