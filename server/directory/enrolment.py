"""Tablet enrolment: a one-time code gives a tablet its device secret (docs/field-app.md).

An administrator, or a department's head for their department, issues a code for a tablet (creating the tablet
on first issue). The code is 12 characters from an alphabet without look-alikes, shown ``XXXX-XXXX-XXXX``, valid
for 24 hours and usable once; only its SHA-256 is stored. Spending it (``POST /api/v1/devices/enrol``, no log-in)
sets a new device secret, so a re-enrolled tablet's old secret, and every log-in bound to it, stop working.
Retiring a tablet ends it for good: its secret, its unused codes and every token bound to it.
"""
from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import func, select, update

from server.audit import service as audit
from server.auth import passwords
from server.auth.policy import Permission, Principal, can, in_scope
from server.auth.throttle import FailureThrottle
from server.db_types import utcnow
from server.directory.models import Department, Device, DeviceKind, EnrolmentCode
from server.directory.schemas import RESERVED_DEVICE_IDS
from server.errors import Problem
from server.extensions import db
from server.loading import load_authorized
from server.schemas import UNSTORABLE_MESSAGE, has_unstorable_text

#: No 0/O, no 1/I: a code read aloud over the phone or typed from a printout has no look-alikes.
CODE_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
CODE_LENGTH = 12
CODE_VALIDITY = timedelta(hours=24)
MAX_LISTED = 500
_USED = "该登记码已经使用过，每个登记码只能用一次；请向管理员索取新的登记码"
_SEPARATORS = re.compile(r"[\s\-_]+")
_DEVICE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,63}$")


@dataclass(frozen=True)
class IssuedCode:
    """A code just issued: shown once (the database keeps only its hash)."""

    device: Device
    code: str            # XXXX-XXXX-XXXX
    expires_at: datetime
    created: bool        # the tablet was registered by this issue


@dataclass(frozen=True)
class Enrolled:
    device: Device
    secret: str          # shown once, as for create-device


def format_code(raw: str) -> str:
    return "-".join(raw[i:i + 4] for i in range(0, len(raw), 4))


def normalise_code(text: str) -> str:
    """What the inspector typed, as the code it stands for: case, spaces and hyphens do not matter."""
    return _SEPARATORS.sub("", text).upper()


def hash_code(text: str) -> str:
    return hashlib.sha256(normalise_code(text).encode()).hexdigest()


def new_code() -> str:
    return format_code("".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH)))


def _refused(status: int, slug: str, message: str) -> Problem:
    return Problem(status, slug, message, errors={"code": [message]})


def _throttle() -> FailureThrottle:
    return current_app.extensions["inspect_once.login_throttle"]  # the log-in's: same budgets, same storage


def _revoke_unused(device_id: str, now: datetime) -> None:
    db.session.execute(update(EnrolmentCode)
                       .where(EnrolmentCode.device_id == device_id, EnrolmentCode.used_at.is_(None),
                              EnrolmentCode.revoked_at.is_(None))
                       .values(revoked_at=now))


def _new_tablet_id(department: Department) -> str:
    prefix = department.code.replace("_", "-")[:56] + "-TAB"
    taken = db.session.scalar(select(func.count()).select_from(Device).where(Device.id.like(prefix + "%"))) or 0
    number = taken + 1
    while db.session.get(Device, f"{prefix}{number:02d}") is not None:
        number += 1
    return f"{prefix}{number:02d}"


def _field(field: str, message: str, status: int = 422, slug: str = "validation-failed") -> Problem:
    return Problem(status, slug, message, errors={field: [message]})


def issue_code(principal: Principal, department_id: uuid.UUID, device_id: str | None = None,
               label: str | None = None) -> IssuedCode:
    """Issue a one-time enrolment code for a tablet of ``department_id``; registers the tablet if new.

    Re-issuing for an existing, active tablet is re-enrolment: its unused codes are revoked, and spending the new
    one replaces its secret. A retired tablet, another department's device or one that is not a tablet is refused.
    """
    department = db.session.get(Department, department_id)
    if department is None:
        raise _field("department_id", "部门不存在", 404, "not-found")
    if not in_scope(principal, Permission.MANAGE_DEVICES, department.id):
        if not can(principal, Permission.MANAGE_DEVICES):
            raise Problem(403, "forbidden", "您的角色无权执行此操作")
        raise _field("department_id", "只能为本部门的平板签发登记码", 403, "forbidden")
    if label is not None and not (1 <= len(label) <= 100):
        raise _field("label", "设备名称须为1-100个字符")
    if label is not None and has_unstorable_text(label):  # the review page's form is no StrictSchema
        raise _field("label", UNSTORABLE_MESSAGE)
    if device_id and not _DEVICE_ID.match(device_id):  # before any look-up: the form's text may be anything
        raise _field("device_id", "设备编号须为1-64位字母、数字或连字符")
    if device_id and device_id.casefold() in RESERVED_DEVICE_IDS:
        raise _field("device_id", f"设备编号 {device_id} 为系统保留，请换一个")
    now = utcnow()
    created = False
    device = db.session.get(Device, device_id) if device_id else None
    if device is None:
        device = Device(id=device_id or _new_tablet_id(department), kind=DeviceKind.TABLET,
                        department_id=department.id, label=label,
                        # Nobody knows this secret: the tablet gets its own when it spends the code.
                        secret_hash=passwords.hash_device_secret(passwords.new_device_secret()))
        db.session.add(device)
        created = True
    else:
        if device.department_id != department.id:
            if not in_scope(principal, Permission.READ_DEVICES, device.department_id):
                raise _field("device_id", f"设备编号 {device.id} 已被其他部门使用", 409, "duplicate")
            raise _field("device_id", f"设备 {device.id} 不属于该部门", 409, "duplicate")
        if device.kind is not DeviceKind.TABLET:
            raise _field("device_id", f"设备 {device.id} 不是执法平板，不能用登记码登记", 409, "not-a-tablet")
        if device.retired_at is not None or not device.active:
            raise _field("device_id", f"平板 {device.id} 已停用，不能再次登记；请使用新的设备编号", 409,
                         "device-retired")
        if label is not None:
            device.label = label
        _revoke_unused(device.id, now)
    code = new_code()
    expires_at = now + CODE_VALIDITY
    db.session.add(EnrolmentCode(device_id=device.id, code_hash=hash_code(code), issued_at=now,
                                 expires_at=expires_at, issued_by_id=principal.user_id))
    db.session.flush()
    audit.record("device.enrolment_code_issued", object_type="device", object_id=device.id, actor=principal,
                 details={"created": created, "expires_at": expires_at.isoformat()})
    return IssuedCode(device, code, expires_at, created)


