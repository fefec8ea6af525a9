"""The offline client: capture on the tablet, push and pull when there is a network.

``FieldClient`` is what a tablet app (or a test, or ``fieldsync``) drives.
Every capture — an inspection started, a finding, a measure, a photo — becomes
a mutation in the local outbox in one durable transaction, stamped with the
tablet's hybrid logical clock; nothing needs the network except ``login``,
``push``, ``pull``, ``upload_media`` (evidence files, over tus) and ``sync``.

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

The local view of an entity is its confirmed state overlaid, in order, with
this tablet's mutations the server has not yet shown back on pull (pending
ones, and acknowledged ones newer than the confirmed version). Rejected
mutations are not part of the view; they stay in the outbox with the server's
code and reason until the inspector has seen them.
"""
from __future__ import annotations

import contextlib
import hashlib
import mimetypes
import os
import random
import tempfile
import time
import unicodedata
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import requests

from field_client import hlc
from field_client.store import EntityRow, MutationRow, Store
from field_client.transport import HttpTransport, Response, Transport, TransportError
from field_client.uploads import (DEFAULT_CHUNK_SIZE, DEFAULT_TIMEOUT, UPLOADS_PATH, SQLiteURLStorage, TusSender,
                                  UploadError, UploadJob, UploadUnauthorized, sha256_file)

API = "/api/v1"
MAX_BATCH = 500
HASH_BLOCK = 1 << 20

RESULTS = ("compliant", "non_compliant", "not_applicable")
PROVES = ("certificate", "scene", "signature", "other")
COERCIVE_KINDS = ("seizure", "impoundment", "demolition", "closure", "other")
SIGNER_ROLES = ("inspector", "representative", "witness")
INSPECTION_FIELDS = ("started_at", "ended_at", "place", "representative", "soft_measures", "coercive_measures",
                     "conclusion", "status")
SYNCED_KINDS = ("inspection", "finding", "media", "signature")
REFERENCE_KINDS = ("task", "check_item", "enterprise", "certificate")

ProgressCallback = Callable[[str, int, int], None]


# ---- errors: every message is for the inspector -----------------------------------

class FieldClientError(Exception):
    """Something the inspector needs to know; ``str()`` is the message (Chinese)."""


class LocalError(FieldClientError):
    """Refused on the tablet: unknown task, wrong input, not possible offline."""


class NotLoggedIn(FieldClientError):
    """This tablet has never logged in, so it knows no server, user or device."""


class AuthRequired(FieldClientError):
    """The session expired or was revoked and could not be refreshed: log in again."""


class ServerRefused(FieldClientError):
    """The server refused a whole request (not a single mutation)."""

    def __init__(self, code: str, reason: str, status: int) -> None:
        super().__init__(f"服务器拒绝了请求（{code}）：{reason}")
        self.code = code
        self.reason = reason
        self.status = status


class ServerUnavailable(FieldClientError):
    """No usable answer after the retries; everything captured stays queued."""


# ---- reports ----------------------------------------------------------------------

@dataclass
class Rejection:
    mutation_id: str
    entity: str
    entity_id: str
    code: str
    reason: str
    fields: dict[str, Any]
    at: str


@dataclass
class PushReport:
    sent: int = 0
    applied: int = 0
    duplicate: int = 0
    conflict: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    batches: int = 0


@dataclass
class PullReport:
    pages: int = 0
    changes: int = 0


@dataclass
class UploadFailure:
    media_id: str
    file_name: str | None
    sha256: str
    code: str
    reason: str


@dataclass
class UploadReport:
    """What the evidence upload step did."""

    waiting: int = 0  # files still to go up (the next sync resumes them)
    uploaded: int = 0  # files sent by this sync
    already: int = 0  # files the server already held: nothing sent
    resumed: int = 0  # uploads that went on from where an interrupted one stopped
    bytes_sent: int = 0
    failed: list[UploadFailure] = field(default_factory=list)  # refused for good; not retried by themselves
    error: str | None = None  # why uploading stopped early (network, server); the files wait


@dataclass
class UploadItem:
    """One evidence file's way to the server, as ``status()`` shows it."""

    media_id: str
    sha256: str
    file_name: str | None
    size: int
    status: str  # pending / uploading / done / failed
    offset: int
    attempts: int
    error_code: str | None
    error_reason: str | None
    verification: str | None
    updated_at: str


