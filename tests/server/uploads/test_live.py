"""Uploads over real sockets: a stock tus client (tuspy), concurrent PATCHes, a client that hangs up,
and a server killed with SIGKILL mid-upload."""
from __future__ import annotations

import http.client
import io
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from sqlalchemy import select
from tusclient.client import TusClient

from server.extensions import db
from server.uploads.models import Upload
from tests.clock import subprocess_command
from tests.conftest import World
from tests.server.uploads.conftest import (
    OCTETS,
    TUS,
    UPLOADS,
    Live,
    create,
    device_headers,
    footage,
    media_root,
    metadata,
    object_files,
    push_media,
    sha256,
)

REPO = Path(__file__).resolve().parents[3]


def tus_client(base: str, headers: dict[str, str]) -> TusClient:
    return TusClient(base + UPLOADS, headers=dict(headers))


def server_offset(base: str, path: str, headers: dict[str, str]) -> int:
    response = requests.head(base + path, headers={**TUS, **headers}, timeout=10)
    assert response.status_code == 200, response.status_code
    return int(response.headers["Upload-Offset"])


def slow_patch(base: str, path: str, headers: dict[str, str], offset: int, body: bytes,
               announced: int | None = None) -> http.client.HTTPConnection:
    """Start a PATCH on a raw connection: headers only; the caller sends the body at its own pace."""
    parts = urlsplit(base)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    connection.putrequest("PATCH", path)
    for name, value in {**TUS, **headers, "Upload-Offset": str(offset), "Content-Type": OCTETS,
                        "Content-Length": str(len(body) if announced is None else announced)}.items():
        connection.putheader(name, value)
    connection.endheaders()
    return connection


def test_tuspy_uploads_in_checksummed_chunks(live: Live, client, world: World, auth) -> None:
    data = footage(1536 * 1024 + 123)
    media = push_media(client, auth, world, data)
    tus = tus_client(live.url, auth.headers("m-insp"))
    uploader = tus.uploader(file_stream=io.BytesIO(data), chunk_size=256 * 1024, upload_checksum=True,
                            metadata={"sha256": media.sha256, "media_id": media.id, "filename": "IMG_0001.jpg",
                                      "filetype": "image/jpeg"})
    uploader.upload()
    assert uploader.offset == len(data)
    stored = requests.get(f"{live.url}/api/v1/media/{media.id}", headers=auth.headers("m-insp"), timeout=10).json()
    assert stored["sha256"] == media.sha256 and stored["verification"] == {"status": "pending", "reasons": []}
    assert [p.read_bytes() for p in object_files(live.app)] == [data]


def test_tuspy_resumes_a_stopped_upload_and_a_device_checks_before_deleting(live: Live, client, world: World) -> None:
    data = footage(900 * 1024)
    cam = device_headers(client, world, "m-cam")
    meta = {"sha256": sha256(data), "filename": "REC_0001.mp4", "capture_start": "2026-11-26T09:00:00+08:00"}
    first = tus_client(live.url, cam).uploader(file_stream=io.BytesIO(data), chunk_size=200 * 1024, metadata=meta)
    first.upload(stop_at=400 * 1024)
    assert first.url and 0 < first.offset < len(data)
    again = tus_client(live.url, cam).uploader(file_stream=io.BytesIO(data), chunk_size=200 * 1024, metadata=meta,
                                               url=first.url)
    assert again.offset == first.offset  # asked the server (HEAD)
    again.upload()
    found = requests.get(f"{live.url}/api/v1/media", params={"sha256": sha256(data)}, headers=cam, timeout=10).json()
    assert [(m["device_id"], m["size"]) for m in found["items"]] == [("SCJG-BC01", len(data))]


def test_concurrent_patches_of_one_upload_never_interleave(live: Live, client, world: World, auth) -> None:
    data = footage(3 * 1024 * 1024)
    media = push_media(client, auth, world, data)
    headers = auth.headers("m-insp")
    path = create(client, headers, len(data), metadata(sha256=media.sha256, media_id=media.id)).headers["Location"]
    upload = db.session.scalars(select(Upload)).one()
    data_file = media_root(live.app) / "uploads" / upload.storage_key / "data"
    db.session.commit()

    writer = slow_patch(live.url, path, headers, 0, data)
    writer.send(data[:1536 * 1024])
    deadline = time.monotonic() + 20
    while data_file.stat().st_size < 1024 * 1024:  # the first PATCH is writing: it holds the upload
        assert time.monotonic() < deadline
        time.sleep(0.01)
    intruder = requests.patch(live.url + path, data=footage(1000), timeout=10, headers={
        **TUS, **headers, "Upload-Offset": "0", "Content-Type": OCTETS})
    assert intruder.status_code == 423
    assert intruder.headers["Content-Type"] == "application/problem+json"
    assert intruder.json()["type"] == "/problems/upload-locked"
    writer.send(data[1536 * 1024:])
    answer = writer.getresponse()
    assert answer.status == 204 and answer.getheader("Upload-Offset") == str(len(data))
    writer.close()
    assert [sha256(p.read_bytes()) for p in object_files(live.app)] == [sha256(data)]


