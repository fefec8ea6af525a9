"""The ledger: one row per sync or upload request that told the device's clock."""
from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index
from sqlalchemy.orm import Mapped, mapped_column

from server.db_types import UTCDateTime, new_uuid, string_enum
from server.extensions import db


class ReadingKind(enum.StrEnum):
    """Which request told the clock."""

    PUSH = "push"
    PULL = "pull"
    UPLOAD = "upload"  # tus creation or PATCH


class ReadingSource(enum.StrEnum):
    """Where the device's clock was read from."""

    HEADER = "header"  # the request's Device-Clock header: the device's clock as it sent the request
    HLC = "hlc"  # no usable header: the latest physical time among a push's HLC stamps (a lower bound only)


class ClockReading(db.Model):
    """The device's clock (``device_clock``) against the server's receive time (``server_time``).

    ``offset_ms`` = device clock − server time, in milliseconds (positive: the device is ahead).
    """

    __tablename__ = "clock_reading"
    __table_args__ = (Index("ix_clock_reading_device_id_server_time", "device_id", "server_time"),
                      Index("ix_clock_reading_device_id_device_clock", "device_id", "device_clock"))
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_uuid)
    device_id: Mapped[str] = mapped_column(ForeignKey("device.id"))
    kind: Mapped[ReadingKind] = mapped_column(string_enum(ReadingKind, "clock_reading_kind"))
    source: Mapped[ReadingSource] = mapped_column(string_enum(ReadingSource, "clock_reading_source"))
    device_clock: Mapped[datetime] = mapped_column(UTCDateTime())
    server_time: Mapped[datetime] = mapped_column(UTCDateTime())
    offset_ms: Mapped[int] = mapped_column(BigInteger)