@dataclass
class SyncReport:
    push: PushReport
    pull: PullReport
    uploads: UploadReport


@dataclass
class PendingItem:
    mutation_id: str
    entity: str
    entity_id: str
    op: str
    fields: dict[str, Any]
    attempts: int
    error_code: str | None
    error_reason: str | None
    created_at: str


@dataclass
class ConflictItem:
    mutation_id: str
    entity: str
    entity_id: str
    fields: dict[str, Any]
    overridden: dict[str, Any]  # field -> the value the server kept instead of ours (known after a pull)
    detected_at: str


@dataclass
class Status:
    server_url: str | None
    username: str | None
    device_id: str | None
    logged_in: bool
    needs_login: bool
    pending: list[PendingItem]
    rejected: list[Rejection]
    conflicts: list[ConflictItem]
    uploads_waiting: int
    last_push_at: str | None
    last_pull_at: str | None
    uploads: list[UploadItem] = field(default_factory=list)  # this user's files: waiting, failed, done


# ---- helpers ------------------------------------------------------------------------

def _iso(epoch_seconds: float) -> str:
    """ISO 8601 with the tablet's UTC offset, as the server requires."""
    return datetime.fromtimestamp(epoch_seconds, timezone.utc).astimezone().isoformat(timespec="milliseconds")


def _uuid(value: str, what: str) -> str:
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise LocalError(f"{what}编号无效：{value}") from None


def _text(value: Any, name: str, limit: int) -> str:
    if not isinstance(value, str):
        raise LocalError(f"{name}应为文本")
    if len(value) > limit:
        raise LocalError(f"{name}不能超过 {limit} 个字符")
    return value


# The server's namespace for the one inspection record of a task (server/sync/entities.py).
INSPECTION_NAMESPACE = uuid.UUID("6f1d3c2e-9b7a-5e40-8c21-4a0f3d9e7b15")


def inspection_id_for(task_id: str) -> str:
    """The id every tablet gives the task's inspection record."""
    return str(uuid.uuid5(INSPECTION_NAMESPACE, str(uuid.UUID(task_id))))


def display_name(path: Path) -> str:
    """A file's name as metadata: its last component, normalised, no path separators."""
    name = unicodedata.normalize("NFC", path.name).replace("/", "_").replace("\\", "_").replace("\x00", "")
    return name[-255:] or "file"


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


def _hlc_from_time(value: str | None, node: str) -> hlc.Stamp | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return hlc.Stamp(int(parsed.timestamp() * 1000), 0, node)


