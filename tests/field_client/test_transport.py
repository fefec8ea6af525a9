"""HttpTransport over a real socket, and the package's promise to need nothing but the stdlib."""
from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from field_client.transport import HttpTransport, TransportError

ROOT = Path(__file__).resolve().parents[2]


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def _send(self, status: int, body: bytes, kind: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Retry-After", "2")
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path.startswith("/slow"):
            threading.Event().wait(1.0)
        if self.path.startswith("/html"):
            self._send(502, b"<html>Bad Gateway</html>", "text/html")
            return
        self._send(200, json.dumps({"path": self.path, "auth": self.headers.get("Authorization")}).encode())

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        problem = {"type": "/problems/validation-failed", "title": "校验失败", "status": 422, "detail": "数据有误",
                   "errors": {"mutations.0.hlc": ["Not an HLC stamp"]}, "echo": body}
        self._send(422, json.dumps(problem, ensure_ascii=False).encode(), "application/problem+json")


class Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False


@pytest.fixture
def server() -> Iterator[str]:
    httpd = Server(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_json_both_ways_and_errors_are_answers_not_exceptions(server: str) -> None:
    transport = HttpTransport(server + "/")
    ok = transport.request("GET", "/api/v1/sync/pull", query={"cursor": "abc", "limit": 5},
                           headers={"Authorization": "Bearer t"})
    assert ok.status == 200 and ok.body == {"path": "/api/v1/sync/pull?cursor=abc&limit=5", "auth": "Bearer t"}
    refused = transport.request("POST", "/api/v1/sync/push", json_body={"device_id": "平板"})
    assert refused.status == 422 and refused.body["echo"] == {"device_id": "平板"}
    code, reason = refused.problem
    # The inspector reads the server's Chinese words; which field was wrong is for the client's code.
    assert code == "validation-failed" and reason == "数据有误" and "Not an HLC" not in reason
    assert refused.errors == {"mutations.0.hlc": ["Not an HLC stamp"]}
    gateway = transport.request("GET", "/html")
    assert gateway.status == 502 and gateway.header("retry-after") == "2"
    assert gateway.problem == ("http-502", "服务器网关错误") and "Bad Gateway" in gateway.body["detail"]


def test_no_answer_is_a_transport_error(server: str) -> None:
    with pytest.raises(TransportError, match="无法连接服务器"):
        HttpTransport("http://127.0.0.1:1").request("GET", "/healthz")
    with pytest.raises(TransportError):
        HttpTransport(server, timeout=0.2).request("GET", "/slow")


def test_only_http_urls() -> None:
    for bad in ("ftp://x", "file:///etc/passwd", "inspect-once.test"):
        with pytest.raises(ValueError):
            HttpTransport(bad)


def test_the_client_imports_neither_flask_nor_sqlalchemy_nor_the_server() -> None:
    code = ("import sys, field_client.cli, field_client.engine, field_client.store, field_client.hlc;"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in {'flask', 'sqlalchemy', 'server', 'werkzeug',"
            " 'marshmallow'}); print(bad); sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_fieldsync_console_script_runs() -> None:
    result = subprocess.run([sys.executable, "-m", "field_client.cli", "--help"], cwd=ROOT, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0 and "fieldsync" in result.stdout and "login" in result.stdout
