"""Capture provenance: device keys, signed capture manifests and each device's chain of captures.

A device signs, at capture, a manifest of the file (docs/provenance.md): its hash, size, type, capture times,
and its place in the device's chain (``counter``, ``prev``). The server checks it when the file is verified
(``server.verification`` calls :func:`check_media`): the signature against the device's registered key, the
manifest against what was uploaded, and the chain against the manifests of that device received so far. A
manifest whose signature holds is stored as received (:class:`CaptureManifest`), so a later file of the same
device is measured against it and the case file carries it for offline checking.

Checking at verification rather than on arrival keeps the push and the upload (below this capability) as they
are, runs once per file in the background worker, and re-runs idempotently with the verification job.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import event, select, update
from sqlalchemy.orm import Session, object_session

from server.audit import service as audit
from server.auth.policy import Permission, Principal
from server.db_types import utcnow
from server.directory import enrolment
from server.directory.enrolment import Enrolled
from server.directory.models import Device
from server.directory.schemas import public_key_problem
from server.errors import Problem
from server.extensions import db
from server.loading import load_authorized
from server.provenance.models import CaptureManifest, DeviceKey
from server.sync.models import MutationRecord
from server.sync.records import media_record
from server.uploads import tus
from server.uploads.models import Media, Upload

#: The keys of a version-1 manifest, exactly (docs/provenance.md).
MANIFEST_KEYS = frozenset({"v", "device_id", "counter", "prev", "sha256", "size", "media_type", "capture_start",
                           "capture_end", "device_clock", "media_id", "task_id", "inspection_id", "inspector",
                           "location"})
MAX_MANIFEST_BYTES = 4096
MAX_COUNTER = 2**31 - 1
#: A capture time in the manifest and the one the record or upload declares may differ by this much.
TIME_TOLERANCE_SECONDS = 1.0
#: How many missing counters a chain-gap reason lists (it also says how many in all).
LISTED_MISSING = 20

REASONS: dict[str, str] = {
    "unsigned": "文件没有采集签名清单，无法证明由登记的执法终端采集",
    "bad-signature": "采集签名清单的签名无效（不是该终端的密钥签的，或清单被改动过）",
    "revoked-key": "签名所用的终端密钥在文件送达前已被吊销（终端已停用或已重新登记）",
    "chain-gap": "该终端的采集链不完整，有采集记录未送达",
    "manifest-mismatch": "采集签名清单与上传的文件或证据记录不一致",
    "manifest-replayed": "同一份采集签名清单被用于另一个文件",
}
#: The reason codes this capability writes into a media's verification.
CODES = frozenset(REASONS)
_LEGACY_UNSIGNED = "文件没有采集签名清单（该终端尚未登记签名密钥，按旧版终端处理）"

_B64URL = re.compile(r"^[A-Za-z0-9_-]*={0,2}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$")


# ---- encodings ------------------------------------------------------------------------------------

def b64url_decode(text: str) -> bytes:
    """base64url, padding optional; anything else raises ValueError."""
    if not isinstance(text, str) or not _B64URL.match(text):
        raise ValueError("not base64url")
    try:
        return base64.urlsafe_b64decode(text.rstrip("=") + "=" * (-len(text.rstrip("=")) % 4))
    except (binascii.Error, ValueError):
        raise ValueError("not base64url") from None


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def manifest_hash(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


# ---- device keys ----------------------------------------------------------------------------------

def active_key(device_id: str) -> DeviceKey | None:
    return db.session.scalar(select(DeviceKey).where(DeviceKey.device_id == device_id,
                                                     DeviceKey.revoked_at.is_(None)).limit(1))


def _check_key_text(public_key: str) -> str:
    problem = public_key_problem(public_key)
    if problem is not None:
        raise Problem(422, "validation-failed", problem, errors={"public_key": [problem]})
    normalised = public_key
    if db.session.scalar(select(DeviceKey.id).where(DeviceKey.public_key == normalised)) is not None:
        raise Problem(409, "duplicate", "该公钥已被登记", errors={"public_key": ["该公钥已被登记"]})
    return normalised


def enrolled_key(device: Device, public_key: str) -> DeviceKey:
    """A tablet's key sent with its enrolment: it replaces (revokes) the key of an earlier enrolment."""
    normalised = _check_key_text(public_key)
    now = utcnow()
    db.session.execute(update(DeviceKey).where(DeviceKey.device_id == device.id, DeviceKey.revoked_at.is_(None))
                       .values(revoked_at=now))
    key = DeviceKey(device_id=device.id, public_key=normalised, registered_at=now)
    db.session.add(key)
    db.session.flush()
    audit.record("device.key_registered", object_type="device", object_id=device.id,
                 actor=Principal("device", device.id, "device", device.department_id),
                 details={"public_key": normalised, "with": "enrolment"})
    return key


