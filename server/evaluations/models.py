"""The enterprise's side of a visit (issue 18): its evaluation (评价) and its complaints (投诉).

One evaluation per task, kept version by version: the enterprise may correct it for a few days after it first
gave it, and every version stays (the current one is the highest). A complaint opens a follow-up (跟进) that
the supervising office closes with a reply (答复), which the enterprise reads back on the evaluation page.

``department_id`` is the task's lead department: it files the audit entries, nothing more (who may read a row is
decided by the task's participating departments, in the service). A complainant's ``contact`` is shown to the
legal affairs office only. Only ``server.evaluations.service`` writes these rows; none of them reaches a tablet.
"""
from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from server.db_types import UTCDateTime, new_uuid, string_enum, utcnow
from server.extensions import db


class Courtesy(str, enum.Enum):
    """Was the visit courteous and by the rules (文明规范)."""

    SATISFIED = "satisfied"                      # 满意
    BASICALLY_SATISFIED = "basically_satisfied"  # 基本满意
    DISSATISFIED = "dissatisfied"                # 不满意


class FollowUpStatus(str, enum.Enum):
    OPEN = "open"      # waits for the office's reply
    CLOSED = "closed"  # replied to


class VisitEvaluation(db.Model):
    __tablename__ = "visit_evaluation"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_uuid)
    task_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("inspection_task.id"), unique=True)  # one per task
    department_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("department.id"), index=True)
    first_submitted_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    current_version: Mapped[int] = mapped_column(Integer, default=1)

    versions: Mapped[list[EvaluationVersion]] = relationship(order_by="EvaluationVersion.version",
                                                              cascade="all, delete-orphan")

    @property
    def current(self) -> EvaluationVersion:
        return self.versions[-1]


class EvaluationVersion(db.Model):
    __tablename__ = "evaluation_version"
    __table_args__ = (UniqueConstraint("evaluation_id", "version", name="uq_evaluation_version"),)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_uuid)
    evaluation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("visit_evaluation.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)  # 1 as first given, 2 its first correction …
    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    certificate_shown: Mapped[bool] = mapped_column(Boolean)      # 是否亮证
    courtesy: Mapped[Courtesy] = mapped_column(string_enum(Courtesy, "evaluation_courtesy"))
    disturbed_production: Mapped[bool] = mapped_column(Boolean)   # 是否影响正常生产经营
    comment: Mapped[str | None] = mapped_column(Text)


class Complaint(db.Model):
    __tablename__ = "complaint"
    __table_args__ = (UniqueConstraint("task_id", "number", name="uq_complaint_task_number"),)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_uuid)
    task_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("inspection_task.id"), index=True)
    # The how-manieth complaint on this code (the unique pair bounds them even when two arrive at once).
    number: Mapped[int] = mapped_column(Integer)
    department_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("department.id"), index=True)
    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    text: Mapped[str] = mapped_column(Text)
    contact: Mapped[str | None] = mapped_column(String(100))  # for the reply; legal affairs only
    status: Mapped[FollowUpStatus] = mapped_column(string_enum(FollowUpStatus, "follow_up_status"),
                                                   default=FollowUpStatus.OPEN, index=True)
    reply: Mapped[str | None] = mapped_column(Text)
    replied_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    replied_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("app_user.id"))
