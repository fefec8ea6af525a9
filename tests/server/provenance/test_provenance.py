"""Capture provenance: device keys, signed capture manifests and each device's chain (docs/provenance.md)."""
from __future__ import annotations

import base64
import dataclasses
import hashlib
import io
import json
import random
import uuid
import zipfile
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_pem_public_key
from flask import current_app
from PIL import Image
from sqlalchemy import func, select

from server.auth.policy import SYSTEM
from server.db_types import utcnow
from server.directory import enrolment
from server.directory.models import Device
from server.extensions import db
from server.jobs.queue import current_queue
from server.provenance import service as provenance
from server.provenance.models import CaptureManifest, DeviceKey
from server.review.provenance import provenance_words
from server.uploads.models import Media, MediaObject, Upload, UploadStatus
from server.uploads.service import uploads
from server.verification import service as verification
from tests.conftest import World, assert_problem
from tests.server.archive.conftest import build_case
from tests.server.uploads.conftest import OCTETS, create, device_headers, metadata, push_media, sha256


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Signer:
    """A device's key and its chain of captures, as the tablet app or the docking station keeps them."""

    def __init__(self, device_id: str) -> None:
        self.device_id, self.key, self.counter, self.prev = device_id, Ed25519PrivateKey.generate(), 0, ""

    @property
    def public(self) -> str:
        return b64url(self.key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))

    def sign(self, data: bytes, *, key: Ed25519PrivateKey | None = None, media_type: str = "image/jpeg",
             **changes: Any) -> tuple[str, str]:
        self.counter += 1
        fields = {"v": 1, "device_id": self.device_id, "counter": self.counter, "prev": self.prev,
                  "sha256": sha256(data), "size": len(data), "media_type": media_type,
                  "capture_start": "2026-12-03T09:00:00Z", "capture_end": "2026-12-03T09:00:05Z",
                  "device_clock": "2026-12-03T09:00:06Z", "media_id": None, "task_id": None,
                  "inspection_id": None, "inspector": None,
                  "location": {"lat_e7": 263520000, "lon_e7": 1117900000, "accuracy_m": 8}, **changes}
        raw = json.dumps(fields, ensure_ascii=False, separators=(",", ":")).encode()
        self.prev = hashlib.sha256(raw).hexdigest()
        return b64url(raw), b64url((key or self.key).sign(raw))


def keyed(device_id: str) -> Signer:
    signer = Signer(device_id)
    provenance.enrolled_key(db.session.get(Device, device_id), signer.public)
    db.session.commit()
    return signer


@pytest.fixture(scope="module")
def jpeg() -> bytes:
    noise = random.Random(7)  # a scene, not a covered lens
    image = Image.new("RGB", (96, 64))
    image.putdata([(noise.randrange(256), noise.randrange(256), noise.randrange(256)) for _ in range(96 * 64)])
    out = io.BytesIO()
    image.save(out, "JPEG")
    return out.getvalue()


def photo(jpeg: bytes, n: int) -> bytes:
    return jpeg + n.to_bytes(4, "big")  # trailing bytes after EOI: a different file, still a photo


def tablet_photo(client, auth, world: World, data: bytes,  # type: ignore[no-untyped-def]
                 signed: tuple[str, str] | None = None) -> uuid.UUID:
    """The tablet syncs the media record (with its manifest) and uploads the file; the worker verifies it."""
    fields = {"manifest": signed[0], "manifest_signature": signed[1]} if signed else {}
    synced = push_media(client, auth, world, data, **fields)
    response = create(client, auth.headers("m-insp"), len(data),
                      metadata(sha256=sha256(data), filename="IMG.jpg", filetype="image/jpeg", media_id=synced.id),
                      data=data, content_type=OCTETS)
    assert response.status_code == 201, response.get_data(as_text=True)
    current_queue(client.application).run_pending()
    return uuid.UUID(synced.id)


def words(media: Media) -> str | None:
    """The review page's words for the file's provenance (in its default language, Chinese)."""
    with current_app.test_request_context():
        return provenance_words(media)


def verdict(media_id: uuid.UUID) -> tuple[str, dict[str, dict[str, Any]]]:
    db.session.expire_all()
    media = db.session.get(Media, media_id)
    return media.verification_status.value, {r["code"]: r for r in media.verification_reasons}


