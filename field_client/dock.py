"""``fieldsync dock``: a collection workstation uploads a docked bodycam's footage, unattended.

A pass scans a folder for recording segments named ``DEVICE_YYYYMMDDHHMMSS_NNNN.MP4``
(case-insensitive extension; anything else is ignored and logged once), hashes
each new file (SHA-256, streamed), uploads it over tus (``field_client.uploads``)
with the metadata the server wants (``sha256``, ``filename``, ``filetype``,
``device_id`` — the DEVICE part of the name — and ``capture_start`` from the
name in the office's UTC offset), and confirms the server holds the hash with
``GET /api/v1/media?sha256=``. With ``delete_verified`` a local file is
deleted only once the server reports its verification as ``verified``, and
only after it has been hashed again and still matches.

State lives in a SQLite file (default ``DIR/.fieldsync-dock.db``; WAL,
``synchronous=FULL``, one transaction per change, like the tablet store):

- ``files``: one row per (path, size, mtime) the dock has seen, with its
  SHA-256 and where it stands: ``hashed`` → ``uploading`` (offset) →
  ``uploaded`` → ``confirmed`` (→ ``deleted``); or ``failed`` (code, reason;
  not retried unless asked), ``changed`` (the file changed after it was
  hashed: a newer row carries the new content), ``missing`` (vanished before
  the server had it).
- ``tus_urls``: tuspy's URL storage, so an upload cut by a power loss resumes.

A file is never uploaded twice: a known (path, size, mtime) is not hashed
again, and before any upload the server is asked whether it already holds the
hash. Every upload carries a capture manifest signed with the dock's own
key (``field_client.provenance``: the key file and the chain beside the
state, the public key registered once with ``POST /api/v1/devices/key``),
in the ``manifest``/``manifest_signature`` metadata; a file's manifest is
signed once and kept in its row. Credentials are the device's id and secret; the device token from
``POST /api/v1/auth/device-token`` is kept in memory only and renewed when it
expires or is refused. The log (``log_path``) is in English and never holds
the secret or a token; messages for people are in Chinese.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import re
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TextIO

import requests

from field_client import durable
from field_client.durable import DurableTransactions
from field_client.provenance import DeviceSigner, SigningError, iso_utc
from field_client.transport import HttpTransport, Response, Transport, TransportError
from field_client.uploads import (
    DEFAULT_CHUNK_SIZE,
    DEFAULT_TIMEOUT,
    HASH_BLOCK,
    TUS_URLS_SCHEMA,
    UPLOADS_PATH,
    SQLiteURLStorage,
    TusSender,
    UploadError,
    UploadJob,
    UploadUnauthorized,
    default_backoff,
    sha256_file,
)

API = "/api/v1"
STATE_NAME = ".fieldsync-dock.db"
SEGMENT = re.compile(r"^(?P<device>[A-Za-z0-9][A-Za-z0-9-]{0,63})_(?P<stamp>\d{14})_(?P<seq>\d{4})\.mp4$",
                     re.IGNORECASE)
OFFSET = re.compile(r"^([+-])(\d{2}):?(\d{2})$")
STATE_VERSION = 2
# From the version before: the signed capture manifest of each file (issue 17).
_UPGRADES = {2: ("ALTER TABLE files ADD COLUMN manifest TEXT", "ALTER TABLE files ADD COLUMN manifest_signature TEXT")}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    path          TEXT NOT NULL,
    size          INTEGER NOT NULL,
    mtime_ns      INTEGER NOT NULL,
    sha256        TEXT NOT NULL,
    device_id     TEXT NOT NULL,
    capture_start TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('hashed', 'uploading', 'uploaded', 'confirmed', 'deleted',
                                                  'failed', 'changed', 'missing')),
    upload_offset INTEGER NOT NULL DEFAULT 0,
    attempts      INTEGER NOT NULL DEFAULT 0,
    error_code    TEXT,
    error_reason  TEXT,
    media_id      TEXT,
    verification  TEXT,
    first_seen    TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    uploaded_at   TEXT,
    confirmed_at  TEXT,
    deleted_at    TEXT,
    manifest      TEXT,
    manifest_signature TEXT,
    UNIQUE (path, size, mtime_ns)
);
CREATE INDEX IF NOT EXISTS files_sha256 ON files (sha256);
CREATE INDEX IF NOT EXISTS files_status ON files (status, id);
""" + TUS_URLS_SCHEMA + ";"

WORK = ("hashed", "uploading", "uploaded")


class DockError(Exception):
    """Stops the dock: the message (Chinese) says why."""


class DockUnavailable(DockError):
    """The server could not be reached or kept failing; the files wait for the next pass."""


# ---- names ------------------------------------------------------------------------------

