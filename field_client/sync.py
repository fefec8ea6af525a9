"""The sync protocol (docs/sync.md): push the outbox, pull what changed.

How push keeps the server's merge honest
----------------------------------------
A mutation's ``base_version`` is the entity's version as the server last
confirmed it to this tablet when the edit was made, so the server can tell an
edit made in ignorance of a teammate's change (a conflict) from one made after
seeing it. Two edits of the same entity made here in a row both start from the
same confirmed version; sent together, the server would take the second for a
conflict with the first. So a batch carries at most one mutation per entity,
and when the server answers that our mutation made exactly version
``base + 1`` — nobody else wrote in between, so we know that version's content
— the entity's confirmed state moves to it and the next unsent mutation of that
entity is rebased on it. Entities are independent, so a batch still carries up
to 500 of them.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from field_client import hlc
from field_client.errors import ServerRefused, ServerUnavailable
from field_client.messages import REJECTION_TEXTS, rejection_reason, unreadable_reason
from field_client.records import REFERENCE_KINDS, LocalRecords
from field_client.reports import PullReport, PushReport, Rejection
from field_client.session import API, Session
from field_client.store import MutationRow, Store
from field_client.transport import Response

MAX_BATCH = 500
SYNCED_KINDS = ("inspection", "finding", "media", "signature")

# Tried again like a 5xx: a timeout, two server processes committing the same mutation at once
# (docs/sync.md: the retry gets "duplicate"), too early.
RETRY_STATUSES = (408, 409, 425)
# A batch refused with these may be refused for some of its mutations; any other 4xx is about
# the request as a whole (the device, the account), which no choice of mutations can change.
CONTENT_STATUSES = (400, 413, 422)
_MUTATION_PATH = re.compile(r"^/?mutations[./\[](\d+)\]?(?:[./](.*))?$")
_UNNAMED_PATHS = ("", "_body", "_schema", "json", "mutations", "/mutations")

ProgressCallback = Callable[[str, int, int], None]


def refused_mutations(response: Response, size: int) -> dict[int, list[str]] | None:
    """Which mutations of a refused batch of ``size`` the answer names, with the fields it names.

    ``None``: the refusal is about the request itself (not a content status, or
    ``errors`` names a field outside the mutations, such as ``device_id``).
    ``{}``: about the content, but no particular mutation is named.
    """
    if response.status not in CONTENT_STATUSES or response.problem[0] == "unknown-device":
        return None
    named: dict[int, list[str]] = {}
    for path in response.errors:
        match = _MUTATION_PATH.match(str(path))
        if match and int(match.group(1)) < size:
            named.setdefault(int(match.group(1)), []).append(re.split(r"[./]", match.group(2) or "")[0])
        elif not match and str(path) not in _UNNAMED_PATHS:
            return None
    return named


def _hlc_from_time(value: str | None, node: str) -> hlc.Stamp | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return hlc.Stamp(int(parsed.timestamp() * 1000), 0, node)


class SyncProtocol:
    """Push and pull over a session; ``progress(phase, done, total)`` hears how far they are."""

    def __init__(self, store: Store, session: Session, records: LocalRecords, *, batch_size: int, pull_limit: int,
                 progress: ProgressCallback) -> None:
        self.store = store
        self.session = session
        self.records = records
        self.batch_size = max(1, min(batch_size, MAX_BATCH))
        self.pull_limit = max(1, min(pull_limit, 1000))
        self._progress = progress
        self._unsettled: set[str] = set()

    # ---- push ------------------------------------------------------------------------------------

    def push(self) -> PushReport:
        """Send every pending mutation, at most ``batch_size`` (≤ 500) per request.

        A batch the server cannot read (422, 400, 413) never blocks the outbox:
        the mutations its ``errors`` name are set aside as refused and the rest
        go on; a refusal that names none is split in halves until the bad ones
        are alone. A refusal of the request itself (an unregistered device, say)
        leaves every mutation pending and raises ``ServerRefused``.
        """
        device, _, _ = self.session.identity()
        report = PushReport()
        total = self.store.count("pending")
        # A result this client cannot read leaves its mutation pending for the next push, not this one:
        # a server that keeps answering so must not keep us pushing it for ever.
        self._unsettled: set[str] = set()
        while batch := [m for m in self.store.sendable(self.batch_size + len(self._unsettled))
                        if m.id not in self._unsettled][:self.batch_size]:
            self._send(device, batch, report, total)
        return report

    def _send(self, device: str, batch: list[MutationRow], report: PushReport, total: int) -> None:
        """Push one batch. Every call settles or sets aside at least one mutation, or raises."""
        ids = [m.id for m in batch]
        response = self.session.call(
            "POST", f"{API}/sync/push", json_body={"device_id": device, "mutations": [m.envelope() for m in batch]},
            retry_statuses=RETRY_STATUSES,
            on_attempt=lambda: self.store.note_attempt(ids, self.session.now()),
            on_failure=lambda code, reason: self.store.note_failure(ids, code, reason, self.session.now()))
        if response.status == 200:
            results = self._results(response, ids)
            with self.store.transaction():
                for mutation, result in zip(batch, results, strict=True):
                    self._settle(mutation, result, report)
                self.store.set("last_push_at", self.session.now())
            report.sent += len(batch)
            report.batches += 1
            self._progress("push", report.sent, total)
            return
        code, reason = response.problem
        named = refused_mutations(response, len(batch))
        if named is None:
            self.store.note_failure(ids, code, reason, self.session.now())
            raise ServerRefused(code, reason, response.status)
        if named:
            # Nothing of a refused batch was applied: the others go again, without these.
            for index, fields in sorted(named.items()):
                kind = "unknown-entity-kind" if "entity" in fields else "invalid-mutation"
                text = REJECTION_TEXTS[kind] if kind == "unknown-entity-kind" else unreadable_reason(fields)
                self._set_aside(batch[index], kind, text, report, total)
        elif len(batch) == 1:
            kind = "payload-too-large" if response.status == 413 else "invalid-mutation"
            text = REJECTION_TEXTS[kind] if kind == "payload-too-large" else f"{REJECTION_TEXTS[kind]}（{reason}）"
            self._set_aside(batch[0], kind, text, report, total)
        else:
            half = len(batch) // 2
            self._send(device, batch[:half], report, total)
            self._send(device, batch[half:], report, total)

    def _set_aside(self, mutation: MutationRow, code: str, reason: str, report: PushReport, total: int) -> None:
        """Keep a mutation the server cannot take as refused: shown in status, never sent again by itself."""
        now = self.session.now()
        reason = f"{reason}。该记录保存在本机，不会自动重发；请联系管理员或升级 fieldsync"
        with self.store.transaction():
            self.store.settle(mutation.id, status="rejected", result="rejected", version=None, code=code,
                              reason=reason, now=now)
            self.records.refresh_view(mutation.entity_id)
        report.rejected.append(Rejection(mutation.id, mutation.entity, mutation.entity_id, code, reason,
                                         mutation.fields, now))
        report.sent += 1
        self._progress("push", report.sent, total)

    @staticmethod
    def _results(response: Response, ids: list[str]) -> list[dict[str, Any]]:
        body = response.body if isinstance(response.body, dict) else {}
        results = body.get("results")
        if (not isinstance(results, list) or len(results) != len(ids)
                or any(not isinstance(r, dict) or r.get("id") != i for r, i in zip(results, ids, strict=True))):
            # The server committed the batch if it answered 200, but we cannot
            # tell what happened to which mutation; they stay pending and the
            # next push learns their fate as duplicates.
            raise ServerUnavailable("服务器的推送应答与所发送的记录不一致；记录仍保存在本机，下次同步时重试")
        return results

    def _settle(self, mutation: MutationRow, result: dict[str, Any], report: PushReport) -> None:
        status = result.get("status")
        now = self.session.now()
        version = result.get("version") if isinstance(result.get("version"), int) else None
        if status in ("applied", "duplicate", "conflict"):
            self.store.settle(mutation.id, status="done", result=status, version=version, code=None, reason=None,
                              now=now)
            setattr(report, status, getattr(report, status) + 1)
            if status == "conflict":
                self.store.add_conflict(mutation, now)
            elif version == mutation.base_version + 1:
                self._confirm_own_write(mutation)
        elif status == "rejected":
            code = str(result.get("code") or "rejected")
            reason = rejection_reason(code, result.get("reason"))
            self.store.settle(mutation.id, status="rejected", result=status, version=None, code=code, reason=reason,
                              now=now)
            report.rejected.append(Rejection(mutation.id, mutation.entity, mutation.entity_id, code, reason,
                                             mutation.fields, now))
        else:
            self.store.note_failure([mutation.id], "unknown-result", f"服务器返回了未知的结果：{status!r}", now)
            self._unsettled.add(mutation.id)
            return
        self.records.refresh_view(mutation.entity_id)

    def _confirm_own_write(self, mutation: MutationRow) -> None:
        """Our mutation made version base+1: nobody wrote in between, so we know that version."""
        base, made = mutation.base_version, mutation.base_version + 1
        row = self.store.entity(mutation.entity_id)
        if row is not None and row.server_version == base:
            if mutation.op == "delete":
                fields, deleted = dict(row.server_fields or {}), True
            else:
                fields, deleted = {**(row.server_fields or {}), **mutation.fields}, row.server_deleted
            self.store.set_server_state(row.id, fields, made, deleted, None)
        self.store.rebase(mutation.entity_id, base, made)

    # ---- pull -----------------------------------------------------------------------------------

    def pull(self) -> PullReport:
        """Fetch every change since the saved cursor; each page is applied with its cursor atomically."""
        self.session.identity()
        report = PullReport()
        cursor = self.store.get("cursor")
        restarted = False
        while True:
            query = {"limit": self.pull_limit, **({"cursor": cursor} if cursor else {})}
            response = self.session.call("GET", f"{API}/sync/pull", query=query)
            if response.status == 422 and response.problem[0] == "invalid-cursor" and not restarted:
                cursor, restarted = None, True  # the server forgot our place: start over
                continue
            if response.status != 200:
                code, reason = response.problem
                raise ServerRefused(code, reason, response.status)
            body = response.body if isinstance(response.body, dict) else {}
            changes, next_cursor, has_more = body.get("changes"), body.get("cursor"), body.get("has_more")
            if not isinstance(changes, list) or not isinstance(next_cursor, str) or not isinstance(has_more, bool):
                raise ServerUnavailable("服务器的拉取应答格式不正确，请稍后再同步")
            with self.store.transaction():
                for change in changes:
                    if isinstance(change, dict):
                        self._apply(change)
                self.store.set("cursor", next_cursor)
                self.store.set("last_pull_at", self.session.now())
            report.pages += 1
            report.changes += len(changes)
            self._progress("pull", report.changes, report.changes + (self.pull_limit if has_more else 0))
            if not has_more:
                break
            if next_cursor == cursor and not changes:
                raise ServerUnavailable("服务器的拉取游标没有前进，已停止拉取")
            cursor = next_cursor
        return report

    def _apply(self, change: dict[str, Any]) -> None:
        kind, entity_id = change.get("entity"), change.get("entity_id")
        fields = change.get("fields") if isinstance(change.get("fields"), dict) else {}
        version = change.get("version") if isinstance(change.get("version"), int) else 0
        deleted = change.get("op") == "delete"
        updated_at = change.get("updated_at") if isinstance(change.get("updated_at"), str) else None
        meta = change.get("meta") if isinstance(change.get("meta"), dict) else {}
        if not isinstance(entity_id, str):
            return
        device = self.store.get("device_id") or "local"
        seen = [s for s in (_hlc_from_time(updated_at, device),) if s is not None]
        if isinstance(meta.get("hlc"), str):
            try:
                seen.append(hlc.parse(meta["hlc"]))
            except ValueError:
                pass
        if kind in REFERENCE_KINDS:
            self.store.put_reference(kind, entity_id, fields, version, deleted, updated_at)
        elif kind in SYNCED_KINDS:
            inspection_id = fields.get("inspection_id") if kind != "inspection" else None
            self.store.ensure_entity(entity_id, kind, task_id=meta.get("task_id") or fields.get("task_id"),
                                     inspection_id=inspection_id, department_id=meta.get("department_id"),
                                     created_by_id=meta.get("created_by_id"))
            row = self.store.entity(entity_id)
            if row is not None and version >= row.server_version:
                self.store.set_server_state(entity_id, fields, version, deleted, updated_at)
                self.records.refresh_view(entity_id)
        # Anything else is from a newer server: ignored, not fatal.
        self.records.fold(seen)
