"""Tablets against the real server: a transport that goes through the Flask test client.

Uploads speak tus through ``requests`` (tuspy), so they need HTTP: tablets on a
``FlaskTransport`` get a ``requests`` session whose adapter calls the same app
in-process (``wsgi_session``), and ``live_server`` serves the app on
127.0.0.1 for tests that want real sockets (and subprocesses).
"""
from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from requests.structures import CaseInsensitiveDict
from werkzeug.serving import make_server

from field_client.engine import FieldClient
from field_client.transport import Response, TransportError
from tests.conftest import PASSWORD, TABLETS

SERVER = "http://inspect-once.test"


def stored_files_with(app: Flask, sha256: str) -> list[Path]:
    """Files under MEDIA_ROOT whose content has this SHA-256 (wherever the server keeps them)."""
    root = app.config["SETTINGS"].media_root
    found = []
    for folder, _, names in os.walk(root):
        for name in names:
            path = Path(folder) / name
            digest = hashlib.sha256()
            with path.open("rb") as handle:
                while block := handle.read(1 << 20):
                    digest.update(block)
            if digest.hexdigest() == sha256:
                found.append(path)
    return found


class WSGIAdapter(requests.adapters.BaseAdapter):
    """A ``requests`` adapter that hands each request to a Flask app in-process."""

    def __init__(self, app: Flask) -> None:
        super().__init__()
        self.app = app

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        parts = urlsplit(request.url or "")
        body = request.body.encode() if isinstance(request.body, str) else (request.body or b"")
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in ("content-length", "host")]
        answer = self.app.test_client().open(parts.path, method=request.method, query_string=parts.query,
                                             headers=headers, data=body)
        response = requests.Response()
        response.status_code = answer.status_code
        response.headers = CaseInsensitiveDict(dict(answer.headers))
        response._content = answer.get_data()
        response.url = request.url or ""
        response.request = request
        response.reason = answer.status.partition(" ")[2]
        response.encoding = requests.utils.get_encoding_from_headers(response.headers)
        return response

    def close(self) -> None:
        pass


def wsgi_session(app: Flask, base: str = SERVER) -> requests.Session:
    session = RecordingSession()
    session.mount(base, WSGIAdapter(app))
    return session


class RecordingSession(requests.Session):
    """Records every request it sends.

    ``cut(request)`` returning True drops that request before it leaves (the
    server never sees it); ``lose(request)`` returning True sends it and then
    drops the answer (the server did the work, the client never hears).
    """

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[tuple[str, str, CaseInsensitiveDict[str], int]] = []
        self.cut: Callable[[requests.PreparedRequest], bool] | None = None
        self.lose: Callable[[requests.PreparedRequest], bool] | None = None

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        body = request.body or b""
        self.sent.append((request.method or "", request.url or "", CaseInsensitiveDict(request.headers), len(body)))
        if self.cut is not None and self.cut(request):
            raise requests.ConnectionError("connection cut (test)")
        answer = super().send(request, **kwargs)
        if self.lose is not None and self.lose(request):
            answer.close()
            raise requests.ConnectionError("answer lost (test)")
        return answer

    def of(self, method: str) -> list[tuple[str, CaseInsensitiveDict[str], int]]:
        return [(url, headers, size) for m, url, headers, size in self.sent if m == method]

    def patches(self) -> list[tuple[int, int]]:
        """(Upload-Offset, body bytes) of every PATCH sent."""
        return [(int(headers["Upload-Offset"]), size) for _, headers, size in self.of("PATCH")]


@dataclass
class LiveServer:
    url: str
    app: Flask
    slow_patch: float = 0.0  # seconds each PATCH waits before the app sees it (to catch uploads midway)


