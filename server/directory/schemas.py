from __future__ import annotations

import base64
import binascii
import re
from typing import Any

import marshmallow as ma

from server.directory.credit_code import credit_code_problems
from server.directory.marks import untrue_commitments
from server.directory.models import CertificateStatus, DeviceKind, Role
from server.schemas import PageMeta, PageQuery, StrictSchema

DEPARTMENT_CODE = re.compile(r"^[A-Z][A-Z0-9_]{1,31}$")
USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{2,63}$")
DEVICE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,63}$")
# The server's own HLC node (server.sync.entities.SERVER_NODE, review decisions): no device may be named so.
RESERVED_DEVICE_IDS = frozenset({"server"})


def _not_reserved(value: str) -> None:
    if value.casefold() in RESERVED_DEVICE_IDS:
        raise ma.ValidationError(f"设备编号 {value} 为系统保留，请换一个")
CERTIFICATE_NUMBER = re.compile(r"^[A-Za-z0-9-]{4,32}$")
ITEM_CODE = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")


def _text(max_len: int, *, required: bool = True, **kw: object) -> ma.fields.String:
    return ma.fields.String(required=required, validate=ma.validate.Length(min=1, max=max_len), **kw)  # type: ignore[arg-type]


def _regex(pattern: re.Pattern[str], message: str) -> ma.validate.Regexp:
    return ma.validate.Regexp(pattern, error=message)


def _validate_credit_code(value: str) -> None:
    problems = credit_code_problems(value)
    if problems:
        raise ma.ValidationError(problems)


# ---- departments -----------------------------------------------------------

class DepartmentSchema(ma.Schema):
    id = ma.fields.UUID(dump_only=True)
    code = ma.fields.String()
    name = ma.fields.String()


class DepartmentCreate(StrictSchema):
    code = ma.fields.String(required=True,
                            validate=_regex(DEPARTMENT_CODE, "部门代码须为大写字母开头的2-32位大写字母、数字或下划线"))
    name = _text(100)


class DepartmentPage(PageMeta):
    items = ma.fields.List(ma.fields.Nested(DepartmentSchema))


# ---- check items ------------------------------------------------------------

class CheckItemSchema(ma.Schema):
    id = ma.fields.UUID()
    department_id = ma.fields.UUID()
    code = ma.fields.String()
    title = ma.fields.String()
    legal_basis = ma.fields.String()
    method = ma.fields.String(allow_none=True)
    active = ma.fields.Boolean()


class CheckItemCreate(StrictSchema):
    department_id = ma.fields.UUID(required=True)
    code = ma.fields.String(required=True,
                            validate=_regex(ITEM_CODE, "事项编码须为1-32位字母、数字、点、下划线或连字符"))
    title = _text(200)
    legal_basis = _text(2000)
    method = _text(200, required=False, allow_none=True)


class CheckItemUpdate(StrictSchema):
    title = _text(200, required=False)
    legal_basis = _text(2000, required=False)
    method = _text(200, required=False, allow_none=True)
    active = ma.fields.Boolean()


class CheckItemQuery(PageQuery):
    department_id = ma.fields.UUID(load_default=None)


class CheckItemPage(PageMeta):
    items = ma.fields.List(ma.fields.Nested(CheckItemSchema))


# ---- enterprises ------------------------------------------------------------

class EnterpriseSchema(ma.Schema):
    id = ma.fields.UUID()
    credit_code = ma.fields.String()
    name = ma.fields.String()
    address = ma.fields.String()
    legal_representative = ma.fields.String(allow_none=True)
    industry = ma.fields.String(allow_none=True)
    risk_level = ma.fields.String()
    supervising_department_ids = ma.fields.Method("_department_ids")
    untrue_commitments = ma.fields.Method("_untrue_commitments", metadata={
        "type": "array", "description": "Notification-commitments found untrue in a follow-up check (§12)",
        "items": {"type": "object", "properties": {
            "commitment_id": {"type": "string", "format": "uuid"}, "department": {"type": "string"},
            "matter": {"type": "string"}, "checked_on": {"type": "string", "format": "date", "nullable": True}}}})

    def _department_ids(self, obj: object) -> list[str]:
        return sorted(str(d.id) for d in getattr(obj, "supervising_departments", []))

    def _untrue_commitments(self, obj: object) -> list[dict[str, object]]:
        enterprise_id = getattr(obj, "id", None)
        return [] if enterprise_id is None else untrue_commitments(enterprise_id)


