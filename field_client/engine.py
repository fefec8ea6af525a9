"""The offline client: capture on the tablet, push and pull when there is a network.

``FieldClient`` is what a tablet app (or a test, or ``fieldsync``) drives. It
is the front of four parts, each in its own module:

- ``session``: who the tablet is to the server (tokens, user, device) and one
  logical HTTP request with retries, backoff and token refresh;
- ``capture``: the local writes — every capture (an inspection started, a
  finding, a measure, a photo) becomes a mutation in the local outbox in one
  durable transaction, stamped with the tablet's hybrid logical clock;
  ``records`` keeps the local view and reads it, offline;
- ``sync``: the sync protocol, push and pull (docs/sync.md);
- ``evidence``: the evidence files, over tus.

Nothing needs the network except ``login``, ``push``, ``pull``,
``upload_media`` and ``sync``. The names that callers import from here
(errors, reports, constants, ``inspection_id_for``) stay importable from here.
"""
from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Iterable
from typing import Any

import requests

from field_client.capture import (
    COERCIVE_KINDS,
    HASH_BLOCK,
    INSPECTION_FIELDS,
    INSPECTION_NAMESPACE,
    PROVES,
    RESULTS,
    SIGNER_ROLES,
    Capture,
    display_name,
    inspection_code_of,
    inspection_id_for,
)
from field_client.errors import (
    AuthRequired,
    FieldClientError,
    LocalError,
    NotLoggedIn,
    ServerRefused,
    ServerUnavailable,
)
from field_client.evidence import EvidenceUploads
from field_client.records import REFERENCE_KINDS, LocalRecords
from field_client.reports import (
    ConflictItem,
    PendingItem,
    PullReport,
    PushReport,
    Rejection,
    Status,
    SyncReport,
    UploadFailure,
    UploadItem,
    UploadReport,
)
from field_client.session import API, Session
from field_client.store import Store
from field_client.sync import MAX_BATCH, SYNCED_KINDS, ProgressCallback, SyncProtocol
from field_client.transport import Transport
from field_client.uploads import DEFAULT_CHUNK_SIZE, DEFAULT_TIMEOUT

__all__ = [
    "API", "COERCIVE_KINDS", "HASH_BLOCK", "INSPECTION_FIELDS", "INSPECTION_NAMESPACE", "MAX_BATCH", "PROVES",
    "REFERENCE_KINDS", "RESULTS", "SIGNER_ROLES", "SYNCED_KINDS", "AuthRequired", "ConflictItem", "FieldClient",
    "FieldClientError", "LocalError", "NotLoggedIn", "PendingItem", "ProgressCallback", "PullReport", "PushReport",
    "Rejection", "ServerRefused", "ServerUnavailable", "Status", "SyncReport", "UploadFailure", "UploadItem",
    "UploadReport", "display_name", "inspection_code_of", "inspection_id_for",
]


