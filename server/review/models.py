"""What the review app stores: supervisors' decisions, the browser sessions they work in, and sampling quotas."""
from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from server.db_types import UTCDateTime, new_uuid, string_enum, utcnow
from server.extensions import db


class DecisionKind(str, enum.Enum):
    APPROVE = "approve"                  # final approval of an inspection record
    RETURN = "return"                    # sent back to the team with comments
    LEGAL_SIGNOFF = "legal_signoff"      # 法制审核: needed before approval when the record requires it
    DISPATCH_APPROVE = "dispatch_approve"  # a head approves a task before it is dispatched (§7)
    DISPATCH_REJECT = "dispatch_reject"


class ReviewDecision(db.Model):
    """One decision, append-only: the record's review status is its latest decision."""

    __tablename__ = "review_decision"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_uuid)
    # The synced inspection entity decided on; None for a decision on a task's dispatch.
    inspection_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    task_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("inspection_task.id"), index=True)
    department_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("department.id"), index=True)
    kind: Mapped[DecisionKind] = mapped_column(string_enum(DecisionKind, "decision_kind"))
    comment: Mapped[str | None] = mapped_column(Text)
    decided_by_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("app_user.id"))
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


Index("ix_review_decision_inspection_time", ReviewDecision.inspection_id, ReviewDecision.decided_at)


class ReviewSession(db.Model):
    """A browser log-on. Kept on the server so that log-off and the idle timeout really end it:
    a copied cookie is worthless once its session has ended."""

    __tablename__ = "review_session"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_uuid)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("app_user.id"), index=True)
    client_address: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    end_reason: Mapped[str | None] = mapped_column(String(20))  # logout | idle | account-disabled


class ReviewQuota(db.Model):
    """A department's sampling quota for watching footage (issue 17), per calendar month in office time:
    every record with coercive measures watched in full, and ``other_percent`` of the other records."""

    __tablename__ = "review_quota"
    department_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("department.id"), primary_key=True)
    coercive_in_full: Mapped[bool] = mapped_column(Boolean, default=True)
    other_percent: Mapped[int] = mapped_column(Integer, default=20)  # 0–100
    updated_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("app_user.id"))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
