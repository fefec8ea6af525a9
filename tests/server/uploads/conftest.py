"""Helpers for the upload tests: synced media records, device tokens, tus headers, a live server."""
from __future__ import annotations

import base64
import hashlib
import itertools
import os
import random
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.serving import make_server

from server.sync.entities import inspection_id_for
from server.uploads.s3store import S3MediaStore
from server.uploads.service import uploads
from tests.conftest import AuthActions, World

UPLOADS = "/api/v1/uploads/"
TUS = {"Tus-Resumable": "1.0.0"}
OCTETS = "application/offset+octet-stream"
_counter = itertools.count()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def metadata(**values: str) -> str:
    return ",".join(f"{key} {base64.b64encode(value.encode()).decode()}" for key, value in values.items())


def footage(size: int, seed: int | None = None) -> bytes:
    """Test footage: random bytes made here (never downloaded); reproducible with a seed."""
    return os.urandom(size) if seed is None else random.Random(seed).randbytes(size)


def _hlc(device: str) -> str:
    return f"{int(time.time() * 1000):013d}-{next(_counter) % 65536:04x}-{device}"


@dataclass
class SyncedMedia:
    id: str
    inspection_id: str
    data: bytes

    @property
    def sha256(self) -> str:
        return sha256(self.data)


def push_media(client: FlaskClient, auth: AuthActions, world: World, data: bytes, *, user: str = "m-insp",
               tablet: str = "SCJG-TAB1", **fields: Any) -> SyncedMedia:
    """A tablet pushes an inspection and a media record for ``data`` (as the field client does before uploading)."""
    headers = auth.headers(user)
    inspection_id, media_id = str(inspection_id_for(world.task.id)), str(uuid.uuid4())
    mutations = [
        {"id": str(uuid.uuid4()), "entity": "inspection", "entity_id": inspection_id, "op": "upsert", "base_version": 0,
         "hlc": _hlc(tablet), "fields": {"task_id": str(world.task.id), "place": "厂区"}},
        {"id": str(uuid.uuid4()), "entity": "media", "entity_id": media_id, "op": "upsert", "base_version": 0,
         "hlc": _hlc(tablet), "fields": {"inspection_id": inspection_id, "sha256": sha256(data), "size": len(data),
                                         "proves": "scene", "content_type": "image/jpeg", "file_name": "IMG_0001.jpg",
                                         **fields}},
    ]
    response = client.post("/api/v1/sync/push", json={"device_id": tablet, "mutations": mutations}, headers=headers)
    assert response.status_code == 200, response.get_json()
    assert [r["status"] for r in response.get_json()["results"]] == ["applied", "applied"], response.get_json()
    return SyncedMedia(media_id, inspection_id, data)


def device_headers(client: FlaskClient, world: World, name: str) -> dict[str, str]:
    created = world.devices[name]
    response = client.post("/api/v1/auth/device-token",
                           json={"device_id": created.device.id, "device_secret": created.secret})
    assert response.status_code == 200, response.get_json()
    return {"Authorization": "Bearer " + response.get_json()["access_token"]}


def create(client: FlaskClient, headers: dict[str, str], length: int, meta: str | None, **extra: Any) -> Any:
    request_headers = {**TUS, **headers, "Upload-Length": str(length)}
    if meta is not None:
        request_headers["Upload-Metadata"] = meta
    return client.post(UPLOADS, headers=request_headers, **extra)


def patch(client: FlaskClient, url: str, headers: dict[str, str], offset: int, body: bytes,
          **extra_headers: str) -> Any:
    return client.patch(url, data=body, headers={**TUS, **headers, "Upload-Offset": str(offset),
                                                 "Content-Type": OCTETS, **extra_headers})


def head(client: FlaskClient, url: str, headers: dict[str, str]) -> Any:
    return client.head(url, headers={**TUS, **headers})


def checksum(algorithm: str, body: bytes) -> str:
    return f"{algorithm} {base64.b64encode(hashlib.new(algorithm, body).digest()).decode()}"


def media_root(app: Flask) -> Path:
    return app.config["SETTINGS"].media_root  # type: ignore[no-any-return]


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def object_files(app: Flask) -> list[Path]:
    return files_under(media_root(app) / "objects")


def stored_objects(app: Flask) -> list[bytes]:
    """The bytes of every object in the app's media store (local disk or S3), in key order."""
    store = uploads().store
    with app.app_context():
        return [b"".join(store.read(found.key)) for found in store.iter_objects()]


def stored_names(app: Flask) -> list[str]:
    """Every name the app's media store holds: paths under the media root, or the keys in the bucket."""
    store = uploads().store
    if isinstance(store, S3MediaStore):
        return [entry["Key"] for entry in store._list(store.prefix)]
    return [str(p) for p in media_root(app).rglob("*")]


def quarantined_bytes(app: Flask, where: str) -> bytes:
    store = uploads().store
    if isinstance(store, S3MediaStore):
        return store.client.get_object(Bucket=store.bucket, Key=store._name(where, "data"))["Body"].read()  # type: ignore[no-any-return]
    return (media_root(app) / where / "data").read_bytes()


def partial_keys(app: Flask) -> list[str]:
    """The partial uploads the app's media store holds."""
    with app.app_context():
        return [part.key for part in uploads().store.iter_partials()]


def forget_running_hashes(app: Flask) -> None:
    """What a server restart does to the in-memory hash states."""
    uploads().digests.clear()


@dataclass
class Live:
    url: str
    app: Flask


@pytest.fixture
def live(app: Flask) -> Iterator[Live]:
    """The app on a real socket (tuspy speaks HTTP through requests), threaded like production."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield Live(f"http://127.0.0.1:{server.server_port}", app)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
