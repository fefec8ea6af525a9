"""The inspection record, read in one place: the record, its findings, its media and its signatures.

The inspection is the system's central noun, but it lives as synced entities (``SyncedEntity`` rows of a
``Kind``) because tablets create it offline. Verification, the joint record and the review app read it
through these functions and conditions instead of asking for rows by a kind string each in its own way;
the sync service remains the only writer.
"""
from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, select

from server.extensions import db
from server.sync.entities import Kind, inspection_id_for
from server.sync.models import SyncedEntity

Record = SyncedEntity  # a synced record as the readers see it: kind, fields, clocks, department, task


def live(kind: Kind) -> ColumnElement[bool]:
    """The condition for records of ``kind`` that are not deleted (for readers' own queries)."""
    return and_(SyncedEntity.kind == kind, SyncedEntity.deleted.is_(False))


def is_inspection(record: Record | None) -> bool:
    return record is not None and record.kind == Kind.INSPECTION and not record.deleted


def get_inspection(inspection_id: uuid.UUID) -> Record | None:
    """The live inspection record with this id, or None (no such record, another kind, or deleted)."""
    record = db.session.get(SyncedEntity, inspection_id)
    return record if is_inspection(record) else None


def inspection_of_task(task_id: uuid.UUID) -> Record | None:
    """The task's one (joint) inspection record, live or None."""
    return get_inspection(inspection_id_for(task_id))


def inspections() -> Select[Any]:
    """Live inspection records, to be narrowed by the caller."""
    return select(SyncedEntity).where(live(Kind.INSPECTION))


def parts(inspection_id: uuid.UUID, kind: Kind, *, limit: int | None = None, offset: int = 0) -> list[Record]:
    """The live findings, media or signatures of an inspection, in id order."""
    query = select(SyncedEntity).where(SyncedEntity.inspection_id == inspection_id, live(kind)) \
        .order_by(SyncedEntity.id).offset(offset)
    return list(db.session.scalars(query.limit(limit) if limit is not None else query))


def part_ids(inspection_id: uuid.UUID, kind: Kind) -> Select[Any]:
    """The ids of an inspection's live parts of ``kind``, as a subquery for the caller's query."""
    return select(SyncedEntity.id).where(SyncedEntity.inspection_id == inspection_id, live(kind))


def part_counts(task_id: uuid.UUID) -> dict[Kind, int]:
    """How many live findings, media and signatures a task's record holds."""
    counts = {kind: 0 for kind in Kind if kind != Kind.INSPECTION}
    for kind, count in db.session.execute(
            select(SyncedEntity.kind, func.count())
            .where(SyncedEntity.task_id == task_id, SyncedEntity.kind != Kind.INSPECTION,
                   SyncedEntity.deleted.is_(False))
            .group_by(SyncedEntity.kind)):
        counts[Kind(kind)] = count
    return counts


def parts_of_task(task_id: uuid.UUID, kind: Kind, *, limit: int | None = None) -> list[Record]:
    """The live parts of ``kind`` of a task's record, in id order (a bounded, server-independent subset)."""
    query = select(SyncedEntity).where(SyncedEntity.task_id == task_id, live(kind)).order_by(SyncedEntity.id)
    return list(db.session.scalars(query.limit(limit) if limit is not None else query))


def media_record(media_id: uuid.UUID) -> Record | None:
    """The live media record (what a tablet declared of a file) with this id, or None."""
    record = db.session.get(SyncedEntity, media_id)
    return record if record is not None and record.kind == Kind.MEDIA and not record.deleted else None
