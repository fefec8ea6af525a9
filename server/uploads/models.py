"""Uploads in progress, stored files (one per content) and the media records that refer to them."""
from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from server.db_types import UTCDateTime, new_uuid, string_enum, utcnow
from server.extensions import db


class UploadStatus(str, enum.Enum):
    ACTIVE = "active"            # bytes still arriving
    COMPLETED = "completed"      # hash matched; the file is an object and a media record refers to it
    TERMINATED = "terminated"    # the client deleted it (tus termination)
    QUARANTINED = "quarantined"  # the whole file's hash did not match the declared one
    EXPIRED = "expired"          # abandoned; its bytes were removed by expire-uploads


class VerificationStatus(str, enum.Enum):
    PENDING = "pending"
    VERIFIED = "verified"
    FAILED = "failed"
    NEEDS_REVIEW = "needs_review"


class Upload(db.Model):
    """One tus upload. Its bytes and durable offset live in the media store under ``storage_key``."""

    __tablename__ = "media_upload"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_uuid)
    status: Mapped[UploadStatus] = mapped_column(string_enum(UploadStatus, "upload_status"))
    length: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))  # declared by the client, checked at the end
    storage_backend: Mapped[str] = mapped_column(String(20))
    storage_key: Mapped[str] = mapped_column(String(200))
    # Whose upload it is: only they may continue it; other departments do not see it.
    department_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("department.id"), index=True)
    uploaded_by_user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("app_user.id"))
    uploaded_by_device_id: Mapped[str | None] = mapped_column(ForeignKey("device.id"))
    # What the file is: the synced media record (tablets; set at creation) or the
    # media record made when it completed (devices).
    media_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    media_department_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("department.id"))
    task_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("inspection_task.id"))
    device_id: Mapped[str | None] = mapped_column(ForeignKey("device.id"))
    file_name: Mapped[str | None] = mapped_column(String(255))
    content_type: Mapped[str | None] = mapped_column(String(100))
    capture_start: Mapped[datetime | None] = mapped_column(UTCDateTime())
    metadata_header: Mapped[str] = mapped_column(Text, default="")  # echoed on HEAD, as tus asks
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    quarantined_as: Mapped[str | None] = mapped_column(String(200))


Index("ix_media_upload_status_created", Upload.status, Upload.created_at)


class MediaObject(db.Model):
    """A stored file, content-addressed: identical footage is stored once, whoever sent it."""

    __tablename__ = "media_object"
    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    backend: Mapped[str] = mapped_column(String(20))
    key: Mapped[str] = mapped_column(String(300))
    stored_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Media(db.Model):
    """A piece of evidence: a photo, recording segment or signature image, and what is known of it.

    For tablet photos ``id`` is the synced ``media`` entity's id. Several
    records may refer to one ``MediaObject``.
    """

    __tablename__ = "media"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_uuid)
    sha256: Mapped[str] = mapped_column(ForeignKey("media_object.sha256"), index=True)
    size: Mapped[int] = mapped_column(BigInteger)
    department_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("department.id"), index=True)
    task_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("inspection_task.id"), index=True)
    device_id: Mapped[str | None] = mapped_column(ForeignKey("device.id"))
    content_type: Mapped[str | None] = mapped_column(String(100))
    file_name: Mapped[str | None] = mapped_column(String(255))
    capture_start: Mapped[datetime | None] = mapped_column(UTCDateTime())
    uploaded_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    uploaded_by_user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("app_user.id"))
    uploaded_by_device_id: Mapped[str | None] = mapped_column(ForeignKey("device.id"))
    upload_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("media_upload.id"))
    verification_status: Mapped[VerificationStatus] = mapped_column(
        string_enum(VerificationStatus, "verification_status"), default=VerificationStatus.PENDING)
    verification_reasons: Mapped[list[Any]] = mapped_column(JSON, default=list)

    # The full analysis (server.verification); the verdict above is copied from it.
    report: Mapped[Any] = relationship("VerificationReport", uselist=False, viewonly=True,
                                       primaryjoin="Media.id == foreign(VerificationReport.media_id)")

    @property
    def verification(self) -> dict[str, Any]:
        verdict: dict[str, Any] = {"status": self.verification_status.value,
                                   "reasons": list(self.verification_reasons or [])}
        report = self.report
        if report is not None and report.finished_at is not None and report.status is not None:
            verdict.update(measurements=report.measurements or {}, detections=report.detections or [],
                           analyser=report.analyser, verified_at=report.finished_at)
        return verdict


Index("ix_media_device_sha256", Media.device_id, Media.sha256)
