"""Tablet evidence uploads over tus against the app served on 127.0.0.1 (SQLite and PostgreSQL).

tuspy talks HTTP through ``requests``, so these tests serve the real app with
werkzeug in a thread (``live_server``) and log the tablet in with its URL.
"""
from __future__ import annotations

import base64
import hashlib
import io
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from field_client.cli import main
from field_client.engine import FieldClient, LocalError
from tests.conftest import PASSWORD, TABLETS, World
from tests.field_client.conftest import LiveServer, RecordingSession, stored_files_with

CHUNK = 64 * 1024
Tablet = Callable[..., FieldClient]


@pytest.fixture
def live_tablet(live_server: LiveServer, tmp_path: Path) -> Iterator[Callable[..., FieldClient]]:
    """Factory: a FieldClient over real HTTP to the live server, with a recording requests session."""
    made: list[tuple[FieldClient, requests.Session]] = []

    def make(name: str = "tablet", *, username: str = "m-insp", device: str = "SCJG-TAB1", login: bool = True,
             session: RecordingSession | None = None, **options: Any) -> FieldClient:
        session = session or RecordingSession()
        options.setdefault("sleep", lambda seconds: None)
        options.setdefault("upload_chunk_size", CHUNK)
        client = FieldClient(tmp_path / name / "field.db", None, http_session=session, **options)
        made.append((client, session))
        if device in TABLETS:
            client.remember_device(live_server.url, device, TABLETS[device][1])
        if login:
            client.login(live_server.url, username, PASSWORD, device)
        return client

    yield make
    for client, session in made:
        client.close()
        session.close()


def _session(client: FieldClient) -> RecordingSession:
    session = client.http_session()
    assert isinstance(session, RecordingSession)
    return session


def _metadata(headers: Any) -> dict[str, str]:
    pairs = (p.split(" ", 1) for p in headers["Upload-Metadata"].split(","))
    return {k: base64.b64decode(v).decode() for k, v in pairs}


def _server_media(live: LiveServer, client: FieldClient, media_id: str) -> dict[str, Any]:
    answer = requests.get(f"{live.url}/api/v1/media/{media_id}", timeout=10,
                          headers={"Authorization": f"Bearer {client.store.get('access_token')}"})
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


def _capture(client: FieldClient, world: World, tmp_path: Path, *sizes: int) -> list[tuple[str, bytes]]:
    """Start an inspection and attach one random file of each size; (media id, content) for each."""
    inspection = client.start_inspection(str(world.task.id), place="生产车间")
    out = []
    for number, size in enumerate(sizes):
        content = os.urandom(size)
        path = tmp_path / "camera" / f"IMG_{number:04d}.jpg"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(content)
        out.append((client.attach(inspection, path, "scene"), content))
    return out