class FieldClient:
    """The tablet's client over one store file; cheap to create.

    Use an instance from one thread; other processes may open the same store
    at the same time (every change is its own locked transaction).

    ``transport`` defaults to HTTP to the server named at login. ``sleep``,
    ``clock`` (epoch seconds) and ``rng`` are injectable so tests can run
    retries and clock trouble instantly. ``progress(phase, done, total)`` is
    called during long syncs with phase ``"push"``, ``"pull"`` or
    ``"upload"`` (bytes).

    Evidence files go up over tus with ``requests`` (tuspy): ``http_session``
    is the session it uses (one of our own by default), ``upload_chunk_size``
    the bytes per PATCH.
    """

    def __init__(self, store_path: str | os.PathLike[str], transport: Transport | None = None, *,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.time,
                 rng: random.Random | None = None, max_attempts: int = 5, backoff_base: float = 0.5,
                 backoff_cap: float = 30.0, batch_size: int = MAX_BATCH, pull_limit: int = 500,
                 progress: ProgressCallback | None = None, http_session: requests.Session | None = None,
                 upload_chunk_size: int = DEFAULT_CHUNK_SIZE, upload_timeout: Any = DEFAULT_TIMEOUT) -> None:
        self.store = Store(store_path)
        self._transport = transport
        self._http_session = http_session
        self._own_session = http_session is None
        self.upload_chunk_size = max(1, upload_chunk_size)
        self.upload_timeout = upload_timeout
        self._sleep = sleep
        self._clock = clock
        self._rng = rng or random.Random()
        self.max_attempts = max(1, max_attempts)
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.batch_size = max(1, min(batch_size, MAX_BATCH))
        self.pull_limit = max(1, min(pull_limit, 1000))
        self.progress = progress

    def close(self) -> None:
        if self._own_session and self._http_session is not None:
            self._http_session.close()
            self._http_session = None
        self.store.close()

    def __enter__(self) -> FieldClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- identity ---------------------------------------------------------------

    @property
    def device_id(self) -> str | None:
        value = self.store.get("device_id")
        return str(value) if value else None

    def _now(self) -> str:
        return _iso(self._clock())

    def _identity(self) -> tuple[str, str, str | None]:
        """(device id, user id, department id) for stamping captures; offline is fine."""
        device, user = self.store.get("device_id"), self.store.get("user_id")
        if not device or not user:
            raise NotLoggedIn("本机尚未登录过。请先联网执行：fieldsync login --server URL --username 用户名 --device 设备编号")
        return str(device), str(user), self.store.get("department_id")

    def transport(self) -> Transport:
        if self._transport is None:
            url = self.store.get("server_url")
            if not url:
                raise NotLoggedIn("本机尚未登录过，不知道服务器地址。请先执行 fieldsync login")
            self._transport = HttpTransport(str(url))
        return self._transport

    def login(self, server_url: str, username: str, password: str, device_id: str) -> dict[str, Any]:
        """Log in as an inspector on this tablet; keeps tokens, user and device in the store."""
        server_url = server_url.rstrip("/")
        if not hlc.valid_node(device_id):
            raise LocalError(f"设备编号 {device_id!r} 无效：只能包含字母、数字和连字符，且不超过 64 个字符")
        pending = self.store.count("pending")
        previous = (self.store.get("server_url"), self.store.get("username"), self.store.get("device_id"))
        if pending and previous[0] and previous != (server_url, username, device_id):
            raise LocalError(f"本机还有 {pending} 条记录未同步（用户 {previous[1]}，设备 {previous[2]}，"
                             f"服务器 {previous[0]}）。请先以原用户登录并同步后，再更换用户、设备或服务器")
        previous_user = self.store.get("user_id")
        if previous_user:
            self._queue_uploads(str(previous_user))
        unsent = len(self.store.uploads(user_id=previous_user or "", status=("pending", "uploading")))
        if unsent and previous[0] and previous[:2] != (server_url, username):
            raise LocalError(f"本机还有 {unsent} 个证据文件未上传（用户 {previous[1]}，服务器 {previous[0]}）。"
                             "请先以原用户登录并同步，文件上传完成后再更换用户或服务器")
        if self._transport is None or (isinstance(self._transport, HttpTransport)
                                       and self._transport.base_url != server_url):
            try:
                self._transport = HttpTransport(server_url)
            except ValueError as exc:
                raise LocalError(str(exc)) from None
        # A throttled log-in (429) is reported at once: the inspector is waiting.
        response = self._call("POST", f"{API}/auth/token", json_body={"username": username, "password": password},
                              auth=False, retry_throttled=False)
        if response.status != 200:
            code, reason = response.problem
            if response.status == 401:
                raise AuthRequired(f"登录失败：{reason}")
            raise ServerRefused(code, reason, response.status)
        tokens = self._token_pair(response)
        me = self._call("GET", f"{API}/auth/me", headers={"Authorization": f"Bearer {tokens[0]}"}, auth=False)
        if me.status != 200 or not isinstance(me.body, dict) or "id" not in me.body:
            code, reason = me.problem
            raise ServerRefused(code, reason, me.status)
        if me.body.get("role") != "inspector":
            raise LocalError("只有执法人员账号可以在执法平板上同步检查记录")
        with self.store.transaction():
            if previous[:2] != (server_url, username):
                self.store.forget_pulled()
            for key, value in (("server_url", server_url), ("username", username), ("device_id", device_id),
                               ("user_id", str(me.body["id"])), ("department_id", str(me.body.get("department_id"))),
                               ("access_token", tokens[0]), ("refresh_token", tokens[1]), ("needs_login", None)):
                self.store.set(key, value)
        return {"username": username, "user_id": str(me.body["id"]), "department_id": me.body.get("department_id"),
                "device_id": device_id, "server_url": server_url}

    @staticmethod
    def _token_pair(response: Response) -> tuple[str, str]:
        body = response.body if isinstance(response.body, dict) else {}
        access, refresh = body.get("access_token"), body.get("refresh_token")
        if not isinstance(access, str) or not isinstance(refresh, str):
            raise ServerUnavailable("服务器返回的登录应答格式不正确")
        return access, refresh

    # ---- HTTP with retries and token refresh --------------------------------------

    def _backoff(self, attempt: int, retry_after: str | None) -> float:
        """Exponential backoff with full jitter; a server's Retry-After is a floor."""
        delay = self._rng.uniform(0, min(self.backoff_cap, self.backoff_base * (2 ** (attempt - 1))))
        if retry_after:
            try:
                delay = max(delay, min(float(retry_after), self.backoff_cap))
            except ValueError:
                pass
        return delay

    def _call(self, method: str, path: str, *, json_body: Any = None, query: Mapping[str, Any] | None = None,
              headers: Mapping[str, str] | None = None, auth: bool = True, retry_throttled: bool = True,
              on_attempt: Callable[[], None] | None = None,
              on_failure: Callable[[str, str], None] | None = None) -> Response:
        """One logical request: retried on no answer, 5xx and 429; one token refresh on 401."""
        refreshed = False
        attempt = 0
        while True:
            attempt += 1
            sent_headers = dict(headers or {})
            token = None
            if auth:
                token = self.store.get("access_token")
                if not token:
                    raise AuthRequired("尚未登录或登录已失效，请重新登录：fieldsync login")
                sent_headers["Authorization"] = f"Bearer {token}"
            if on_attempt:
                on_attempt()
            retry_after = None
            try:
                response = self.transport().request(method, path, json_body=json_body, query=query,
                                                    headers=sent_headers)
            except TransportError as exc:
                failure = ("network", str(exc))
            else:
                if response.status == 401 and auth:
                    if refreshed:
                        self._lost_session(response)
                    # Another process on this store (the app, say) may have
                    # refreshed already; rotating its token again would look
                    # like token theft to the server and end the session.
                    if self.store.get("access_token") == token:
                        self._refresh()
                    refreshed = True
                    attempt -= 1  # the refresh is not a failed attempt
                    continue
                if response.status < 500 and (response.status != 429 or not retry_throttled):
                    return response
                code, reason = response.problem
                failure = (code, f"HTTP {response.status}：{reason}")
                retry_after = response.header("Retry-After")
            if on_failure:
                on_failure(*failure)
            if attempt >= self.max_attempts:
                raise ServerUnavailable(f"服务器暂时无法完成同步（已尝试 {attempt} 次）：{failure[1]}。"
                                        "已采集的记录都保存在本机，稍后再同步即可")
            self._sleep(self._backoff(attempt, retry_after))

    def _refresh(self) -> None:
        """Trade the refresh token for a new pair, once; else the inspector must log in."""
        refresh_token = self.store.get("refresh_token")
        if not refresh_token:
            self.store.set("needs_login", True)
            raise AuthRequired("登录已失效，请重新登录：fieldsync login")
        response = self._call("POST", f"{API}/auth/refresh", json_body={"refresh_token": refresh_token}, auth=False)
        if response.status != 200:
            self._lost_session(response)
        access, refresh = self._token_pair(response)
        with self.store.transaction():
            self.store.set("access_token", access)
            self.store.set("refresh_token", refresh)

    def _lost_session(self, response: Response) -> None:
        self._end_session(*response.problem)

    def _end_session(self, code: str, reason: str) -> None:
        with self.store.transaction():
            self.store.set("access_token", None)
            self.store.set("refresh_token", None)
            self.store.set("needs_login", True)
        raise AuthRequired(f"登录已失效（{code}：{reason}），请重新登录：fieldsync login。未同步的记录仍保存在本机")

    # ---- the clock ---------------------------------------------------------------------

    def _tick(self, device_id: str) -> str:
        """Next HLC stamp; call inside the transaction that stores the change it stamps."""
        last_text = self.store.get("hlc_last")
        last = hlc.parse(last_text) if last_text else None
        stamp = hlc.tick(last, int(self._clock() * 1000), device_id)
        self.store.set("hlc_last", str(stamp))
        return str(stamp)

    def _fold(self, seen: Iterable[hlc.Stamp]) -> None:
        device = self.store.get("device_id") or "local"
        last_text = self.store.get("hlc_last")
        last = hlc.parse(last_text) if last_text else None
        folded = last
        for stamp in seen:
            folded = hlc.fold(folded, stamp, device)
        if folded is not None and folded != last:
            self.store.set("hlc_last", str(folded))

    def last_stamp(self) -> str | None:
        value = self.store.get("hlc_last")
        return str(value) if value else None

    # ---- local view ----------------------------------------------------------------------

    def _refresh_view(self, entity_id: str) -> None:
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

    def _visible(self, entity_id: str, kind: str, what: str) -> EntityRow:
        row = self.store.entity(entity_id)
        if row is None or row.kind != kind or not row.visible:
            raise LocalError(f"本机没有{what} {entity_id}（如是同事创建的，请先同步）")
        return row

    @staticmethod
    def _entity_view(row: EntityRow) -> dict[str, Any]:
        return {"id": row.id, "kind": row.kind, "task_id": row.task_id, "inspection_id": row.inspection_id,
                "department_id": row.department_id, "created_by_id": row.created_by_id,
                "version": row.server_version, "unconfirmed": row.unconfirmed, **(row.view_fields or {})}

    # ---- capture (offline) ------------------------------------------------------------------

    def _mutate(self, kind: str, entity_id: str, fields: dict[str, Any], *, task_id: str,
                inspection_id: str | None = None, op: str = "upsert") -> str:
        """Record one local change: a mutation in the outbox, the view updated, in one transaction."""
        device, user, department = self._identity()
        with self.store.transaction():
            row = self.store.entity(entity_id)
            creating = row is None or row.view_fields is None
            self.store.ensure_entity(entity_id, kind, task_id=task_id, inspection_id=inspection_id,
                                     department_id=department if creating else None,
                                     created_by_id=user if creating else None)
            self.store.add_mutation(id=str(uuid.uuid4()), entity=kind, entity_id=entity_id, user_id=user, op=op,
                                    base_version=row.server_version if row else 0, hlc=self._tick(device),
                                    fields=fields, now=self._now())
            self._refresh_view(entity_id)
        return entity_id

    def _open_task(self, task_id: str) -> dict[str, Any]:
        self._identity()
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
        inspection_id = _uuid(inspection_id, "检查记录")
        row = self._visible(inspection_id, "inspection", "检查记录")
        task = self._open_task(str(row.task_id))
        return row, task

    def start_inspection(self, task_id: str, place: str | None = None, *, new: bool = False) -> str:
        """Open the inspection record of a task; returns its id.

        One visit, one record: the id is derived from the task id, so every
        tablet of the team — even offline — starts the same record and the
        server merges their edits. If it is already here (ours or a teammate's,
        pulled) it is joined; ``new`` stamps a fresh start on it instead.
        """
        task_id = _uuid(task_id, "检查任务")
        self._open_task(task_id)
        if place is not None:
            _text(place, "检查地点", 300)
        inspection_id = inspection_id_for(task_id)
        row = self.store.entity(inspection_id)
        if not new and row is not None and row.visible:
            return inspection_id
        fields: dict[str, Any] = {"task_id": task_id, "started_at": self._now(), "status": "open"}
        if place is not None:
            fields["place"] = place
        return self._mutate("inspection", inspection_id, fields, task_id=task_id)

    def record_finding(self, inspection_id: str, check_item_id: str, result: str, note: str | None = None,
                       evidence: Iterable[str] = ()) -> str:
        """Record (or change) this department's finding for a check item; returns the finding id."""
        row, task = self._inspection(inspection_id)
        check_item_id = _uuid(check_item_id, "检查事项")
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
        media_ids = [_uuid(m, "证据文件") for m in evidence]
        for media_id in media_ids:
            self._visible(media_id, "media", "证据文件")
        changes: dict[str, Any] = {"result": result, "recorded_at": self._now()}
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

    def finish(self, inspection_id: str, conclusion: str | None = None) -> None:
        """Close the record on site: end time now, status finished, and the conclusion."""
        changes: dict[str, Any] = {"ended_at": self._now(), "status": "finished"}
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
        device, _, _ = self._identity()
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
                  "file_name": display_name(source), "capture_start": capture_start or _iso(modified),
                  "capture_end": capture_end or capture_start or _iso(modified), "device_id": device,
                  "proves": proves}
        with self.store.transaction():
            self.store.add_vault(digest, size, kind, self._now())
            return self._mutate("media", str(uuid.uuid4()), fields, task_id=str(row.task_id), inspection_id=row.id)

    def _copy_into_vault(self, source: Path) -> tuple[str, int]:
        vault = self.store.vault_dir
        vault.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Copies a crash interrupted: never indexed, safe to drop once clearly stale.
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
        fields: dict[str, Any] = {"inspection_id": row.id, "signer_role": signer_role, "signed_at": self._now()}
        if signer_name is not None:
            fields["signer_name"] = _text(signer_name, "签名人姓名", 100)
        if media_id is not None:
            fields["media_id"] = self._visible(_uuid(media_id, "签名文件"), "media", "签名文件").id
        return self._mutate("signature", str(uuid.uuid4()), fields, task_id=str(row.task_id), inspection_id=row.id)

    # ---- reading the local store (offline) -----------------------------------------------------

    def tasks(self) -> list[dict[str, Any]]:
        """Tasks pulled to this tablet, with enterprise, check items and inspections."""
        items = {i["id"]: i for i in self.store.references("check_item", include_deleted=True)}
        out = []
        for task in self.store.references("task"):
            view = dict(task)
            view["check_items"] = [items.get(i, {"id": i}) for i in task.get("check_item_ids") or []]
            view["inspections"] = [self._entity_view(r) for r in self.store.entities("inspection", task_id=task["id"])
                                   if r.visible]
            out.append(view)
        return out

    def task(self, task_id: str) -> dict[str, Any]:
        task_id = _uuid(task_id, "检查任务")
        for task in self.tasks():
            if task["id"] == task_id:
                return task
        raise LocalError(f"本机没有检查任务 {task_id}（请先同步）")

    def inspections(self, task_id: str | None = None) -> list[dict[str, Any]]:
        return [self._entity_view(r) for r in self.store.entities("inspection", task_id=task_id) if r.visible]

    def inspection(self, inspection_id: str) -> dict[str, Any]:
        """An inspection's local view, with its findings, media and signatures."""
        row = self._visible(_uuid(inspection_id, "检查记录"), "inspection", "检查记录")
        view = self._entity_view(row)
        children = [r for r in self.store.entities(inspection_id=row.id) if r.visible]
        for kind, key in (("finding", "findings"), ("media", "media"), ("signature", "signatures")):
            view[key] = [self._entity_view(r) for r in children if r.kind == kind]
        return view

    def entity(self, entity_id: str) -> dict[str, Any] | None:
        row = self.store.entity(entity_id)
        return self._entity_view(row) if row is not None and row.visible else None

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
            self._identity()  # a store that never logged in: say so rather than "not found"
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
            rejected = [self._rejection(m) for m in self.store.mutations(status="rejected", user_id=user)]
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
    def _rejection(m: MutationRow) -> Rejection:
        return Rejection(m.id, m.entity, m.entity_id, m.error_code or "rejected", m.error_reason or "", m.fields,
                         m.updated_at)

    # ---- push ------------------------------------------------------------------------------------

    def _report(self, phase: str, done: int, total: int) -> None:
        if self.progress is not None:
            self.progress(phase, done, max(done, total))

    def push(self) -> PushReport:
        """Send every pending mutation, at most ``batch_size`` (≤ 500) per request."""
        device, _, _ = self._identity()
        report = PushReport()
        total = self.store.count("pending")
        while True:
            batch = self.store.sendable(self.batch_size)
            if not batch:
                break
            ids = [m.id for m in batch]
            response = self._call(
                "POST", f"{API}/sync/push",
                json_body={"device_id": device, "mutations": [m.envelope() for m in batch]},
                on_attempt=lambda: self.store.note_attempt(ids, self._now()),
                on_failure=lambda code, reason: self.store.note_failure(ids, code, reason, self._now()))
            if response.status != 200:
                code, reason = response.problem
                self.store.note_failure(ids, code, reason, self._now())
                raise ServerRefused(code, reason, response.status)
            results = self._results(response, ids)
            with self.store.transaction():
                for mutation, result in zip(batch, results):
                    self._settle(mutation, result, report)
                self.store.set("last_push_at", self._now())
            report.sent += len(batch)
            report.batches += 1
            self._report("push", report.sent, total)
        return report

    @staticmethod
    def _results(response: Response, ids: list[str]) -> list[dict[str, Any]]:
        body = response.body if isinstance(response.body, dict) else {}
        results = body.get("results")
        if (not isinstance(results, list) or len(results) != len(ids)
                or any(not isinstance(r, dict) or r.get("id") != i for r, i in zip(results, ids))):
            # The server committed the batch if it answered 200, but we cannot
            # tell what happened to which mutation; they stay pending and the
            # next push learns their fate as duplicates.
            raise ServerUnavailable("服务器的推送应答与所发送的记录不一致；记录仍保存在本机，下次同步时重试")
        return results

    def _settle(self, mutation: MutationRow, result: dict[str, Any], report: PushReport) -> None:
        status = result.get("status")
        now = self._now()
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
            reason = str(result.get("reason") or "服务器拒绝了该记录")
            self.store.settle(mutation.id, status="rejected", result=status, version=None, code=code, reason=reason,
                              now=now)
            report.rejected.append(Rejection(mutation.id, mutation.entity, mutation.entity_id, code, reason,
                                             mutation.fields, now))
        else:
            self.store.note_failure([mutation.id], "unknown-result", f"服务器返回了未知的结果：{status!r}", now)
            return
        self._refresh_view(mutation.entity_id)

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
        self._identity()
        report = PullReport()
        cursor = self.store.get("cursor")
        restarted = False
        while True:
            query = {"limit": self.pull_limit, **({"cursor": cursor} if cursor else {})}
            response = self._call("GET", f"{API}/sync/pull", query=query)
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
                self.store.set("last_pull_at", self._now())
            report.pages += 1
            report.changes += len(changes)
            self._report("pull", report.changes, report.changes + (self.pull_limit if has_more else 0))
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
                self._refresh_view(entity_id)
        # Anything else is from a newer server: ignored, not fatal.
        self._fold(seen)

    # ---- evidence upload (tus) ---------------------------------------------------------------------

    def http_session(self) -> requests.Session:
        """The ``requests`` session uploads go through (tuspy speaks HTTP with requests)."""
        if self._http_session is None:
            self._http_session = requests.Session()
            self._http_session.headers["User-Agent"] = "fieldsync/0.1"
        return self._http_session

    def _queue_uploads(self, user: str) -> None:
        """Queue the file of every media record made here that the server acknowledged."""
        vault = {v["sha256"]: v for v in self.store.vault_entries()}
        for mutation in self.store.acknowledged_media(user):
            sha = mutation.fields.get("sha256")
            entry = vault.get(sha) if isinstance(sha, str) else None
            if entry is None or self.store.upload(mutation.entity_id) is not None:
                continue
            size = mutation.fields.get("size")
            self.store.queue_upload(media_id=mutation.entity_id, user_id=user, sha256=str(sha),
                                    size=size if isinstance(size, int) else entry["size"],
                                    file_name=mutation.fields.get("file_name"),
                                    content_type=mutation.fields.get("content_type") or entry["content_type"],
                                    now=self._now())

    def _media_on_server(self, media_id: str, sha256: str) -> dict[str, Any] | None:
        """The server's media record for ``media_id`` if it holds the file, else None."""
        response = self._call("GET", f"{API}/media/{media_id}")
        body = response.body if isinstance(response.body, dict) else None
        if response.status != 200 or body is None or body.get("sha256") not in (None, sha256):
            return None
        if "uploaded_at" in body and not body["uploaded_at"]:
            return None  # the record is there, the file is not (yet)
        return body

    def upload_media(self, *, retry_failed: bool = False) -> UploadReport:
        """Upload, over tus, the file of every media record the server has acknowledged.

        Files the server already holds are skipped; an upload that was
        interrupted (network, crash, power) resumes at the offset the server
        confirmed. Each file's state is kept in the store (``status().uploads``).
        A file the server refuses for good — its content does not match the
        SHA-256 taken at capture (460 hash-mismatch), too large, forbidden — is
        marked ``failed`` with the server's code and reason and is not retried
        unless ``retry_failed``. Network or server trouble stops the step
        (``report.error``); the files wait for the next sync.
        """
        _, user, _ = self._identity()
        report = UploadReport()
        self._queue_uploads(user)
        if retry_failed:
            for row in self.store.uploads(user_id=user, status="failed"):
                self.store.update_upload(row["media_id"], self._now(), status="pending", error_code=None,
                                         error_reason=None)
        rows = self.store.uploads(user_id=user, status=("pending", "uploading"))
        if rows:
            progress = {"base": 0, "total": sum(r["size"] for r in rows)}
            server_url = str(self.store.get("server_url") or "")
            sender = TusSender(server_url + UPLOADS_PATH, session=self.http_session(),
                               storage=SQLiteURLStorage(self.store.transaction),
                               token=self._upload_token, renew=self._renew_upload_token,
                               chunk_size=self.upload_chunk_size, timeout=self.upload_timeout, sleep=self._sleep,
                               backoff=self._backoff, max_attempts=self.max_attempts)
            for row in rows:
                try:
                    self._upload_one(sender, row, report, progress)
                except (UploadError, ServerUnavailable) as exc:
                    report.error = str(exc)
                    break
                progress["base"] += row["size"]
        report.waiting = len(self.store.uploads(user_id=user, status=("pending", "uploading")))
        return report

    def _upload_token(self) -> str:
        token = self.store.get("access_token")
        if not token:
            raise AuthRequired("尚未登录或登录已失效，请重新登录：fieldsync login")
        return str(token)

    def _renew_upload_token(self, old: str) -> None:
        # As in _call: another process may have refreshed already.
        if self.store.get("access_token") == old:
            self._refresh()

    def _upload_one(self, sender: TusSender, row: dict[str, Any], report: UploadReport,
                    progress: dict[str, int]) -> None:
        media_id, sha, size = row["media_id"], row["sha256"], row["size"]
        path = self.store.vault_path(sha)
        if not path.is_file():
            self._upload_failed(row, report, "vault-missing", "本机证据库中找不到该文件，无法上传")
            return
        held = self._media_on_server(media_id, sha)
        if held is not None:
            self._upload_done(row, held, already=True)
            report.already += 1
            return
        self.store.update_upload(media_id, self._now(), status="uploading", attempts=row["attempts"] + 1)
        metadata = {"sha256": sha, "filename": row["file_name"] or sha,
                    "filetype": row["content_type"] or "application/octet-stream", "media_id": media_id}
        server_url = str(self.store.get("server_url") or "")
        job = UploadJob(path, size, sha, metadata, key=f"tablet|{server_url}|media:{media_id}|sha256:{sha}|{size}")

        def on_offset(offset: int) -> None:
            self.store.update_upload(media_id, self._now(), upload_offset=offset)
            self._report("upload", progress["base"] + offset, progress["total"])

        def on_resume(offset: int) -> None:
            if offset:
                report.resumed += 1

        try:
            report.bytes_sent += sender.send(job, on_offset=on_offset, on_resume=on_resume)
        except UploadUnauthorized as exc:
            self._end_session("token-invalid", exc.reason)
        except UploadError as exc:
            if not exc.permanent:
                self.store.update_upload(media_id, self._now(), error_code=exc.code, error_reason=exc.reason)
                raise
            reason = exc.reason
            if exc.code == "hash-mismatch":
                actual, _ = sha256_file(path)
                if actual != sha:
                    reason = (f"本机证据库中的文件已损坏：其 SHA-256 为 {actual}，与采集时的 {sha} 不符。"
                              "文件未被服务器接收，请联系管理员")
                else:
                    reason = (f"服务器收到的文件与采集时的 SHA-256 不符（{exc.reason}）。不会自动重试；"
                              "网络恢复正常后可执行 fieldsync upload --retry-failed 重新上传")
            self._upload_failed(row, report, exc.code, reason)
            return
        report.uploaded += 1
        try:
            confirmed = self._media_on_server(media_id, sha)
        except ServerUnavailable:
            confirmed = None  # the server accepted the last byte with the hash checked; confirm next time
        self._upload_done(row, confirmed, already=False)

    def _upload_done(self, row: dict[str, Any], media: dict[str, Any] | None, *, already: bool) -> None:
        verification = media.get("verification") if media else None
        status = verification.get("status") if isinstance(verification, dict) else None
        now = self._now()
        with self.store.transaction():
            self.store.update_upload(row["media_id"], now, status="done", upload_offset=row["size"], error_code=None,
                                     error_reason=None, already_held=int(already), verification=status, done_at=now)
            self.store.mark_vault_uploaded(row["sha256"], now)

    def _upload_failed(self, row: dict[str, Any], report: UploadReport, code: str, reason: str) -> None:
        self.store.update_upload(row["media_id"], self._now(), status="failed", error_code=code, error_reason=reason)
        report.failed.append(UploadFailure(row["media_id"], row["file_name"], row["sha256"], code, reason))

    # ---- sync ----------------------------------------------------------------------------------------

    def sync(self) -> SyncReport:
        """Push, then pull, then upload the evidence files of acknowledged media records."""
        pushed = self.push()
        pulled = self.pull()
        return SyncReport(pushed, pulled, self.upload_media())
