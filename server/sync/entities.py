"""The entities tablets sync and the rules for their fields.

Plain functions rather than marshmallow schemas: a push carries up to 500
mutations, and these checks run for each one on the hot path.
"""
from __future__ import annotations

import enum
import functools
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from server.schemas import UNSTORABLE_MESSAGE, has_unstorable_text


class FieldError(ValueError):
    """A field's value is not acceptable; the message is for the inspector."""

    code = "invalid-fields"


class ImmutableFieldError(FieldError):
    code = "immutable-field"


Validator = Callable[[Any], Any]


def _nullable(validate: Validator) -> Validator:
    def check(value: Any) -> Any:
        return None if value is None else validate(value)
    return check


# One visit, one record: every tablet of the team derives the task's inspection
# id from the task id, so tablets that start the inspection offline create the
# same entity and the server merges their edits field by field. The field client
# uses the same namespace (field_client/engine.py).
INSPECTION_NAMESPACE = uuid.UUID("6f1d3c2e-9b7a-5e40-8c21-4a0f3d9e7b15")


def inspection_id_for(task_id: uuid.UUID) -> uuid.UUID:
    """The id of the task's one (joint) inspection record."""
    return uuid.uuid5(INSPECTION_NAMESPACE, str(task_id))


@functools.lru_cache(maxsize=8192)
def parse_uuid(value: str) -> uuid.UUID:
    """uuid.UUID, remembered: a batch names the same inspection and check items hundreds of times."""
    return uuid.UUID(value)


def uuid_text(value: Any) -> str:
    if not isinstance(value, str):
        raise FieldError("应为 UUID 字符串")
    try:
        return str(parse_uuid(value))
    except ValueError:
        raise FieldError("不是有效的 UUID") from None


def timestamp(value: Any) -> str:
    if not isinstance(value, str) or len(value) > 40:
        raise FieldError("应为带时区的 ISO 8601 时间")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise FieldError("不是有效的 ISO 8601 时间") from None
    if parsed.tzinfo is None:
        raise FieldError("时间必须带时区（如 +08:00）")
    return parsed.astimezone(UTC).isoformat()


def text(max_length: int) -> Validator:
    def check(value: Any) -> str:
        if not isinstance(value, str):
            raise FieldError("应为文本")
        if has_unstorable_text(value):
            raise FieldError(UNSTORABLE_MESSAGE)
        if len(value) > max_length:
            raise FieldError(f"长度不能超过 {max_length} 个字符")
        return value
    return check


def choice(*options: str) -> Validator:
    def check(value: Any) -> str:
        if value not in options:
            raise FieldError("取值应为：" + "、".join(options))
        return value  # type: ignore[no-any-return]
    return check


def list_of(validate: Validator, max_items: int) -> Validator:
    def check(value: Any) -> list[Any]:
        if not isinstance(value, list):
            raise FieldError("应为列表")
        if len(value) > max_items:
            raise FieldError(f"最多 {max_items} 项")
        return [validate(v) for v in value]
    return check


_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def sha256_hex(value: Any) -> str:
    if not isinstance(value, str) or not _SHA256.match(value.lower()):
        raise FieldError("应为64位十六进制 SHA-256")
    return value.lower()


