"""The case file (一案一档): one inspection's whole case as a signed BagIt package (RFC 8493) in a zip.

The package is made on the fly while it is downloaded, so its memory stays flat whatever the footage weighs:
everything small (the joint record, its report, the decisions, the draw, the certificates, the audit entries)
is gathered in the request, and each evidence file is read from the media store in blocks while the zip is
written (stored, not compressed: footage does not compress, and the archive office reads files straight out).
``bagit.make_bag`` would need the payload copied into a directory first — gigabytes per download — so the
tag files are written here, and ``bagit`` validates the result (``case-file-verify``, the tests).

Layout, under one top directory ``case-<inspection id>/``::

    bagit.txt  bag-info.txt  manifest-sha256.txt  tagmanifest-sha256.txt  archive-signature.txt
    data/joint-record.json          canonical JSON of the joint record
    data/joint-report.pdf           its report (joint-report.html where the server has no CJK font)
    data/decisions.json             each department's enforcement decision and legal sign-off
    data/review-decisions.json      supervisors' review decisions
    data/draw-record.json           the draw(s) that chose the enterprise and the inspectors
    data/certificates.json          the team's certificates and their standing on the inspection day
    data/audit-entries.json         audit entries naming the case's objects, with their chain hashes
    data/retention.json             the case's retention class and legal holds at the time of packing
    data/evidence/manifest.json     every evidence file with its capture hash
    data/evidence/<media id><ext>   the evidence files
    data/evidence/<media id>.capture-manifest.json / .sig   the capturing device's signed manifest (its exact
                                    bytes) and its raw 64-byte Ed25519 signature, where the file has one
    data/evidence/device-keys/<device id>-<key no.>.pem   the public key that signed them (docs/provenance.md)

The manifest lists each evidence file under its *capture* hash — the SHA-256 the tablet or camera declared
and the upload checked — not a hash taken while packing: should a stored file ever rot, the package says so
when verified instead of blessing the damage. ``archive-signature.txt`` holds the Ed25519 signature of
``tagmanifest-sha256.txt``, which covers every other tag file and so, through ``manifest-sha256.txt``, every
payload byte. It is not itself in the tag manifest (it cannot sign itself).
"""
from __future__ import annotations

import hashlib
import json
import logging
import re
import uuid
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import select

from server.archive import keys, retention, sources
from server.archive.layout import BAGIT_TXT, MEDIA_TYPE, SIGNATURE_FILE, TAG_MANIFEST
from server.archive.models import HeldObject, LegalHold
from server.audit.service import record as audit
from server.auth.policy import Permission, Principal, can
from server.db_types import OFFICE_TIMEZONE, office_day, utcnow
from server.errors import Problem
from server.extensions import db
from server.joint import report
from server.joint.service import canonical_json, joint_record
from server.provenance import service as provenance
from server.sync.models import SyncedEntity
from server.tasks.service import get_task
from server.uploads.models import Media, MediaObject
from server.uploads.service import uploads
from server.verification.flags import inspection_day

log = logging.getLogger(__name__)

__all__ = ["MEDIA_TYPE", "CaseFile", "Part", "assemble", "stream_zip"]
_SAFE_SUFFIX = re.compile(r"^\.[A-Za-z0-9]{1,8}$")


@dataclass(frozen=True)
class Part:
    """One file of the package: small ones carry their bytes, evidence its store key (read while zipping)."""

    path: str  # inside the bag, e.g. "data/evidence/….mp4"
    size: int
    sha256: str
    data: bytes | None = None
    store_key: str | None = None


@dataclass(frozen=True)
class CaseFile:
    """Everything needed to stream the package; nothing left to read from the database."""

    name: str  # the top directory and the zip's file name (without .zip)
    payload: list[Part]
    tags: list[Part]  # bagit.txt, bag-info.txt, manifests, signature
    read: Callable[[str], Iterator[bytes]]

    @property
    def size_of_payload(self) -> int:
        return sum(p.size for p in self.payload)