def enrol(code: str, client_address: str, public_key: str | None) -> Enrolled:
    """Spend an enrolment code (server.directory.enrolment) and register the key the tablet sent with it.

    The key is checked before the code is spent, so a refused key leaves the code usable.
    """
    if public_key is not None:
        _check_key_text(public_key)
    enrolled = enrolment.enrol(code, client_address)
    if public_key is not None:
        enrolled_key(enrolled.device, public_key)
    return enrolled


def register_own_key(principal: Principal, public_key: str) -> DeviceKey:
    """A device (a docking station, with its device token) registers its key: once; 409 when it has one."""
    if principal.kind != "device":
        raise Problem(403, "forbidden", "只有设备本身（设备令牌）可以登记设备公钥")
    device = db.session.get(Device, principal.id, with_for_update=True)
    if device is None or not device.active or device.retired_at is not None:
        raise Problem(403, "forbidden", "设备已停用")
    held = active_key(device.id)
    if held is not None:
        # The key held is public: a dock whose first registration lost its answer sees that it is its own.
        raise Problem(409, "device-key-registered", "该设备已登记公钥；如需更换，请联系管理员先清除旧公钥",
                      errors={"public_key": ["该设备已登记公钥"]}, extra={"public_key": held.public_key})
    normalised = _check_key_text(public_key)
    key = DeviceKey(device_id=device.id, public_key=normalised, registered_at=utcnow())
    db.session.add(key)
    db.session.flush()
    audit.record("device.key_registered", object_type="device", object_id=device.id, actor=principal,
                 details={"public_key": normalised, "with": "device-token"})
    return key


def clear_key(principal: Principal, device_id: str) -> None:
    """An administrator or the device's head clears its key (revoked from now), so it may register a new one."""
    device = load_authorized(principal, Device, device_id, Permission.MANAGE_DEVICES, not_found="设备不存在",
                             visible=Permission.READ_DEVICES)
    key = active_key(device.id)
    if key is None:
        raise Problem(404, "not-found", "该设备没有登记公钥")
    key.revoked_at = utcnow()
    db.session.flush()
    audit.record("device.key_cleared", object_type="device", object_id=device.id, actor=principal,
                 details={"public_key": key.public_key})


# Retiring a device (server.directory.enrolment.retire) revokes its key in the same transaction. The directory
# sits below this capability and does not know of keys, so the revocation rides on the flush of the retirement.
_RETIRED = "provenance_retired_devices"


@event.listens_for(Device.retired_at, "set")
def _device_retired(target: Device, value: datetime | None, _old: Any, _initiator: Any) -> None:
    session = object_session(target)
    if value is not None and session is not None:
        session.info.setdefault(_RETIRED, {})[target.id] = value


@event.listens_for(Session, "before_flush")
def _revoke_keys_of_retired(session: Session, _context: Any, _instances: Any) -> None:
    retired = session.info.pop(_RETIRED, None)
    if not retired:
        return
    connection = session.connection()  # plain SQL: no autoflush inside the flush
    table = DeviceKey.__table__
    for device_id, when in retired.items():
        connection.execute(update(table).where(table.c.device_id == device_id, table.c.revoked_at.is_(None))
                           .values(revoked_at=when))