def enrol(code: str, client_address: str) -> Enrolled:
    """Spend an enrolment code: the tablet gets a new secret, shown once. Refusals change nothing."""
    throttle = _throttle()
    normalised = normalise_code(code)
    throttle.check("enrol", normalised, client_address)
    now = utcnow()
    stored = db.session.scalar(select(EnrolmentCode).where(EnrolmentCode.code_hash == hash_code(code))
                               .with_for_update())
    refusal: Problem | None = None
    if stored is None or len(normalised) != CODE_LENGTH:
        refusal = _refused(400, "enrolment-code-invalid", "登记码不正确，请核对后重新输入")
    elif stored.used_at is not None:
        refusal = _refused(410, "enrolment-code-used", _USED)
    elif stored.revoked_at is not None:
        # Superseded by a newer code for the same tablet, or the tablet was retired: as good as wrong.
        refusal = _refused(400, "enrolment-code-invalid", "该登记码已作废（已签发了新的登记码或平板已停用）")
    elif stored.expires_at <= now:
        refusal = _refused(410, "enrolment-code-expired", "该登记码已过期（有效期 24 小时）；请向管理员索取新的登记码")
    device = db.session.get(Device, stored.device_id) if stored is not None and refusal is None else None
    if refusal is None and (device is None or not device.active or device.retired_at is not None):
        refusal = _refused(400, "enrolment-code-invalid", "该登记码对应的平板已停用")
    if refusal is not None:
        throttle.record_failure("enrol", normalised, client_address)
        audit.record("device.enrol_failed", object_type="device", object_id=stored.device_id if stored else None,
                     outcome="failed", details={"reason": refusal.slug}, actor=audit.ANONYMOUS)
        raise refusal
    assert stored is not None and device is not None
    # Only one spend of a code can win, even from two server processes at once.
    spent = db.session.execute(update(EnrolmentCode)
                               .where(EnrolmentCode.id == stored.id, EnrolmentCode.used_at.is_(None))
                               .values(used_at=now))
    if spent.rowcount != 1:  # type: ignore[attr-defined]
        raise _refused(410, "enrolment-code-used", _USED)
    secret = passwords.new_device_secret()
    device.secret_hash = passwords.hash_device_secret(secret)
    device.enrolled_at = now
    db.session.flush()
    audit.record("device.enrolled", object_type="device", object_id=device.id,
                 actor=Principal("device", device.id, "device", device.department_id))
    return Enrolled(device, secret)


def retire(principal: Principal, device_id: str) -> Device:
    """End a device for good (admin, or the head of its department): its secret and every token bound to it.

    Retiring a retired device changes nothing.
    """
    if not _DEVICE_ID.match(device_id):  # no device has such an id (and the database need not see it)
        raise Problem(404, "not-found", "设备不存在")
    device = load_authorized(principal, Device, device_id, Permission.MANAGE_DEVICES, not_found="设备不存在",
                             visible=Permission.READ_DEVICES)
    if device.retired_at is None:
        now = utcnow()
        device.active = False
        device.retired_at = now
        _revoke_unused(device.id, now)
        db.session.flush()
        audit.record("device.retired", object_type="device", object_id=device.id, actor=principal)
    return device


def tablets(principal: Principal, department_id: uuid.UUID | None = None) -> list[Device]:
    """Tablets the caller manages (their department's; an administrator's of every or one department).

    At most ``MAX_LISTED`` (a department has tens of tablets, not thousands; the list is a page, not an export).
    """
    if not can(principal, Permission.MANAGE_DEVICES):
        raise Problem(403, "forbidden", "您的角色无权执行此操作")
    query = select(Device).where(Device.kind == DeviceKind.TABLET)
    if not principal.is_admin:
        query = query.where(Device.department_id == principal.department_id)
    elif department_id is not None:
        query = query.where(Device.department_id == department_id)
    return list(db.session.scalars(query.order_by(Device.department_id, Device.id).limit(MAX_LISTED)))
