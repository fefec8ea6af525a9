"""Directory rules: plain functions over the session; they flush, never commit."""
from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import or_, select

from server import events
from server.audit import service as audit
from server.auth import passwords
from server.auth.policy import Permission, Principal, authorize_object, in_scope, scope_query
from server.db_types import office_day, utcnow
from server.directory.models import (
    Certificate,
    CertificateStatus,
    CertificateStatusChange,
    CheckItem,
    Department,
    Device,
    DeviceKind,
    Enterprise,
    Role,
    User,
)
from server.errors import Problem
from server.extensions import db
from server.loading import load_authorized
from server.pagination import Page, keyset_page


def _field_error(field: str, message: str, status: int = 422, slug: str = "validation-failed") -> Problem:
    return Problem(status, slug, message, errors={field: [message]})


# ---- departments -----------------------------------------------------------

def list_departments(principal: Principal, limit: int, after: str | None) -> Page[Department]:
    query = scope_query(principal, Permission.READ_DIRECTORY, select(Department), Department.id)
    return keyset_page(query, Department.id, limit, after)


def get_department(principal: Principal, department_id: uuid.UUID) -> Department:
    return load_authorized(principal, Department, department_id, Permission.READ_DIRECTORY, not_found="部门不存在")


def department_by_code(code: str) -> Department:
    department = db.session.scalar(select(Department).where(Department.code == code))
    if department is None:
        raise _field_error("department", f"部门代码 {code} 不存在", 404, "not-found")
    return department


def create_department(principal: Principal, code: str, name: str) -> Department:
    authorize_object(principal, Permission.MANAGE_DEPARTMENTS, None)
    if db.session.scalar(select(Department.id).where(Department.code == code)):
        raise _field_error("code", f"部门代码 {code} 已存在", 409, "duplicate")
    department = Department(code=code, name=name)
    db.session.add(department)
    db.session.flush()
    return department


def _department_in_scope(principal: Principal, permission: Permission, department_id: uuid.UUID) -> Department:
    department = db.session.get(Department, department_id)
    if department is None:
        raise _field_error("department_id", "部门不存在")
    if not in_scope(principal, permission, department.id):
        raise _field_error("department_id", "只能在本部门内进行此操作", 403, "forbidden")
    return department


# ---- check items -------------------------------------------------------------

def list_check_items(principal: Principal, department_id: uuid.UUID | None, limit: int,
                     after: str | None) -> Page[CheckItem]:
    query = scope_query(principal, Permission.READ_DIRECTORY, select(CheckItem), CheckItem.department_id)
    if department_id:
        query = query.where(CheckItem.department_id == department_id)
    return keyset_page(query, CheckItem.id, limit, after)


def get_check_item(principal: Principal, item_id: uuid.UUID) -> CheckItem:
    return load_authorized(principal, CheckItem, item_id, Permission.READ_DIRECTORY, not_found="检查事项不存在")


def create_check_item(principal: Principal, data: Mapping[str, Any]) -> CheckItem:
    department = _department_in_scope(principal, Permission.MANAGE_CHECK_ITEMS, data["department_id"])
    exists = db.session.scalar(select(CheckItem.id).where(
        CheckItem.department_id == department.id, CheckItem.code == data["code"]))
    if exists:
        raise _field_error("code", f"本部门已有编码为 {data['code']} 的检查事项", 409, "duplicate")
    item = CheckItem(department_id=department.id, code=data["code"], title=data["title"],
                     legal_basis=data["legal_basis"], method=data.get("method"))
    db.session.add(item)
    db.session.flush()
    return item


def update_check_item(principal: Principal, item_id: uuid.UUID, changes: Mapping[str, Any]) -> CheckItem:
    item = get_check_item(principal, item_id)
    authorize_object(principal, Permission.MANAGE_CHECK_ITEMS, item, visible=Permission.READ_DIRECTORY)
    for key, value in changes.items():
        setattr(item, key, value)
    db.session.flush()
    return item


# ---- enterprises -------------------------------------------------------------

def list_enterprises(principal: Principal, q: str | None, department_id: uuid.UUID | None,
                     limit: int, after: str | None) -> Page[Enterprise]:
    query = scope_query(principal, Permission.READ_DIRECTORY, select(Enterprise), Enterprise.id)
    if q:
        escaped = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(or_(Enterprise.credit_code == q.upper(), Enterprise.name.like(f"%{escaped}%", escape="\\")))
    if department_id:
        query = query.where(Enterprise.supervising_departments.any(Department.id == department_id))
    return keyset_page(query, Enterprise.id, limit, after)


def get_enterprise(principal: Principal, enterprise_id: uuid.UUID) -> Enterprise:
    return load_authorized(principal, Enterprise, enterprise_id, Permission.READ_DIRECTORY, not_found="检查对象不存在")


