"""A global, gap-free change sequence for everything that tablets pull.

Every row of a ``ChangeTracked`` model carries the sequence number of its
latest change. The numbers come from one counter row that each writing
transaction updates, so they are handed out in commit order: a pull that
has seen number N will never later find an N-1 committed behind its back.
Pulls then read ``change_seq > cursor`` from an index, whatever the length
of the history.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Integer, event, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from server.extensions import db


class ChangeCounter(db.Model):
    __tablename__ = "change_counter"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, default=0)


class ChangeTracked:
    """Mixin: the row's ``change_seq`` is bumped on every insert and update."""

    change_seq: Mapped[int] = mapped_column(BigInteger, index=True, default=0, server_default="0")


def reserve(session: Session, count: int) -> int:
    """Reserve ``count`` sequence numbers; returns the first. Locks the counter until commit."""
    connection = session.connection()
    result = connection.execute(
        update(ChangeCounter).where(ChangeCounter.id == 1)
        .values(value=ChangeCounter.value + count).returning(ChangeCounter.value))
    row = result.first()
    if row is None:
        connection.execute(ChangeCounter.__table__.insert().values(id=1, value=count))
        return 1
    return int(row[0]) - count + 1


@event.listens_for(Session, "before_flush")
def _stamp_changes(session: Session, flush_context: Any, instances: Any) -> None:
    changed = [obj for obj in list(session.new) + list(session.dirty)
               if isinstance(obj, ChangeTracked) and (obj in session.new or session.is_modified(obj))]
    if not changed:
        return
    first = reserve(session, len(changed))
    for offset, obj in enumerate(changed):
        obj.change_seq = first + offset
