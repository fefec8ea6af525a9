"""Published results of enforcement decisions (事后公开): what the public page shows, version by version.

A row is a snapshot of the public fields of a decision at the moment it was published, so the page never
shows more than was published, nor changes when the decision's own row does. Nothing personal is kept
here: no inspector, no certificate, no footage, no amount of a person — only the enforcement body, the
enterprise (name and unified social credit code), the kind of inspection and decision, the conclusion and
the dates. Who published is in the audit log (and ``published_by_id``), never on the page.

A correction (更新) is a new version that names the one it corrects; the earlier one stays, marked
corrected. A withdrawal (撤销) marks the current version withdrawn, with the reason; it stays on the page as
withdrawn. Only ``server.publication.service`` writes these rows.
"""
from __future__ import annotations

import enum
import uuid
from datetime import date, datetime

from sqlalchemy import Date, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from server.db_types import UTCDateTime, new_uuid, string_enum, utcnow
from server.extensions import db


class PublicationState(str, enum.Enum):
    PUBLISHED = "published"   # the version the public reads now
    CORRECTED = "corrected"   # replaced by a later version (更正前)
    WITHDRAWN = "withdrawn"   # 已撤销: shown as withdrawn, with the reason


class Publication(db.Model):
    __tablename__ = "publication"
    __table_args__ = (UniqueConstraint("decision_id", "version", name="uq_publication_decision_version"),)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_uuid)
    decision_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("enforcement_decision.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)  # 1 the first publication, 2 its first correction …
    corrects_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("publication.id"))
    department_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("department.id"), index=True)
    # The published fields, as they were published.
    enforcement_body: Mapped[str] = mapped_column(String(200))
    enterprise_name: Mapped[str] = mapped_column(String(200))
    credit_code: Mapped[str] = mapped_column(String(18), index=True)
    inspection_kind: Mapped[str] = mapped_column(String(40))
    decision_kind: Mapped[str] = mapped_column(String(40))
    conclusion: Mapped[str] = mapped_column(Text)
    decided_on: Mapped[date] = mapped_column(Date)
    deadline: Mapped[date | None] = mapped_column(Date)  # None: the calendar did not reach it when published
    published_on: Mapped[date] = mapped_column(Date)     # the office day
    published_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    correction_note: Mapped[str | None] = mapped_column(Text)  # on a correction: what was corrected and why
    state: Mapped[PublicationState] = mapped_column(string_enum(PublicationState, "publication_state"),
                                                    default=PublicationState.PUBLISHED)
    withdrawn_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    withdrawn_on: Mapped[date | None] = mapped_column(Date)
    withdrawal_reason: Mapped[str | None] = mapped_column(Text)
    published_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("app_user.id"))
    withdrawn_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("app_user.id"))