@pytest.fixture
def live_server(app: Flask) -> Iterator[LiveServer]:
    """The app on 127.0.0.1:<free port>, threaded, for requests-based clients and subprocesses."""
    live = LiveServer("", app)

    def wsgi(environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("REQUEST_METHOD") == "PATCH" and live.slow_patch:
            threading.Event().wait(live.slow_patch)
        return app(environ, start_response)

    server = make_server("127.0.0.1", 0, wsgi, threaded=True)
    live.url = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield live
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


class FlaskTransport:
    """Calls the app in-process; each request runs in its own app context, as in production.

    ``requests`` records what went out; ``fail_next`` queues faults:
    ``"offline"`` (nothing reaches the server), ``"lost"`` (the server
    processes the request but the answer never arrives) or an int status to
    answer instead of calling the server.
    """

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.client: FlaskClient = app.test_client()
        self.requests: list[tuple[str, str, Any]] = []
        self.faults: list[Any] = []
        self.offline = False

    def fail_next(self, *faults: Any) -> None:
        self.faults.extend(faults)

    def request(self, method: str, path: str, *, json_body: Any = None, query: Mapping[str, Any] | None = None,
                headers: Mapping[str, str] | None = None) -> Response:
        self.requests.append((method, path, json_body))
        fault = self.faults.pop(0) if self.faults else None
        if self.offline or fault == "offline":
            raise TransportError("网络不可用（测试）")
        if isinstance(fault, int):
            return Response(fault, {"Content-Type": "application/problem+json"},
                            {"type": "/problems/test", "title": "t", "status": fault, "detail": f"注入的 {fault}"})
        answer = self.client.open(path, method=method, json=json_body, query_string=dict(query or {}),
                                  headers=dict(headers or {}))
        body = answer.get_json(silent=True)
        if fault == "lost":
            raise TransportError("应答丢失（测试）")
        return Response(answer.status_code, dict(answer.headers), body)

    def paths(self, method: str | None = None) -> list[str]:
        return [p for m, p, _ in self.requests if method is None or m == method]


@pytest.fixture
def transport(app: Flask) -> FlaskTransport:
    return FlaskTransport(app)


@pytest.fixture
def tablet(app: Flask, tmp_path: Path) -> Iterator[Callable[..., FieldClient]]:
    """Factory: ``tablet("m-insp", "SCJG-TAB1")`` → a logged-in FieldClient with its own store.

    A tablet the test made (``tests.conftest.TABLETS``) is the store's device credential, as ``fieldsync enrol
    --device ID --secret-file`` keeps it; any other id leaves the store unenrolled (its log-in is refused).
    """
    made: list[FieldClient] = []

    def make(username: str, device: str, *, login: bool = True, name: str | None = None,
             transport: FlaskTransport | None = None, **options: Any) -> FieldClient:
        options.setdefault("sleep", lambda seconds: None)
        options.setdefault("http_session", wsgi_session(app))
        client = FieldClient(tmp_path / (name or device) / "field.db", transport or FlaskTransport(app), **options)
        made.append(client)
        if device in TABLETS:  # provisioned as create-device does; tests of enrolment spend real codes
            client.remember_device(SERVER, device, TABLETS[device][1])
        if login:
            client.login(SERVER, username, PASSWORD, device)
        return client

    yield make
    for client in made:
        client.close()


# ---- a scripted stand-in server, for tests that need no database ------------------

USER_ID = "00000000-0000-4000-8000-000000000001"
MY_DEPARTMENT = "00000000-0000-4000-8000-0000000000d1"
OTHER_DEPARTMENT = "00000000-0000-4000-8000-0000000000d2"
TASK_ID = "00000000-0000-4000-8000-0000000000a1"
MY_ITEM = "00000000-0000-4000-8000-0000000000c1"
OTHER_ITEM = "00000000-0000-4000-8000-0000000000c2"
ENTERPRISE_ID = "00000000-0000-4000-8000-0000000000e1"


def canned_changes() -> list[dict[str, Any]]:
    """What a first pull brings a market inspector: one task, two check items, the enterprise."""
    enterprise = {"id": ENTERPRISE_ID, "name": "祁阳市浯溪食品有限公司", "credit_code": "91350100M000100Y43",
                  "address": "祁阳市浯溪街道建设路1号"}
    return [
        {"entity": "check_item", "entity_id": MY_ITEM, "op": "upsert", "version": 1, "updated_at": None,
         "fields": {"department_id": MY_DEPARTMENT, "code": "SCJG-01", "title": "营业执照公示",
                    "legal_basis": "《市场主体登记管理条例》第三十六条", "method": None}},
        {"entity": "check_item", "entity_id": OTHER_ITEM, "op": "upsert", "version": 2, "updated_at": None,
         "fields": {"department_id": OTHER_DEPARTMENT, "code": "STHJ-01", "title": "排污许可",
                    "legal_basis": "《排污许可管理条例》第十七条", "method": None}},
        {"entity": "enterprise", "entity_id": ENTERPRISE_ID, "op": "upsert", "version": 3, "updated_at": None,
         "fields": {k: v for k, v in enterprise.items() if k != "id"}},
        {"entity": "task", "entity_id": TASK_ID, "op": "upsert", "version": 4, "updated_at": None,
         "fields": {"title": "联合检查：浯溪食品", "status": "dispatched", "department_id": MY_DEPARTMENT,
                    "window_start": "2026-01-05T01:00:00+00:00", "window_end": "2026-01-05T09:00:00+00:00",
                    "enterprise": enterprise, "check_item_ids": [MY_ITEM, OTHER_ITEM],
                    "team": [{"user_id": USER_ID, "username": "m-insp", "full_name": "张三",
                              "department_id": MY_DEPARTMENT, "certificate_number": "CERT-M-001",
                              "certificate_status": "valid"}]}},
    ]


class FakeServer:
    """Answers the client's few endpoints from memory; ``script`` queues canned answers or exceptions.

    Push applies every mutation, keeping per-entity versions and the mutation
    log, so duplicates and versions behave as on the real server.
    """

    def __init__(self) -> None:
        self.script: list[Any] = []
        self.calls: list[tuple[str, str, Any, dict[str, str]]] = []
        self.access, self.refresh = "access-1", "refresh-1"
        self.generation = 1
        self.versions: dict[str, int] = {}
        self.log: dict[str, int] = {}
        self.pushed: list[dict[str, Any]] = []
        self.changes = canned_changes()
        self.page_size: int | None = None

    def request(self, method: str, path: str, *, json_body: Any = None, query: Mapping[str, Any] | None = None,
                headers: Mapping[str, str] | None = None) -> Response:
        self.calls.append((method, path, json_body, dict(headers or {})))
        if self.script:
            item = self.script.pop(0)
            if isinstance(item, BaseException):
                raise item
            if isinstance(item, Response):
                return item
            if callable(item):
                return item()  # type: ignore[no-any-return]
        auth = (headers or {}).get("Authorization")
        if path == "/api/v1/auth/token":
            return Response(200, {}, {"access_token": self.access, "refresh_token": self.refresh,
                                      "token_type": "Bearer", "expires_in": 900})
        if path == "/api/v1/auth/refresh":
            if json_body.get("refresh_token") != self.refresh:
                return Response(401, {}, {"type": "/problems/refresh-reused", "status": 401, "title": "t",
                                          "detail": "刷新令牌已被使用过"})
            self.generation += 1
            self.access, self.refresh = f"access-{self.generation}", f"refresh-{self.generation}"
            return Response(200, {}, {"access_token": self.access, "refresh_token": self.refresh,
                                      "token_type": "Bearer", "expires_in": 900})
        if auth != f"Bearer {self.access}":
            return Response(401, {}, {"type": "/problems/token-expired", "status": 401, "title": "t",
                                      "detail": "访问令牌已过期"})
        if path == "/api/v1/auth/me":
            return Response(200, {}, {"kind": "user", "id": USER_ID, "role": "inspector",
                                      "department_id": MY_DEPARTMENT})
        if path == "/api/v1/sync/pull":
            start = int((query or {}).get("cursor") or 0)
            size = self.page_size or int((query or {}).get("limit") or 200)
            page = self.changes[start:start + size]
            return Response(200, {}, {"changes": page, "cursor": str(start + len(page)),
                                      "has_more": start + len(page) < len(self.changes)})
        if path == "/api/v1/sync/push":
            results = []
            for mutation in json_body["mutations"]:
                self.pushed.append(mutation)
                if mutation["id"] in self.log:
                    results.append({"id": mutation["id"], "status": "duplicate", "version": self.log[mutation["id"]]})
                    continue
                version = self.versions.get(mutation["entity_id"], 0) + 1
                self.versions[mutation["entity_id"]] = self.log[mutation["id"]] = version
                results.append({"id": mutation["id"], "status": "applied", "version": version})
            return Response(200, {}, {"results": results})
        return Response(404, {}, {"type": "/problems/not-found", "status": 404, "title": "t", "detail": "没有"})

    def count(self, path: str) -> int:
        return sum(1 for _, p, _, _ in self.calls if p == path)


@pytest.fixture
def fake_server() -> FakeServer:
    return FakeServer()


@pytest.fixture
def offline_tablet(tmp_path: Path, fake_server: FakeServer) -> Iterator[Callable[..., FieldClient]]:
    """Factory: a client that logged in and pulled once (from the fake server), for offline work."""
    made: list[FieldClient] = []

    def make(path: Path | None = None, **options: Any) -> FieldClient:
        options.setdefault("sleep", lambda seconds: None)
        client = FieldClient(path or tmp_path / "tablet" / "field.db", fake_server, **options)
        made.append(client)
        client.remember_device(SERVER, "SCJG-TAB1", "fake-tablet-secret")
        client.login(SERVER, "m-insp", PASSWORD, "SCJG-TAB1")
        client.pull()
        return client

    yield make
    for client in made:
        client.close()
