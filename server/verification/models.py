"""The stored verification report of each media file."""
from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from server.db_types import UTCDateTime
from server.extensions import db


class VerificationReport(db.Model):
    """The latest analysis of one media file; a re-run replaces it (jobs are idempotent)."""

    __tablename__ = "verification_report"
    media_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("media.id"), primary_key=True)
    status: Mapped[str | None] = mapped_column(String(20))  # None while a run is under way
    reasons: Mapped[list[Any]] = mapped_column(JSON, default=list)
    measurements: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    detections: Mapped[list[Any]] = mapped_column(JSON, default=list)
    analyser: Mapped[str | None] = mapped_column(String(40))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
