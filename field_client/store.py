"""The tablet's local store: one SQLite file plus a content-addressed evidence vault.

Durability is the point. The database runs in WAL mode with
``synchronous=FULL`` and every local change is one ``BEGIN IMMEDIATE``
transaction, so a tablet whose battery dies (or a process killed at any
instant) reopens with either the whole change or none of it, never half a
finding. Evidence files are written to a temporary file, fsynced and renamed
into the vault under their SHA-256 *before* the transaction that indexes
them commits; a crash in between leaves at worst an unindexed file.

Tables:

- ``settings``: key → JSON value (server URL, user, device id, tokens, pull
  cursor, last HLC stamp, …).
- ``tasks``, ``check_items``, ``enterprises``, ``certificates``: what pull
  brought, as the server sent it (``deleted`` marks a tombstone).
- ``entities``: inspections, findings, media, signatures. ``server_*`` columns
  hold the last state the server confirmed; ``view_*`` hold the local view,
  i.e. the confirmed state overlaid with this tablet's unconfirmed mutations,
  kept up to date in the same transaction as whatever changed it.
- ``outbox``: every mutation made here, in order (``seq``), with the user who
  made it, its status (``pending``/``rejected``/``done``), attempts, last
  error and the server's answer.
- ``vault``: evidence files by SHA-256.
- ``conflicts``: this tablet's edits that the server stored as ``conflict``.
- ``uploads``: one row per media record made here whose file goes to the
  server: ``pending`` → ``uploading`` (with the offset the server confirmed)
  → ``done``, or ``failed`` with the code and reason (not retried by itself).
- ``tus_urls``: tuspy's URL storage (fingerprint → upload URL), so an
  interrupted upload resumes after a restart.
"""
from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from field_client import durable
from field_client.durable import DurableTransactions

SCHEMA_VERSION = 2
REFERENCE_KINDS = {"task": "tasks", "check_item": "check_items", "enterprise": "enterprises",
                   "certificate": "certificates"}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS tasks (
    id TEXT PRIMARY KEY, fields TEXT NOT NULL, version INTEGER NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0, updated_at TEXT
);
CREATE TABLE IF NOT EXISTS check_items (
    id TEXT PRIMARY KEY, fields TEXT NOT NULL, version INTEGER NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0, updated_at TEXT
);
CREATE TABLE IF NOT EXISTS enterprises (
    id TEXT PRIMARY KEY, fields TEXT NOT NULL, version INTEGER NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0, updated_at TEXT
);
CREATE TABLE IF NOT EXISTS certificates (
    id TEXT PRIMARY KEY, fields TEXT NOT NULL, version INTEGER NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0, updated_at TEXT
);
CREATE TABLE IF NOT EXISTS entities (
    id             TEXT PRIMARY KEY,
    kind           TEXT NOT NULL,
    task_id        TEXT,
    inspection_id  TEXT,
    department_id  TEXT,
    created_by_id  TEXT,
    server_fields  TEXT,
    server_version INTEGER NOT NULL DEFAULT 0,
    server_deleted INTEGER NOT NULL DEFAULT 0,
    server_updated_at TEXT,
    view_fields    TEXT,
    view_deleted   INTEGER NOT NULL DEFAULT 0,
    unconfirmed    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS entities_task ON entities (task_id, kind);
CREATE INDEX IF NOT EXISTS entities_inspection ON entities (inspection_id, kind);
CREATE TABLE IF NOT EXISTS outbox (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    id             TEXT NOT NULL UNIQUE,
    entity         TEXT NOT NULL,
    entity_id      TEXT NOT NULL,
    user_id        TEXT NOT NULL,
    op             TEXT NOT NULL CHECK (op IN ('upsert', 'delete')),
    base_version   INTEGER NOT NULL,
    hlc            TEXT NOT NULL,
    fields         TEXT NOT NULL,
    status         TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'rejected', 'done')),
    attempts       INTEGER NOT NULL DEFAULT 0,
    result         TEXT,
    result_version INTEGER,
    error_code     TEXT,
    error_reason   TEXT,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_status ON outbox (status, seq);
