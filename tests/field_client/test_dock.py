"""``fieldsync dock``: a collection workstation uploads a docked bodycam's segments, against the live app."""
from __future__ import annotations

import hashlib
import io
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import requests

from field_client.cli import main
from field_client.dock import STATE_NAME, parse_segment, parse_utc_offset
from field_client.transport import HttpTransport, Response
from tests.conftest import World, new_device
from tests.field_client.conftest import LiveServer, RecordingSession, stored_files_with

CHUNK_MIB = "0.0625"  # 64 KiB chunks, so small files still take several PATCHes
CHUNK = 64 * 1024
CAMERA = "SCJG-BC01"


class Dock:
    """Runs ``fieldsync dock`` in-process against the live server; remembers the last output."""

    def __init__(self, live: LiveServer, folder: Path, secret_file: Path, device_id: str, log: Path) -> None:
        self.live, self.folder, self.secret_file, self.device_id, self.log = live, folder, secret_file, device_id, log
        self.out = self.err = ""
        self.session = RecordingSession()
        self.transport: Any = None
        self.sessions: list[RecordingSession] = []

    def __call__(self, *extra: str, session: RecordingSession | None = None, **options: Any) -> int:
        self.session = session or RecordingSession()
        self.sessions.append(self.session)
        out, err = io.StringIO(), io.StringIO()
        argv = ["dock", str(self.folder), "--device", CAMERA, "--server", self.live.url, "--device-id", self.device_id,
                "--secret-file", str(self.secret_file), "--log", str(self.log), "--chunk-mib", CHUNK_MIB, *extra]
        options.setdefault("sleep", lambda seconds: None)
        code = main(argv, transport=self.transport, stdout=out, stderr=err,
                    dock_options={"session": self.session, **options})
        self.out, self.err = out.getvalue(), err.getvalue()
        return code

    def uploads(self) -> list[tuple[str, int]]:
        """(file name, bytes) of each creation the last run sent."""
        import base64
        created = []
        for _, headers, _ in self.session.of("POST"):
            meta = dict(p.split(" ", 1) for p in headers["Upload-Metadata"].split(","))
            created.append((base64.b64decode(meta["filename"]).decode(), int(headers["Upload-Length"])))
        return created

    def close(self) -> None:
        for session in self.sessions:
            session.close()


@pytest.fixture
def dock(live_server: LiveServer, world: World, tmp_path: Path) -> Any:
    created = new_device("SCJG-DOCK1", "dock", world.market)
    secret_file = tmp_path / "dock.secret"
    secret_file.write_text(created.secret + "\n")
    secret_file.chmod(0o600)
    folder = tmp_path / "bodycam"
    folder.mkdir()
    runner = Dock(live_server, folder, secret_file, "SCJG-DOCK1", tmp_path / "logs" / "dock.log")
    runner.secret = created.secret  # type: ignore[attr-defined]
    yield runner
    runner.close()


def segment(folder: Path, minute: int, size: int, *, device: str = CAMERA, ext: str = "MP4",
            sub: str | None = None) -> tuple[Path, bytes]:
    content = os.urandom(size)
    where = folder / sub if sub else folder
    where.mkdir(parents=True, exist_ok=True)
    path = where / f"{device}_202601051{minute // 60}{minute % 60:02d}00_{minute:04d}.{ext}"
    path.write_bytes(content)
    return path, content