def parse_utc_offset(text: str) -> timezone:
    """``+08:00`` (or ``+0800``, ``-05:30``) → a fixed ``timezone``."""
    match = OFFSET.match(text.strip())
    if not match:
        raise ValueError(f"UTC 偏移应形如 +08:00：{text!r}")
    sign, hours, minutes = match.group(1), int(match.group(2)), int(match.group(3))
    if hours > 14 or minutes > 59:
        raise ValueError(f"UTC 偏移超出范围：{text!r}")
    delta = timedelta(hours=hours, minutes=minutes)
    return timezone(-delta if sign == "-" else delta)


@dataclass(frozen=True)
class Segment:
    device_id: str
    capture_start: str  # ISO 8601 with the office's offset


def parse_segment(name: str, tz: timezone) -> Segment | None:
    """A segment's device and start time from its name, or None if it is not a segment's name."""
    match = SEGMENT.match(name)
    if not match:
        return None
    stamp = match.group("stamp")
    try:
        start = datetime(int(stamp[0:4]), int(stamp[4:6]), int(stamp[6:8]), int(stamp[8:10]), int(stamp[10:12]),
                         int(stamp[12:14]), tzinfo=tz)
    except ValueError:
        return None
    return Segment(match.group("device"), start.isoformat())


# ---- the state database -----------------------------------------------------------------

