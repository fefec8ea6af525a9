"""The stored verification report of each media file."""
from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from server.db_types import UTCDateTime, new_uuid
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


class InspectionMedia(db.Model):
    """Evidence of an inspection: the media its record names, and bodycam segments attached by time.

    A docked bodycam's segment is attached to every inspection of its assigned
    inspector whose time window it overlaps (back-to-back visits can share one).
    """

    __tablename__ = "inspection_media"
    inspection_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("synced_entity.id"), primary_key=True)
    media_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("media.id"), primary_key=True, index=True)
    task_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("inspection_task.id"), index=True)
    source: Mapped[str] = mapped_column(String(20))  # "record" (synced by a tablet) | "bodycam" (by time window)
    attached_at: Mapped[datetime] = mapped_column(UTCDateTime())


class InspectionAssessment(db.Model):
    """When an inspection's evidence was last assessed, and how it came out."""

    __tablename__ = "inspection_assessment"
    inspection_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("synced_entity.id"), primary_key=True)
    task_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("inspection_task.id"), index=True)
    assessed_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    errors: Mapped[int] = mapped_column(Integer, default=0)
    warnings: Mapped[int] = mapped_column(Integer, default=0)
    pending_media: Mapped[int] = mapped_column(Integer, default=0)  # evidence not yet verified
    # The version of the rules (server.verification.flags.RULES_VERSION) that made it: the sweeper
    # re-assesses inspections assessed by older rules.
    rules_version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")


class InspectionFlag(db.Model):
    """Something a supervisor must look at on an inspection record; replaced at each assessment."""

    __tablename__ = "inspection_flag"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_uuid)
    inspection_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("synced_entity.id"), index=True)
    task_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("inspection_task.id"), index=True)
    code: Mapped[str] = mapped_column(String(40), index=True)
    severity: Mapped[str] = mapped_column(String(10))  # "error" | "warning"
    message: Mapped[str] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    media_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("media.id"))
    raised_at: Mapped[datetime] = mapped_column(UTCDateTime())