def server_media(live: LiveServer, dock: Dock, sha256: str) -> list[dict[str, Any]]:
    token = requests.post(f"{live.url}/api/v1/auth/device-token", timeout=10,
                          json={"device_id": dock.device_id, "device_secret": dock.secret}).json()  # type: ignore[attr-defined]
    answer = requests.get(f"{live.url}/api/v1/media", params={"sha256": sha256}, timeout=10,
                          headers={"Authorization": f"Bearer {token['access_token']}"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    items = body if isinstance(body, list) else next(v for v in body.values() if isinstance(v, list))
    return [m for m in items if m["sha256"] == sha256]


def state_rows(folder: Path) -> list[dict[str, Any]]:
    conn = sqlite3.connect(folder / STATE_NAME)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute("SELECT * FROM files ORDER BY id")]
    finally:
        conn.close()


# ---- names ------------------------------------------------------------------------------

@pytest.mark.parametrize("name, expected", [
    ("SCJG-BC01_20260105100000_0001.MP4", ("SCJG-BC01", "2026-01-05T10:00:00+08:00")),
    ("SCJG-BC01_20260105235959_0042.mp4", ("SCJG-BC01", "2026-01-05T23:59:59+08:00")),
    ("cam7_20251231000000_9999.Mp4", ("cam7", "2025-12-31T00:00:00+08:00")),
    ("SCJG-BC01_20260230100000_0001.MP4", None),  # no 30 February
    ("SCJG-BC01_2026010510000_0001.MP4", None),
    ("SCJG-BC01_20260105100000_001.MP4", None),
    ("SCJG-BC01_20260105100000_0001.MOV", None),
    ("SCJG-BC01_20260105100000_0001.MP4.part", None),
    ("../x_20260105100000_0001.MP4", None),
    ("notes.txt", None),
])
def test_segment_names(name: str, expected: tuple[str, str] | None) -> None:
    parsed = parse_segment(name, parse_utc_offset("+08:00"))
    assert (None if parsed is None else (parsed.device_id, parsed.capture_start)) == expected


def test_utc_offsets() -> None:
    assert parse_segment("A_20260105100000_0001.mp4", parse_utc_offset("-05:30")).capture_start == \
        "2026-01-05T10:00:00-05:30"  # type: ignore[union-attr]
    assert parse_utc_offset("+0800").utcoffset(None).total_seconds() == 8 * 3600  # type: ignore[union-attr]
    for bad in ("8", "+8:00", "+15:00", "UTC+8", "+08:60"):
        with pytest.raises(ValueError):
            parse_utc_offset(bad)


# ---- against the server -------------------------------------------------------------------

def test_a_folder_is_uploaded_once_and_new_files_are_picked_up(dock: Dock, live_server: LiveServer) -> None:
    folder = dock.folder
    first, first_bytes = segment(folder, 0, 3 * CHUNK + 100)
    second, second_bytes = segment(folder, 1, 1000, ext="mp4")
    third, third_bytes = segment(folder, 2, 5, sub="DCIM/100MEDIA")
    (folder / "notes.txt").write_text("not footage")
    (folder / "SCJG-BC01_2026_bad.MP4").write_bytes(b"x")
    (folder / "STHJ-BC09_20260105100000_0001.MP4").write_bytes(b"another camera")
    (folder / ".hidden_20260105100000_0001.MP4").write_bytes(b"hidden")

    assert dock("--once") == 0, dock.err
    assert sorted(dock.uploads()) == sorted([(first.name, len(first_bytes)), (second.name, len(second_bytes)),
                                             (third.name, len(third_bytes))])
    assert "上传 3 个" in dock.out and "确认 3 个" in dock.out and "忽略非录像文件 3 个" in dock.out
    for path, content in ((first, first_bytes), (second, second_bytes), (third, third_bytes)):
        digest = hashlib.sha256(content).hexdigest()
        (media,) = server_media(live_server, dock, digest)
        assert media["size"] == len(content) and media["device_id"] == CAMERA and media["file_name"] == path.name
        start = parse_segment(path.name, parse_utc_offset("+08:00")).capture_start  # type: ignore[union-attr]
        assert datetime.fromisoformat(media["capture_start"]) == datetime.fromisoformat(start)
        assert stored_files_with(live_server.app, digest)
        assert path.exists()  # not deleted without --delete-verified
    assert {r["status"] for r in state_rows(folder)} == {"confirmed"}
    log = dock.log.read_text()
    for name in ("notes.txt", "SCJG-BC01_2026_bad.MP4", "STHJ-BC09_20260105100000_0001.MP4"):
        assert f"ignored {name}" in log
    assert "hidden" not in log and "device token obtained for SCJG-DOCK1" in log

    # A second pass sends nothing, and asks the server nothing either.
    assert dock("--once") == 0
    assert dock.session.sent == [] and "上传 0 个" in dock.out

    # A new segment is picked up; the old ones are not hashed again.
    fourth, fourth_bytes = segment(folder, 3, 2 * CHUNK)
    assert dock("--once") == 0
    assert dock.uploads() == [(fourth.name, len(fourth_bytes))]
    assert len(state_rows(folder)) == 4
    assert dock.log.read_text().count(f"hashed {first.name}") == 1


def test_a_dock_that_lost_its_state_asks_before_uploading(dock: Dock) -> None:
    segment(dock.folder, 0, 2 * CHUNK)
    assert dock("--once") == 0 and len(dock.uploads()) == 1
    for suffix in ("", "-wal", "-shm"):
        (dock.folder / (STATE_NAME + suffix)).unlink(missing_ok=True)
    assert dock("--once") == 0
    assert dock.uploads() == [] and "服务器已有 1 个" in dock.out
    assert dock.session.of("PATCH") == []


def test_an_interrupted_upload_resumes_in_the_next_pass(dock: Dock, live_server: LiveServer) -> None:
    path, content = segment(dock.folder, 0, 8 * CHUNK + 1)
    cut = RecordingSession()
    cut.cut = lambda request: request.method == "PATCH" and int(request.headers["Upload-Offset"]) >= 5 * CHUNK
    assert dock("--once", session=cut, max_attempts=2) == 1
    assert "本轮中止" in dock.err and "下次继续" in dock.err
    (row,) = state_rows(dock.folder)
    assert row["status"] == "uploading" and row["upload_offset"] == 5 * CHUNK

    assert dock("--once") == 0
    assert dock.session.of("POST") == [] and dock.session.patches()[0][0] == 5 * CHUNK
    assert sum(size for _, size in dock.session.patches()) == len(content) - 5 * CHUNK
    assert "其中续传 1 个" in dock.out and f"resuming {path.name} at byte {5 * CHUNK}" in dock.log.read_text()
    assert server_media(live_server, dock, hashlib.sha256(content).hexdigest())[0]["size"] == len(content)


def test_a_dock_killed_midway_resumes_after_restart(dock: Dock, live_server: LiveServer, tmp_path: Path) -> None:
    """Power loss: the process dies at an arbitrary instant mid-upload (SIGKILL), then starts again."""
    size = 96 * CHUNK
    path, content = segment(dock.folder, 0, size)
    live_server.slow_patch = 0.03  # about 3 s in all, so the kill lands midway
    root = Path(__file__).resolve().parents[2]
    process = subprocess.Popen(
        [sys.executable, "-m", "field_client.cli", "dock", str(dock.folder), "--device", CAMERA,
         "--server", live_server.url, "--device-id", dock.device_id, "--secret-file", str(dock.secret_file),
         "--log", str(dock.log), "--chunk-mib", CHUNK_MIB, "--once"],
        cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        offset = 0
        while time.monotonic() < deadline and process.poll() is None:
            try:
                rows = state_rows(dock.folder) if (dock.folder / STATE_NAME).exists() else []
            except sqlite3.OperationalError:  # the state database is being created
                rows = []
            offset = rows[0]["upload_offset"] if rows else 0
            if offset >= 10 * CHUNK:
                break
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(30)
    assert 10 * CHUNK <= offset < size, offset
    live_server.slow_patch = 0.0

    assert dock("--once") == 0, dock.err
    assert dock.session.of("POST") == []
    first_offset = dock.session.patches()[0][0]
    assert first_offset >= offset  # from the server's durable offset, not from 0
    assert sum(n for _, n in dock.session.patches()) == size - first_offset
    (media,) = server_media(live_server, dock, hashlib.sha256(content).hexdigest())
    assert media["size"] == size
    assert [r["status"] for r in state_rows(dock.folder)] == ["confirmed"]


def test_a_file_changed_after_hashing_is_hashed_again(dock: Dock, live_server: LiveServer) -> None:
    path, old = segment(dock.folder, 0, 4 * CHUNK)
    new = os.urandom(4 * CHUNK)
    session = RecordingSession()

    def rewrite_on_second_chunk(request: requests.PreparedRequest) -> bool:
        if request.method == "PATCH" and request.headers["Upload-Offset"] == str(CHUNK):
            path.write_bytes(new)  # the camera (or someone) rewrote the segment while it was going up
            stat = path.stat()
            os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2_000_000_000))
        return False

    session.cut = rewrite_on_second_chunk
    assert dock("--once", session=session) == 0, dock.err
    assert "在上传过程中被修改" in dock.err
    assert server_media(live_server, dock, hashlib.sha256(new).hexdigest())[0]["size"] == len(new)
    assert server_media(live_server, dock, hashlib.sha256(old).hexdigest()) == []
    assert [r["status"] for r in state_rows(dock.folder)] == ["changed", "confirmed"]
    assert "changed while it was uploaded" in dock.log.read_text()

    # Changed between passes, after it was uploaded: the new content goes up too, with a warning.
    newer = os.urandom(CHUNK)
    path.write_bytes(newer)
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 4_000_000_000))
    assert dock("--once") == 0
    assert "在上传之后被修改过" in dock.err and len(dock.uploads()) == 1
    assert [r["status"] for r in state_rows(dock.folder)] == ["changed", "changed", "confirmed"]