def _small(path: str, data: bytes) -> Part:
    return Part(path, len(data), hashlib.sha256(data).hexdigest(), data=data)


def _json(path: str, value: Any) -> Part:
    return _small(path, json.dumps(value, ensure_ascii=False, indent=2, sort_keys=True).encode("utf-8") + b"\n")


def _suffix(file_name: str | None) -> str:
    suffix = Path(file_name or "").suffix
    return suffix.lower() if _SAFE_SUFFIX.match(suffix) else ".bin"


def _visible_inspection(principal: Principal, inspection_id: uuid.UUID) -> SyncedEntity:
    """The inspection, for an office role of a department the task concerns (404 otherwise, as if unknown)."""
    entity = db.session.get(SyncedEntity, inspection_id)
    if entity is None or entity.kind != "inspection" or entity.task_id is None:
        raise Problem(404, "not-found", "检查记录不存在")
    get_task(principal, entity.task_id)  # 404 for a task the caller does not take part in
    # The package holds the audit entries and every department's decisions: offices only, as the audit log.
    if not can(principal, Permission.READ_AUDIT):
        raise Problem(403, "forbidden", "只有监督、法制审核、负责人和管理员可以下载案卷")
    return entity


def _bag_info(inspection: SyncedEntity, task_title: str, enterprise: dict[str, Any], payload: list[Part],
              case_retention: retention.Retention, holds: list[LegalHold], public_key_fp: str,
              report_note: str | None, decisions: list[dict[str, Any]]) -> bytes:
    now = utcnow()
    lines = [
        ("Source-Organization", "Inspect Once"),
        ("Bagging-Date", office_day(now).isoformat()),
        ("Bagging-Time", now.isoformat()),
        ("External-Identifier", f"inspection:{inspection.id}"),
        ("Internal-Sender-Identifier", f"task:{inspection.task_id}"),
        ("Internal-Sender-Description", f"{task_title} — {enterprise.get('name')} ({enterprise.get('credit_code')})"),
        ("Payload-Oxum", f"{sum(p.size for p in payload)}.{len(payload)}"),
        ("Retention-Class", case_retention.retention_class.value),
        ("Retain-Until", case_retention.until.isoformat() if case_retention.until else "permanent"),
        ("Legal-Hold", "active" if holds else "none"),
        # The file is complete once every department's decision is served (送达); packed before, it says so.
        ("Decisions-Served", f"{sum(1 for d in decisions if d.get('served_on'))} of {len(decisions)}"),
        ("Archive-Key-Fingerprint", public_key_fp),
        ("Bag-Software-Agent", "inspect-once case-file"),
    ]
    if report_note:
        lines.append(("Report-Note", report_note))
    # One line per value: a newline inside a value would start a new (forged) field.
    return "".join(f"{k}: {' '.join(str(v).split())}\n" for k, v in lines).encode("utf-8")


def _manifest(parts: list[Part]) -> bytes:
    return "".join(f"{p.sha256}  {p.path}\n" for p in sorted(parts, key=lambda p: p.path)).encode("utf-8")


def _case_retention(task_id: uuid.UUID, media: list[Media]) -> retention.Retention:
    """The case's own class, or, before any decision, the longest of its files' (ordinary from the latest)."""
    found = retention.case_retention(task_id)
    if found is not None:
        return found
    terms = [retention.media_retention(m) for m in media]
    if not terms:
        return retention.Retention(retention.RetentionClass.ORDINARY, office_day(utcnow()),
                                   retention.add_years(office_day(utcnow()), 10))
    return max(terms, key=lambda r: (r.until is None, r.until or r.since))


