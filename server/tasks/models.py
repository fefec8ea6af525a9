"""Inspection tasks: one visit to one enterprise by a team, and what tablets pull first."""
from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from server.changefeed import ChangeTracked
from server.db_types import UTCDateTime, new_uuid, string_enum, utcnow
from server.directory.models import Department, Enterprise, User
from server.extensions import db


class TaskStatus(str, enum.Enum):
    PENDING_APPROVAL = "pending_approval"  # waits for the head of every participating department
    REJECTED = "rejected"                  # a head refused: never dispatched
    DISPATCHED = "dispatched"
    CLOSED = "closed"
    CANCELLED = "cancelled"


class InspectionTask(ChangeTracked, db.Model):
    __tablename__ = "inspection_task"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_uuid)
    title: Mapped[str] = mapped_column(String(200))
    enterprise_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("enterprise.id"), index=True)
    department_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("department.id"), index=True)  # lead department
    window_start: Mapped[datetime] = mapped_column(UTCDateTime())
    window_end: Mapped[datetime] = mapped_column(UTCDateTime())
    status: Mapped[TaskStatus] = mapped_column(string_enum(TaskStatus, "task_status"))
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("app_user.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Set when the team first received it; a task folded back to approval afterwards still reaches tablets as a removal.
    dispatched_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    note: Mapped[str | None] = mapped_column(Text)
    # Registered after the visit had to begin (its window started before the task was created): why.
    late_registration_reason: Mapped[str | None] = mapped_column(Text)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    cancel_reason: Mapped[str | None] = mapped_column(Text)

    enterprise: Mapped[Enterprise] = relationship()
    members: Mapped[list[TaskMember]] = relationship(back_populates="task", cascade="all, delete-orphan")
    check_items: Mapped[list[TaskCheckItem]] = relationship(back_populates="task", cascade="all, delete-orphan")


class TaskMember(db.Model):
    __tablename__ = "task_member"
    __table_args__ = (UniqueConstraint("task_id", "user_id"),)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_uuid)
    task_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("inspection_task.id"), index=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("app_user.id"), index=True)
    department_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("department.id"))

    task: Mapped[InspectionTask] = relationship(back_populates="members")
    user: Mapped[User] = relationship()
    department: Mapped[Department] = relationship()


class TaskCheckItem(db.Model):
    __tablename__ = "task_check_item"
    __table_args__ = (UniqueConstraint("task_id", "check_item_id"),)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_uuid)
    task_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("inspection_task.id"), index=True)
    check_item_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("check_item.id"))
    # Check items of a task sharing a group are one question asked once (declared
    # equivalent in a joint plan); the joint record merges their findings.
    equivalence_group: Mapped[str | None] = mapped_column(String(64))

    task: Mapped[InspectionTask] = relationship(back_populates="check_items")
