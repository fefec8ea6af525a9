"""What the client's operations report and what ``status()`` shows: plain data, no behaviour."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Rejection:
    """A mutation the server refused (or the client set aside as unreadable to the server); kept locally."""

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