@event.listens_for(Session, "after_rollback")
def _forget_retired(session: Session) -> None:
    session.info.pop(_RETIRED, None)


# ---- manifests ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Received:
    """A manifest and its signature as they arrived (decoded), and the manifest's fields."""

    raw: bytes
    signature: bytes
    fields: dict[str, Any]

    @property
    def hash(self) -> str:
        return manifest_hash(self.raw)


class Unreadable(ValueError):
    """The manifest or its signature cannot even be decoded."""


def decode(manifest_text: str, signature_text: str) -> Received:
    try:
        raw, signature = b64url_decode(manifest_text), b64url_decode(signature_text)
    except ValueError:
        raise Unreadable("清单或签名不是 base64url 编码") from None
    if len(signature) != 64:
        raise Unreadable("签名应为 64 字节")
    if not raw or len(raw) > MAX_MANIFEST_BYTES:
        raise Unreadable("清单为空或过长")
    try:
        fields = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise Unreadable("清单不是 UTF-8 JSON") from None
    if not isinstance(fields, dict) or not isinstance(fields.get("device_id"), str):
        raise Unreadable("清单应为含 device_id 的 JSON 对象")
    return Received(raw, signature, fields)


def format_problems(fields: dict[str, Any]) -> list[str]:
    """What is wrong with a (signed) manifest's fields against the version-1 format; empty when nothing."""
    problems = []
    keys = set(fields)
    if keys != MANIFEST_KEYS:
        problems.append("字段不符合格式：" + "、".join(sorted(keys ^ MANIFEST_KEYS)))
    if fields.get("v") != 1:
        problems.append("版本 v 应为 1")

    def integer(name: str, low: int, high: int) -> bool:
        value = fields.get(name)
        return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high

    if not integer("counter", 1, MAX_COUNTER):
        problems.append("counter 应为正整数")
    if not integer("size", 0, 1 << 44):
        problems.append("size 应为非负整数")
    prev = fields.get("prev")
    if not (isinstance(prev, str) and (prev == "" or _HEX64.match(prev))):
        problems.append("prev 应为 64 位小写十六进制或空")
    if not (isinstance(fields.get("sha256"), str) and _HEX64.match(fields["sha256"])):
        problems.append("sha256 应为 64 位小写十六进制")
    if not isinstance(fields.get("media_type"), str):
        problems.append("media_type 应为文本")
    for name in ("capture_start", "capture_end", "device_clock"):
        if _moment(fields.get(name)) is None:
            problems.append(f"{name} 应为 ISO 8601 UTC 时间（以 Z 结尾）")
    for name in ("media_id", "task_id", "inspection_id", "inspector"):
        value = fields.get(name)
        if value is not None and _uuid(value) is None:
            problems.append(f"{name} 应为 UUID 或 null")
    location = fields.get("location")
    if location is not None and not (
            isinstance(location, dict) and set(location) == {"lat_e7", "lon_e7", "accuracy_m"}
            and all(isinstance(v, int) and not isinstance(v, bool) for v in location.values())):
        problems.append("location 应为 null 或 {lat_e7, lon_e7, accuracy_m}（整数）")
    return problems


def _moment(value: Any) -> datetime | None:
    if not isinstance(value, str) or not _TIME.match(value):
        return None
    try:
        return datetime.fromisoformat(value[:-1] + "+00:00")
    except ValueError:
        return None