def test_content_changed_without_a_trace_fails_and_is_not_retried(dock: Dock) -> None:
    path, content = segment(dock.folder, 0, 3 * CHUNK)
    session = RecordingSession()

    def tamper(request: requests.PreparedRequest) -> bool:
        if request.method == "PATCH" and request.headers["Upload-Offset"] == str(CHUNK):
            stat = path.stat()
            with path.open("r+b") as handle:  # same size, and the modification time put back
                handle.seek(2 * CHUNK)
                handle.write(b"\0" * 16)
            os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        return False

    session.cut = tamper
    assert dock("--once", session=session) == 1
    assert "content-changed" in dock.err and "失败 1 个" in dock.out
    (row,) = state_rows(dock.folder)
    assert row["status"] == "failed" and row["error_code"] == "content-changed"
    assert dock("--once") == 1  # still needs a person; nothing is sent
    assert dock.session.sent == [] and "此前失败未重试 1 个" in dock.out
    assert path.exists()
    # The camera's file is copied again (a new version): that one goes up, and all is well.
    path.write_bytes(content)
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 3_000_000_000))
    assert dock("--once") == 0, dock.err
    assert len(dock.uploads()) == 1 and [r["status"] for r in state_rows(dock.folder)] == ["changed", "confirmed"]


def test_a_file_that_vanishes_before_upload_is_a_failure(dock: Dock) -> None:
    path, _ = segment(dock.folder, 0, 2 * CHUNK)
    offline = RecordingSession()
    offline.cut = lambda request: True
    dock.transport = HttpTransport("http://127.0.0.1:9")  # nothing listens there
    assert dock("--once", session=offline, max_attempts=1) == 1
    assert [r["status"] for r in state_rows(dock.folder)] == ["hashed"]
    dock.transport = None
    path.unlink()
    assert dock("--once") == 1 and "在上传前消失" in dock.err
    assert dock("--once") == 1 and "此前失败未重试 1 个" in dock.out