def _forward(part: str, name: str, doc: str) -> Any:
    """A read-write attribute of the client that lives on one of its parts."""
    return property(lambda self: getattr(getattr(self, part), name),
                    lambda self, value: setattr(getattr(self, part), name, value), doc=doc)


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

    max_attempts = _forward("session", "max_attempts", "Tries of one request before giving up (≥ 1).")
    backoff_base = _forward("session", "backoff_base", "First retry's ceiling, in seconds.")
    backoff_cap = _forward("session", "backoff_cap", "Longest wait between retries, in seconds.")
    batch_size = _forward("protocol", "batch_size", "Mutations per push request (≤ 500).")
    pull_limit = _forward("protocol", "pull_limit", "Changes per pull page (≤ 1000).")
    upload_chunk_size = _forward("evidence", "chunk_size", "Bytes per tus PATCH.")
    upload_timeout = _forward("evidence", "timeout", "requests' timeout for each upload request.")

    def __init__(self, store_path: str | os.PathLike[str], transport: Transport | None = None, *,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.time,
                 rng: random.Random | None = None, max_attempts: int = 5, backoff_base: float = 0.5,
                 backoff_cap: float = 30.0, batch_size: int = MAX_BATCH, pull_limit: int = 500,
                 progress: ProgressCallback | None = None, http_session: requests.Session | None = None,
                 upload_chunk_size: int = DEFAULT_CHUNK_SIZE, upload_timeout: Any = DEFAULT_TIMEOUT) -> None:
        self.store = Store(store_path)
        self.progress = progress
        self.session = Session(self.store, transport, sleep=sleep, clock=clock, rng=rng or random.Random(),
                               max_attempts=max_attempts, backoff_base=backoff_base, backoff_cap=backoff_cap)
        self.records = LocalRecords(self.store, self.session)
        self.capture = Capture(self.store, self.session, self.records)
        self.protocol = SyncProtocol(self.store, self.session, self.records, batch_size=batch_size,
                                     pull_limit=pull_limit, progress=self._report)
        self.evidence = EvidenceUploads(self.store, self.session, http_session=http_session,
                                        chunk_size=upload_chunk_size, timeout=upload_timeout, progress=self._report)

    def close(self) -> None:
        """Close the store (and the HTTP session if it is our own)."""
        self.evidence.close()
        self.store.close()

    def __enter__(self) -> FieldClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _report(self, phase: str, done: int, total: int) -> None:
        if self.progress is not None:
            self.progress(phase, done, max(done, total))

    # ---- session --------------------------------------------------------------------------

    @property
    def device_id(self) -> str | None:
        """The device id this tablet logged in with."""
        return self.session.device_id

    def transport(self) -> Transport:
        """The transport to the server (HTTP to the server named at login by default)."""
        return self.session.transport()

    def http_session(self) -> requests.Session:
        """The ``requests`` session uploads go through."""
        return self.evidence.http_session()

    def enrol(self, server_url: str, code: str) -> dict[str, Any]:
        """Make this store an enrolled tablet by spending a one-time enrolment code (needs the network)."""
        return self.session.enrol(server_url, code)

    def remember_device(self, server_url: str, device_id: str, secret: str) -> None:
        """Keep a tablet credential made by ``create-device`` (tablets provisioned by script, not by a code)."""
        self.session.remember_device(server_url, device_id, secret)

    def enrolment(self) -> dict[str, Any] | None:
        """The tablet this store is enrolled as (device id, server, department, label), or None."""
        return self.session.enrolment()

    def login(self, server_url: str, username: str, password: str, device_id: str | None = None) -> dict[str, Any]:
        """Log in as an inspector on this enrolled tablet; keeps tokens, user and device in the store.

        Refused on a store that is not enrolled (``enrol``), and while records or files of another user, device
        or server still wait to go up.
        """
        server_url = server_url.rstrip("/")
        enrolled = self.session.enrolment()
        device_id = device_id or (enrolled["device_id"] if enrolled else None)
        pending = self.store.count("pending")
        previous = (self.store.get("server_url"), self.store.get("username"), self.store.get("device_id"))
        if pending and previous[0] and previous != (server_url, username, device_id):
            raise LocalError(f"本机还有 {pending} 条记录未同步（用户 {previous[1]}，设备 {previous[2]}，"
                             f"服务器 {previous[0]}）。请先以原用户登录并同步后，再更换用户、设备或服务器")
        previous_user = self.store.get("user_id")
        if previous_user:
            self.evidence.queue(str(previous_user))
        unsent = self.evidence.unsent(previous_user or "")
        if unsent and previous[0] and previous[:2] != (server_url, username):
            raise LocalError(f"本机还有 {unsent} 个证据文件未上传（用户 {previous[1]}，服务器 {previous[0]}）。"
                             "请先以原用户登录并同步，文件上传完成后再更换用户或服务器")
        return self.session.login(server_url, username, password, device_id)

    def last_stamp(self) -> str | None:
        """The last HLC stamp this tablet issued or folded in."""
        return self.records.last_stamp()

    # ---- capture (offline) ------------------------------------------------------------------

    def start_inspection(self, task_id: str, place: str | None = None, *, new: bool = False) -> str:
        """Open (or join) the one inspection record of a task; returns its id. See ``Capture.start_inspection``."""
        return self.capture.start_inspection(task_id, place, new=new)

    def record_finding(self, inspection_id: str, check_item_id: str, result: str, note: str | None = None,
                       evidence: Iterable[str] = ()) -> str:
        """Record (or change) this department's finding for a check item; returns the finding id."""
        return self.capture.record_finding(inspection_id, check_item_id, result, note, evidence)

    def add_measure(self, inspection_id: str, *, soft: str | None = None, coercive_kind: str | None = None,
                    description: str | None = None) -> None:
        """Add a soft measure (persuasion, guidance, reminder) or a coercive measure to the record."""
        self.capture.add_measure(inspection_id, soft=soft, coercive_kind=coercive_kind, description=description)

    def set_inspection_fields(self, inspection_id: str, **fields: Any) -> None:
        """Change the inspection's shared fields (place, representative, conclusion, …)."""
        self.capture.set_inspection_fields(inspection_id, **fields)

    def finish(self, inspection_id: str, conclusion: str | None = None) -> None:
        """Close the record on site: end time now, status finished, and the conclusion.

        Finishing a returned record again submits it again: the review queue shows it as resubmitted.
        """
        self.capture.finish(inspection_id, conclusion)

    def reopen(self, inspection_id: str) -> None:
        """Open a finished or returned record again (status open) for corrections."""
        self.capture.reopen(inspection_id)

    def returned(self) -> list[dict[str, Any]]:
        """Records a supervisor returned with comments (``review``) that wait for the team's corrections."""
        return self.records.returned()

    def attach(self, inspection_id: str, path: str | os.PathLike[str], proves: str, *,
               capture_start: str | None = None, capture_end: str | None = None,
               content_type: str | None = None) -> str:
        """Keep a photo, audio or video as evidence in the vault; returns the media id."""
        return self.capture.attach(inspection_id, path, proves, capture_start=capture_start,
                                   capture_end=capture_end, content_type=content_type)

    def sign(self, inspection_id: str, signer_role: str, signer_name: str | None = None,
             media_id: str | None = None) -> str:
        """Record a signature (the image of it attached as media with ``proves="signature"``)."""
        return self.capture.sign(inspection_id, signer_role, signer_name, media_id)

    # ---- reading the local store (offline) -----------------------------------------------------

    def tasks(self) -> list[dict[str, Any]]:
        """Tasks pulled to this tablet, with enterprise, check items and inspections."""
        return self.records.tasks()

    def task(self, task_id: str) -> dict[str, Any]:
        """One pulled task, as ``tasks()`` shows it."""
        return self.records.task(task_id)

    def inspections(self, task_id: str | None = None) -> list[dict[str, Any]]:
        """The inspection records in the local view (of one task, if given)."""
        return self.records.inspections(task_id)

    def inspection(self, inspection_id: str) -> dict[str, Any]:
        """An inspection's local view, with its findings, media and signatures."""
        return self.records.inspection(inspection_id)

    def entity(self, entity_id: str) -> dict[str, Any] | None:
        """Any synced entity's local view, or None."""
        return self.records.entity(entity_id)

    def resolve(self, kind: str, text: str) -> str:
        """A full id from an id, a unique id prefix (≥ 4 characters) or, for check items, a code."""
        return self.records.resolve(kind, text)

    def status(self) -> Status:
        """What waits to go up, what the server refused and why, and edits that met a concurrent one."""
        return self.records.status()

    # ---- with the server -------------------------------------------------------------------------

    def push(self) -> PushReport:
        """Send every pending mutation, at most ``batch_size`` (≤ 500) per request."""
        return self.protocol.push()

    def pull(self) -> PullReport:
        """Fetch every change since the saved cursor; each page is applied with its cursor atomically."""
        return self.protocol.pull()

    def upload_media(self, *, retry_failed: bool = False) -> UploadReport:
        """Upload, over tus, the file of every media record the server has acknowledged."""
        return self.evidence.upload_media(retry_failed=retry_failed)

    def sync(self) -> SyncReport:
        """Push, then pull, then upload the evidence files of acknowledged media records."""
        pushed = self.push()
        pulled = self.pull()
        return SyncReport(pushed, pulled, self.upload_media())