def test_a_client_that_hangs_up_keeps_what_arrived(live: Live, client, world: World, auth) -> None:
    data = footage(600 * 1024)
    media = push_media(client, auth, world, data)
    headers = auth.headers("m-insp")
    path = create(client, headers, len(data), metadata(sha256=media.sha256, media_id=media.id)).headers["Location"]
    db.session.commit()
    connection = slow_patch(live.url, path, headers, 0, data)
    connection.send(data[:250_000])
    connection.close()  # Content-Length said 600 KiB; 250 000 bytes came
    deadline = time.monotonic() + 20
    while server_offset(live.url, path, headers) != 250_000:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    rest = tus_client(live.url, headers).uploader(file_stream=io.BytesIO(data), url=live.url + path,
                                                  chunk_size=128 * 1024)
    assert rest.offset == 250_000
    rest.upload()
    assert [p.read_bytes() for p in object_files(live.app)] == [data]


def test_a_stalled_body_releases_the_upload(live: Live, client, world: World, auth) -> None:
    """A half-open connection (the tablet changed networks) does not keep the upload locked."""
    live.app.config["UPLOAD_BODY_IDLE_SECONDS"] = 0.5
    data = footage(300_000)
    media = push_media(client, auth, world, data)
    headers = auth.headers("m-insp")
    path = create(client, headers, len(data), metadata(sha256=media.sha256, media_id=media.id)).headers["Location"]
    db.session.commit()
    stalled = slow_patch(live.url, path, headers, 0, data)
    stalled.send(data[:100_000])  # ... and nothing more, the connection left open
    answer = stalled.getresponse()  # the server gives up waiting and says what it kept
    kept = int(answer.getheader("Upload-Offset") or -1)
    assert answer.status == 400 and 0 < kept <= 100_000
    assert server_offset(live.url, path, headers) == kept
    resumed = requests.patch(live.url + path, data=data[kept:], timeout=10, headers={
        **TUS, **headers, "Upload-Offset": str(kept), "Content-Type": OCTETS})
    assert resumed.status_code == 204, resumed.text
    stalled.close()
    assert [p.read_bytes() for p in object_files(live.app)] == [data]


# ---- a server killed mid-upload -----------------------------------------------------------

