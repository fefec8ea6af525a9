"""The audit log: an append-only, hash-chained record of who did what to which object.

Rows are never updated or deleted (PostgreSQL refuses it with a trigger, see
the migration); ``audit-verify`` detects edits made by someone who gets past that.
"""
from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from server.db_types import UTCDateTime, string_enum
from server.extensions import db


class ActorKind(str, enum.Enum):
    USER = "user"
    DEVICE = "device"
    SYSTEM = "system"        # the operator at the server's command line
    ANONYMOUS = "anonymous"  # no credentials (yet): failed log-ons


class Outcome(str, enum.Enum):
    SUCCESS = "success"
    DENIED = "denied"  # refused by authorization
    FAILED = "failed"  # attempted and did not succeed (wrong password, invalid token)


class AuditEntry(db.Model):
    """One entry; ``hash`` covers its fields and ``prev_hash``, the hash of the entry before it.

    No foreign keys on purpose: the record of a department, user or device
    must outlive them, and nothing may cascade into the log.
    """

    __tablename__ = "audit_entry"
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    actor_kind: Mapped[ActorKind] = mapped_column(string_enum(ActorKind, "audit_actor_kind"))
    actor_id: Mapped[str | None] = mapped_column(String(64))
    actor_username: Mapped[str | None] = mapped_column(String(150))
    actor_department_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    # The department the object belongs to, so its supervisors read what was done to it.
    department_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    action: Mapped[str] = mapped_column(String(64), index=True)
    object_type: Mapped[str | None] = mapped_column(String(40))
    object_id: Mapped[str | None] = mapped_column(String(64))
    outcome: Mapped[Outcome] = mapped_column(string_enum(Outcome, "audit_outcome"))
    details: Mapped[dict[str, Any]] = mapped_column(JSON)
    client_ip: Mapped[str | None] = mapped_column(String(45))
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))

    @property
    def actor(self) -> AuditEntry:
        """The actor's fields, for the schema's nested ``actor`` object."""
        return self


Index("ix_audit_entry_object", AuditEntry.object_type, AuditEntry.object_id)


class AuditChainHead(db.Model):
    """The newest entry's number and hash, in one row.

    Appending locks this row first, so concurrent appends queue up instead of
    forking the chain; verification compares it with the last entry, which
    reveals entries cut off the end of the log.
    """

    __tablename__ = "audit_chain_head"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))
