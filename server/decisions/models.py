"""Enforcement decisions (执法决定), their legal review (法制审核) and notification-commitment checks (告知承诺).

A decision is what a department concludes about an enterprise after an inspection; a joint inspection can
lead to one decision per participating department, never two by the same department. Publication
(server.publication) and the case file (server.archive) read these rows; only ``server.decisions.service``
writes them.
"""
from __future__ import annotations

import enum
import uuid
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import JSON, Boolean, Date, ForeignKey, Index, Numeric, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from server.db_types import UTCDateTime, new_uuid, string_enum, utcnow
from server.extensions import db


class DecisionKind(str, enum.Enum):
    NO_IRREGULARITY = "no_irregularity"      # 未发现违法违规
    RECTIFY_ORDER = "rectify_order"          # 责令限期改正 (with ``rectify_by``)
    PENALTY = "penalty"                      # 行政处罚 (with ``amount_yuan``)
    SEIZURE = "seizure"                      # 查封扣押: always major
    TRANSFER_JUDICIAL = "transfer_judicial"  # 移送司法机关: always major
    LICENSING = "licensing"                  # 行政许可: published within 7 working days, like penalties


class DecisionStatus(str, enum.Enum):
    DRAFT = "draft"    # being prepared; may be edited, and reviewed when major
    MADE = "made"      # 作出: decided on ``decided_on``; no longer edited
    SERVED = "served"  # 送达 on ``served_on``: the case file can be assembled


class Circumstance(str, enum.Enum):
    """The seed's §4 circumstances that make a decision major (重大执法决定)."""

    MAJOR_PUBLIC_INTEREST = "major_public_interest"        # 涉及重大公共利益，可能造成重大社会影响或引发社会风险
    MAJOR_PARTY_RIGHTS = "major_party_rights"              # 直接关系行政相对人或第三人重大权益
    AFTER_HEARING = "after_hearing"                        # 经过听证程序作出
    COMPLEX_CASE = "complex_case"                          # 案件情况疑难复杂
    MULTIPLE_LEGAL_RELATIONS = "multiple_legal_relations"  # 涉及多个法律关系


class ReviewOutcome(str, enum.Enum):
    APPROVED = "approved"  # 同意: the decision may be made as it stands
    REJECTED = "rejected"  # 不同意: amend the draft and ask again


class CommitmentResult(str, enum.Enum):
    TRUE = "true"      # 承诺属实
    UNTRUE = "untrue"  # 承诺不实: marked in the directory, and a decision follows (§12)


class EnforcementDecision(db.Model):
    __tablename__ = "enforcement_decision"
    __table_args__ = (UniqueConstraint("inspection_id", "department_id", name="uq_decision_inspection_department"),)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_uuid)
    # The task's (joint) inspection record, a synced entity (no foreign key: tablets create it offline).
    inspection_id: Mapped[uuid.UUID] = mapped_column(index=True)
    task_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("inspection_task.id"), index=True)
    department_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("department.id"), index=True)
    enterprise_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("enterprise.id"), index=True)
    kind: Mapped[DecisionKind] = mapped_column(string_enum(DecisionKind, "enforcement_decision_kind"))
    conclusion: Mapped[str] = mapped_column(Text)
    legal_basis: Mapped[str] = mapped_column(Text)
    rectify_by: Mapped[date | None] = mapped_column(Date)              # rectify_order only
    amount_yuan: Mapped[Decimal | None] = mapped_column(Numeric(14, 2))  # penalty only
    # §4 circumstances the department chose for this case (Circumstance values).
    circumstances: Mapped[list[str]] = mapped_column(JSON, default=list)
    decided_on: Mapped[date | None] = mapped_column(Date)  # set when made
    served_on: Mapped[date | None] = mapped_column(Date)   # set when served, not before decided_on
    major: Mapped[bool] = mapped_column(Boolean, default=False)
    # Why it is major: "kind:seizure", "kind:transfer_judicial", "penalty_above:10000", "circumstance:after_hearing"…
    major_reasons: Mapped[list[str]] = mapped_column(JSON, default=list)
    # The latest legal review of the draft as it stands (cleared when the draft is edited). A legal_review
    # row's id; no foreign key, since legal_review already points here and a cycle would need ALTERs SQLite lacks.
    legal_review_id: Mapped[uuid.UUID | None] = mapped_column()
    status: Mapped[DecisionStatus] = mapped_column(string_enum(DecisionStatus, "enforcement_decision_status"),
                                                   default=DecisionStatus.DRAFT)
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("app_user.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    made_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("app_user.id"))
    made_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    served_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("app_user.id"))


Index("ix_enforcement_decision_status_major", EnforcementDecision.status, EnforcementDecision.major)


class LegalReview(db.Model):
    """A legal reviewer's sign-off (or refusal) of a decision's draft; append-only."""

    __tablename__ = "legal_review"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_uuid)
    decision_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("enforcement_decision.id"), index=True)
    reviewer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("app_user.id"))
    opinion: Mapped[str] = mapped_column(Text)
    outcome: Mapped[ReviewOutcome] = mapped_column(string_enum(ReviewOutcome, "legal_review_outcome"))
    reviewed_on: Mapped[date] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class DecisionRule(db.Model):
    """A department's own rule for what is major, over the configured default (§4: 各单位确定审核内容)."""

    __tablename__ = "decision_rule"
    department_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("department.id"), primary_key=True)
    # A penalty above this amount is major; None: the configured default (DECISIONS_MAJOR_PENALTY_YUAN).
    major_penalty_above_yuan: Mapped[Decimal | None] = mapped_column(Numeric(14, 2))
    # Which §4 circumstances make this department's decisions major (Circumstance values).
    circumstances: Mapped[list[str]] = mapped_column(JSON, default=list)
    updated_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("app_user.id"))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Commitment(db.Model):
    """A notification-commitment (告知承诺) an enterprise made to a department, and its follow-up check (§12)."""

    __tablename__ = "commitment"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_uuid)
    enterprise_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("enterprise.id"), index=True)
    department_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("department.id"), index=True)
    matter: Mapped[str] = mapped_column(String(200))   # 事项: the licence or certificate applied for
    promise: Mapped[str] = mapped_column(Text)         # what was promised
    due_on: Mapped[date] = mapped_column(Date)         # by when
    # The inspection task that is this commitment's follow-up check (核查).
    task_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("inspection_task.id"), index=True)
    result: Mapped[CommitmentResult | None] = mapped_column(string_enum(CommitmentResult, "commitment_result"))
    result_note: Mapped[str | None] = mapped_column(Text)
    checked_on: Mapped[date | None] = mapped_column(Date)
    result_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("app_user.id"))
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("app_user.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