class ServerProcess:
    """The app in its own process group: werkzeug's server, or gunicorn (gthread) as ``serve`` runs it."""

    def __init__(self, kind: str, database_url: str, var: Path) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO), "UPLOAD_TEST_DATABASE_URL": database_url,
               "UPLOAD_TEST_VAR": str(var)}
        if kind == "werkzeug":
            command = subprocess_command(sys.executable, "tests.server.uploads.serve", database_url, str(var))
        else:
            command = subprocess_command(
                sys.executable, "gunicorn", "--workers", "1", "--worker-class", "gthread", "--threads", "4",
                "--bind", "127.0.0.1:0", "--no-control-socket", "--log-level", "info", "--access-logfile", "-",
                "--access-logformat", "access %(p)s %(m)s %(s)s", "tests.server.uploads.serve:make_app()")
        # Either runs at the test's instant (tests/clock.py), as the app in this process does.
        # Output goes to a file: a pipe nobody reads would stall a chatty server.
        self.log = tempfile.TemporaryFile("w+")
        self.process = subprocess.Popen(command, cwd=REPO, env=env, text=True, start_new_session=True,
                                        stdout=self.log, stderr=subprocess.STDOUT)
        port = None
        deadline = time.monotonic() + 30
        while port is None and time.monotonic() < deadline and self.process.poll() is None:
            time.sleep(0.05)
            self.log.seek(0)
            for line in self.log.read().splitlines():
                if kind == "werkzeug" and line.strip().isdigit():
                    port = int(line)
                elif "Listening at: http://127.0.0.1:" in line:
                    port = int(line.split("127.0.0.1:")[1].split()[0])
        assert port, "server did not start"
        self.url = f"http://127.0.0.1:{port}"

    def access_log(self) -> list[list[str]]:
        """gunicorn's access lines: worker pid, method, status."""
        self.log.seek(0)
        return [line.split()[1:] for line in self.log.read().splitlines() if line.startswith("access ")]

    def kill(self) -> None:
        """SIGKILL to the whole group (gunicorn's master and worker alike): no clean-up, no last commit."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()


@pytest.fixture
def server_process(app: Any, database_url: str) -> Iterator[Any]:
    started: list[ServerProcess] = []

    def start(kind: str) -> ServerProcess:
        server = ServerProcess(kind, database_url, media_root(app).parent)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.mark.parametrize("kind", ["werkzeug", "gunicorn"])
def test_a_server_killed_mid_upload_resumes_from_its_last_durable_offset(app, client, world: World, auth,
                                                                          server_process: Any, kind: str) -> None:
    data = footage(4 * 1024 * 1024, seed=11)
    media = push_media(client, auth, world, data)
    headers = auth.headers("m-insp")
    path = create(client, headers, len(data), metadata(sha256=media.sha256, media_id=media.id)).headers["Location"]
    db.session.commit()

    first = server_process(kind)
    connection = slow_patch(first.url, path, headers, 0, data)
    sent = 0
    deadline = time.monotonic() + 30
    while server_offset(first.url, path, headers) < 1024 * 1024:  # some of it durable (checkpoints)
        assert time.monotonic() < deadline
        if sent < 2 * 1024 * 1024:
            connection.send(data[sent:sent + 256 * 1024])
            sent += 256 * 1024
        time.sleep(0.05)
    first.kill()  # SIGKILL: no clean-up, no last commit
    connection.close()

    second = server_process(kind)
    durable = server_offset(second.url, path, headers)
    assert 1024 * 1024 <= durable <= sent
    resumed = tus_client(second.url, headers).uploader(file_stream=io.BytesIO(data), url=second.url + path,
                                                       chunk_size=1024 * 1024)
    assert resumed.offset == durable
    resumed.upload()  # the running hash is gone with the first process: the durable prefix is hashed again
    stored = requests.get(f"{second.url}/api/v1/media/{media.id}", headers=headers, timeout=10).json()
    assert stored["sha256"] == sha256(data) and stored["size"] == len(data)
    assert [sha256(p.read_bytes()) for p in object_files(app)] == [sha256(data)]


def test_server_processes_take_turns_on_one_upload(app, client, world: World, auth, server_process: Any) -> None:
    """Clients that connect per PATCH (tuspy does) reach any worker process, and each lacks the hash of what
    the others received. Two gunicorn servers on the same database and store, PATCHed in turn, stand for
    two workers; one client hangs up mid-body (gunicorn then ends the input short)."""
    data = footage(3 * 1024 * 1024 + 5, seed=12)
    media = push_media(client, auth, world, data)
    headers = auth.headers("m-insp")
    path = create(client, headers, len(data), metadata(sha256=media.sha256, media_id=media.id)).headers["Location"]
    db.session.commit()
    servers = [server_process("gunicorn"), server_process("gunicorn")]

    connection = slow_patch(servers[0].url, path, headers, 0, data)
    connection.send(data[:300_000])
    connection.close()
    deadline = time.monotonic() + 20
    while server_offset(servers[1].url, path, headers) != 300_000:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    offset, turn, chunk = 300_000, 1, 96 * 1024
    while offset < len(data):
        response = requests.patch(servers[turn % 2].url + path, data=data[offset:offset + chunk], timeout=10, headers={
            **TUS, **headers, "Upload-Offset": str(offset), "Content-Type": OCTETS})
        assert response.status_code == 204, response.text
        offset, turn = int(response.headers["Upload-Offset"]), turn + 1
    stored = requests.get(f"{servers[0].url}/api/v1/media/{media.id}", headers=headers, timeout=10).json()
    assert stored["sha256"] == sha256(data) and stored["size"] == len(data)
    assert [sha256(p.read_bytes()) for p in object_files(app)] == [sha256(data)]
    # The upload was truly shared: both took PATCHes that stored bytes.
    for server in servers:
        assert any(method == "PATCH" and status == "204" for _, method, status in server.access_log())