RISK_LEVELS = ("low", "normal", "high")


class EnterpriseCreate(StrictSchema):
    credit_code = ma.fields.String(required=True, validate=_validate_credit_code,
                                   metadata={"description": "18-character unified social credit code (GB 32100-2015)"})
    name = _text(200)
    address = _text(300)
    legal_representative = _text(100, required=False, allow_none=True)
    industry = _text(100, required=False, allow_none=True)
    risk_level = ma.fields.String(load_default="normal", validate=ma.validate.OneOf(RISK_LEVELS))


class EnterpriseUpdate(StrictSchema):
    name = _text(200, required=False)
    address = _text(300, required=False)
    legal_representative = _text(100, required=False, allow_none=True)
    industry = _text(100, required=False, allow_none=True)
    risk_level = ma.fields.String(validate=ma.validate.OneOf(RISK_LEVELS))


class EnterpriseQuery(PageQuery):
    q = ma.fields.String(load_default=None, validate=ma.validate.Length(min=1, max=100),
                         metadata={"description": "Part of the name, or the exact credit code"})
    department_id = ma.fields.UUID(load_default=None)


class EnterprisePage(PageMeta):
    items = ma.fields.List(ma.fields.Nested(EnterpriseSchema))


# ---- people and certificates -----------------------------------------------

class CertificateStatusChangeSchema(ma.Schema):
    status = ma.fields.String(attribute="status.value")
    reason = ma.fields.String(allow_none=True)
    changed_at = ma.fields.AwareDateTime()
    changed_by_id = ma.fields.UUID(allow_none=True)


class CertificateSummarySchema(ma.Schema):
    id = ma.fields.UUID()
    number = ma.fields.String()
    valid_from = ma.fields.Date()
    valid_until = ma.fields.Date()
    status = ma.fields.String(attribute="status.value")


class CertificateSchema(ma.Schema):
    id = ma.fields.UUID()
    number = ma.fields.String()
    holder_id = ma.fields.UUID()
    department_id = ma.fields.UUID()
    valid_from = ma.fields.Date()
    valid_until = ma.fields.Date()
    status = ma.fields.String(attribute="status.value")
    history = ma.fields.List(ma.fields.Nested(CertificateStatusChangeSchema))


class CertificateCreate(StrictSchema):
    number = ma.fields.String(required=True,
                              validate=_regex(CERTIFICATE_NUMBER, "执法证号须为4-32位字母、数字或连字符"))
    valid_from = ma.fields.Date(required=True)
    valid_until = ma.fields.Date(required=True)

    @ma.validates_schema
    def _window(self, data: dict[str, object], **_: object) -> None:
        if data["valid_until"] < data["valid_from"]:  # type: ignore[operator]
            raise ma.ValidationError("有效期截止日期早于起始日期", field_name="valid_until")


class CertificateStatusRequest(StrictSchema):
    status = ma.fields.Enum(CertificateStatus, by_value=True, required=True)
    reason = _text(500, required=False, allow_none=True)

    @ma.validates_schema
    def _reason(self, data: dict[str, object], **_: object) -> None:
        if data["status"] != CertificateStatus.VALID and not data.get("reason"):
            raise ma.ValidationError("暂扣或吊销执法证必须说明理由", field_name="reason")


class CertificatePage(PageMeta):
    items = ma.fields.List(ma.fields.Nested(CertificateSchema))


class UserSchema(ma.Schema):
    id = ma.fields.UUID()
    username = ma.fields.String()
    full_name = ma.fields.String()
    role = ma.fields.String(attribute="role.value")
    department_id = ma.fields.UUID()
    active = ma.fields.Boolean()
    certificates = ma.fields.List(ma.fields.Nested(CertificateSummarySchema))