def test_keys_come_with_enrolment_or_the_device_token_and_retiring_revokes_them(client, runner, world: World,
                                                                               auth) -> None:
    code = runner.invoke(args=["enrol-tablet", "--department", "SCJG", "--id", "SCJG-TAB7"]).output.split()[-1]
    tablet = Signer("SCJG-TAB7")
    short = assert_problem(client.post("/api/v1/devices/enrol", json={"code": code, "public_key": b64url(b"x" * 31)}),
                           422)
    assert "public_key" in short["errors"]
    assert client.post("/api/v1/devices/enrol", json={"code": code, "public_key": tablet.public}).status_code == 201
    assert db.session.scalar(select(DeviceKey.public_key).where(DeviceKey.device_id == "SCJG-TAB7")) == tablet.public

    dock, headers = Signer("STHJ-DOCK1"), device_headers(client, world, "e-dock")
    answer = client.post("/api/v1/devices/key", json={"public_key": dock.public}, headers=headers)
    assert answer.status_code == 201 and answer.get_json()["device_id"] == "STHJ-DOCK1", answer.get_json()
    held = assert_problem(client.post("/api/v1/devices/key", json={"public_key": Signer("x").public},
                                      headers=headers), 409, "device-key-registered")
    assert held["public_key"] == dock.public  # the dock can tell its own key, registered by an unanswered try
    assert_problem(client.post("/api/v1/devices/key", json={"public_key": Signer("x").public},
                               headers=auth.headers("e-insp")), 403)
    assert_problem(client.delete("/api/v1/devices/STHJ-DOCK1/key", headers=auth.headers("m-head")), 404)
    assert client.delete("/api/v1/devices/STHJ-DOCK1/key", headers=auth.headers("e-head")).status_code == 204
    dock = Signer("STHJ-DOCK1")  # a new key file, once an administrator or the head cleared the old one
    assert client.post("/api/v1/devices/key", json={"public_key": dock.public}, headers=headers).status_code == 201

    assert client.post("/api/v1/devices/STHJ-DOCK1/retire", headers=auth.headers("admin")).status_code == 200
    db.session.expire_all()
    key = db.session.scalar(select(DeviceKey).where(DeviceKey.public_key == dock.public))
    assert key.revoked_at == db.session.get(Device, "STHJ-DOCK1").retired_at is not None


def test_a_tablets_signed_photos_edited_replayed_and_unsigned(client, auth, world: World, jpeg: bytes) -> None:
    # Before the tablet has a key, an unsigned photo is a legacy one: noted, its verdict unchanged.
    status, reasons = verdict(tablet_photo(client, auth, world, photo(jpeg, 0)))
    assert status == "verified" and reasons["unsigned"]["severity"] == "warning"

    tablet = keyed("SCJG-TAB1")
    signed = tablet.sign(photo(jpeg, 1))
    first = tablet_photo(client, auth, world, photo(jpeg, 1), signed)
    assert verdict(first) == ("verified", {})
    assert words(db.session.get(Media, first)) == "由执法终端 SCJG-TAB1 签名（第 1 号采集），签名有效，采集链完整"

    # Edited after capture and sent with its fresh hash: the signed manifest names the original.
    edited = tablet_photo(client, auth, world, photo(jpeg, 99), tablet.sign(photo(jpeg, 2)))
    status, reasons = verdict(edited)
    assert status == "needs_review" and "sha256" in reasons["manifest-mismatch"]["message"]
    assert provenance.manifest_of(edited) is None  # not kept: the capture it names is still to come

    # The first photo's manifest presented again for another file.
    status, reasons = verdict(tablet_photo(client, auth, world, photo(jpeg, 3), signed))
    assert status == "needs_review" and "manifest-replayed" in reasons

    # Now that the tablet has a key, an unsigned photo is one to look at.
    status, reasons = verdict(tablet_photo(client, auth, world, photo(jpeg, 4)))
    assert status == "needs_review" and reasons["unsigned"]["message"] == provenance.REASONS["unsigned"]


# ---- the service, on files stored without the upload protocol (fast) -------------------------------------

def stored(world: World, data: bytes, device_id: str, signed: tuple[str, str] | None,
           media_type: str = "video/mp4") -> Media:
    """A docked bodycam's file with its manifest in the upload's metadata, as the upload would leave it."""
    digest = sha256(data)
    if db.session.get(MediaObject, digest) is None:
        db.session.add(MediaObject(sha256=digest, size=len(data), backend="local", key=f"objects/{digest}"))
    meta = metadata(manifest=signed[0], manifest_signature=signed[1]) if signed else ""
    department = db.session.get(Device, device_id).department_id
    upload = Upload(status=UploadStatus.COMPLETED, length=len(data), sha256=digest, storage_backend="local",
                    storage_key=f"partial/{digest}", department_id=department, media_department_id=department,
                    uploaded_by_device_id=device_id, device_id=device_id, metadata_header=meta)
    db.session.add(upload)
    db.session.flush()
    media = Media(sha256=digest, size=len(data), department_id=department, device_id=device_id,
                  uploaded_by_device_id=device_id, content_type=media_type, upload_id=upload.id,
                  uploaded_at=utcnow())
    db.session.add(media)
    db.session.flush()
    return media


def verified(media: Media) -> tuple[str, dict[str, dict[str, Any]]]:
    """What the verification job does around the analysis (here: a file the analysis found sound)."""
    verification.start_run(media.id)
    verification.record_result(media.id, verification.with_provenance(media, {"status": "verified", "reasons": []}))
    verification.reassess_chain(media.id)
    db.session.commit()
    return verdict(media.id)


