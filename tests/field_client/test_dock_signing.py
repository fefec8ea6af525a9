"""``fieldsync dock`` signs a capture manifest for every bodycam file it uploads (issue 17): its key file, its chain
across restarts, and the manifest in the tus metadata."""
from __future__ import annotations

import base64
import hashlib
import json
import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select

from field_client.dock import parse_segment, parse_utc_offset
from field_client.provenance import DeviceSigner, SigningError, b64url_decode, manifest_bytes
from server.extensions import db
from server.provenance.models import DeviceKey
from tests.field_client.conftest import LiveServer
from tests.field_client.test_dock import CHUNK, Dock, dock, segment, state_rows  # noqa: F401 - the dock fixture


def sent_manifests(dock: Dock) -> list[tuple[dict[str, Any], bytes, bytes]]:  # noqa: F811 - the fixture's name
    """(tus metadata, manifest bytes, signature) of each upload creation of the last run."""
    found = []
    for _, headers, _ in dock.session.of("POST"):
        meta = {k: base64.b64decode(v).decode() for k, v in
                (p.split(" ", 1) for p in headers["Upload-Metadata"].split(","))}
        found.append((meta, b64url_decode(meta["manifest"]), b64url_decode(meta["manifest_signature"])))
    return found


def test_the_dock_signs_each_upload_and_keeps_its_chain_across_restarts(
        dock: Dock, live_server: LiveServer, tmp_path: Path) -> None:  # noqa: F811 - the fixture
    first, first_bytes = segment(dock.folder, 0, 2 * CHUNK + 7)
    second, second_bytes = segment(dock.folder, 1, 1000)
    assert dock("--once") == 0, dock.err

    key_file = dock.folder / ".fieldsync-dock-key-SCJG-DOCK1.pem"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    assert isinstance(key, Ed25519PrivateKey)
    public = key.public_key()
    assert "生成签名密钥" in dock.err and "已向服务器登记" in dock.err
    db.session.remove()
    (registered,) = db.session.scalars(select(DeviceKey).where(DeviceKey.device_id == "SCJG-DOCK1"))
    assert registered.public_key == DeviceSigner(dock.folder, "SCJG-DOCK1").public_key

    sent = sent_manifests(dock)
    assert len(sent) == 2
    previous = ""
    for counter, ((meta, raw, signature), (path, content)) in enumerate(
            zip(sent, ((first, first_bytes), (second, second_bytes)), strict=True), start=1):
        public.verify(signature, raw)  # raises if not the dock's signature over these bytes
        manifest = json.loads(raw)
        assert raw == manifest_bytes({k: v for k, v in manifest.items() if k != "v"})  # the fixed form, as signed
        assert list(manifest) == ["v", "device_id", "counter", "prev", "sha256", "size", "media_type", "capture_start",
                                  "capture_end", "device_clock", "media_id", "task_id", "inspection_id", "inspector",
                                  "location"]
        assert manifest["device_id"] == "SCJG-DOCK1" and manifest["counter"] == counter
        assert manifest["prev"] == previous
        assert manifest["sha256"] == meta["sha256"] == hashlib.sha256(content).hexdigest()
        assert manifest["size"] == len(content) and manifest["media_type"] == "video/mp4"
        start = parse_segment(path.name, parse_utc_offset("+08:00")).capture_start  # type: ignore[union-attr]
        assert datetime.fromisoformat(manifest["capture_start"]) == datetime.fromisoformat(start)
        assert manifest["capture_start"].endswith("Z") and manifest["capture_end"] >= manifest["capture_start"]
        assert manifest["media_id"] is None and manifest["task_id"] is None and manifest["location"] is None
        previous = hashlib.sha256(raw).hexdigest()
    assert all(r["manifest"] for r in state_rows(dock.folder))  # kept with each file: a retry sends the same

    # Restarted (a new process reads its files): the chain goes on where it stood, under the same key.
    third, _ = segment(dock.folder, 2, 500)
    assert dock("--once") == 0, dock.err
    ((_, raw, signature),) = sent_manifests(dock)
    public.verify(signature, raw)
    assert json.loads(raw)["counter"] == 3 and json.loads(raw)["prev"] == previous
    assert "生成签名密钥" not in dock.err and "已向服务器登记" not in dock.err  # registered once
    chain = json.loads((dock.folder / ".fieldsync-dock-chain-SCJG-DOCK1.json").read_text())
    assert chain["counter"] == 3 and chain["prev"] == hashlib.sha256(raw).hexdigest()

    # The same device with another key file (a second state folder): the server holds the first key, so the dock
    # stops before uploading anything it would sign with a key the server does not know.
    segment(dock.folder, 3, 500)
    assert dock("--once", "--state", str(tmp_path / "elsewhere" / "state.db")) == 1
    assert "登记的签名公钥不是本机密钥文件" in dock.err and "清除旧公钥" in dock.err
    assert dock.uploads() == []


def test_a_counter_is_never_reused_and_the_key_stays_private(tmp_path: Path) -> None:
    signer = DeviceSigner(tmp_path, "SCJG-DOCK1")
    assert signer.created and stat.S_IMODE(signer.key_path.stat().st_mode) == 0o600
    fields = {"sha256": "ab" * 32, "size": 1, "media_type": "video/mp4", "capture_start": "2026-01-05T02:00:00.000Z",
              "capture_end": "2026-01-05T02:01:00.000Z", "media_id": None, "task_id": None, "inspection_id": None,
              "inspector": None, "location": None}
    now = datetime(2026, 1, 5, 3, tzinfo=UTC)
    one = signer.sign("row-1", fields, now)
    # The row did not get its manifest (a crash before it was written): the same one is given again, no new counter.
    assert signer.sign("row-1", fields, now) == one
    two = DeviceSigner(tmp_path, "SCJG-DOCK1").sign("row-2", fields, now)  # another process, same files
    assert (one.counter, two.counter) == (1, 2)
    assert json.loads(b64url_decode(two.manifest))["prev"] == one.hash

    # A key readable by others is refused; a chain lost beside a kept key stops signing rather than start again.
    signer.key_path.chmod(0o640)
    with pytest.raises(SigningError, match="chmod 600"):
        DeviceSigner(tmp_path, "SCJG-DOCK1")
    signer.key_path.chmod(0o600)
    signer.chain_path.unlink()
    with pytest.raises(SigningError, match="签名链状态文件"):
        DeviceSigner(tmp_path, "SCJG-DOCK1")