def _uuid(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(value) if isinstance(value, str) else None
    except ValueError:
        return None


def verifies(public_key: str, raw: bytes, signature: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(b64url_decode(public_key)).verify(signature, raw)
    except (InvalidSignature, ValueError):
        return False
    return True


# ---- the check of one file ------------------------------------------------------------------------

@dataclass(frozen=True)
class Evidence:
    """What the server knows of a file, to hold its manifest against."""

    media_id: uuid.UUID
    sha256: str                 # as stored (the upload checked it)
    size: int
    media_type: str | None
    capture_start: datetime | None
    capture_end: datetime | None
    received_at: datetime
    devices: tuple[str, ...]    # who may have signed it: the recording device, the uploading one (a dock)
    manifest: str | None
    signature: str | None


def _aware(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str) and value:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def evidence_of(media: Media) -> Evidence:
    """Gather the file's facts: the synced media record (a tablet's) or the upload's metadata (a dock's)."""
    record = media_record(media.id)
    fields: dict[str, Any] = dict(record.fields) if record is not None else {}
    metadata: dict[str, str] = {}
    if media.upload_id is not None:
        upload = db.session.get(Upload, media.upload_id)
        if upload is not None and upload.metadata_header:
            try:
                metadata = tus.parse_metadata(upload.metadata_header)
            except Problem:
                metadata = {}
    manifest, signature = fields.get("manifest"), fields.get("manifest_signature")
    if not manifest:
        manifest, signature = metadata.get("manifest"), metadata.get("manifest_signature")
    pushed_by = db.session.scalar(select(MutationRecord.device_id).where(MutationRecord.entity_id == media.id)
                                  .order_by(MutationRecord.received_at).limit(1)) if record is not None else None
    devices = tuple(dict.fromkeys(d for d in (media.device_id, media.uploaded_by_device_id, fields.get("device_id"),
                                              pushed_by) if d))
    received = media.uploaded_at
    if record is not None and fields.get("manifest"):
        received = min(received, _aware(record.first_received_at) or received)
    return Evidence(media_id=media.id, sha256=media.sha256, size=media.size,
                    media_type=media.content_type or fields.get("content_type"),
                    capture_start=_aware(media.capture_start) or _aware(fields.get("capture_start")),
                    capture_end=_aware(fields.get("capture_end")), received_at=_aware(received) or utcnow(),
                    devices=devices, manifest=manifest or None, signature=signature or None)


@dataclass
class Checked:
    """The provenance reasons of one file and what they do to its verdict."""

    reasons: list[dict[str, Any]] = field(default_factory=list)
    manifest: CaptureManifest | None = None
    status: str | None = None  # "failed" | "needs_review" | None (no effect)

    def add(self, code: str, effect: str | None, message: str | None = None, **details: Any) -> None:
        self.reasons.append({"code": code, "severity": "error" if effect == "failed" else "warning",
                             "message": message or REASONS[code], "details": details})
        if effect == "failed" or (effect == "needs_review" and self.status is None):
            self.status = effect


def _keyed_before(devices: Sequence[str], evidence: Evidence) -> bool:
    """Whether one of the devices had a key when the file was captured and received (so it should have signed)."""
    if not devices:
        return False
    first = db.session.scalar(select(DeviceKey.registered_at).where(DeviceKey.device_id.in_(devices))
                              .order_by(DeviceKey.registered_at).limit(1))
    if first is None:
        return False
    first = _aware(first)
    assert first is not None
    captured = evidence.capture_start
    return first <= evidence.received_at and (captured is None or captured >= first)


def _mismatches(fields: dict[str, Any], evidence: Evidence, actual_sha256: str | None) -> list[str]:
    found = []
    if fields["sha256"] != evidence.sha256 or (actual_sha256 is not None and fields["sha256"] != actual_sha256):
        found.append("sha256")
    if fields["size"] != evidence.size:
        found.append("size")
    declared = (evidence.media_type or "").split(";")[0].strip().lower()
    if declared and fields["media_type"].split(";")[0].strip().lower() != declared:
        found.append("media_type")
    for name, known in (("capture_start", evidence.capture_start), ("capture_end", evidence.capture_end)):
        signed = _moment(fields[name])
        if known is not None and signed is not None and abs((signed - known).total_seconds()) > TIME_TOLERANCE_SECONDS:
            found.append(name)
    if fields["media_id"] is not None and _uuid(fields["media_id"]) != evidence.media_id:
        found.append("media_id")
    if evidence.devices and fields["device_id"] not in evidence.devices:
        found.append("device_id")
    return found


def _stored(evidence: Evidence, received: Received) -> CaptureManifest | None | str:
    """This file's stored manifest (a re-run), or a reason it may not be stored: ``replayed`` or ``reused``."""
    mine = db.session.scalar(select(CaptureManifest).where(CaptureManifest.media_id == evidence.media_id))
    if mine is not None:
        return mine if mine.manifest_hash == received.hash else "replayed"
    same = db.session.scalar(select(CaptureManifest.id).where(CaptureManifest.manifest_hash == received.hash))
    if same is not None:
        return "replayed"
    taken = db.session.scalar(select(CaptureManifest.id).where(
        CaptureManifest.device_id == received.fields["device_id"],
        CaptureManifest.counter == received.fields["counter"]))
    return "reused" if taken is not None else None


def chain_problems(manifest: CaptureManifest) -> dict[str, Any] | None:
    """The gap before this manifest in its device's chain (missing counters, a prev that does not link), or None."""
    counters: dict[int, str] = dict(db.session.execute(
        select(CaptureManifest.counter, CaptureManifest.manifest_hash)
        .where(CaptureManifest.device_id == manifest.device_id, CaptureManifest.counter < manifest.counter)).all())
    missing_count = manifest.counter - 1 - len(counters)
    missing: list[int] = []
    if missing_count:
        for number in range(1, manifest.counter):
            if number not in counters:
                missing.append(number)
                if len(missing) == LISTED_MISSING:
                    break
    previous = counters.get(manifest.counter - 1)
    broken = (manifest.counter == 1 and manifest.prev != "") or (previous is not None and manifest.prev != previous)
    if not missing_count and not broken:
        return None
    return {"missing": missing, "missing_count": missing_count, "broken_link": broken}


def _gap_message(device_id: str, problems: dict[str, Any]) -> str:
    parts = []
    if problems["missing_count"]:
        listed = "、".join(str(n) for n in problems["missing"])
        more = f"等共 {problems['missing_count']} 条" if problems["missing_count"] > len(problems["missing"]) else ""
        parts.append(f"终端 {device_id} 第 {listed} 号采集{more}未送达")
    if problems["broken_link"]:
        parts.append("与该终端上一条采集清单不衔接")
    return "采集链不完整：" + "；".join(parts)


def check_media(media: Media, actual_sha256: str | None = None) -> Checked:
    """Check the file's manifest (storing it when its signature holds) and return its provenance reasons."""
    return check(evidence_of(media), actual_sha256)


def check(evidence: Evidence, actual_sha256: str | None = None) -> Checked:
    """:func:`check_media` on the gathered facts of a file."""
    checked = Checked()
    if evidence.manifest is None or evidence.signature is None:
        if _keyed_before(evidence.devices, evidence):
            checked.add("unsigned", "needs_review")
        else:
            checked.add("unsigned", None, _LEGACY_UNSIGNED, legacy=True)
        return checked
    try:
        received = decode(evidence.manifest, evidence.signature)
    except Unreadable as exc:
        checked.add("bad-signature", "failed", f"{REASONS['bad-signature']}：{exc}")
        return checked
    signer = received.fields["device_id"]
    keys = list(db.session.scalars(select(DeviceKey).where(DeviceKey.device_id == signer)
                                   .order_by(DeviceKey.registered_at)))
    key = next((k for k in keys if verifies(k.public_key, received.raw, received.signature)), None)
    if key is None:
        detail = "该终端没有登记公钥" if not keys else "签名与该终端登记的公钥不符"
        checked.add("bad-signature", "failed", f"{REASONS['bad-signature']}：{detail}", device_id=signer)
        return checked
    device = db.session.get(Device, signer)
    revoked = [moment for moment in (_aware(key.revoked_at), _aware(device.retired_at) if device else None) if moment]
    if revoked and min(revoked) <= evidence.received_at:
        checked.add("revoked-key", "needs_review", device_id=signer, revoked_at=min(revoked).isoformat())
    problems = format_problems(received.fields)
    if problems:
        checked.add("manifest-mismatch", "needs_review", "采集签名清单格式不符：" + "；".join(problems),
                    fields=problems)
        return checked
    different = _mismatches(received.fields, evidence, actual_sha256)
    if different:
        checked.add("manifest-mismatch", "needs_review",
                    f"{REASONS['manifest-mismatch']}（{'、'.join(different)}）", fields=different)
    stored = _stored(evidence, received)
    if stored == "replayed":
        checked.add("manifest-replayed", "needs_review", manifest_hash=received.hash)
        return checked
    if stored == "reused":
        checked.add("manifest-replayed", "needs_review",
                    f"终端 {signer} 的第 {received.fields['counter']} 号采集已用于另一个文件",
                    counter=received.fields["counter"])
        return checked
    if "sha256" in different or "size" in different:
        # Not this file's manifest: it is not kept, so the capture it names still counts as missing from the
        # device's chain until its own file arrives with it.
        return checked
    if stored is None:
        stored = CaptureManifest(media_id=evidence.media_id, device_id=signer, key_id=key.id,
                                 counter=received.fields["counter"], prev=received.fields["prev"],
                                 manifest_hash=received.hash, sha256=received.fields["sha256"], raw=received.raw,
                                 signature=received.signature, received_at=evidence.received_at)
        db.session.add(stored)
        db.session.flush()
    assert isinstance(stored, CaptureManifest)
    checked.manifest = stored
    gap = chain_problems(stored)
    if gap is not None:
        checked.add("chain-gap", "needs_review", _gap_message(signer, gap), **gap)
    return checked


def waiting_on(manifest: CaptureManifest) -> list[uuid.UUID]:
    """Files of the same device later in the chain than ``manifest``: their chain-gap may close now."""
    return list(db.session.scalars(select(CaptureManifest.media_id).where(
        CaptureManifest.device_id == manifest.device_id, CaptureManifest.counter > manifest.counter)
        .order_by(CaptureManifest.counter)))


def merge(reasons: Iterable[dict[str, Any]], status: str, checked: Checked) -> tuple[list[dict[str, Any]], str]:
    """A verification's reasons and status with ``checked`` in place of any earlier provenance reasons."""
    kept = [r for r in reasons if r.get("code") not in CODES]
    if checked.status == "failed" or status == "failed":
        merged = "failed"
    elif checked.status == "needs_review":
        merged = "needs_review"
    else:
        merged = status
    return kept + checked.reasons, merged


def analysis_status(reasons: Iterable[dict[str, Any]]) -> str:
    """The verdict of the file's own analysis alone (as media.verify decides it), without provenance."""
    own = [r for r in reasons if r.get("code") not in CODES]
    if any(r.get("severity") == "error" for r in own):
        return "failed"
    return "needs_review" if own else "verified"


# ---- in words, for the review app -----------------------------------------------------------------

def manifest_of(media_id: uuid.UUID) -> CaptureManifest | None:
    return db.session.scalar(select(CaptureManifest).where(CaptureManifest.media_id == media_id))


def key_of(manifest: CaptureManifest) -> DeviceKey | None:
    return db.session.get(DeviceKey, manifest.key_id)


@dataclass(frozen=True)
class Standing:
    """A checked file's provenance: who signed it (None: no trusted manifest) and the provenance reasons."""

    device_id: str | None
    device_kind: str | None      # tablet | dock | bodycam
    counter: int | None
    reasons: dict[str, dict[str, Any]]


def standing(media: Media) -> Standing | None:
    """The file's provenance for the review pages, or None while its verification is pending."""
    if media.verification_status.value == "pending":
        return None
    report = media.report  # its reasons carry the details (the missing counters)
    given = report.reasons if report is not None and report.status is not None else media.verification_reasons
    reasons = {r["code"]: r for r in given or [] if r.get("code") in CODES}
    manifest = manifest_of(media.id)
    if manifest is None:
        return Standing(None, None, None, reasons)
    device = db.session.get(Device, manifest.device_id)
    return Standing(manifest.device_id, device.kind.value if device is not None else None, manifest.counter, reasons)