CREATE INDEX IF NOT EXISTS outbox_entity ON outbox (entity_id, seq);
CREATE TABLE IF NOT EXISTS vault (
    sha256       TEXT PRIMARY KEY,
    size         INTEGER NOT NULL,
    content_type TEXT,
    stored_at    TEXT NOT NULL,
    uploaded_at  TEXT
);
CREATE TABLE IF NOT EXISTS uploads (
    media_id      TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL,
    sha256        TEXT NOT NULL,
    size          INTEGER NOT NULL,
    file_name     TEXT,
    content_type  TEXT,
    status        TEXT NOT NULL DEFAULT 'pending'
                  CHECK (status IN ('pending', 'uploading', 'done', 'failed')),
    upload_offset INTEGER NOT NULL DEFAULT 0,
    attempts      INTEGER NOT NULL DEFAULT 0,
    error_code    TEXT,
    error_reason  TEXT,
    already_held  INTEGER NOT NULL DEFAULT 0,
    verification  TEXT,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    done_at       TEXT
);
CREATE INDEX IF NOT EXISTS uploads_status ON uploads (status, created_at);
CREATE TABLE IF NOT EXISTS tus_urls (
    key        TEXT PRIMARY KEY,
    url        TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS conflicts (
    mutation_id  TEXT PRIMARY KEY REFERENCES outbox (id),
    entity       TEXT NOT NULL,
    entity_id    TEXT NOT NULL,
    fields       TEXT NOT NULL,
    detected_at  TEXT NOT NULL
);
"""


class StoreError(RuntimeError):
    """The local store cannot be opened or is not one of ours."""


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


@dataclass
class EntityRow:
    id: str
    kind: str
    task_id: str | None
    inspection_id: str | None
    department_id: str | None
    created_by_id: str | None
    server_fields: dict[str, Any] | None
    server_version: int
    server_deleted: bool
    view_fields: dict[str, Any] | None
    view_deleted: bool
    unconfirmed: bool

    @property
    def visible(self) -> bool:
        """Exists in the local view (confirmed or pending) and is not deleted."""
        return self.view_fields is not None and not self.view_deleted


@dataclass
class MutationRow:
    seq: int
    id: str
    entity: str
    entity_id: str
    op: str
    base_version: int
    hlc: str
    fields: dict[str, Any]
    status: str
    attempts: int
    result: str | None
    result_version: int | None
    error_code: str | None
    error_reason: str | None
    created_at: str
    updated_at: str

    def envelope(self) -> dict[str, Any]:
        """The mutation as the push endpoint takes it."""
        return {"id": self.id, "entity": self.entity, "entity_id": self.entity_id, "op": self.op,
                "base_version": self.base_version, "hlc": self.hlc, "fields": self.fields}


def _entity(row: sqlite3.Row) -> EntityRow:
    return EntityRow(row["id"], row["kind"], row["task_id"], row["inspection_id"], row["department_id"],
                     row["created_by_id"], loads(row["server_fields"]), row["server_version"],
                     bool(row["server_deleted"]), loads(row["view_fields"]), bool(row["view_deleted"]),
                     bool(row["unconfirmed"]))


def _mutation(row: sqlite3.Row) -> MutationRow:
    return MutationRow(row["seq"], row["id"], row["entity"], row["entity_id"], row["op"], row["base_version"],
                       row["hlc"], loads(row["fields"]), row["status"], row["attempts"], row["result"],
                       row["result_version"], row["error_code"], row["error_reason"], row["created_at"],
                       row["updated_at"])


class Store(DurableTransactions):
    """The local SQLite store. Use ``with store.transaction():`` around every change."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path).expanduser()
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.vault_dir = self.path.with_name(self.path.name + ".vault")
        fresh = not self.path.exists()
        try:
            self._conn = durable.connect(self.path)
        except sqlite3.Error as exc:
            raise StoreError(f"无法打开本地数据库 {self.path}：{exc}") from exc
        if fresh:
            with contextlib.suppress(OSError):
                os.chmod(self.path, 0o600)  # it holds tokens
        self._depth = 0
        try:
            durable.set_durable_pragmas(self._conn)
            self._conn.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            self._conn.close()
            raise StoreError(f"本地数据库 {self.path} 无法使用：{exc}") from exc
        if fresh:
            for suffix in ("-wal", "-shm"):  # the WAL holds tokens too, until checkpointed
                with contextlib.suppress(OSError):
                    os.chmod(self.path.with_name(self.path.name + suffix), 0o600)

    def _migrate(self) -> None:
        version = self._conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(f"本地数据库由更新版本的 fieldsync 创建（版本 {version}），请升级 fieldsync")
        if version < SCHEMA_VERSION:
            with self.transaction() as conn:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def close(self) -> None:
        self._conn.close()

    # ---- transactions ----------------------------------------------------------


    @contextlib.contextmanager
    def snapshot(self) -> Iterator[sqlite3.Connection]:
        """A consistent read of several tables (joins an open transaction)."""
        if self._depth:
            yield self._conn
            return
        self._conn.execute("BEGIN")
        try:
            yield self._conn
        finally:
            self._conn.execute("COMMIT")

    def integrity_check(self) -> str:
        return str(self._conn.execute("PRAGMA integrity_check").fetchone()[0])

    # ---- settings --------------------------------------------------------------

    def get(self, key: str, default: Any = None) -> Any:
        row = self._conn.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        return default if row is None else loads(row["value"])

    def set(self, key: str, value: Any) -> None:
        with self.transaction() as conn:
            if value is None:
                conn.execute("DELETE FROM settings WHERE key = ?", (key,))
            else:
                conn.execute("INSERT INTO settings (key, value) VALUES (?, ?) "
                             "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (key, dumps(value)))

    # ---- what pull brought: tasks, check items, enterprises, certificates -------

    def put_reference(self, kind: str, id: str, fields: dict[str, Any], version: int, deleted: bool,
                      updated_at: str | None) -> None:
        table = REFERENCE_KINDS[kind]
        with self.transaction() as conn:
            conn.execute(f"INSERT INTO {table} (id, fields, version, deleted, updated_at) VALUES (?, ?, ?, ?, ?) "
                         "ON CONFLICT (id) DO UPDATE SET fields = excluded.fields, version = excluded.version, "
                         "deleted = excluded.deleted, updated_at = excluded.updated_at",
                         (id, dumps(fields), version, int(deleted), updated_at))

    def reference(self, kind: str, id: str) -> dict[str, Any] | None:
        """One pulled record as ``{"id", "deleted", **fields}``."""
        row = self._conn.execute(f"SELECT * FROM {REFERENCE_KINDS[kind]} WHERE id = ?", (id,)).fetchone()
        return None if row is None else {**loads(row["fields"]), "id": row["id"], "deleted": bool(row["deleted"])}

    def references(self, kind: str, *, include_deleted: bool = False) -> list[dict[str, Any]]:
        query = f"SELECT * FROM {REFERENCE_KINDS[kind]}"
        if not include_deleted:
            query += " WHERE deleted = 0"
        return [{**loads(row["fields"]), "id": row["id"], "deleted": bool(row["deleted"])}
                for row in self._conn.execute(query + " ORDER BY rowid")]

    def forget_pulled(self) -> None:
        """Forget what was pulled and the local views (another user or server now).

        The outbox stays: it is the record of what was captured on this tablet,
        each row tagged with the user who captured it.
        """
        with self.transaction() as conn:
            for table in REFERENCE_KINDS.values():
                conn.execute(f"DELETE FROM {table}")
            conn.execute("DELETE FROM entities")
            conn.execute("DELETE FROM settings WHERE key = 'cursor'")

    # ---- entities ----------------------------------------------------------------

    def entity(self, id: str) -> EntityRow | None:
        row = self._conn.execute("SELECT * FROM entities WHERE id = ?", (id,)).fetchone()
        return None if row is None else _entity(row)

    def entities(self, kind: str | None = None, *, task_id: str | None = None,
                 inspection_id: str | None = None) -> list[EntityRow]:
        clauses, params = [], []
        for column, value in (("kind", kind), ("task_id", task_id), ("inspection_id", inspection_id)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
        return [_entity(r) for r in self._conn.execute(f"SELECT * FROM entities{where} ORDER BY rowid", params)]

    def ensure_entity(self, id: str, kind: str, *, task_id: str | None, inspection_id: str | None,
                      department_id: str | None, created_by_id: str | None) -> None:
        """Create the entity's row if missing; fill in what we learn about where it belongs."""
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO entities (id, kind, task_id, inspection_id, department_id, created_by_id) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
                "task_id = COALESCE(excluded.task_id, task_id), "
                "inspection_id = COALESCE(excluded.inspection_id, inspection_id), "
                "department_id = COALESCE(excluded.department_id, department_id), "
                "created_by_id = COALESCE(excluded.created_by_id, created_by_id)",
                (id, kind, task_id, inspection_id, department_id, created_by_id))

    def set_server_state(self, id: str, fields: dict[str, Any], version: int, deleted: bool,
                         updated_at: str | None) -> None:
        with self.transaction() as conn:
            conn.execute("UPDATE entities SET server_fields = ?, server_version = ?, server_deleted = ?, "
                         "server_updated_at = ? WHERE id = ?",
                         (dumps(fields), version, int(deleted), updated_at, id))

    def set_view(self, id: str, fields: dict[str, Any] | None, deleted: bool, unconfirmed: bool) -> None:
        with self.transaction() as conn:
            conn.execute("UPDATE entities SET view_fields = ?, view_deleted = ?, unconfirmed = ? WHERE id = ?",
                         (None if fields is None else dumps(fields), int(deleted), int(unconfirmed), id))

    # ---- outbox ----------------------------------------------------------------------

    def add_mutation(self, *, id: str, entity: str, entity_id: str, user_id: str, op: str, base_version: int,
                     hlc: str, fields: dict[str, Any], now: str) -> None:
        with self.transaction() as conn:
            conn.execute("INSERT INTO outbox (id, entity, entity_id, user_id, op, base_version, hlc, fields, "
                         "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         (id, entity, entity_id, user_id, op, base_version, hlc, dumps(fields), now, now))

    def mutation(self, id: str) -> MutationRow | None:
        row = self._conn.execute("SELECT * FROM outbox WHERE id = ?", (id,)).fetchone()
        return None if row is None else _mutation(row)

    def mutations(self, *, status: str | None = None, entity_id: str | None = None,
                  user_id: str | None = None) -> list[MutationRow]:
        clauses, params = [], []
        for column, value in (("status", status), ("entity_id", entity_id), ("user_id", user_id)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
        return [_mutation(r) for r in self._conn.execute(f"SELECT * FROM outbox{where} ORDER BY seq", params)]

    def sendable(self, limit: int) -> list[MutationRow]:
        """Pending mutations that head their entity's queue, oldest first.

        Only one mutation per entity goes in a batch: the next one's
        ``base_version`` may move up once the server answers for this one.
        """
        rows = self._conn.execute(
            "SELECT * FROM outbox AS o WHERE status = 'pending' AND NOT EXISTS ("
            "  SELECT 1 FROM outbox AS p WHERE p.entity_id = o.entity_id AND p.status = 'pending' AND p.seq < o.seq)"
            " ORDER BY seq LIMIT ?", (limit,))
        return [_mutation(r) for r in rows]

    def acknowledged_media(self, user_id: str) -> list[MutationRow]:
        """Media records this user made here that the server stored (applied, duplicate or conflict)."""
        rows = self._conn.execute("SELECT * FROM outbox WHERE entity = 'media' AND op = 'upsert' AND status = 'done' "
                                  "AND user_id = ? ORDER BY seq", (user_id,))
        return [m for m in map(_mutation, rows) if "sha256" in m.fields]

    def count(self, status: str) -> int:
        return int(self._conn.execute("SELECT count(*) FROM outbox WHERE status = ?", (status,)).fetchone()[0])

    def note_attempt(self, ids: list[str], now: str) -> None:
        """Count an attempt before the request leaves: from here on the mutation's content is frozen."""
        with self.transaction() as conn:
            conn.executemany("UPDATE outbox SET attempts = attempts + 1, updated_at = ? WHERE id = ?",
                             [(now, i) for i in ids])

    def note_failure(self, ids: list[str], code: str, reason: str, now: str) -> None:
        with self.transaction() as conn:
            conn.executemany("UPDATE outbox SET error_code = ?, error_reason = ?, updated_at = ? WHERE id = ?",
                             [(code, reason, now, i) for i in ids])

    def settle(self, id: str, *, status: str, result: str, version: int | None, code: str | None,
               reason: str | None, now: str) -> None:
        with self.transaction() as conn:
            conn.execute("UPDATE outbox SET status = ?, result = ?, result_version = ?, error_code = ?, "
                         "error_reason = ?, updated_at = ? WHERE id = ?",
                         (status, result, version, code, reason, now, id))

    def rebase(self, entity_id: str, old: int, new: int) -> None:
        """Move never-sent mutations based on ``old`` to ``new`` (our own write made ``new``)."""
        with self.transaction() as conn:
            conn.execute("UPDATE outbox SET base_version = ? WHERE entity_id = ? AND status = 'pending' "
                         "AND attempts = 0 AND base_version = ?", (new, entity_id, old))

    # ---- vault -------------------------------------------------------------------------

    def vault_path(self, sha256: str) -> Path:
        return self.vault_dir / sha256

    def add_vault(self, sha256: str, size: int, content_type: str | None, now: str) -> None:
        with self.transaction() as conn:
            conn.execute("INSERT INTO vault (sha256, size, content_type, stored_at) VALUES (?, ?, ?, ?) "
                         "ON CONFLICT (sha256) DO NOTHING", (sha256, size, content_type, now))

    def vault_entries(self, *, uploaded: bool | None = None) -> list[dict[str, Any]]:
        query = "SELECT * FROM vault"
        if uploaded is not None:
            query += " WHERE uploaded_at IS NOT NULL" if uploaded else " WHERE uploaded_at IS NULL"
        return [dict(r) for r in self._conn.execute(query + " ORDER BY stored_at, sha256")]

    def mark_vault_uploaded(self, sha256: str, now: str) -> None:
        with self.transaction() as conn:
            conn.execute("UPDATE vault SET uploaded_at = COALESCE(uploaded_at, ?) WHERE sha256 = ?", (now, sha256))

    # ---- uploads -------------------------------------------------------------------------

    def queue_upload(self, *, media_id: str, user_id: str, sha256: str, size: int, file_name: str | None,
                     content_type: str | None, now: str) -> None:
        """Queue a media record's file for upload (once; a queued or finished one stays as it is)."""
        with self.transaction() as conn:
            conn.execute("INSERT INTO uploads (media_id, user_id, sha256, size, file_name, content_type, created_at, "
                         "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (media_id) DO NOTHING",
                         (media_id, user_id, sha256, size, file_name, content_type, now, now))

    def uploads(self, *, user_id: str | None = None,
                status: str | tuple[str, ...] | None = None) -> list[dict[str, Any]]:
        clauses, params = [], []
        if user_id is not None:
            clauses.append("user_id = ?")
            params.append(user_id)
        if status is not None:
            statuses = (status,) if isinstance(status, str) else status
            clauses.append(f"status IN ({', '.join('?' for _ in statuses)})")
            params.extend(statuses)
        where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
        return [dict(r) for r in self._conn.execute(f"SELECT * FROM uploads{where} ORDER BY created_at, media_id",
                                                      params)]

    def upload(self, media_id: str) -> dict[str, Any] | None:
        row = self._conn.execute("SELECT * FROM uploads WHERE media_id = ?", (media_id,)).fetchone()
        return None if row is None else dict(row)

    _UPLOAD_COLUMNS = frozenset({"status", "upload_offset", "attempts", "error_code", "error_reason", "already_held",
                                 "verification", "done_at"})

    def update_upload(self, media_id: str, now: str, **changes: Any) -> None:
        unknown = set(changes) - self._UPLOAD_COLUMNS
        if unknown:
            raise ValueError(f"unknown upload columns: {sorted(unknown)}")
        assignments = ", ".join(f"{column} = ?" for column in changes)
        with self.transaction() as conn:
            conn.execute(f"UPDATE uploads SET {assignments}{', ' if changes else ''}updated_at = ? WHERE media_id = ?",
                         (*changes.values(), now, media_id))

    # ---- conflicts -----------------------------------------------------------------------

    def add_conflict(self, mutation: MutationRow, now: str) -> None:
        with self.transaction() as conn:
            conn.execute("INSERT INTO conflicts (mutation_id, entity, entity_id, fields, detected_at) "
                         "VALUES (?, ?, ?, ?, ?) ON CONFLICT (mutation_id) DO NOTHING",
                         (mutation.id, mutation.entity, mutation.entity_id, dumps(mutation.fields), now))

    def conflicts(self, *, user_id: str | None = None) -> list[dict[str, Any]]:
        query = "SELECT c.* FROM conflicts AS c JOIN outbox AS o ON o.id = c.mutation_id"
        params: list[Any] = []
        if user_id is not None:
            query += " WHERE o.user_id = ?"
            params.append(user_id)
        return [{**dict(r), "fields": loads(r["fields"])}
                for r in self._conn.execute(query + " ORDER BY c.detected_at, c.mutation_id", params)]