def size_bytes(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0 or value > 1 << 44:
        raise FieldError("应为非负整数（字节）")
    return value


_BASE64URL = re.compile(r"^[A-Za-z0-9_-]+$")


def base64url_text(max_length: int) -> Validator:
    """base64url without padding (a capture manifest and its signature, docs/provenance.md)."""
    def check(value: Any) -> str:
        if not isinstance(value, str) or not _BASE64URL.match(value):
            raise FieldError("应为 base64url 编码文本（不含填充）")
        if len(value) > max_length:
            raise FieldError(f"长度不能超过 {max_length} 个字符")
        return value
    return check


COERCIVE_KINDS = ("seizure", "impoundment", "demolition", "closure", "other")


def coercive_measure(value: Any) -> dict[str, str]:
    if not isinstance(value, dict) or set(value) - {"kind", "description"} or "kind" not in value:
        raise FieldError("强制措施应为 {kind, description}")
    return {"kind": choice(*COERCIVE_KINDS)(value["kind"]),
            "description": text(1000)(value.get("description") or "")}


#: The node of the HLC stamps the server writes (a review decision on a record); no device may take this id.
SERVER_NODE = "SERVER"


def written_by_the_server(value: Any) -> Any:
    """A field only the server writes (the review app's decision): a tablet's write of it is refused."""
    raise ImmutableFieldError("审核意见由审核端写入，执法终端不能修改")


@dataclass(frozen=True)
class FieldRule:
    validate: Validator
    required: bool = False   # must be given when the entity is created
    immutable: bool = False  # cannot change once set


class Kind(enum.StrEnum):
    """The kinds of record tablets sync (``SyncedEntity.kind``)."""

    INSPECTION = "inspection"  # the task's one (joint) inspection record
    FINDING = "finding"  # a department's answer to one check item
    MEDIA = "media"  # a photo, video or recording declared by a tablet (its file is uploaded separately)
    SIGNATURE = "signature"  # someone's signature on the record


# How many records of a kind one inspection may hold: a visit has a few dozen findings, some hundreds of
# photos and clips, a handful of signatures. A tablet (or a load test) that sends more is refused
# (``record-full``), so no record grows beyond what a reviewer's page, the joint record and its report
# can show whole.
MAX_PER_INSPECTION: dict[Kind, int] = {Kind.FINDING: 500, Kind.MEDIA: 2000, Kind.SIGNATURE: 50}


@dataclass(frozen=True)
class EntityRules:
    kind: Kind
    fields: dict[str, FieldRule]
    parent_field: str | None  # the field naming the inspection this entity belongs to


ENTITY_RULES: dict[Kind, EntityRules] = {
    Kind.INSPECTION: EntityRules(Kind.INSPECTION, {
        "task_id": FieldRule(uuid_text, required=True, immutable=True),
        "started_at": FieldRule(_nullable(timestamp)),
        "ended_at": FieldRule(_nullable(timestamp)),
        "place": FieldRule(_nullable(text(300))),
        "representative": FieldRule(_nullable(text(100))),
        "soft_measures": FieldRule(list_of(text(1000), 50)),
        "coercive_measures": FieldRule(list_of(coercive_measure, 20)),
        "conclusion": FieldRule(_nullable(text(4000))),
        "status": FieldRule(choice("open", "finished")),  # the server also writes "returned" (record_review)
        # The inspection code (token) the tablet held for the task when the inspection began: shown to the
        # enterprise on the spot (扫码入企); the server checks it (server.codes) and flags a visit without one.
        "inspection_code": FieldRule(_nullable(text(2048))),
        # The latest review decision, {status: returned|approved, comment, decided_at, decided_by: {id, full_name}}.
        "review": FieldRule(written_by_the_server),
    }, parent_field=None),
    Kind.FINDING: EntityRules(Kind.FINDING, {
        "inspection_id": FieldRule(uuid_text, required=True, immutable=True),
        "check_item_id": FieldRule(uuid_text, required=True, immutable=True),
        "result": FieldRule(choice("compliant", "non_compliant", "not_applicable"), required=True),
        "note": FieldRule(_nullable(text(4000))),
        "evidence": FieldRule(list_of(uuid_text, 100)),
        "recorded_at": FieldRule(_nullable(timestamp)),
    }, parent_field="inspection_id"),
    Kind.MEDIA: EntityRules(Kind.MEDIA, {
        "inspection_id": FieldRule(uuid_text, required=True, immutable=True),
        "sha256": FieldRule(sha256_hex, required=True, immutable=True),
        "size": FieldRule(size_bytes, required=True, immutable=True),
        "content_type": FieldRule(_nullable(text(100))),
        "file_name": FieldRule(_nullable(text(255))),
        "capture_start": FieldRule(_nullable(timestamp)),
        "capture_end": FieldRule(_nullable(timestamp)),
        "device_id": FieldRule(_nullable(text(64))),
        "proves": FieldRule(choice("certificate", "scene", "signature", "other")),
        # The device's signed capture manifest (docs/provenance.md), checked when the file is verified.
        "manifest": FieldRule(_nullable(base64url_text(6000)), immutable=True),
        "manifest_signature": FieldRule(_nullable(base64url_text(100)), immutable=True),
    }, parent_field="inspection_id"),
    Kind.SIGNATURE: EntityRules(Kind.SIGNATURE, {
        "inspection_id": FieldRule(uuid_text, required=True, immutable=True),
        "signer_role": FieldRule(choice("inspector", "representative", "witness"), required=True),
        "signer_name": FieldRule(_nullable(text(100))),
        "media_id": FieldRule(_nullable(uuid_text)),
        "signed_at": FieldRule(_nullable(timestamp)),
    }, parent_field="inspection_id"),
}


def clean_fields(kind: EntityRules, fields: dict[str, Any], *, creating: bool,
                 current: dict[str, Any] | None) -> dict[str, Any]:
    """Validate and normalise ``fields``; raise FieldError naming the first bad field."""
    unknown = sorted(set(fields) - set(kind.fields))
    if unknown:
        shown = (name.encode("utf-8", "backslashreplace").decode() for name in unknown)
        raise FieldError(f"未知字段：{', '.join(shown)}")
    cleaned: dict[str, Any] = {}
    for name, value in fields.items():
        rule = kind.fields[name]
        try:
            cleaned[name] = rule.validate(value)
        except FieldError as exc:
            raise type(exc)(f"{name}: {exc}") from None  # keeps the code (immutable-field for a server field)
        if rule.immutable and current is not None and name in current and current[name] != cleaned[name]:
            raise ImmutableFieldError(f"{name}: 创建后不能修改")
    if creating:
        missing = [name for name, rule in kind.fields.items() if rule.required and name not in cleaned]
        if missing:
            raise FieldError(f"缺少必填字段：{', '.join(missing)}")
    return cleaned
