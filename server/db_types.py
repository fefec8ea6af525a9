"""Column types shared by every capability's models."""
from __future__ import annotations

import enum
import uuid
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import DateTime, Enum
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use timezone-aware UTC datetimes")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


#: Where the offices are: a "day" (an inspection day, the day a certificate was suspended) is a day here.
OFFICE_TIMEZONE = ZoneInfo("Asia/Shanghai")


def utcnow() -> datetime:
    return datetime.now(UTC)


def office_day(moment: datetime) -> date:
    """The calendar day of ``moment`` in the offices' time zone."""
    return moment.astimezone(OFFICE_TIMEZONE).date()


def new_uuid() -> uuid.UUID:
    return uuid.uuid4()


def string_enum(cls: type[enum.Enum], name: str) -> Enum:
    """An enum stored as its values in a plain string column (with a CHECK).

    No native PostgreSQL enum type: adding a value later is a data change,
    not a schema migration.
    """
    return Enum(cls, name=name, native_enum=False, create_constraint=True, length=20,
                values_callable=lambda members: [m.value for m in members])
