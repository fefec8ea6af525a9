"""The tablet signs what it captures (issue 17), in Chromium: it makes a non-extractable Ed25519 key before
enrolment and the server keeps the public half; a photo captured offline carries a manifest signed with it (the
file's hash and size, the record, task, inspection, inspector, counter 1 of the tablet's chain); after the sync the
server has verified the manifest against the key and the file, and the file is verified."""
from __future__ import annotations

import base64
import hashlib
import json
import uuid
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from flask import Flask
from sqlalchemy import select

from server.extensions import db
from server.jobs.queue import current_queue
from server.provenance.models import CaptureManifest, DeviceKey
from server.sync.entities import inspection_id_for
from server.sync.models import SyncedEntity
from server.uploads.models import Media
from tests.conftest import World
from tests.field_app.conftest import certificate_photo, enrolment_code, open_task_offline
from tests.field_app.test_offline_inspection import enrol_and_log_in, unlock
from tests.server.uploads.conftest import Live, live  # noqa: F401 - the live-server fixture

# What the app keeps in IndexedDB, read in the page: the key's public half and whether the private half leaves.
TABLET_KEY = """async () => {
  const db = await new Promise((resolve, reject) => {
    const open = indexedDB.open('inspect-once');
    open.onsuccess = () => resolve(open.result);
    open.onerror = () => reject(open.error);
  });
  const row = await new Promise((resolve) => {
    const get = db.transaction('meta').objectStore('meta').get('device_key');
    get.onsuccess = () => resolve(get.result);
  });
  db.close();
  const key = row.value;
  let exported = true;
  try { await crypto.subtle.exportKey('pkcs8', key.privateKey); } catch { exported = false; }
  return { publicKey: key.public_key, extractable: key.privateKey.extractable, exported,
           algorithm: key.privateKey.algorithm.name };
}"""


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def test_a_photo_captured_offline_reaches_the_server_signed_by_the_tablet(
        app: Flask, world: World, live: Live,  # noqa: F811 - the imported fixture
        tablets: Any, tmp_path: Path) -> None:
    task_id, inspector_id = world.task.id, world.people["m-insp"].id
    photo = certificate_photo(tmp_path / "IMG_0001.jpg", "CERT-M-001")
    tablet = tablets(live.url, "signed")
    page = enrol_and_log_in(tablet, enrolment_code(app, "SCJG", "SCJG-TAB1"))

    held = page.evaluate(TABLET_KEY)
    assert held["algorithm"] == "Ed25519" and held["extractable"] is False and held["exported"] is False
    db.session.remove()
    (key,) = db.session.scalars(select(DeviceKey).where(DeviceKey.device_id == "SCJG-TAB1"))
    assert key.public_key == held["publicKey"] and key.revoked_at is None  # sent with the enrolment

    # Offline: the capture is signed on the tablet, with no server to ask.
    open_task_offline(tablet, unlock)
    page.click("[data-testid=start]")
    tablet.wait_screen("inspect-overview")
    page.click("[data-testid=next]")
    tablet.wait_screen("inspect-certificate")
    page.set_input_files("[data-testid=certificate-photo] input", str(photo))
    page.wait_for_function("() => document.querySelectorAll('[data-testid=media-thumb]').length === 1")

    page.goto(live.url + "/field/#/sync")
    tablet.wait_screen("sync")
    tablet.offline(False)
    tablet.wait_for_sync(1)

    db.session.remove()
    inspection_id = inspection_id_for(task_id)
    (record,) = db.session.scalars(select(SyncedEntity).where(SyncedEntity.inspection_id == inspection_id,
                                                              SyncedEntity.kind == "media"))
    raw = unb64url(record.fields["manifest"])
    Ed25519PublicKey.from_public_bytes(unb64url(key.public_key)).verify(unb64url(record.fields["manifest_signature"]),
                                                                        raw)
    manifest = json.loads(raw)
    content = photo.read_bytes()
    assert manifest["v"] == 1 and manifest["device_id"] == "SCJG-TAB1"
    assert manifest["counter"] == 1 and manifest["prev"] == ""
    assert manifest["sha256"] == hashlib.sha256(content).hexdigest() == record.fields["sha256"]
    assert manifest["size"] == len(content) and manifest["media_type"] == "image/jpeg"
    assert uuid.UUID(manifest["media_id"]) == record.id
    assert uuid.UUID(manifest["task_id"]) == task_id and uuid.UUID(manifest["inspection_id"]) == inspection_id
    assert uuid.UUID(manifest["inspector"]) == inspector_id
    assert manifest["capture_start"].endswith("Z") and manifest["location"] is None  # location was not allowed

    # The worker verifies the file and, with it, the manifest: kept as received, nothing flagged.
    queue = current_queue(app)
    while queue.run_pending():
        pass
    db.session.remove()
    media = db.session.get(Media, record.id)
    assert media is not None and media.verification_status.value == "verified", media.verification_reasons
    stored = db.session.scalar(select(CaptureManifest).where(CaptureManifest.media_id == record.id))
    assert stored is not None and stored.raw == raw and stored.counter == 1 and stored.key_id == key.id
    errors = [line for line in tablet.console if line.startswith("pageerror")]
    assert not errors, errors
