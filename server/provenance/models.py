"""Device signing keys and the capture manifests the server has checked (docs/provenance.md)."""
from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from server.db_types import UTCDateTime, new_uuid
from server.extensions import db


class DeviceKey(db.Model):
    """A device's Ed25519 public key (raw 32 bytes, base64url). Retiring the device revokes it."""

    __tablename__ = "device_key"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_uuid)
    device_id: Mapped[str] = mapped_column(ForeignKey("device.id"), index=True)
    public_key: Mapped[str] = mapped_column(String(64), unique=True)
    registered_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class CaptureManifest(db.Model):
    """A manifest whose signature verified, as received: one per capture of a device, one per file."""

    __tablename__ = "capture_manifest"
    __table_args__ = (UniqueConstraint("device_id", "counter", name="uq_capture_manifest_device_counter"),)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_uuid)
    # A deleted file (retention) leaves its manifest: the device's chain still counts the capture.
    media_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("media.id", ondelete="SET NULL"), unique=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("device.id"))
    key_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("device_key.id"))
    counter: Mapped[int] = mapped_column(Integer)
    prev: Mapped[str] = mapped_column(String(64))
    manifest_hash: Mapped[str] = mapped_column(String(64), unique=True)
    sha256: Mapped[str] = mapped_column(String(64))
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    signature: Mapped[bytes] = mapped_column(LargeBinary)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
