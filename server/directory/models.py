"""The directory: departments, people, certificates, enterprises, devices."""
from __future__ import annotations

import enum
import uuid
from datetime import date, datetime

from sqlalchemy import Boolean, Column, Date, ForeignKey, Index, String, Table, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from server.changefeed import ChangeTracked
from server.db_types import UTCDateTime, new_uuid, string_enum, utcnow
from server.extensions import db


class Role(str, enum.Enum):
    INSPECTOR = "inspector"
    SUPERVISOR = "supervisor"
    LEGAL_REVIEWER = "legal_reviewer"
    HEAD = "head"
    ADMIN = "admin"


class CertificateStatus(str, enum.Enum):
    VALID = "valid"
    SUSPENDED = "suspended"
    REVOKED = "revoked"


class DeviceKind(str, enum.Enum):
    BODYCAM = "bodycam"
    TABLET = "tablet"
    DOCK = "dock"


class Department(db.Model):
    __tablename__ = "department"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_uuid)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class CheckItem(ChangeTracked, db.Model):
    __tablename__ = "check_item"
    __table_args__ = (UniqueConstraint("department_id", "code"),)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_uuid)
    department_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("department.id"), index=True)
    code: Mapped[str] = mapped_column(String(32))
    title: Mapped[str] = mapped_column(String(200))
    legal_basis: Mapped[str] = mapped_column(Text)
    method: Mapped[str | None] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    department: Mapped[Department] = relationship()


class User(db.Model):
    """A person who logs in: inspector, supervisor, legal reviewer, head or admin."""

    __tablename__ = "app_user"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_uuid)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    full_name: Mapped[str] = mapped_column(String(100))
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[Role] = mapped_column(string_enum(Role, "role"))
    department_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("department.id"), index=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    department: Mapped[Department] = relationship()
    certificates: Mapped[list[Certificate]] = relationship(back_populates="holder", order_by="Certificate.valid_from")


class Certificate(ChangeTracked, db.Model):
    """An enforcement certificate (行政执法证); its QR code encodes ``number``."""

    __tablename__ = "certificate"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_uuid)
    number: Mapped[str] = mapped_column(String(32), unique=True)
    holder_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("app_user.id"), index=True)
    department_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("department.id"), index=True)
    valid_from: Mapped[date] = mapped_column(Date)
    valid_until: Mapped[date] = mapped_column(Date)
    status: Mapped[CertificateStatus] = mapped_column(string_enum(CertificateStatus, "certificate_status"))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    holder: Mapped[User] = relationship(back_populates="certificates")
    history: Mapped[list[CertificateStatusChange]] = relationship(
        back_populates="certificate", order_by="CertificateStatusChange.changed_at")


class CertificateStatusChange(db.Model):
    """Append-only history: a certificate's status on any past day can be answered."""

    __tablename__ = "certificate_status_change"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_uuid)
    certificate_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("certificate.id"), index=True)
    status: Mapped[CertificateStatus] = mapped_column(string_enum(CertificateStatus, "certificate_status"))
    reason: Mapped[str | None] = mapped_column(Text)
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    changed_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("app_user.id"))

    certificate: Mapped[Certificate] = relationship(back_populates="history")


enterprise_department = Table(
    "enterprise_department",
    db.metadata,
    Column("enterprise_id", ForeignKey("enterprise.id"), primary_key=True),
    Column("department_id", ForeignKey("department.id"), primary_key=True),
)


class Enterprise(ChangeTracked, db.Model):
    """An inspection target in the cross-department directory (检查对象名录库)."""

    __tablename__ = "enterprise"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_uuid)
    credit_code: Mapped[str] = mapped_column(String(18), unique=True)
    name: Mapped[str] = mapped_column(String(200), index=True)
    address: Mapped[str] = mapped_column(String(300))
    legal_representative: Mapped[str | None] = mapped_column(String(100))
    industry: Mapped[str | None] = mapped_column(String(100))
    risk_level: Mapped[str] = mapped_column(String(10), default="normal")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    supervising_departments: Mapped[list[Department]] = relationship(secondary=enterprise_department)


class Device(db.Model):
    """A bodycam, tablet or docking station; authenticates with its own secret."""

    __tablename__ = "device"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[DeviceKind] = mapped_column(string_enum(DeviceKind, "device_kind"))
    department_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("department.id"), index=True)
    inspector_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("app_user.id"), index=True)
    secret_hash: Mapped[str] = mapped_column(String(255))
    label: Mapped[str | None] = mapped_column(String(100))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # A tablet gets its secret by spending a one-time enrolment code (docs/field-app.md); retiring ends it for good.
    enrolled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    department: Mapped[Department] = relationship()
    inspector: Mapped[User | None] = relationship()


class EnrolmentCode(db.Model):
    """A one-time code that gives a tablet its device secret. Only the code's SHA-256 is stored."""

    __tablename__ = "enrolment_code"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_uuid)
    device_id: Mapped[str] = mapped_column(ForeignKey("device.id"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    issued_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("app_user.id"))  # None: the operator's CLI
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # a newer code, or the tablet retired


Index("ix_enterprise_updated", Enterprise.updated_at, Enterprise.id)
