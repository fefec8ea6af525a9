"""A verification job whose worker is killed mid-run completes after the worker restarts, once.

The worker runs as operators run it (`flask --app server worker`), in its own process group, and
is killed with SIGKILL while it is analysing a file: no clean-up, no last commit.
"""
from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from server.extensions import db
from server.uploads.models import Media, VerificationStatus
from server.verification.models import VerificationReport
from tests.clock import subprocess_command
from tests.media.conftest import run_ffmpeg
from tests.server.uploads.conftest import create, metadata, push_media, sha256

REPO = Path(__file__).resolve().parents[3]
LEASE_SECONDS = 2


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A minute of 640x360 footage: a few seconds of analysis, time enough to kill the worker mid-run."""
    path = tmp_path_factory.mktemp("long") / "long.mp4"
    run_ffmpeg("-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30", "-f", "lavfi", "-i",
               "sine=frequency=440:sample_rate=16000", "-t", "60", "-c:v", "libx264", "-preset", "ultrafast",
               "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "32k", "-shortest", str(path))
    return path.read_bytes()


class Worker:
    def __init__(self, app: Any) -> None:
        settings = app.config["SETTINGS"]
        env = {k: v for k, v in os.environ.items() if not k.startswith("INSPECT_ONCE_")}
        env.update(PYTHONPATH=str(REPO), DATABASE_URL=app.config["SQLALCHEMY_DATABASE_URI"],
                   MEDIA_ROOT=str(settings.media_root), INSPECT_ONCE_VAR=str(settings.var_dir),
                   SECRET_KEY=secrets.token_urlsafe(32), JWT_SIGNING_KEY=secrets.token_urlsafe(32),
                   INSPECT_ONCE_VERIFICATION_LEASE_SECONDS=str(LEASE_SECONDS))
        self.log = tempfile.TemporaryFile("w+")
        self.process = subprocess.Popen(
            # At the test's instant, not the wall clock's: the worker and the test share the leases' times.
            subprocess_command(sys.executable, "flask", "--app", "server", "worker", "--workers", "1"),
            cwd=REPO, env=env,
            start_new_session=True, stdout=self.log, stderr=subprocess.STDOUT)

    def kill(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.kill()
        self.log.close()


def wait_for(condition: Callable[[], Any], seconds: float, what: str, worker: Worker) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        db.session.rollback()  # see what the worker committed
        value = condition()
        if value:
            return value
        assert worker.process.poll() is None, f"the worker exited:\n{worker.output()}"
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting until {what}; worker output:\n{worker.output()}")


def test_a_job_killed_mid_run_completes_after_restart_once(app, client, auth, world, long_clip: bytes) -> None:
    synced = push_media(client, auth, world, long_clip, content_type="video/mp4", file_name="long.mp4")
    answer = create(client, auth.headers("m-insp"), len(long_clip),
                    metadata(sha256=sha256(long_clip), filename="long.mp4", filetype="video/mp4", media_id=synced.id),
                    data=long_clip, content_type="application/offset+octet-stream")
    assert answer.status_code == 201, answer.get_data(as_text=True)
    media_id = uuid.UUID(synced.id)

    def report() -> VerificationReport | None:
        return db.session.get(VerificationReport, media_id)

    first = Worker(app)
    try:
        wait_for(lambda: report() is not None and report().started_at is not None, 60, "the run started", first)
        first.kill()
    finally:
        first.stop()
    db.session.rollback()
    assert report().finished_at is None, "the run finished before the kill; the clip is too short to test this"
    assert db.session.get(Media, media_id).verification_status == VerificationStatus.PENDING

    time.sleep(LEASE_SECONDS + 0.5)  # the dead worker's lease runs out
    second = Worker(app)
    try:
        done = wait_for(lambda: report() is not None and report().finished_at is not None and report(), 120,
                        "the run finished after the restart", second)
        assert done.status == "verified" and done.attempts == 2
        time.sleep(LEASE_SECONDS + 1)  # nothing runs it again once it is done
        db.session.rollback()
        assert report().attempts == 2
    finally:
        second.stop()
    assert db.session.get(Media, media_id).verification_status == VerificationStatus.VERIFIED
