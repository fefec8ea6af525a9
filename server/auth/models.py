"""Refresh tokens: stored hashed, rotated on use, revoked as a family on reuse."""
from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from server.db_types import UTCDateTime, new_uuid, utcnow
from server.extensions import db


class RefreshToken(db.Model):
    __tablename__ = "refresh_token"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_uuid)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    family_id: Mapped[uuid.UUID] = mapped_column(index=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("app_user.id"), index=True)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_reason: Mapped[str | None] = mapped_column(String(100))
    # A log-in on an enrolled tablet: refreshing keeps the binding, and ends when the tablet is retired or
    # re-enrolled (``device_key`` fingerprints the device secret the log-in was made with).
    device_id: Mapped[str | None] = mapped_column(ForeignKey("device.id"), index=True)
    device_key: Mapped[str | None] = mapped_column(String(16))
