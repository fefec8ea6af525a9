"""Bodies under gunicorn, as production serves them: read straight from the socket into the blocks
stored (``routes._GunicornBody``), with gunicorn's own account of the connection kept exact — bytes that
arrived with the headers, a next request pipelined behind a body, and keep-alive after a PATCH."""
from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from server.extensions import db
from tests.conftest import World
from tests.server.uploads.conftest import (
    OCTETS,
    create,
    footage,
    media_root,
    metadata,
    object_files,
    push_media,
    sha256,
)
from tests.server.uploads.test_live import ServerProcess


@pytest.fixture
def gunicorn(app: Any, database_url: str) -> Iterator[ServerProcess]:
    server = ServerProcess("gunicorn", database_url, media_root(app).parent)
    yield server
    server.stop()


def request_bytes(method: str, path: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Tus-Resumable: 1.0.0",
             *(f"{k}: {v}" for k, v in headers.items())]
    if method == "PATCH":
        lines += [f"Content-Type: {OCTETS}", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def answers(url: str, payload: bytes) -> list[dict[str, str]]:
    """Send ``payload`` (several requests, the last one closing) on one connection in one go, and parse
    the answers: status and headers, in order (bodies skipped by their Content-Length)."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        sock.sendall(payload)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    found = []
    while received.startswith(b"HTTP/1.1 "):
        head, _, received = received.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode().split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in header_lines)}
        found.append({"status": status_line.split()[1], **headers})
        received = received[int(headers.get("content-length", "0")):]  # a problem's body, say
    return found


def test_pipelined_patches_and_a_head_on_one_connection(gunicorn: ServerProcess, client, world: World,
                                                        auth) -> None:
    data = footage(2 * 1024 * 1024 + 777, seed=21)  # more than one block, and not a whole number of them
    media = push_media(client, auth, world, data)
    headers = auth.headers("m-insp")
    path = create(client, headers, len(data), metadata(sha256=media.sha256, media_id=media.id)).headers["Location"]
    db.session.commit()
    cut = 1024 * 1024 + 5
    payload = (request_bytes("PATCH", path, {**headers, "Upload-Offset": "0"}, data[:cut])
               + request_bytes("PATCH", path, {**headers, "Upload-Offset": str(cut)}, data[cut:])
               + request_bytes("HEAD", path, {**headers, "Connection": "close"}))
    got = answers(gunicorn.url, payload)
    assert [(a["status"], a.get("upload-offset")) for a in got] == [
        ("204", str(cut)), ("204", str(len(data))), ("200", str(len(data)))]
    stored = requests.get(f"{gunicorn.url}/api/v1/media/{media.id}", headers=headers, timeout=10).json()
    assert stored["sha256"] == sha256(data) and stored["size"] == len(data)
    assert [sha256(p.read_bytes()) for p in object_files(client.application)] == [sha256(data)]


def test_a_body_longer_than_the_room_left_is_refused_and_the_connection_goes_on(
        gunicorn: ServerProcess, client, world: World, auth) -> None:
    data = footage(100_000, seed=22)
    media = push_media(client, auth, world, data)
    headers = auth.headers("m-insp")
    path = create(client, headers, len(data), metadata(sha256=media.sha256, media_id=media.id)).headers["Location"]
    db.session.commit()
    payload = (request_bytes("PATCH", path, {**headers, "Upload-Offset": "0"}, data + b"extra")
               + request_bytes("PATCH", path, {**headers, "Upload-Offset": "0", "Connection": "close"}, data))
    got = answers(gunicorn.url, payload)
    assert got[0]["status"] == "413" and got[0]["upload-offset"] == "0"
    # The refused body was read and dropped, never taken for a request: the next one is answered.
    assert [a["status"] for a in got[1:]] == ["204"]
    assert [p.read_bytes() for p in object_files(client.application)] == [data]


def test_a_refused_patch_is_answered_after_its_body_so_a_proxy_sees_the_refusal(
        gunicorn: ServerProcess, client, world: World, auth) -> None:
    """A PATCH refused before its body is read (here: a stale offset) is answered once the body is in:
    gunicorn would otherwise read 64 KiB of it and reset the connection, and nginx, still sending,
    would answer 502 and take this server out of rotation (tests/deploy)."""
    data = footage(6 * 1024 * 1024, seed=23)
    media = push_media(client, auth, world, data)
    headers = auth.headers("m-insp")
    path = create(client, headers, len(data), metadata(sha256=media.sha256, media_id=media.id)).headers["Location"]
    db.session.commit()
    payload = (request_bytes("PATCH", path, {**headers, "Upload-Offset": "4096"}, data)
               + request_bytes("HEAD", path, {**headers, "Connection": "close"}))
    got = answers(gunicorn.url, payload)
    assert [a["status"] for a in got] == ["409", "200"]  # the connection lived on to answer the HEAD
    assert got[0]["upload-offset"] == "0" and got[1]["upload-offset"] == "0"
