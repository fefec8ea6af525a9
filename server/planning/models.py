"""Planning: department spot-check plans, joint plans, draws, approvals, frequency control."""
from __future__ import annotations

import enum
import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Date, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from server.db_types import UTCDateTime, new_uuid, string_enum, utcnow
from server.directory.models import CheckItem
from server.extensions import db


class SpotCheckPlan(db.Model):
    """A department's random spot-check plan (抽查计划) for one period."""

    __tablename__ = "spot_check_plan"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_uuid)
    department_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("department.id"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    subject_kind: Mapped[str] = mapped_column(String(100))  # the kind of subject, e.g. 食品生产企业
    period_start: Mapped[date] = mapped_column(Date)
    period_end: Mapped[date] = mapped_column(Date)
    # Which directory entries are candidates: see service.matches_filter for the keys.
    target_filter: Mapped[dict[str, Any]] = mapped_column(JSON)
    sampling_ratio: Mapped[float] = mapped_column(Float)
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("app_user.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    items: Mapped[list[PlanCheckItem]] = relationship(cascade="all, delete-orphan",
                                                        order_by="PlanCheckItem.check_item_id")

    @property
    def check_item_ids(self) -> list[uuid.UUID]:
        return [i.check_item_id for i in self.items]


class PlanCheckItem(db.Model):
    __tablename__ = "plan_check_item"
    plan_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("spot_check_plan.id"), primary_key=True)
    check_item_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("check_item.id"), primary_key=True)

    check_item: Mapped[CheckItem] = relationship()


class JointPlan(db.Model):
    """Plans of several departments for the same kind of subject, merged: one visit covers them all."""

    __tablename__ = "joint_plan"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_uuid)
    department_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("department.id"), index=True)  # lead department
    title: Mapped[str] = mapped_column(String(200))
    subject_kind: Mapped[str] = mapped_column(String(100))
    period_start: Mapped[date] = mapped_column(Date)  # where the participating plans' periods overlap
    period_end: Mapped[date] = mapped_column(Date)
    target_filter: Mapped[dict[str, Any]] = mapped_column(JSON)
    sampling_ratio: Mapped[float] = mapped_column(Float)
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("app_user.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    participants: Mapped[list[JointPlanParticipant]] = relationship(
        cascade="all, delete-orphan", order_by="JointPlanParticipant.plan_id")
    groups: Mapped[list[EquivalenceGroup]] = relationship(cascade="all, delete-orphan",
                                                            order_by="EquivalenceGroup.key")

    @property
    def plans(self) -> list[SpotCheckPlan]:
        return [p.plan for p in self.participants]


class JointPlanParticipant(db.Model):
    __tablename__ = "joint_plan_participant"
    joint_plan_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("joint_plan.id"), primary_key=True)
    # A department plan joins at most one joint plan: otherwise its targets could be visited twice.
    plan_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("spot_check_plan.id"), primary_key=True, unique=True)

    plan: Mapped[SpotCheckPlan] = relationship()


class EquivalenceGroup(db.Model):
    """Check items of different departments that mean the same thing: asked once on site."""

    __tablename__ = "equivalence_group"
    __table_args__ = (UniqueConstraint("joint_plan_id", "key"),)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_uuid)
    joint_plan_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("joint_plan.id"), index=True)
    key: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(200))

    members: Mapped[list[EquivalenceMember]] = relationship(
        cascade="all, delete-orphan", order_by="EquivalenceMember.check_item_id")

    @property
    def check_item_ids(self) -> list[uuid.UUID]:
        return [m.check_item_id for m in self.members]


class EquivalenceMember(db.Model):
    __tablename__ = "equivalence_member"
    # An item belongs to at most one group of a joint plan.
    __table_args__ = (UniqueConstraint("joint_plan_id", "check_item_id"),)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_uuid)
    group_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("equivalence_group.id"), index=True)
    joint_plan_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("joint_plan.id"))
    check_item_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("check_item.id"))


class Draw(db.Model):
    """A double-random draw: seed, every input, their hash and the result — enough to re-run it."""

    __tablename__ = "draw"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_uuid)
    department_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("department.id"), index=True)  # who ran it
    plan_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("spot_check_plan.id"), index=True)
    joint_plan_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("joint_plan.id"), index=True)
    seed: Mapped[str] = mapped_column(String(64))
    inputs: Mapped[dict[str, Any]] = mapped_column(JSON)
    input_hash: Mapped[str] = mapped_column(String(64))
    result: Mapped[dict[str, Any]] = mapped_column(JSON)
    result_hash: Mapped[str] = mapped_column(String(64))
    task_ids: Mapped[list[str]] = mapped_column(JSON)  # tasks created or joined; not part of the draw itself
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("app_user.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ConflictOfInterest(db.Model):
    """An inspector may not inspect this enterprise (relative, former employer...)."""

    __tablename__ = "conflict_of_interest"
    __table_args__ = (UniqueConstraint("user_id", "enterprise_id"),)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_uuid)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("app_user.id"), index=True)
    enterprise_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("enterprise.id"), index=True)
    department_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("department.id"), index=True)  # the user's
    reason: Mapped[str] = mapped_column(Text)
    declared_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("app_user.id"))
    declared_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ApprovalStatus(str, enum.Enum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"


class TaskApproval(db.Model):
    """One participating department's decision on dispatching a task."""

    __tablename__ = "task_approval"
    __table_args__ = (UniqueConstraint("task_id", "department_id"),)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_uuid)
    task_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("inspection_task.id"), index=True)
    department_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("department.id"), index=True)
    status: Mapped[ApprovalStatus] = mapped_column(string_enum(ApprovalStatus, "approval_status"))
    decided_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("app_user.id"))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    reason: Mapped[str | None] = mapped_column(Text)


class FrequencyRule(db.Model):
    """The one frequency-control setting (row id 1); defaults apply while it is absent."""

    __tablename__ = "frequency_rule"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    max_inspections: Mapped[int] = mapped_column(Integer)   # per enterprise per period
    period_days: Mapped[int] = mapped_column(Integer)
    fold_window_days: Mapped[int] = mapped_column(Integer)  # another department's visit this close is joined
    updated_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("app_user.id"))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class FrequencyOverride(db.Model):
    """Permission to exceed the cap for one more visit to one enterprise: reason, head's approval, use."""

    __tablename__ = "frequency_override"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_uuid)
    enterprise_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("enterprise.id"), index=True)
    department_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("department.id"), index=True)
    reason: Mapped[str] = mapped_column(Text)
    status: Mapped[ApprovalStatus] = mapped_column(string_enum(ApprovalStatus, "approval_status"))
    requested_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("app_user.id"))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    decided_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("app_user.id"))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    decision_reason: Mapped[str | None] = mapped_column(Text)
    used_by_task_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("inspection_task.id"))
