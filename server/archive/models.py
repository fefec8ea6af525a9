"""What the archive keeps: legal holds on inspections (their whole case) and on single evidence files."""
from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from server.db_types import UTCDateTime, new_uuid, string_enum, utcnow
from server.extensions import db


class HeldObject(str, enum.Enum):
    INSPECTION = "inspection"  # the whole case: the record, its evidence and its case file
    MEDIA = "media"            # one evidence file


class LegalHold(db.Model):
    """A legal hold (诉讼保全/证据保全): while it is not lifted, nothing it covers may be deleted by any path.

    Rows are never deleted: lifting fills the ``lifted_*`` columns, so the hold's whole story stays.
    ``placed_by_id`` is None when the operator placed it at the server's command line.
    """

    __tablename__ = "legal_hold"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_uuid)
    object_type: Mapped[HeldObject] = mapped_column(string_enum(HeldObject, "held_object"))
    object_id: Mapped[uuid.UUID] = mapped_column()
    # The department owning the held object, so its heads (and the audit log) see the hold.
    department_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("department.id"), index=True)
    reason: Mapped[str] = mapped_column(Text)
    placed_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("app_user.id"))
    placed_by: Mapped[str] = mapped_column(String(150))
    placed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    lifted_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("app_user.id"))
    lifted_by: Mapped[str | None] = mapped_column(String(150))
    lifted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    lift_reason: Mapped[str | None] = mapped_column(Text)

    @property
    def active(self) -> bool:
        return self.lifted_at is None


Index("ix_legal_hold_object", LegalHold.object_type, LegalHold.object_id)