def _capture_manifest(media_id: uuid.UUID, payload: list[Part], device_keys: set[str]) -> dict[str, Any] | None:
    """The file's signed capture manifest, its signature and its device's public key as files of the bag (added to
    ``payload``), so the archive office checks them offline; None when the file has no trusted manifest."""
    manifest = provenance.manifest_of(media_id)
    key = provenance.key_of(manifest) if manifest is not None else None
    if manifest is None or key is None:
        return None
    base = f"data/evidence/{media_id}.capture-manifest"
    payload.append(_small(f"{base}.json", manifest.raw))
    payload.append(_small(f"{base}.sig", manifest.signature))
    key_path = f"data/evidence/device-keys/{manifest.device_id}-{key.id.hex[:12]}.pem"
    if key_path not in device_keys:
        device_keys.add(key_path)
        public = Ed25519PublicKey.from_public_bytes(provenance.b64url_decode(key.public_key))
        payload.append(_small(key_path, public.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)))
    return {"path": f"{base}.json", "signature_path": f"{base}.sig", "signature_algorithm": "Ed25519",
            "manifest_sha256": manifest.manifest_hash, "device_id": manifest.device_id, "counter": manifest.counter,
            "public_key": key.public_key, "public_key_path": key_path,
            "received_at": manifest.received_at.isoformat()}


def assemble(principal: Principal, inspection_id: uuid.UUID, var_dir: Path) -> CaseFile:
    """Gather the case of ``inspection_id`` (authorized for ``principal``) and audit its download."""
    inspection = _visible_inspection(principal, inspection_id)
    task_id = inspection.task_id
    assert task_id is not None
    record = joint_record(task_id)
    record_dict = record.to_dict()
    payload = [_small("data/joint-record.json", canonical_json(record_dict))]
    report_note = None
    try:
        payload.append(_small("data/joint-report.pdf", report.render_pdf(record)))
    except report.ReportUnavailable as exc:
        log.warning("case file of %s carries the HTML report: %s", inspection_id, exc)
        report_note = f"PDF report unavailable on this server ({exc}); joint-report.html instead"
        payload.append(_small("data/joint-report.html", report.render_html(record).encode("utf-8")))

    decisions = sources.enforcement_decisions(task_id)
    payload.append(_json("data/decisions.json", {"available": sources.decisions_available(),
                                                 "decisions": decisions}))
    payload.append(_json("data/review-decisions.json", sources.review_decisions(inspection.id, task_id)))
    draws = sources.draws(task_id)
    payload.append(_json("data/draw-record.json", draws))
    started = (inspection.fields or {}).get("started_at")
    day = inspection_day(datetime.fromisoformat(started)) if started else None
    payload.append(_json("data/certificates.json", sources.certificates(task_id, day or office_day(utcnow()))))

    # Evidence: every file the record lists as uploaded, read from the store under its content address.
    evidence_ids = [uuid.UUID(e["id"]) for e in record_dict["evidence"] if e["uploaded"]]
    media = list(db.session.scalars(select(Media).where(Media.id.in_(evidence_ids)).order_by(Media.id))) \
        if evidence_ids else []
    objects = {o.sha256: o for o in db.session.scalars(
        select(MediaObject).where(MediaObject.sha256.in_({m.sha256 for m in media})))} if media else {}
    evidence_parts, listed, device_keys = [], [], set[str]()
    for item in media:
        stored = objects[item.sha256]
        path = f"data/evidence/{item.id}{_suffix(item.file_name)}"
        evidence_parts.append(Part(path, item.size, item.sha256, store_key=stored.key))
        signed = _capture_manifest(item.id, payload, device_keys)
        listed.append({"id": str(item.id), "path": path, "capture_sha256": item.sha256, "size": item.size,
                       "capture_manifest": signed,
                       "file_name": item.file_name, "content_type": item.content_type,
                       "capture_start": item.capture_start.isoformat() if item.capture_start else None,
                       "uploaded_at": item.uploaded_at.isoformat(), "device_id": item.device_id,
                       "department_id": str(item.department_id),
                       "verification": {"status": item.verification_status.value,
                                        "reasons": list(item.verification_reasons or [])},
                       "retention": retention.media_retention(item).to_dict()})

    holds = retention.holds_covering(task_id, None) + [
        h for m in media for h in retention.active_holds(HeldObject.MEDIA, m.id)]
    case_retention = _case_retention(task_id, media)
    payload.append(_json("data/retention.json", {
        "case": case_retention.to_dict(),
        "legal_holds": [{"id": str(h.id), "object_type": h.object_type.value, "object_id": str(h.object_id),
                         "reason": h.reason, "placed_by": h.placed_by, "placed_at": h.placed_at.isoformat()}
                        for h in holds]}))
    object_ids = [str(inspection.id), str(task_id), *(str(m.id) for m in media), *(d["id"] for d in decisions),
                  *(d["id"] for d in draws)]
    # The download itself is in the log (recorded first, so the package names its own download).
    audit("case_file.download", object_type="inspection", object_id=str(inspection.id), actor=principal,
          details={"files": len(media), "payload_bytes": sum(p.size for p in payload + evidence_parts)})
    payload.append(_json("data/audit-entries.json", sources.audit_entries(object_ids)))
    payload.append(_json("data/evidence/manifest.json", {"evidence": listed}))
    payload.extend(evidence_parts)

    key = keys.private_key(var_dir)
    public = key.public_key()
    enterprise = record_dict["enterprise"]
    tags = [_small("bagit.txt", BAGIT_TXT),
            _small("bag-info.txt", _bag_info(inspection, record_dict["task"]["title"], enterprise, payload,
                                             case_retention, holds, keys.fingerprint(public), report_note,
                                             decisions)),
            _small("manifest-sha256.txt", _manifest(payload))]
    tag_manifest = _manifest(tags)
    tags.append(_small(TAG_MANIFEST, tag_manifest))
    signature = key.sign(tag_manifest)
    tags.append(_small(SIGNATURE_FILE, (
        "Algorithm: Ed25519\n"
        f"Signed-File: {TAG_MANIFEST}\n"
        f"Key-Fingerprint: {keys.fingerprint(public)}\n"
        f"Signature: {keys.b64(signature)}\n").encode("ascii")))
    store = uploads().store
    return CaseFile(f"case-{inspection.id}", payload, tags, lambda k: store.read(k))


