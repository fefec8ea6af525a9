"""Deleting evidence, and asking first whether it may be deleted at all.

Evidence is kept under retention and legal holds (server.archive), which sits above uploads: uploads must not
import it. So every path that would delete bytes or records of evidence — the evidence deletion of the API and
the CLI, the expiry of abandoned uploads, a store's own cleanup of objects — asks the *deletion guards* the app
registered (``register_guard``, called by the archive in its ``init_app``). The first guard that refuses wins;
the refusal is audited and answered as problem+json with its slug (``under-legal-hold``, ``under-retention``).
"""
from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, current_app, has_request_context
from sqlalchemy import func, select

from server import transaction
from server.audit.service import record as audit
from server.auth.policy import Permission, Principal
from server.errors import Problem
from server.extensions import db
from server.loading import load_authorized
from server.uploads.models import Media, MediaObject, Upload

log = logging.getLogger(__name__)

_EXTENSION = "inspect_once.deletion_guards"
DELETING_ROLES = frozenset({"head", "admin"})


@dataclass(frozen=True)
class Candidate:
    """What is about to be deleted: one evidence file (``media``) or an unfinished upload (``upload``)."""

    kind: str  # "media" | "upload"
    id: uuid.UUID
    task_id: uuid.UUID | None
    media_id: uuid.UUID | None  # the media record the bytes are (or will be) for
    department_id: uuid.UUID
    path: str  # who asks: "api", "cli", "upload-expiry", "store-cleanup"


@dataclass(frozen=True)
class Refusal:
    """Why a deletion is not allowed: a stable ``slug`` and a Chinese ``detail``; ``facts`` go to the audit log."""

    slug: str
    detail: str
    facts: dict[str, Any] = field(default_factory=dict)


Guard = Callable[[Candidate], Refusal | None]


def register_guard(app: Flask, guard: Guard) -> None:
    """Ask ``guard`` before any evidence is deleted by any path."""
    app.extensions.setdefault(_EXTENSION, []).append(guard)


def refusal_for(candidate: Candidate) -> Refusal | None:
    """The first registered guard's refusal, or None when the deletion is allowed."""
    for guard in current_app.extensions.get(_EXTENSION, []):
        refused = guard(candidate)
        if refused is not None:
            return refused
    return None


def _audit_refusal(candidate: Candidate, refused: Refusal, actor: Principal | None) -> None:
    audit(f"{candidate.kind}.delete", object_type=candidate.kind, object_id=str(candidate.id), outcome="denied",
          actor=actor, details={"path": candidate.path, "refused": refused.slug, **refused.facts})


def _candidate(media: Media, path: str) -> Candidate:
    return Candidate("media", media.id, media.task_id, media.id, media.department_id, path)


def delete_media(principal: Principal, media_id: uuid.UUID, reason: str, *, path: str = "api") -> None:
    """Delete one evidence file (its record, and its bytes once no record refers to them).

    Only a head or administrator of the file's department; refused (409, audited) while a guard refuses.
    A refusal keeps its audit entry although the answer is an error.
    """
    media = load_authorized(principal, Media, media_id, Permission.READ_MEDIA, not_found="证据文件不存在")
    if principal.role not in DELETING_ROLES:
        raise Problem(403, "forbidden", "只有本部门负责人或系统管理员可以删除证据")
    candidate = _candidate(media, path)
    refused = refusal_for(candidate)
    if refused is not None:
        _audit_refusal(candidate, refused, principal)
        raise Problem(409, refused.slug, refused.detail, title="证据不得删除")
    sha256 = media.sha256
    db.session.delete(media)
    db.session.flush()
    others = db.session.scalar(select(func.count()).select_from(Media).where(Media.sha256 == sha256)) or 0
    stored = db.session.get(MediaObject, sha256) if not others else None
    key = stored.key if stored is not None else None
    if stored is not None:
        db.session.execute(Upload.__table__.update().where(Upload.media_id == media_id).values(media_id=None))
        db.session.delete(stored)
        db.session.flush()
    audit("media.delete", object_type="media", object_id=str(media_id), actor=principal,
          details={"path": path, "reason": reason, "sha256": sha256, "bytes_removed": key is not None})
    if key is not None:
        from server.uploads.service import uploads

        store = uploads().store
        # The bytes go only once the record's removal is durable; before that they are still evidence.
        if has_request_context():
            transaction.after_commit(lambda: store.delete(key))
        else:
            db.session.commit()
            store.delete(key)


def upload_refusal(upload: Upload, path: str, actor: Principal | None = None) -> Refusal | None:
    """Whether an unfinished upload's bytes may be removed (expiry); a refusal is audited."""
    candidate = Candidate("upload", upload.id, upload.task_id, upload.media_id, upload.media_department_id, path)
    refused = refusal_for(candidate)
    if refused is not None:
        _audit_refusal(candidate, refused, actor)
    return refused
