"""The contract's first command on a fresh machine: ``make run`` on an empty var/ directory.

Runs the real Makefile as a subprocess (the existing .venv is reused), waits
for the server to answer, and uses it the way a new operator would.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from server.seed import DEMO_PASSWORD

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT = 90.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _clean_env(port: int) -> dict[str, str]:
    """The caller's environment without anything that would steer the server elsewhere."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("INSPECT_ONCE_", "FLASK_"))
           and k not in ("DATABASE_URL", "MEDIA_ROOT", "SECRET_KEY", "JWT_SIGNING_KEY",
                         "MAKEFLAGS", "MFLAGS", "MAKELEVEL", "VAR", "VENV")}
    env["INSPECT_ONCE_PORT"] = str(port)
    return env


def _request(url: str, body: dict[str, Any] | None = None, timeout: float = 10) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method="POST" if data else "GET",
                                     headers={"Content-Type": "application/json"} if data else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read().decode(errors="replace")


class Server:
    """``make run VAR=…`` in its own process group, output kept in a log file."""

    def __init__(self, var: Path, port: int, log: Path) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.log = log
        with open(log, "wb") as out:
            self.process = subprocess.Popen(["make", "run", f"VAR={var}"], cwd=ROOT, env=_clean_env(port),
                                            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                            start_new_session=True)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_healthy(self) -> dict[str, Any]:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"make run exited with {self.process.returncode}:\n{self.output()}")
            try:
                status, body = _request(self.base + "/healthz", timeout=2)
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.25)
                continue
            assert status == 200, (status, body)
            return body  # type: ignore[no-any-return]
        raise AssertionError(f"no answer at {self.base}/healthz within {START_TIMEOUT:.0f} s:\n{self.output()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=15)
            except ProcessLookupError:
                pass
        # Nothing of ours may outlive the test (gunicorn, make, the shell).
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_make_run_on_a_fresh_var_directory(tmp_path: Path) -> None:
    var = tmp_path / "var"
    port = _free_port()
    server = Server(var, port, tmp_path / "make-run.log")
    try:
        health = server.wait_healthy()
        assert health["status"] == "ok"
        assert health["checks"] == {"database": "ok", "media_store": "ok"}

        output = server.output()
        assert f"http://127.0.0.1:{port}/" in output, output
        assert DEMO_PASSWORD in output, output
        for account in ("admin", "scjg-head", "scjg-supervisor", "scjg-insp1"):
            assert account in output, (account, output)
        assert "seeded:" in output and "200 enterprises" in output, output
        assert "worker started" in output, output  # evidence is verified without a second command
        assert f"http://127.0.0.1:{port}/review/" in output, output

        status, tokens = _request(server.base + "/api/v1/auth/token",
                                  {"username": "scjg-insp1", "password": DEMO_PASSWORD})
        assert status == 200, tokens
        assert tokens["token_type"] == "Bearer" and tokens["access_token"] and tokens["refresh_token"]
        status, wrong = _request(server.base + "/api/v1/auth/token",
                                 {"username": "scjg-insp1", "password": DEMO_PASSWORD + "x"})
        assert status == 401, wrong

        status, document = _request(server.base + "/api/v1/openapi.json")
        assert status == 200
        assert document["openapi"].startswith("3.")
        assert document["info"]["title"] == "Inspect Once"
        assert any(path.endswith("/auth/token") for path in document["paths"]), sorted(document["paths"])

        # Everything lives under the given var/ directory; the secrets are private.
        secrets_file = var / "secrets.env"
        assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
        lines = dict(line.split("=", 1) for line in secrets_file.read_text().splitlines())
        assert set(lines) == {"SECRET_KEY", "JWT_SIGNING_KEY"}
        assert lines["SECRET_KEY"] != lines["JWT_SIGNING_KEY"] and min(map(len, lines.values())) >= 32
        assert (var / "inspect-once.db").is_file() and (var / "media").is_dir()
    finally:
        server.stop()
    assert server.process.returncode is not None

    # A restart keeps the secrets and the data: nothing is generated or seeded again,
    # and the session opened before the restart still refreshes.
    secrets_before = secrets_file.read_bytes()
    again = Server(var, port, tmp_path / "make-run-again.log")
    try:
        again.wait_healthy()
        output = again.output()
        assert "generated" not in output and "nothing added" in output, output
        assert secrets_file.read_bytes() == secrets_before
        status, refreshed = _request(again.base + "/api/v1/auth/refresh", {"refresh_token": tokens["refresh_token"]})
        assert status == 200, refreshed
    finally:
        again.stop()