class DockState(DurableTransactions):
    """The dock's SQLite state; every change is one durable transaction."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        fresh = not path.exists()
        try:
            self._conn = durable.connect(path)
        except sqlite3.Error as exc:
            raise DockError(f"无法打开状态库 {path}：{exc}") from exc
        self._depth = 0
        try:
            durable.set_durable_pragmas(self._conn)
            version = self._conn.execute("PRAGMA user_version").fetchone()[0]
            if version > STATE_VERSION:
                raise DockError(f"状态库 {path} 由更新版本的 fieldsync 创建，请升级 fieldsync")
            if version < STATE_VERSION:
                with self.transaction() as conn:
                    if version == 0:
                        for statement in _SCHEMA.split(";"):
                            if statement.strip():
                                conn.execute(statement)
                    else:
                        for step in range(version + 1, STATE_VERSION + 1):
                            for statement in _UPGRADES[step]:
                                conn.execute(statement)
                    conn.execute(f"PRAGMA user_version={STATE_VERSION}")
        except sqlite3.DatabaseError as exc:
            self._conn.close()
            raise DockError(f"状态库 {path} 无法使用：{exc}") from exc
        except DockError:
            self._conn.close()
            raise
        if fresh:
            with contextlib.suppress(OSError):
                os.chmod(path, 0o600)

    def close(self) -> None:
        self._conn.close()


    def find(self, path: str, size: int, mtime_ns: int) -> dict[str, Any] | None:
        row = self._conn.execute("SELECT * FROM files WHERE path = ? AND size = ? AND mtime_ns = ?",
                                 (path, size, mtime_ns)).fetchone()
        return None if row is None else dict(row)

    def get(self, id: int) -> dict[str, Any]:
        return dict(self._conn.execute("SELECT * FROM files WHERE id = ?", (id,)).fetchone())

    def rows(self, *statuses: str, path: str | None = None) -> list[dict[str, Any]]:
        clauses, params = [], []
        if statuses:
            clauses.append(f"status IN ({', '.join('?' for _ in statuses)})")
            params.extend(statuses)
        if path is not None:
            clauses.append("path = ?")
            params.append(path)
        where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
        return [dict(r) for r in self._conn.execute(f"SELECT * FROM files{where} ORDER BY id", params)]

    def add(self, *, path: str, size: int, mtime_ns: int, sha256: str, segment: Segment, now: str) -> int:
        with self.transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO files (path, size, mtime_ns, sha256, device_id, capture_start, status, first_seen, "
                "updated_at) VALUES (?, ?, ?, ?, ?, ?, 'hashed', ?, ?)",
                (path, size, mtime_ns, sha256, segment.device_id, segment.capture_start, now, now))
            return int(cursor.lastrowid or 0)

    _COLUMNS = frozenset({"status", "upload_offset", "attempts", "error_code", "error_reason", "media_id",
                          "verification", "uploaded_at", "confirmed_at", "deleted_at", "manifest",
                          "manifest_signature"})

    def update(self, id: int, now: str, **changes: Any) -> None:
        unknown = set(changes) - self._COLUMNS
        if unknown:
            raise ValueError(f"unknown columns: {sorted(unknown)}")
        assignments = "".join(f"{column} = ?, " for column in changes)
        with self.transaction() as conn:
            conn.execute(f"UPDATE files SET {assignments}updated_at = ? WHERE id = ?", (*changes.values(), now, id))


# ---- the log ------------------------------------------------------------------------------

class DockLog:
    """Appends English lines to ``path`` (if any); never given a secret or a token."""

    def __init__(self, path: Path | None, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._handle: TextIO | None = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = open(path, "a", encoding="utf-8")

    def write(self, level: str, message: str) -> None:
        if self._handle is None:
            return
        stamp = datetime.fromtimestamp(self._clock(), UTC).astimezone().isoformat(timespec="seconds")
        self._handle.write(f"{stamp} {level} {message}\n")
        self._handle.flush()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


# ---- the dock -------------------------------------------------------------------------------

@dataclass
class DockConfig:
    folder: Path
    server_url: str
    device_id: str  # whose credentials: the dock's, or the docked camera's own
    secret: str
    camera: str | None = None  # only this camera's segments (the DEVICE part of their names)
    utc_offset: timezone = timezone(timedelta(hours=8))
    state_path: Path | None = None
    log_path: Path | None = None
    delete_verified: bool = False
    retry_failed: bool = False
    chunk_size: int = DEFAULT_CHUNK_SIZE


@dataclass
class PassReport:
    found: int = 0  # segment files in the folder
    new: int = 0  # hashed this pass
    uploaded: int = 0  # sent this pass
    resumed: int = 0  # of which went on from an interrupted upload
    already: int = 0  # the server already held the hash: nothing sent
    confirmed: int = 0  # the server confirmed the hash this pass
    deleted: int = 0
    kept: int = 0  # confirmed, but not (yet) verified by the server: kept
    ignored: int = 0  # files that are not segments
    busy: int = 0  # still being written: next pass
    changed: int = 0  # changed after hashing: the new content was taken
    bytes_sent: int = 0
    failed: list[tuple[str, str, str]] = field(default_factory=list)  # (path, code, reason), this pass
    failed_before: int = 0  # failed in earlier passes, not retried
    unconfirmed: int = 0  # uploaded, but the server did not list the hash yet
    error: str | None = None  # why the pass stopped early

    @property
    def ok(self) -> bool:
        return not (self.failed or self.failed_before or self.unconfirmed or self.error)


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).astimezone().isoformat(timespec="milliseconds")


class Dock:
    """One docked folder, one server, one set of device credentials.

    ``transport`` carries the JSON calls (device token, media look-ups);
    ``session`` the tus uploads. ``sleep``, ``clock`` and ``backoff`` are
    injectable so tests run retries instantly.
    """

    def __init__(self, config: DockConfig, *, transport: Transport | None = None,
                 session: requests.Session | None = None, out: TextIO | None = None, err: TextIO | None = None,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.time,
                 backoff: Callable[[int, str | None], float] = default_backoff, max_attempts: int = 5,
                 timeout: Any = DEFAULT_TIMEOUT) -> None:
        folder = config.folder.expanduser()
        if not folder.is_dir():
            raise DockError(f"找不到目录：{folder}")
        self.config = config
        self.folder = folder.resolve()
        self.state_path = (config.state_path or self.folder / STATE_NAME).expanduser().resolve()
        self._skip = {self.state_path, Path(str(self.state_path) + "-wal"), Path(str(self.state_path) + "-shm"),
                      Path(str(self.state_path) + ".lock")}
        if config.log_path is not None:
            self._skip.add(config.log_path.expanduser().resolve())
        self.transport = transport or HttpTransport(config.server_url)
        self._own_session = session is None
        self.session = session or requests.Session()
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.sleep = sleep
        self.clock = clock
        self.backoff = backoff
        self.max_attempts = max(1, max_attempts)
        self.timeout = timeout
        self._lock_handle = self._lock()
        try:
            self.state = DockState(self.state_path)
        except BaseException:
            self._lock_handle.close()
            raise
        self.log = DockLog(config.log_path.expanduser() if config.log_path else None, clock)
        try:
            # The device's signing key, beside the state: made on first start, registered with the server once.
            self.signer = DeviceSigner(self.state_path.parent, config.device_id)
        except SigningError as exc:
            self.close()
            raise DockError(str(exc)) from None
        except OSError as exc:
            self.close()
            raise DockError(f"无法创建或读取签名密钥（{self.state_path.parent}）：{exc.strerror or exc}") from None
        if self.signer.created:
            self._say(f"已为设备 {config.device_id} 生成签名密钥 {self.signer.key_path}"
                      f"（公钥指纹 {self.signer.fingerprint}）",
                      f"signing key created for {config.device_id}: {self.signer.key_path} "
                      f"(fingerprint {self.signer.fingerprint})")
        self._key_note_said = False
        self._access: str | None = None
        self._expires_at = 0.0
        self._ignored: set[str] = set()
        self._progress_at = 0.0

    def _lock(self) -> Any:
        """One dock process per state file: a second one would upload the same files at once."""
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(str(self.state_path) + ".lock", "a+")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            raise DockError(f"另一个 fieldsync dock 正在使用状态库 {self.state_path}，本次不运行") from None
        return handle

    def close(self) -> None:
        self.log.close()
        self.state.close()
        if self._own_session:
            self.session.close()
        self._lock_handle.close()

    def __enter__(self) -> Dock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _now(self) -> str:
        return _iso(self.clock())

    def _say(self, zh: str, en: str, level: str = "INFO") -> None:
        """A message for the person at the workstation (Chinese) and the log (English)."""
        self.err.write(zh + "\n")
        self.err.flush()
        self.log.write(level, en)

    # ---- the server -------------------------------------------------------------------------

    def _obtain_token(self) -> None:
        response = self._request("POST", f"{API}/auth/device-token",
                                 json_body={"device_id": self.config.device_id, "device_secret": self.config.secret},
                                 auth=False)
        body = response.body if isinstance(response.body, dict) else {}
        if response.status == 200 and isinstance(body.get("access_token"), str):
            lifetime = body.get("expires_in") if isinstance(body.get("expires_in"), int) else 300
            self._access = body["access_token"]
            # Renew a little before it runs out, so a chunk never leaves with a dying token.
            self._expires_at = self.clock() + max(lifetime * 0.5, lifetime - 60)
            self.log.write("INFO", f"device token obtained for {self.config.device_id} (valid {lifetime} s)")
            return
        code, reason = response.problem
        self.log.write("ERROR", f"device token refused for {self.config.device_id}: HTTP {response.status} {code}")
        if response.status in (400, 401, 403, 422):
            raise DockError(f"设备 {self.config.device_id} 的凭据被服务器拒绝（{code}）：{reason}。"
                            "请检查设备编号和密钥文件")
        raise DockUnavailable(f"无法取得设备令牌（HTTP {response.status} {code}）：{reason}")

    def _token(self) -> str:
        if self._access is None or self.clock() >= self._expires_at:
            self._obtain_token()
        assert self._access is not None
        return self._access

    def _renew(self, old: str) -> None:
        if self._access == old:
            self._access = None
        self._token()

    def _request(self, method: str, path: str, *, json_body: Any = None, query: Mapping[str, Any] | None = None,
                 auth: bool = True, retried: list[int] | None = None) -> Response:
        """One JSON call: retried on no answer, 5xx and 429; the token renewed once on 401.

        ``retried`` (if given) gets the number of each attempt that is retried (the server may have done it).
        """
        attempt = 0
        renewed = False
        while True:
            attempt += 1
            headers: dict[str, str] = {}
            if auth:
                headers["Authorization"] = f"Bearer {self._token()}"
            retry_after = None
            try:
                response = self.transport.request(method, path, json_body=json_body, query=query, headers=headers)
            except TransportError as exc:
                failure = str(exc)
            else:
                if response.status == 401 and auth:
                    if renewed:
                        code, reason = response.problem
                        raise DockError(f"设备令牌被服务器拒绝（{code}）：{reason}")
                    renewed = True
                    self._access = None
                    attempt -= 1
                    continue
                if response.status < 500 and response.status != 429:
                    return response
                code, reason = response.problem
                failure = f"HTTP {response.status} {code}：{reason}"
                retry_after = response.header("Retry-After")
            if attempt >= self.max_attempts:
                raise DockUnavailable(f"服务器暂时无法访问（已尝试 {attempt} 次）：{failure}")
            if retried is not None:
                retried.append(attempt)
            self.sleep(self.backoff(attempt, retry_after))

    def lookup(self, sha256: str) -> list[dict[str, Any]]:
        """The server's media with this hash (``GET /api/v1/media?sha256=``)."""
        response = self._request("GET", f"{API}/media", query={"sha256": sha256})
        if response.status == 404:
            return []
        if response.status != 200:
            code, reason = response.problem
            raise DockUnavailable(f"查询服务器上的文件失败（HTTP {response.status} {code}）：{reason}")
        body = response.body
        if isinstance(body, dict):
            for key in ("items", "media", "results", "data"):
                if isinstance(body.get(key), list):
                    body = body[key]
                    break
            else:
                body = [body] if body.get("sha256") else []
        if not isinstance(body, list):
            return []
        return [m for m in body if isinstance(m, dict) and m.get("sha256") == sha256]

    @staticmethod
    def verification(items: list[dict[str, Any]]) -> str | None:
        """The weakest verification among the server's records of a hash ("verified" only if all are)."""
        order = ["failed", "needs_review", "pending", "verified"]
        found = []
        for item in items:
            verification = item.get("verification")
            status = verification.get("status") if isinstance(verification, dict) else None
            found.append(status if status in order else "pending")
        return min(found, key=order.index) if found else None

    # ---- a pass ---------------------------------------------------------------------------------

    def run_pass(self) -> PassReport:
        report = PassReport()
        failed_before: set[int] = set()
        self.log.write("INFO", f"pass started: folder {self.folder}")
        try:
            if self.config.retry_failed:
                for row in self.state.rows("failed", "missing"):
                    self.state.update(row["id"], self._now(), status="hashed", error_code=None, error_reason=None)
                    self.log.write("INFO", f"retrying {row['path']} (failed before: {row['error_code']})")
            failed_before = {r["id"] for r in self.state.rows("failed", "missing")}
            for relative, path in self._scan(report):
                self._register(relative, path, report)
            self._register_key()
            sender = self._sender()
            for row in self.state.rows(*WORK):
                self._process(sender, row, report)
            if self.config.delete_verified:
                for row in self.state.rows("confirmed"):
                    self._maybe_delete(row, report)
        except DockUnavailable as exc:
            report.error = str(exc)
            self._say(f"本轮中止：{exc}。未完成的文件下次继续", f"pass stopped: {_english(exc)}", "ERROR")
        # Earlier failures that still stand (a replaced file supersedes its failed row).
        report.failed_before = len(failed_before & {r["id"] for r in self.state.rows("failed", "missing")})
        self.log.write("INFO" if report.ok else "WARNING",
                       f"pass finished: {report.found} segments, {report.new} new, {report.uploaded} uploaded "
                       f"({report.resumed} resumed, {report.bytes_sent} bytes), "
                       f"{report.already} already on the server, "
                       f"{report.confirmed} confirmed, {report.deleted} deleted, {report.kept} kept, "
                       f"{len(report.failed)} failed, {report.failed_before} failed earlier, "
                       f"{report.unconfirmed} unconfirmed, {report.busy} busy, {report.ignored} ignored")
        return report

    def _sender(self) -> TusSender:
        return TusSender(self.config.server_url.rstrip("/") + UPLOADS_PATH, session=self.session,
                         storage=SQLiteURLStorage(self.state.transaction), token=self._token, renew=self._renew,
                         chunk_size=self.config.chunk_size, timeout=self.timeout, sleep=self.sleep,
                         backoff=self.backoff, max_attempts=self.max_attempts)

    def _scan(self, report: PassReport) -> Iterator[tuple[str, Path]]:
        """Segment files under the folder (hidden files and folders skipped), in name order."""
        for root, dirs, files in os.walk(self.folder):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(files):
                path = Path(root) / name
                if name.startswith(".") or path in self._skip or not path.is_file():
                    continue
                relative = path.relative_to(self.folder).as_posix()
                segment = parse_segment(name, self.config.utc_offset)
                reason = None
                if segment is None:
                    reason = "not a segment file (DEVICE_YYYYMMDDHHMMSS_NNNN.MP4)"
                elif self.config.camera and segment.device_id != self.config.camera:
                    reason = f"belongs to device {segment.device_id}, not {self.config.camera}"
                if reason:
                    report.ignored += 1
                    if relative not in self._ignored:
                        self._ignored.add(relative)
                        self.log.write("INFO", f"ignored {relative}: {reason}")
                    continue
                report.found += 1
                yield relative, path

    def _register(self, relative: str, path: Path, report: PassReport) -> dict[str, Any] | None:
        """Hash a file the dock has not seen in this shape (path, size, mtime); None if busy or known."""
        try:
            before = path.stat()
        except OSError:
            return None
        if self.state.find(relative, before.st_size, before.st_mtime_ns) is not None:
            return None
        earlier = self.state.rows("hashed", "uploading", "uploaded", "confirmed", "failed", "missing", path=relative)
        try:
            digest, size = sha256_file(path, HASH_BLOCK)
            after = path.stat()
        except OSError as exc:
            self._say(f"无法读取 {relative}：{exc.strerror or exc}", f"cannot read {relative}: {exc}", "WARNING")
            return None
        if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns) or size != after.st_size:
            report.busy += 1
            self.log.write("INFO", f"{relative} is still being written; next pass")
            return None
        for old in earlier:
            report.changed += 1
            self.state.update(old["id"], self._now(), status="changed",
                              error_code="changed", error_reason="file changed after it was hashed")
            if old["status"] == "confirmed":
                self._say(f"注意：{relative} 在上传之后被修改过。服务器保留原先的内容（sha256 {old['sha256']}），"
                          "修改后的内容将另行上传",
                          f"{relative} changed after it was uploaded (sha256 {old['sha256']}); "
                          "the server keeps that content, the new content is uploaded as well", "WARNING")
            else:
                self._say(f"注意：{relative} 在计算哈希之后被修改过，将按新内容重新计算并上传",
                          f"{relative} changed after it was hashed (was sha256 {old['sha256']}); "
                          "hashing and uploading the new content", "WARNING")
        segment = parse_segment(path.name, self.config.utc_offset)
        assert segment is not None
        id = self.state.add(path=relative, size=size, mtime_ns=after.st_mtime_ns, sha256=digest, segment=segment,
                            now=self._now())
        report.new += 1
        self.log.write("INFO", f"hashed {relative}: sha256 {digest}, {size} bytes, device {segment.device_id}, "
                               f"capture_start {segment.capture_start}")
        return self.state.get(id)

    def _still_same(self, row: dict[str, Any]) -> bool | None:
        """True if the file is as hashed, False if it changed, None if it is gone."""
        try:
            stat = (self.folder / row["path"]).stat()
        except FileNotFoundError:
            return None
        except OSError:
            return False
        return (stat.st_size, stat.st_mtime_ns) == (row["size"], row["mtime_ns"])

    def _process(self, sender: TusSender, row: dict[str, Any], report: PassReport, depth: int = 0) -> None:
        relative = row["path"]
        if row["status"] in ("hashed", "uploading"):
            same = self._still_same(row)
            if same is None:
                self.state.update(row["id"], self._now(), status="missing", error_code="missing",
                                  error_reason="file vanished before the server had it")
                report.failed.append((relative, "missing", "文件在上传前消失"))
                self._say(f"✗ {relative} 在上传前消失，服务器没有收到该文件",
                          f"{relative} vanished before it was uploaded (sha256 {row['sha256']})", "ERROR")
                return
            if not same:
                self._reprocess(sender, row, report, depth)
                return
            items = self.lookup(row["sha256"])
            if items:
                report.already += 1
                self._confirmed(row, items, report, uploaded=False)
                return
            if not self._upload(sender, row, report, depth):
                return
            row = self.state.get(row["id"])
        # uploaded: the server took the last byte; confirm it lists the hash.
        items = self.lookup(row["sha256"])
        if items:
            self._confirmed(row, items, report, uploaded=row["status"] == "uploaded")
        else:
            report.unconfirmed += 1
            self.state.update(row["id"], self._now(), error_code="not-confirmed",
                              error_reason="uploaded, but the server does not list the hash yet")
            self._say(f"? {relative} 已上传，但服务器暂未列出该哈希，下次再确认",
                      f"{relative} uploaded but not yet listed by the server (sha256 {row['sha256']})", "WARNING")

    def _reprocess(self, sender: TusSender, row: dict[str, Any], report: PassReport, depth: int) -> None:
        """The file changed after it was hashed: take its new content (at most twice per pass)."""
        path = self.folder / row["path"]
        fresh = self._register(row["path"], path, report)
        if fresh is None:
            # Still being written, or the same shape re-appeared: look again next pass.
            if self.state.get(row["id"])["status"] in WORK:
                self.state.update(row["id"], self._now(), status="changed", error_code="changed",
                                  error_reason="file changed after it was hashed")
                report.changed += 1
            return
        if depth < 2:
            self._process(sender, fresh, report, depth + 1)

    def _upload(self, sender: TusSender, row: dict[str, Any], report: PassReport, depth: int) -> bool:
        """Send the file; True once the server took the last byte."""
        relative, path = row["path"], self.folder / row["path"]
        metadata = {"sha256": row["sha256"], "filename": path.name, "filetype": "video/mp4",
                    "device_id": row["device_id"], "capture_start": row["capture_start"]}
        manifest, signature = self._manifest(row)
        metadata.update(manifest=manifest, manifest_signature=signature)
        server = self.config.server_url.rstrip("/")
        job = UploadJob(path, row["size"], row["sha256"], metadata,
                        key=f"dock|{server}|{row['device_id']}|{row['sha256']}|{row['size']}|{row['capture_start']}")
        self.state.update(row["id"], self._now(), status="uploading", attempts=row["attempts"] + 1)
        resumed_at: list[int] = []

        def on_resume(offset: int) -> None:
            if offset:
                resumed_at.append(offset)
                report.resumed += 1
                self.log.write("INFO", f"resuming {relative} at byte {offset} of {row['size']}")

        def on_offset(offset: int) -> None:
            self.state.update(row["id"], self._now(), upload_offset=offset)
            self._progress(relative, offset, row["size"])

        self.log.write("INFO", f"uploading {relative} ({row['size']} bytes)")
        try:
            sent = sender.send(job, on_offset=on_offset, on_resume=on_resume)
        except UploadUnauthorized as exc:
            raise DockError(f"设备令牌在更新后仍被拒绝：{exc.reason}") from None
        except UploadError as exc:
            self._end_progress()
            if not exc.permanent:
                self.state.update(row["id"], self._now(), error_code=exc.code, error_reason=exc.reason)
                raise DockUnavailable(f"{relative} 上传中断（{exc.code}）：{exc.reason}") from None
            code, reason = exc.code, exc.reason
            if code in ("hash-mismatch", "file-changed"):
                same = self._still_same(row)
                if same is False:
                    self._say(f"注意：{relative} 在上传过程中被修改，将按新内容重新上传",
                              f"{relative} changed while it was uploaded ({code}); re-hashing", "WARNING")
                    self._reprocess(sender, row, report, depth)
                    return False
                if same and sha256_file(path)[0] != row["sha256"]:
                    # Same size and modification time, other bytes: nobody should do that to footage.
                    code, reason = "content-changed", ("文件内容在计算哈希后被改动，但大小和修改时间未变；"
                                                       "不自动上传，请人工核查")
                elif code == "hash-mismatch":
                    reason = (f"服务器收到的内容与本机计算的 SHA-256 不符（{exc.reason}）；"
                              "不自动重试，可用 --retry-failed 重试")
            self.state.update(row["id"], self._now(), status="failed", error_code=code, error_reason=reason)
            report.failed.append((relative, code, reason))
            self._say(f"✗ {relative} 上传失败 [{code}]：{reason}",
                      f"{relative} upload failed: {code} (HTTP {exc.status}): {_english(exc)}", "ERROR")
            return False
        self._end_progress()
        now = self._now()
        self.state.update(row["id"], now, status="uploaded", upload_offset=row["size"], uploaded_at=now,
                          error_code=None, error_reason=None)
        report.uploaded += 1
        report.bytes_sent += sent
        how = f"resumed at byte {resumed_at[0]}" if resumed_at else "from the start"
        self.log.write("INFO", f"uploaded {relative}: {sent} bytes sent ({how}), sha256 {row['sha256']}")
        return True

    # ---- signed capture manifests --------------------------------------------------------------

    def _register_key(self) -> None:
        """Register the dock's public key with the server, once (``POST /api/v1/devices/key``)."""
        server = self.config.server_url.rstrip("/")
        signer = self.signer
        if signer.registered_with(server):
            return
        # An attempt whose answer never came (cut, crash) may have registered this key: then a 409 is ours.
        unanswered = signer.attempting(server)
        retried: list[int] = []
        response = self._request("POST", f"{API}/devices/key", json_body={"public_key": signer.public_key},
                                 retried=retried)
        unanswered = unanswered or bool(retried)
        signer.attempted(server)
        code, reason = response.problem
        if response.status in (200, 201):
            signer.note_registered(server)
            self._say(f"已向服务器登记设备 {self.config.device_id} 的签名公钥（指纹 {signer.fingerprint}）",
                      f"public key registered for {self.config.device_id} (fingerprint {signer.fingerprint})")
            return
        if response.status in (404, 405):
            # A server without device keys: the manifests travel all the same and are ignored there.
            if not self._key_note_said:
                self._key_note_said = True
                self._say("服务器暂不支持登记设备签名公钥，录像照常上传；服务器升级后将自动登记",
                          f"the server takes no device keys (HTTP {response.status}); uploading, will register later",
                          "WARNING")
            return
        if response.status == 409 and code == "device-key-registered":
            held = self._registered_key(response.body)
            # The server may not say which key it holds: ours if an earlier attempt of ours went unanswered.
            if held == signer.public_key or (held is None and unanswered):
                signer.note_registered(server)
                self.log.write("INFO", f"the server holds a key for {self.config.device_id}: taken as ours "
                                       f"(fingerprint {signer.fingerprint}; an earlier registration went unanswered)")
                return
        if response.status == 409:
            raise DockError(f"服务器上设备 {self.config.device_id} 登记的签名公钥不是本机密钥文件 "
                            f"{signer.key_path} 中的公钥（指纹 {signer.fingerprint}）：{reason}。"
                            "本机签名的录像将无法通过校验，已停止上传。"
                            "请管理员在服务器上清除旧公钥后重新运行，或换回原来的密钥文件")
        raise DockError(f"服务器拒绝登记设备 {self.config.device_id} 的签名公钥"
                        f"（HTTP {response.status} {code}）：{reason}")

    @staticmethod
    def _registered_key(body: Any) -> str | None:
        """The public key a 409 says the server holds, if it says."""
        if isinstance(body, dict):
            for value in (body.get("public_key"), body.get("registered_public_key")):
                if isinstance(value, str):
                    return value
        return None

    def _manifest(self, row: dict[str, Any]) -> tuple[str, str]:
        """The file's signed manifest (base64url) and signature: signed once, kept with its row."""
        if row.get("manifest") and row.get("manifest_signature"):
            return row["manifest"], row["manifest_signature"]
        start = datetime.fromisoformat(row["capture_start"])
        # The segment ends when the camera last wrote it (its modification time), never before it starts.
        end = max(start, datetime.fromtimestamp(row["mtime_ns"] / 1e9, UTC))
        fields = {"sha256": row["sha256"], "size": row["size"], "media_type": "video/mp4",
                  "capture_start": iso_utc(start), "capture_end": iso_utc(end), "media_id": None, "task_id": None,
                  "inspection_id": None, "inspector": None, "location": None}
        item = f"{self.state_path}|{row['id']}|{row['sha256']}"
        try:
            signed = self.signer.sign(item, fields, datetime.fromtimestamp(self.clock(), UTC))
        except SigningError as exc:
            raise DockError(str(exc)) from None
        self.state.update(row["id"], self._now(), manifest=signed.manifest, manifest_signature=signed.signature)
        self.log.write("INFO", f"signed manifest {signed.counter} of {self.config.device_id} for {row['path']} "
                               f"(manifest sha256 {signed.hash})")
        return signed.manifest, signed.signature

    def _confirmed(self, row: dict[str, Any], items: list[dict[str, Any]], report: PassReport, *,
                   uploaded: bool) -> None:
        status = self.verification(items)
        media_id = str(items[0].get("id")) if items[0].get("id") is not None else None
        self.state.update(row["id"], self._now(), status="confirmed", media_id=media_id, verification=status,
                          confirmed_at=self._now(), error_code=None, error_reason=None)
        report.confirmed += 1
        if uploaded:
            self._say(f"✓ {row['path']} 已上传并经服务器确认（校验状态：{status}）",
                      f"confirmed {row['path']}: media {media_id}, verification {status}")
        else:
            self._say(f"✓ {row['path']} 服务器已有该文件，无需上传",
                      f"{row['path']} already on the server (media {media_id}, sha256 {row['sha256']}); not uploaded")

    def _maybe_delete(self, row: dict[str, Any], report: PassReport) -> None:
        relative, path = row["path"], self.folder / row["path"]
        same = self._still_same(row)
        if same is None:
            return  # removed by someone else; nothing to delete
        items = self.lookup(row["sha256"])
        status = self.verification(items)
        if status != row["verification"]:
            self.state.update(row["id"], self._now(), verification=status)
        if status != "verified":
            report.kept += 1
            self.log.write("INFO", f"kept {relative}: server verification is {status or 'unknown'}")
            return
        if not same or sha256_file(path)[0] != row["sha256"]:
            self.state.update(row["id"], self._now(), status="changed", error_code="changed",
                              error_reason="file changed after it was uploaded; not deleted")
            report.changed += 1
            self._say(f"注意：{relative} 与已上传的内容不一致，未删除", f"{relative} differs from what was uploaded; "
                      "not deleted", "WARNING")
            return
        try:
            path.unlink()
        except OSError as exc:
            self._say(f"无法删除 {relative}：{exc.strerror or exc}", f"cannot delete {relative}: {exc}", "WARNING")
            return
        with contextlib.suppress(OSError):
            directory = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
        self.state.update(row["id"], self._now(), status="deleted", deleted_at=self._now())
        report.deleted += 1
        self._say(f"已删除本机文件 {relative}（服务器已校验通过）",
                  f"deleted {relative}: the server verified sha256 {row['sha256']}")

    # ---- progress on stderr -----------------------------------------------------------------------

    def _progress(self, relative: str, done: int, total: int) -> None:
        if total < 8 * 1024 * 1024:
            return  # short uploads need no progress line
        tty = self.err.isatty()
        now = time.monotonic()
        if not tty and now - self._progress_at < 10 and done < total:
            return
        self._progress_at = now
        text = f"上传 {relative} {done / 1048576:.1f}/{total / 1048576:.1f} MiB（{done * 100 // max(total, 1)}%）"
        self.err.write(("\r\033[K" + text) if tty else text + "\n")
        self.err.flush()

    def _end_progress(self) -> None:
        if self.err.isatty():
            self.err.write("\r\033[K")
            self.err.flush()

    # ---- summary -----------------------------------------------------------------------------------

    def summary(self, report: PassReport) -> str:
        parts = [f"发现录像分段 {report.found} 个", f"新增 {report.new} 个", f"上传 {report.uploaded} 个"]
        if report.resumed:
            parts.append(f"其中续传 {report.resumed} 个")
        if report.already:
            parts.append(f"服务器已有 {report.already} 个")
        parts.append(f"确认 {report.confirmed} 个")
        if self.config.delete_verified:
            parts.append(f"删除 {report.deleted} 个，待服务器校验而保留 {report.kept} 个")
        if report.ignored:
            parts.append(f"忽略非录像文件 {report.ignored} 个")
        if report.busy:
            parts.append(f"仍在写入 {report.busy} 个")
        if report.failed:
            parts.append(f"失败 {len(report.failed)} 个")
        if report.failed_before:
            parts.append(f"此前失败未重试 {report.failed_before} 个（可加 --retry-failed）")
        if report.unconfirmed:
            parts.append(f"待确认 {report.unconfirmed} 个")
        return "，".join(parts)

    def run(self, *, watch: float | None = None, passes: int | None = None) -> int:
        """One pass (``watch`` None) or passes every ``watch`` seconds until interrupted; the exit code."""
        code = 0
        done = 0
        try:
            while True:
                report = self.run_pass()
                self.out.write(self.summary(report) + "\n")
                self.out.flush()
                code = 0 if report.ok else 1
                done += 1
                if watch is None or (passes is not None and done >= passes):
                    break
                self.sleep(watch)
        except KeyboardInterrupt:
            self.log.write("INFO", "interrupted")
            self.err.write("已中断；已完成的部分都已记录，下次从中断处继续\n")
        return code


def _english(exc: BaseException) -> str:
    """An exception's text for the log: the server's detail may be Chinese, and that is fine; never a secret."""
    return str(getattr(exc, "reason", None) or exc).replace("\n", " ")[:300]