def create_enterprise(principal: Principal, data: Mapping[str, Any],
                      supervising: list[Department] | None = None) -> Enterprise:
    """Add a target to the cross-department directory, supervised by the caller's department."""
    authorize_object(principal, Permission.MANAGE_ENTERPRISES, None)
    if db.session.scalar(select(Enterprise.id).where(Enterprise.credit_code == data["credit_code"])):
        raise _field_error("credit_code", f"统一社会信用代码 {data['credit_code']} 已在名录中", 409, "duplicate")
    enterprise = Enterprise(**{k: data.get(k) for k in
                               ("credit_code", "name", "address", "legal_representative", "industry")},
                            risk_level=data.get("risk_level") or "normal")
    if supervising is None:
        own = db.session.get(Department, principal.department_id)
        supervising = [own] if own else []
    enterprise.supervising_departments = list(supervising)
    db.session.add(enterprise)
    db.session.flush()
    return enterprise


def update_enterprise(principal: Principal, enterprise_id: uuid.UUID, changes: Mapping[str, Any]) -> Enterprise:
    enterprise = get_enterprise(principal, enterprise_id)
    authorize_object(principal, Permission.MANAGE_ENTERPRISES, None)
    supervised_by_caller = any(d.id == principal.department_id for d in enterprise.supervising_departments)
    if not (principal.is_admin or supervised_by_caller):
        raise Problem(403, "forbidden", "只有监管该检查对象的部门可以修改其信息")
    for key, value in changes.items():
        setattr(enterprise, key, value)
    db.session.flush()
    return enterprise


# ---- people and certificates -------------------------------------------------

def list_users(principal: Principal, role: Role | None, limit: int, after: str | None,
               department_id: uuid.UUID | None = None) -> Page[User]:
    """People of the caller's department; of another department, only its active inspectors, and only to
    those who plan visits (a joint team is formed from several departments' inspectors)."""
    if department_id is None or department_id == principal.department_id or principal.is_admin:
        query = scope_query(principal, Permission.READ_PEOPLE, select(User), User.department_id)
    else:
        authorize_object(principal, Permission.MANAGE_TASKS, None)
        if db.session.get(Department, department_id) is None:
            raise _field_error("department_id", "部门不存在", 404, "not-found")
        query = select(User).where(User.role == Role.INSPECTOR, User.active.is_(True))
        if role not in (None, Role.INSPECTOR):
            raise _field_error("role", "其他部门只能查看在岗执法人员（inspector）", 403, "forbidden")
    if department_id is not None:
        query = query.where(User.department_id == department_id)
    if role:
        query = query.where(User.role == role)
    return keyset_page(query, User.id, limit, after)


def get_user(principal: Principal, user_id: uuid.UUID) -> User:
    return load_authorized(principal, User, user_id, Permission.READ_PEOPLE, not_found="人员不存在")


def create_user(principal: Principal, data: Mapping[str, Any]) -> User:
    department = _department_in_scope(principal, Permission.MANAGE_PEOPLE, data["department_id"])
    role = Role(data["role"])
    if role == Role.ADMIN and not principal.is_admin:
        raise _field_error("role", "只有系统管理员可以创建管理员账号", 403, "forbidden")
    if db.session.scalar(select(User.id).where(User.username == data["username"])):
        raise _field_error("username", f"用户名 {data['username']} 已被使用", 409, "duplicate")
    user = User(username=data["username"], full_name=data["full_name"], role=role, department_id=department.id,
                password_hash=passwords.hash_password(data["password"]))
    db.session.add(user)
    db.session.flush()
    certificate = data.get("certificate")
    if certificate:
        issue_certificate(principal, user, certificate["number"], certificate["valid_from"], certificate["valid_until"])
    return user


def issue_certificate(principal: Principal, holder: User, number: str, valid_from: date,
                      valid_until: date) -> Certificate:
    authorize_object(principal, Permission.MANAGE_PEOPLE, holder, visible=Permission.READ_PEOPLE)
    if valid_until < valid_from:
        raise _field_error("valid_until", "有效期截止日期早于起始日期")
    if db.session.scalar(select(Certificate.id).where(Certificate.number == number)):
        raise _field_error("certificate.number", f"执法证号 {number} 已存在", 409, "duplicate")
    certificate = Certificate(number=number, holder_id=holder.id, department_id=holder.department_id,
                              valid_from=valid_from, valid_until=valid_until, status=CertificateStatus.VALID)
    certificate.history.append(CertificateStatusChange(
        status=CertificateStatus.VALID, reason="发证", changed_at=utcnow(), changed_by_id=principal.user_id))
    db.session.add(certificate)
    db.session.flush()
    return certificate