class UserCreate(StrictSchema):
    username = ma.fields.String(required=True,
                                validate=_regex(USERNAME, "用户名须为3-64位字母、数字、点、下划线或连字符"))
    full_name = _text(100)
    password = ma.fields.String(required=True, load_only=True,
                                validate=ma.validate.Length(min=8, max=256, error="密码长度须为8-256位"))
    role = ma.fields.Enum(Role, by_value=True, required=True)
    department_id = ma.fields.UUID(required=True)
    certificate = ma.fields.Nested(CertificateCreate, load_default=None, allow_none=True)


class UserQuery(PageQuery):
    role = ma.fields.Enum(Role, by_value=True, load_default=None)
    department_id = ma.fields.UUID(load_default=None, metadata={
        "description": "Only this department's people; another department's active inspectors are listed to "
                       "supervisors and heads, who form joint teams"})


class UserPage(PageMeta):
    items = ma.fields.List(ma.fields.Nested(UserSchema))


# ---- devices ----------------------------------------------------------------

class DeviceSchema(ma.Schema):
    id = ma.fields.String()
    kind = ma.fields.String(attribute="kind.value")
    department_id = ma.fields.UUID()
    inspector_id = ma.fields.UUID(allow_none=True)
    label = ma.fields.String(allow_none=True)
    active = ma.fields.Boolean()
    enrolled_at = ma.fields.DateTime(allow_none=True, metadata={
        "description": "When a tablet last spent an enrolment code (its current secret dates from then)"})
    retired_at = ma.fields.DateTime(allow_none=True, metadata={"description": "Retired for good (no more log-ins)"})


class DeviceCreate(StrictSchema):
    id = ma.fields.String(required=True, validate=[_regex(DEVICE_ID, "设备编号须为1-64位字母、数字或连字符"),
                                                   _not_reserved])
    kind = ma.fields.Enum(DeviceKind, by_value=True, required=True)
    department_id = ma.fields.UUID(required=True)
    inspector_id = ma.fields.UUID(load_default=None, allow_none=True)
    label = _text(100, required=False, allow_none=True)


class DeviceCreated(DeviceSchema):
    secret = ma.fields.String(metadata={"description": "Shown once; store it on the device"})


class DevicePage(PageMeta):
    items = ma.fields.List(ma.fields.Nested(DeviceSchema))


_BASE64URL = re.compile(r"^[A-Za-z0-9_-]+$")


def public_key_problem(value: Any) -> str | None:
    """Why ``value`` is not a raw Ed25519 public key in base64url (no padding), or None when it is one."""
    if not isinstance(value, str) or not _BASE64URL.match(value):
        return "公钥应为 base64url 编码（不含填充）"
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        return "公钥应为 base64url 编码（不含填充）"
    return None if len(raw) == 32 else "公钥应为 32 字节的 Ed25519 原始公钥"


def _public_key(value: str) -> None:
    problem = public_key_problem(value)
    if problem is not None:
        raise ma.ValidationError(problem)


class PublicKeyField(ma.fields.String):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(validate=_public_key, metadata={
            "description": "The device's Ed25519 public key: its raw 32 bytes, base64url without padding "
                           "(docs/provenance.md)"}, **kwargs)


class EnrolRequest(StrictSchema):
    code = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=64, error="请输入登记码"),
                            load_only=True, metadata={"description": "XXXX-XXXX-XXXX (case, spaces, hyphens ignored)"})
    public_key = PublicKeyField(load_default=None, allow_none=True, load_only=True)


class EnrolDepartment(ma.Schema):
    id = ma.fields.UUID()
    code = ma.fields.String()
    name = ma.fields.String()


class Enrolled(ma.Schema):
    device_id = ma.fields.String(attribute="device.id")
    device_secret = ma.fields.String(attribute="secret", metadata={"description": "Shown once; keep it on the tablet"})
    department = ma.fields.Nested(EnrolDepartment, attribute="device.department")
    label = ma.fields.String(attribute="device.label", allow_none=True)