def test_delete_verified_keeps_what_is_not_verified(dock: Dock, live_server: LiveServer) -> None:
    files = [segment(dock.folder, minute, CHUNK + minute) for minute in range(3)]
    digests = [hashlib.sha256(content).hexdigest() for _, content in files]
    assert dock("--once", "--delete-verified") == 0
    assert all(path.exists() for path, _ in files)  # just uploaded: verification is not done yet
    assert "删除 0 个" in dock.out
    assert {r["verification"] for r in state_rows(dock.folder)} <= {"pending", "failed", "needs_review"}

    class Verdicts(HttpTransport):
        """The server's answers, with the verification verdicts this test wants."""

        verdicts = {digests[0]: "verified", digests[1]: "needs_review", digests[2]: "pending"}

        def request(self, method: str, path: str, *, query: Mapping[str, Any] | None = None,
                    **kwargs: Any) -> Response:
            answer = super().request(method, path, query=query, **kwargs)
            sha = (query or {}).get("sha256")
            if path == "/api/v1/media" and sha in self.verdicts and answer.status == 200:
                body = answer.body
                items = body if isinstance(body, list) else next(v for v in body.values() if isinstance(v, list))
                for item in items:
                    item["verification"] = {"status": self.verdicts[sha], "reasons": []}
            return answer

    dock.transport = Verdicts(live_server.url)
    assert dock("--once", "--delete-verified") == 0
    assert [path.exists() for path, _ in files] == [False, True, True]
    assert "删除 1 个" in dock.out and "保留 2 个" in dock.out
    statuses = {r["sha256"]: (r["status"], r["verification"]) for r in state_rows(dock.folder)}
    assert statuses == {digests[0]: ("deleted", "verified"), digests[1]: ("confirmed", "needs_review"),
                        digests[2]: ("confirmed", "pending")}
    assert f"deleted {files[0][0].name}" in dock.log.read_text()
    assert dock.uploads() == []

    # A verified file whose local copy differs from what was uploaded is not deleted.
    Verdicts.verdicts[digests[1]] = "verified"
    path = files[1][0]
    stat = path.stat()
    with path.open("r+b") as handle:
        handle.write(b"\0")
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert dock("--once", "--delete-verified") == 0
    assert path.exists() and "未删除" in dock.err


