"""What tablets push: entities merged field by field, the log of every mutation, and conflicts."""
from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from server.changefeed import ChangeTracked
from server.db_types import UTCDateTime, new_uuid, utcnow
from server.extensions import db


class SyncedEntity(ChangeTracked, db.Model):
    """An inspection, finding, media record or signature, as merged from every device.

    ``clocks`` holds, per field, the HLC of the write that won; ``field_versions``
    the entity version at which that field last changed, to tell a concurrent
    edit (made without seeing the other) from a later one.
    """

    __tablename__ = "synced_entity"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20), index=True)
    task_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("inspection_task.id"), index=True)
    inspection_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    department_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("department.id"), index=True)
    created_by_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("app_user.id"))
    fields: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    clocks: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    field_versions: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)
    # Per field written by more than one device: each device's latest write,
    # ``{field: {node: [value, hlc]}}``. A function of the set of writes, not of
    # their arrival order, so the joint record shows the same disagreements
    # whatever order the team synced in (docs/sync.md).
    contenders: Mapped[dict[str, dict[str, list[Any]]] | None] = mapped_column(JSON, default=dict)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    version: Mapped[int] = mapped_column(Integer, default=0)
    first_received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class MutationRecord(db.Model):
    """Every mutation the server accepted, so a replay is recognised, never applied twice."""

    __tablename__ = "sync_mutation"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    content_hash: Mapped[str] = mapped_column(String(64))
    entity_id: Mapped[uuid.UUID] = mapped_column(index=True)
    device_id: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("app_user.id"))
    hlc: Mapped[str] = mapped_column(String(100))
    device_time: Mapped[datetime] = mapped_column(UTCDateTime())
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    status: Mapped[str] = mapped_column(String(20))
    version: Mapped[int] = mapped_column(Integer)


class SyncConflict(db.Model):
    """A value that lost a concurrent edit, kept for supervisors to see."""

    __tablename__ = "sync_conflict"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_uuid)
    entity_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("synced_entity.id"), index=True)
    task_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("inspection_task.id"), index=True)
    field: Mapped[str] = mapped_column(String(64))
    kept_value: Mapped[Any] = mapped_column(JSON, nullable=True)
    kept_hlc: Mapped[str] = mapped_column(String(100))
    lost_value: Mapped[Any] = mapped_column(JSON, nullable=True)
    lost_hlc: Mapped[str] = mapped_column(String(100))
    mutation_id: Mapped[uuid.UUID] = mapped_column()
    detected_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    note: Mapped[str | None] = mapped_column(Text)