def test_photos_taken_offline_arrive_after_sync_with_their_hash(live_server: LiveServer, world: World,
                                                               live_tablet: Tablet, tmp_path: Path) -> None:
    tablet = live_tablet()
    tablet.sync()
    captured = _capture(tablet, world, tmp_path, 5 * CHUNK + 123, 2000)
    assert tablet.status().uploads_waiting == 2 and tablet.status().uploads == []  # not yet acknowledged

    report = tablet.sync()
    assert report.push.applied == 3
    uploads = report.uploads
    assert (uploads.uploaded, uploads.already, uploads.waiting, uploads.failed, uploads.error) == (2, 0, 0, [], None)
    assert uploads.bytes_sent == sum(len(c) for _, c in captured)

    session = _session(tablet)
    creations = {_metadata(headers)["media_id"]: (url, headers) for url, headers, _ in session.of("POST")}
    assert sorted(creations) == sorted(m for m, _ in captured)
    for media_id, content in captured:
        url, headers = creations[media_id]
        digest = hashlib.sha256(content).hexdigest()
        assert url == f"{live_server.url}/api/v1/uploads/"
        assert headers["Tus-Resumable"] == "1.0.0" and headers["Upload-Length"] == str(len(content))
        assert headers["Authorization"].startswith("Bearer ")
        meta = _metadata(headers)
        assert meta["sha256"] == digest and meta["media_id"] == media_id
        assert meta["filetype"] == "image/jpeg" and meta["filename"].startswith("IMG_")
        # The server holds the bytes and its media record says so.
        media = _server_media(live_server, tablet, media_id)
        assert media["id"] == media_id and media["sha256"] == digest and media["size"] == len(content)
        assert media["verification"]["status"] in ("pending", "verified", "failed", "needs_review")
        assert stored_files_with(live_server.app, digest)
    # Chunks of the configured size, each with a SHA-256 checksum.
    patches = session.of("PATCH")
    assert len(patches) == 6 + 1
    for _, headers, size in patches:
        assert size <= CHUNK and headers["Upload-Checksum"].startswith("sha256 ")
        assert headers["Content-Type"] == "application/offset+octet-stream"

    status = tablet.status()
    assert status.uploads_waiting == 0
    assert sorted(u.media_id for u in status.uploads if u.status == "done") == sorted(m for m, _ in captured)
    assert tablet.store.get("access_token") not in str(tablet.store.uploads())

    # Nothing is sent twice.
    before = len(session.sent)
    again = tablet.sync().uploads
    assert (again.uploaded, again.already, again.waiting) == (0, 0, 0)
    assert [m for m, *_ in session.sent[before:] if m in ("POST", "PATCH", "HEAD")] == []


