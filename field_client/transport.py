"""How the engine talks to the server: one small interface, and HTTP over urllib.

The engine only ever calls ``Transport.request``. Anything that answers it can
stand in for the network — the tests plug in one that calls the Flask test
client. A transport answers every HTTP status (4xx and 5xx included) with a
``Response``; only when no answer arrived at all (no route, refused, reset,
timed out, garbled) does it raise ``TransportError``, because then the
request may or may not have reached the server.
"""
from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from field_client.messages import problem_reason


class TransportError(Exception):
    """No answer from the server: the request may or may not have been processed."""


@dataclass
class Response:
    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    body: Any = None

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        for key, value in self.headers.items():
            if key.lower() == lowered:
                return value
        return None

    @property
    def problem(self) -> tuple[str, str]:
        """``(slug, reason)`` of a problem+json answer: the machine code and the server's Chinese words.

        The field-level ``errors`` (English, for programs) are never part of the
        reason; ``errors`` holds them for code that needs to know which field.
        """
        body = self.body if isinstance(self.body, dict) else {}
        kind = str(body.get("type") or "")
        slug = kind.rsplit("/", 1)[-1] if kind else f"http-{self.status}"
        return slug, problem_reason(self.status, body)

    @property
    def errors(self) -> dict[str, Any]:
        """The problem's field-level ``errors`` (field path -> messages), or an empty dict."""
        errors = self.body.get("errors") if isinstance(self.body, dict) else None
        return dict(errors) if isinstance(errors, dict) else {}


class Transport(Protocol):
    def request(self, method: str, path: str, *, json_body: Any = None, query: Mapping[str, Any] | None = None,
                headers: Mapping[str, str] | None = None) -> Response:
        """Send one request to ``path`` (e.g. ``/api/v1/sync/push``) and return the answer."""
        ...


class HttpTransport:
    """JSON over HTTP(S) with the standard library."""

    def __init__(self, base_url: str, *, timeout: float = 30.0, user_agent: str = "fieldsync/0.1") -> None:
        parsed = urllib.parse.urlsplit(base_url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError(f"服务器地址应以 http:// 或 https:// 开头：{base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.user_agent = user_agent

    def request(self, method: str, path: str, *, json_body: Any = None, query: Mapping[str, Any] | None = None,
                headers: Mapping[str, str] | None = None) -> Response:
        url = self.base_url + path
        if query:
            url += "?" + urllib.parse.urlencode({k: v for k, v in query.items() if v is not None})
        data = None
        sent_headers = {"Accept": "application/json, application/problem+json", "User-Agent": self.user_agent}
        if json_body is not None:
            data = json.dumps(json_body, ensure_ascii=False).encode("utf-8")
            sent_headers["Content-Type"] = "application/json"
        sent_headers.update(headers or {})
        request = urllib.request.Request(url, data=data, headers=sent_headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                return self._response(answer.status, answer.headers, answer.read())
        except urllib.error.HTTPError as error:
            try:
                raw = error.read()
            except (OSError, http.client.HTTPException):
                raw = b""
            return self._response(error.code, error.headers, raw)
        except (TimeoutError, urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            reason = getattr(exc, "reason", exc)
            raise TransportError(f"无法连接服务器 {self.base_url}：{reason}") from exc

    @staticmethod
    def _response(status: int, headers: Any, raw: bytes) -> Response:
        plain = dict(headers.items()) if headers is not None else {}
        body: Any = None
        if raw:
            try:
                body = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, ValueError):
                # A proxy's HTML error page, say: keep the text for the message.
                body = {"detail": raw[:200].decode("utf-8", "replace")}
        return Response(status, plain, body)