def test_the_log_holds_no_secret_and_tokens_are_renewed(dock: Dock, live_server: LiveServer) -> None:
    segment(dock.folder, 0, 2 * CHUNK)
    now = [time.time()]

    class Counting(HttpTransport):
        token_requests = 0
        spoil_next_lookup = False

        def request(self, method: str, path: str, **kwargs: Any) -> Response:
            headers = dict(kwargs.pop("headers", None) or {})
            if path.endswith("/device-token"):
                Counting.token_requests += 1
            if path == "/api/v1/media" and Counting.spoil_next_lookup:
                Counting.spoil_next_lookup = False
                headers["Authorization"] = "Bearer no-longer-valid"
            return super().request(method, path, headers=headers, **kwargs)

    dock.transport = Counting(live_server.url)
    session = RecordingSession()
    spoiled: list[int] = []

    def spoil_a_chunk(request: requests.PreparedRequest) -> bool:
        if request.method == "PATCH" and request.headers["Upload-Offset"] == str(CHUNK) and not spoiled:
            spoiled.append(1)
            request.headers["Authorization"] = "Bearer expired"
        return False

    session.cut = spoil_a_chunk
    assert dock("--once", session=session, clock=lambda: now[0]) == 0, dock.err
    assert Counting.token_requests == 2  # the first, and a new one after the refused chunk
    tokens = {h["Authorization"] for _, _, h, _ in session.sent} - {"Bearer expired"}
    assert len(tokens) == 2

    # The token runs out between passes: a new one before anything is asked.
    segment(dock.folder, 1, 100)
    now[0] += 7 * 24 * 3600
    Counting.spoil_next_lookup = True  # and one refused look-up: renewed once more
    assert dock("--once", clock=lambda: now[0]) == 0, dock.err
    assert Counting.token_requests == 4

    log = dock.log.read_text()
    assert dock.secret not in log  # type: ignore[attr-defined]
    for token in tokens:
        assert token.split()[1] not in log
    assert "Bearer" not in log and "device_secret" not in log


def test_exit_codes_and_messages(dock: Dock, live_server: LiveServer, tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    segment(dock.folder, 0, 100)
    # Wrong secret: refused, nothing uploaded, a message for people, exit 1.
    wrong = tmp_path / "wrong.secret"
    wrong.write_text("not-the-secret")
    wrong.chmod(0o600)
    dock.secret_file, right = wrong, dock.secret_file
    assert dock("--once") == 1
    assert "凭据被服务器拒绝" in dock.err and dock.session.of("POST") == []
    assert "not-the-secret" not in dock.log.read_text()
    dock.secret_file = right

    # Usage errors exit 2.
    out, err = io.StringIO(), io.StringIO()
    monkeypatch.delenv("FIELDSYNC_SERVER", raising=False)
    assert main(["dock", str(dock.folder), "--device-id", "X", "--secret-file", str(right)], stdout=out,
                stderr=err) == 2 and "FIELDSYNC_SERVER" in err.getvalue()
    assert dock("--utc-offset", "8") == 2 and "+08:00" in dock.err
    assert dock("--once", "--watch", "5") == 2

    # A folder that is not there: exit 1.
    missing = Dock(live_server, tmp_path / "nowhere", right, "SCJG-DOCK1", tmp_path / "l.log")
    assert missing("--once") == 1 and "找不到目录" in missing.err

    # Credentials from the environment; a server that cannot be reached: exit 1, the file waits.
    monkeypatch.setenv("FIELDSYNC_SERVER", "http://127.0.0.1:9")
    monkeypatch.setenv("FIELDSYNC_DEVICE_ID", "SCJG-DOCK1")
    monkeypatch.setenv("FIELDSYNC_SECRET_FILE", str(right))
    out, err = io.StringIO(), io.StringIO()
    assert main(["dock", str(dock.folder), "--once"], stdout=out, stderr=err,
                dock_options={"sleep": lambda s: None, "max_attempts": 1}) == 1
    assert "服务器暂时无法访问" in err.getvalue()
    assert [r["status"] for r in state_rows(dock.folder)] == ["hashed"]

    # Then all is well.
    assert dock("--once") == 0 and "确认 1 个" in dock.out


def test_watch_mode_keeps_scanning_until_interrupted(dock: Dock) -> None:
    segment(dock.folder, 0, 100)
    pauses: list[float] = []

    def sleep(seconds: float) -> None:
        pauses.append(seconds)
        if len(pauses) == 1:
            segment(dock.folder, 1, 200)  # docked while the dock waited
        else:
            raise KeyboardInterrupt

    assert dock("--watch", "30", sleep=sleep) == 0
    assert pauses == [30.0, 30.0] and len(dock.uploads()) == 2
    assert dock.out.count("发现录像分段") == 2 and "已中断" in dock.err


def test_two_docks_on_one_folder_do_not_run_at_once(dock: Dock, live_server: LiveServer) -> None:
    from field_client.dock import Dock as Engine
    from field_client.dock import DockConfig, DockError
    config = DockConfig(folder=dock.folder, server_url=live_server.url, device_id="SCJG-DOCK1", secret="x")
    with Engine(config):
        with pytest.raises(DockError, match="另一个"):
            Engine(config)