def test_a_manifest_signed_with_another_devices_key_fails(world: World) -> None:
    dock, other = keyed("STHJ-DOCK1"), keyed("STHJ-TAB1")
    status, reasons = verified(stored(world, b"segment-1", "STHJ-DOCK1", dock.sign(b"segment-1", key=other.key,
                                                                                    media_type="video/mp4")))
    assert status == "failed" and reasons["bad-signature"]["severity"] == "error"
    assert db.session.scalar(select(func.count()).select_from(CaptureManifest)) == 0  # never trusted, never stored


def test_a_file_received_after_its_device_was_retired_is_flagged(world: World) -> None:
    dock = keyed("STHJ-DOCK1")
    signed = dock.sign(b"segment-1", media_type="video/mp4")
    enrolment.retire(SYSTEM, "STHJ-DOCK1")
    db.session.commit()
    assert db.session.scalar(select(DeviceKey.revoked_at)) is not None
    status, reasons = verified(stored(world, b"segment-1", "STHJ-DOCK1", signed))
    assert status == "needs_review" and set(reasons) == {"revoked-key"}


def test_a_withheld_capture_is_a_gap_until_it_arrives(world: World) -> None:
    dock = keyed("STHJ-DOCK1")
    files = [(f"seg-{n}".encode(), dock.sign(f"seg-{n}".encode(), media_type="video/mp4")) for n in range(1, 5)]
    for data, signed in files[:2]:
        assert verified(stored(world, data, "STHJ-DOCK1", signed)) == ("verified", {})
    fourth = stored(world, files[3][0], "STHJ-DOCK1", files[3][1])
    status, reasons = verified(fourth)
    assert status == "needs_review" and reasons["chain-gap"]["message"] == \
        "采集链不完整：终端 STHJ-DOCK1 第 3 号采集未送达"
    assert db.session.get(Media, fourth.id).report.reasons[0]["details"]["missing"] == [3]
    assert words(db.session.get(Media, fourth.id)) == \
        "由扩展坞 STHJ-DOCK1 签名（第 4 号采集），签名有效，采集链不完整：第 3 号采集未送达"

    assert verified(stored(world, files[2][0], "STHJ-DOCK1", files[2][1])) == ("verified", {})  # it came late
    assert verdict(fourth.id) == ("verified", {})


def test_a_clean_chain_of_100_captures_from_two_devices(world: World) -> None:
    signers = [keyed("STHJ-DOCK1"), keyed("SCJG-TAB1")]
    for n in range(100):
        signer = signers[n % 2]
        data = f"capture {n}".encode()
        assert verified(stored(world, data, signer.device_id, signer.sign(data, media_type="video/mp4"))) == \
            ("verified", {}), n
    counts = dict(db.session.execute(select(CaptureManifest.device_id, func.max(CaptureManifest.counter))
                                     .group_by(CaptureManifest.device_id)).all())
    assert counts == {"STHJ-DOCK1": 50, "SCJG-TAB1": 50}


def test_the_case_file_carries_each_files_manifest_signature_and_key(client, auth, world: World) -> None:
    case = build_case(world)
    dock = keyed("STHJ-DOCK1")
    video = db.session.get(Media, case.video.id)
    data = b"".join(uploads().store.read(db.session.get(MediaObject, video.sha256).key))
    started = video.capture_start.astimezone(UTC).isoformat().replace("+00:00", "Z")
    raw, signature = dock.sign(data, media_type="video/mp4", capture_start=started)
    evidence = dataclasses.replace(provenance.evidence_of(video), manifest=raw, signature=signature,
                                   devices=("STHJ-DOCK1",))
    assert provenance.check(evidence).reasons == []
    db.session.commit()

    response = client.get(f"/api/v1/inspections/{case.inspection.id}/case-file", headers=auth.headers("m-sup"))
    assert response.status_code == 200
    with zipfile.ZipFile(io.BytesIO(response.get_data())) as archive:
        files = {Path(name).relative_to(f"case-{case.inspection.id}").as_posix(): archive.read(name)
                 for name in archive.namelist()}
    listed = {e["id"]: e for e in json.loads(files["data/evidence/manifest.json"])["evidence"]}
    signed = listed[str(video.id)]["capture_manifest"]
    assert listed[str(case.photo.id)]["capture_manifest"] is None
    assert signed["device_id"] == "STHJ-DOCK1" and signed["counter"] == 1 and signed["public_key"] == dock.public
    # Checked offline: the key file, the signature over the manifest's bytes, the manifest's hash of the file.
    key = load_pem_public_key(files[signed["public_key_path"]])
    key.verify(files[signed["signature_path"]], files[signed["path"]])  # type: ignore[union-attr]
    footage = files[listed[str(video.id)]["path"]]
    assert json.loads(files[signed["path"]])["sha256"] == hashlib.sha256(footage).hexdigest()
    assert signed["path"] in files["manifest-sha256.txt"].decode()  # covered by the bag's own manifest