def list_certificates(principal: Principal, limit: int, after: str | None) -> Page[Certificate]:
    query = scope_query(principal, Permission.READ_PEOPLE, select(Certificate), Certificate.department_id)
    return keyset_page(query, Certificate.id, limit, after)


def get_certificate(principal: Principal, certificate_id: uuid.UUID) -> Certificate:
    return load_authorized(principal, Certificate, certificate_id, Permission.READ_PEOPLE, not_found="执法证不存在")


def certificate_by_number(number: str) -> Certificate:
    certificate = db.session.scalar(select(Certificate).where(Certificate.number == number))
    if certificate is None:
        raise _field_error("number", f"执法证号 {number} 不存在", 404, "not-found")
    return certificate


def change_certificate_status(principal: Principal, certificate: Certificate, status: CertificateStatus,
                              reason: str | None) -> Certificate:
    """Suspend, revoke or reinstate; every change is kept in the history."""
    authorize_object(principal, Permission.CHANGE_CERTIFICATE_STATUS, certificate, visible=Permission.READ_PEOPLE)
    if status != CertificateStatus.VALID and not reason:
        raise _field_error("reason", "暂扣或吊销执法证必须说明理由")
    if certificate.status == CertificateStatus.REVOKED:
        raise _field_error("status", "执法证已吊销，不能再变更状态", 409, "certificate-revoked")
    if certificate.status == status:
        raise _field_error("status", f"执法证已处于该状态（{status.value}）", 409, "no-change")
    certificate.status = status
    changed_at = utcnow()
    certificate.history.append(CertificateStatusChange(
        status=status, reason=reason, changed_at=changed_at, changed_by_id=principal.user_id))
    db.session.flush()
    events.emit(events.Event.CERTIFICATE_CHANGED, holder_id=certificate.holder_id, changed_at=changed_at)
    audit.record("certificate.status_change", object_type="certificate", object_id=str(certificate.id), actor=principal,
                 details={"number": certificate.number, "status": status.value, "reason": reason})
    return certificate


def certificate_status_on(certificate: Certificate, day: date) -> str:
    """The certificate's standing on ``day`` from its status history, not today's status:
    ``valid``, ``suspended``, ``revoked``, ``expired`` or ``not-yet-valid``."""
    if day < certificate.valid_from:
        return "not-yet-valid"
    if day > certificate.valid_until:
        return "expired"
    status = CertificateStatus.VALID
    for change in certificate.history:  # ordered by time
        if office_day(change.changed_at) <= day:
            status = change.status
    return status.value


def certificate_valid_on(certificate: Certificate, day: date) -> bool:
    """Was the certificate in force on ``day``?"""
    return certificate_status_on(certificate, day) == "valid"


def certificate_valid_throughout(certificate: Certificate, first_day: date, last_day: date) -> bool:
    """In force on every day from ``first_day`` to ``last_day``, and neither suspended nor revoked now.

    Today's status counts for a future window too: a certificate suspended
    today cannot be relied on for next week's visit.
    """
    if certificate.status != CertificateStatus.VALID or last_day > certificate.valid_until:
        return False
    if not certificate_valid_on(certificate, first_day):
        return False
    return all(change.status == CertificateStatus.VALID for change in certificate.history
               if first_day < office_day(change.changed_at) <= last_day)


# ---- devices -----------------------------------------------------------------

@dataclass(frozen=True)
class CreatedDevice:
    device: Device
    secret: str

    def __getattr__(self, name: str) -> Any:  # lets the schema dump device fields directly
        return getattr(self.device, name)


def list_devices(principal: Principal, limit: int, after: str | None) -> Page[Device]:
    query = scope_query(principal, Permission.READ_DEVICES, select(Device), Device.department_id)
    return keyset_page(query, Device.id, limit, after, uuid_keys=False)


def get_device(principal: Principal, device_id: str) -> Device:
    return load_authorized(principal, Device, device_id, Permission.READ_DEVICES, not_found="设备不存在")


def create_device(principal: Principal, data: Mapping[str, Any]) -> CreatedDevice:
    department = _department_in_scope(principal, Permission.MANAGE_DEVICES, data["department_id"])
    if db.session.get(Device, data["id"]) is not None:
        raise _field_error("id", f"设备编号 {data['id']} 已存在", 409, "duplicate")
    inspector_id = data.get("inspector_id")
    if inspector_id is not None:
        inspector = db.session.get(User, inspector_id)
        if inspector is None or inspector.department_id != department.id:
            raise _field_error("inspector_id", "绑定的执法人员不存在或不属于该部门")
    secret = passwords.new_device_secret()
    device = Device(id=data["id"], kind=DeviceKind(data["kind"]), department_id=department.id,
                    inspector_id=inspector_id, label=data.get("label"),
                    secret_hash=passwords.hash_device_secret(secret))
    db.session.add(device)
    db.session.flush()
    return CreatedDevice(device, secret)