def test_status_and_the_cli_show_each_file(live_server: LiveServer, world: World, live_tablet: Tablet,
                                           tmp_path: Path) -> None:
    tablet = live_tablet()
    tablet.sync()
    (media_id, _), = _capture(tablet, world, tmp_path, 3000)
    store = tablet.store.path
    tablet.close()

    def run(*argv: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        code = main(["--store", str(store), *argv], stdout=out, stderr=err,
                    client_options={"sleep": lambda s: None, "http_session": RecordingSession()})
        return code, out.getvalue(), err.getvalue()

    code, out, _ = run("status")
    assert code == 0 and "待上传证据文件：1 个" in out and "尚未推送" in out
    code, out, err = run("sync")
    assert code == 0 and "证据文件：上传 1 个" in out and "待上传 0 个" in out, (out, err)
    code, out, _ = run("status")
    assert code == 0 and "待上传证据文件：0 个（已上传 1 个" in out and media_id in out and "✓" in out
    code, out, _ = run("upload")
    assert code == 0 and "没有需要上传的证据文件" in out
    code, out, _ = run("status", "--json")
    assert code == 0 and '"status": "done"' in out


def test_an_interrupted_upload_resumes_after_a_restart(live_server: LiveServer, world: World, live_tablet: Tablet,
                                                      tmp_path: Path) -> None:
    tablet = live_tablet("tab", max_attempts=2)
    tablet.sync()
    (media_id, content), = _capture(tablet, world, tmp_path, 10 * CHUNK + 7)
    session = _session(tablet)
    # The network dies after the fourth chunk.
    session.cut = lambda request: request.method == "PATCH" and int(request.headers["Upload-Offset"]) >= 4 * CHUNK
    report = tablet.sync().uploads
    assert report.uploaded == 0 and report.waiting == 1 and report.error and "网络" in report.error
    (row,) = tablet.status().uploads
    assert row.status == "uploading" and row.offset == 4 * CHUNK and row.error_code == "network"
    assert tablet.store.get("access_token") not in (row.error_reason or "")
    with pytest.raises(LocalError, match="1 个证据文件未上传"):
        tablet.login(live_server.url, "e-insp", PASSWORD, "STHJ-TAB1")  # not before the file is up
    tablet.close()  # the tablet is switched off

    restarted = live_tablet("tab", login=False)
    report = restarted.sync().uploads
    assert (report.uploaded, report.resumed, report.waiting, report.error) == (1, 1, 0, None)
    assert report.bytes_sent == len(content) - 4 * CHUNK
    resumed = _session(restarted)
    assert [m for m, *_ in resumed.sent if m in ("POST", "HEAD", "PATCH")][:2] == ["HEAD", "PATCH"]
    assert resumed.of("POST") == []  # the same upload, not a new one
    assert resumed.patches()[0][0] == 4 * CHUNK
    media = _server_media(live_server, restarted, media_id)
    assert media["sha256"] == hashlib.sha256(content).hexdigest() and media["size"] == len(content)
    assert restarted.status().uploads[0].status == "done"
    assert restarted.store._conn.execute("SELECT count(*) FROM tus_urls").fetchone()[0] == 0


def test_a_lost_answer_to_the_last_chunk_does_not_send_the_file_again(live_server: LiveServer, world: World,
                                                                     live_tablet: Tablet, tmp_path: Path) -> None:
    tablet = live_tablet()
    tablet.sync()
    (media_id, content), = _capture(tablet, world, tmp_path, 3 * CHUNK + 10)
    tablet.push()
    session = _session(tablet)
    session.lose = lambda request: request.method == "PATCH" and int(request.headers["Upload-Offset"]) == 3 * CHUNK
    report = tablet.upload_media()
    assert (report.uploaded, report.error, report.failed) == (1, None, [])
    # The server had stored it: one HEAD tells so, nothing is sent twice.
    assert [offset for offset, _ in session.patches()] == [0, CHUNK, 2 * CHUNK, 3 * CHUNK]
    assert len(session.of("POST")) == 1 and len(session.of("HEAD")) == 1
    assert _server_media(live_server, tablet, media_id)["size"] == len(content)


def test_an_upload_the_server_forgot_starts_again(live_server: LiveServer, world: World, live_tablet: Tablet,
                                                 tmp_path: Path) -> None:
    tablet = live_tablet(max_attempts=2)
    tablet.sync()
    (media_id, content), = _capture(tablet, world, tmp_path, 4 * CHUNK)
    tablet.push()
    session = _session(tablet)
    session.cut = lambda request: request.method == "PATCH" and int(request.headers["Upload-Offset"]) >= 2 * CHUNK
    assert tablet.upload_media().error
    (url,) = [u for (u,) in tablet.store._conn.execute("SELECT url FROM tus_urls")]
    requests.delete(url, timeout=10, headers={"Tus-Resumable": "1.0.0",
                                              "Authorization": f"Bearer {tablet.store.get('access_token')}"})
    session.cut = None
    report = tablet.upload_media()
    assert (report.uploaded, report.resumed, report.error) == (1, 0, None)
    assert report.bytes_sent == len(content)
    assert _server_media(live_server, tablet, media_id)["size"] == len(content)


def test_files_the_server_already_holds_are_not_sent(live_server: LiveServer, world: World, live_tablet: Tablet,
                                                    tmp_path: Path) -> None:
    tablet = live_tablet()
    tablet.sync()
    (media_id, _), = _capture(tablet, world, tmp_path, 5000)
    assert tablet.sync().uploads.uploaded == 1
    # The tablet loses track (say, its record of the upload was restored from an old backup).
    tablet.store.update_upload(media_id, "2026-01-05T10:00:00+08:00", status="pending", done_at=None)
    before = len(_session(tablet).sent)
    report = tablet.upload_media()
    assert (report.uploaded, report.already, report.waiting) == (0, 1, 0)
    assert [m for m, *_ in _session(tablet).sent[before:]] == []  # only the JSON look-up, over the transport
    assert tablet.status().uploads[0].status == "done"


def test_a_damaged_file_is_reported_and_not_retried_forever(live_server: LiveServer, world: World,
                                                            live_tablet: Tablet, tmp_path: Path) -> None:
    tablet = live_tablet()
    tablet.sync()
    (media_id, content), (good_id, _) = _capture(tablet, world, tmp_path, 3 * CHUNK, 1000)
    digest = hashlib.sha256(content).hexdigest()
    vault_file = tablet.store.vault_path(digest)
    vault_file.chmod(0o600)
    damaged = bytearray(content)
    damaged[CHUNK + 5] ^= 0xFF  # one flipped bit in the flash
    vault_file.write_bytes(bytes(damaged))

    report = tablet.sync().uploads
    assert report.uploaded == 1 and report.waiting == 0 and report.error is None  # the other file still went up
    (failure,) = report.failed
    assert failure.media_id == media_id and failure.code == "hash-mismatch" and "已损坏" in failure.reason
    statuses = {u.media_id: (u.status, u.error_code) for u in tablet.status().uploads}
    assert statuses == {media_id: ("failed", "hash-mismatch"), good_id: ("done", None)}
    # The damaged bytes are quarantined, never stored as evidence.
    kept = stored_files_with(live_server.app, hashlib.sha256(bytes(damaged)).hexdigest())
    assert kept and all("quarantine" in path.parts for path in kept)

    # Not retried by the next sync…
    session = _session(tablet)
    before = len(session.sent)
    again = tablet.sync().uploads
    assert again.failed == [] and again.uploaded == 0 and session.sent[before:] == []
    # …and the CLI says what happened, with a non-zero exit when asked to retry.
    store = tablet.store.path
    tablet.close()
    out, err = io.StringIO(), io.StringIO()
    assert main(["--store", str(store), "status"], stdout=out, stderr=err) == 0
    assert "✗" in out.getvalue() and "[hash-mismatch]" in out.getvalue()
    out, err = io.StringIO(), io.StringIO()
    code = main(["--store", str(store), "upload", "--retry-failed"], stdout=out, stderr=err,
                client_options={"sleep": lambda s: None, "http_session": RecordingSession()})
    assert code == 1 and "hash-mismatch" in err.getvalue() and "不会自动重试" in err.getvalue()


def test_an_expired_token_is_refreshed_during_an_upload(live_server: LiveServer, world: World, live_tablet: Tablet,
                                                       tmp_path: Path) -> None:
    tablet = live_tablet()
    tablet.sync()
    (media_id, content), = _capture(tablet, world, tmp_path, 3 * CHUNK)
    tablet.push()
    session = _session(tablet)
    refresh_before = tablet.store.get("refresh_token")
    spoiled: list[int] = []

    def spoil(request: requests.PreparedRequest) -> bool:
        # The second chunk leaves with a token the server no longer takes.
        if request.method == "PATCH" and request.headers["Upload-Offset"] == str(CHUNK) and not spoiled:
            spoiled.append(1)
            request.headers["Authorization"] = "Bearer expired.token.value"
        return False

    session.cut = spoil
    report = tablet.upload_media()
    assert (report.uploaded, report.error, report.failed) == (1, None, [])
    assert tablet.store.get("refresh_token") != refresh_before  # refreshed once
    assert _server_media(live_server, tablet, media_id)["size"] == len(content)


def test_tuspys_url_storage_lives_in_the_store(tmp_path: Path) -> None:
    from field_client.store import Store
    from field_client.uploads import SQLiteURLStorage
    store = Store(tmp_path / "field.db")
    storage = SQLiteURLStorage(store.transaction)
    assert storage.get_item("k") is None
    storage.set_item("k", None)  # what tuspy does when it found nothing to resume
    assert storage.get_item("k") is None
    storage.set_item("k", "http://server/api/v1/uploads/1")
    storage.set_item("k", "http://server/api/v1/uploads/2")
    store.close()
    store = Store(tmp_path / "field.db")  # a restart
    storage = SQLiteURLStorage(store.transaction)
    assert storage.get_item("k") == "http://server/api/v1/uploads/2"
    storage.remove_item("k")
    assert storage.get_item("k") is None
    store.close()