class _Pipe:
    """The zip writer's output: written blocks wait here until the generator hands them on."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self._offset = 0

    def write(self, data: bytes) -> int:
        self._chunks.append(bytes(data))
        self._offset += len(data)
        return len(data)

    def tell(self) -> int:
        return self._offset

    def flush(self) -> None:
        return None

    def drain(self) -> bytes:
        out = b"".join(self._chunks)
        self._chunks.clear()
        return out


def _zip_time() -> tuple[int, int, int, int, int, int]:
    now = utcnow().astimezone(OFFICE_TIMEZONE)
    return (now.year, now.month, now.day, now.hour, now.minute, now.second)


def stream_zip(case: CaseFile) -> Iterator[bytes]:
    """The package as a zip, in blocks (each at most a store block plus headers): memory flat in its size."""
    pipe = _Pipe()
    stamp = _zip_time()
    # A non-seekable output: zipfile writes a data descriptor after each file instead of seeking back.
    with zipfile.ZipFile(pipe, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for part in case.tags + case.payload:
            info = zipfile.ZipInfo(f"{case.name}/{part.path}", date_time=stamp)
            info.compress_type = zipfile.ZIP_STORED
            info.external_attr = 0o644 << 16
            with archive.open(info, "w", force_zip64=part.size >= zipfile.ZIP64_LIMIT) as out:
                if part.data is not None:
                    out.write(part.data)
                else:
                    assert part.store_key is not None
                    digest = hashlib.sha256()
                    written = 0
                    for block in case.read(part.store_key):
                        digest.update(block)
                        written += len(block)
                        out.write(block)
                        chunk = pipe.drain()
                        if chunk:
                            yield chunk
                    if digest.hexdigest() != part.sha256 or written != part.size:
                        # Sent as stored: the manifest keeps the capture hash, so verifying names this file.
                        log.error("case file %s: stored %s no longer matches its capture hash", case.name, part.path)
            chunk = pipe.drain()
            if chunk:
                yield chunk
    chunk = pipe.drain()
    if chunk:
        yield chunk
