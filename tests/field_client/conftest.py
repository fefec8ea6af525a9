"""Tablets against the real server: a transport that goes through the Flask test client."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import pytest
from flask import Flask
from flask.testing import FlaskClient

from field_client.engine import FieldClient
from field_client.transport import Response, TransportError
from tests.conftest import PASSWORD

SERVER = "http://inspect-once.test"


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
    """Factory: ``tablet("m-insp", "SCJG-TAB1")`` → a logged-in FieldClient with its own store."""
    made: list[FieldClient] = []

    def make(username: str, device: str, *, login: bool = True, name: str | None = None,
             transport: FlaskTransport | None = None, **options: Any) -> FieldClient:
        options.setdefault("sleep", lambda seconds: None)
        client = FieldClient(tmp_path / (name or device) / "field.db", transport or FlaskTransport(app), **options)
        made.append(client)
        if login:
            client.login(SERVER, username, PASSWORD, device)
        return client

    yield make
    for client in made:
        client.close()
