"""Who this tablet is to the server, and one logical HTTP request: retries, backoff, token refresh.

The store keeps the server URL, the user, the device id and the token pair, so
every process that opens the same store (the app, ``fieldsync``) shares one
session. Everything else in the client reaches the server through
``Session.call``.
"""
from __future__ import annotations

import random
from collections.abc import Callable, Collection, Mapping
from typing import Any

from field_client import hlc
from field_client.errors import AuthRequired, LocalError, NotLoggedIn, ServerRefused, ServerUnavailable
from field_client.store import Store
from field_client.times import iso_local
from field_client.transport import HttpTransport, Response, Transport, TransportError

API = "/api/v1"


class Session:
    """Credentials in the store and HTTP calls with bounded, jittered retries.

    ``sleep``, ``clock`` (epoch seconds) and ``rng`` are injectable so tests run
    retries and clock trouble instantly.
    """

    def __init__(self, store: Store, transport: Transport | None, *, sleep: Callable[[float], None],
                 clock: Callable[[], float], rng: random.Random, max_attempts: int, backoff_base: float,
                 backoff_cap: float) -> None:
        self.store = store
        self._transport = transport
        self.sleep = sleep
        self.clock = clock
        self.rng = rng
        self.max_attempts = max(1, max_attempts)
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap

    # ---- identity ---------------------------------------------------------------

    def now(self) -> str:
        """The injected clock's time as the server takes it (ISO 8601 with offset)."""
        return iso_local(self.clock())

    @property
    def device_id(self) -> str | None:
        value = self.store.get("device_id")
        return str(value) if value else None

    def identity(self) -> tuple[str, str, str | None]:
        """(device id, user id, department id) for stamping captures; offline is fine."""
        device, user = self.store.get("device_id"), self.store.get("user_id")
        if not device or not user:
            raise NotLoggedIn("本机尚未登录过。请先联网执行："
                              "fieldsync login --server URL --username 用户名 --device 设备编号")
        return str(device), str(user), self.store.get("department_id")

    def transport(self) -> Transport:
        """The transport to the server named at login (or the one given)."""
        if self._transport is None:
            url = self.store.get("server_url")
            if not url:
                raise NotLoggedIn("本机尚未登录过，不知道服务器地址。请先执行 fieldsync login")
            self._transport = HttpTransport(str(url))
        return self._transport

    def set_transport(self, transport: Transport | None) -> None:
        """Talk through ``transport`` from now on (None: HTTP to the server named at login)."""
        self._transport = transport

    def login(self, server_url: str, username: str, password: str, device_id: str) -> dict[str, Any]:
        """Log in as an inspector; keeps tokens, user and device in the store.

        Pulled data is forgotten when the user or server changes; the outbox stays.
        """
        server_url = server_url.rstrip("/")
        if not hlc.valid_node(device_id):
            raise LocalError(f"设备编号 {device_id!r} 无效：只能包含字母、数字和连字符，且不超过 64 个字符")
        previous = (self.store.get("server_url"), self.store.get("username"))
        if self._transport is None or (isinstance(self._transport, HttpTransport)
                                       and self._transport.base_url != server_url):
            try:
                self._transport = HttpTransport(server_url)
            except ValueError as exc:
                raise LocalError(str(exc)) from None
        # A throttled log-in (429) is reported at once: the inspector is waiting.
        response = self.call("POST", f"{API}/auth/token", json_body={"username": username, "password": password},
                             auth=False, retry_throttled=False)
        if response.status != 200:
            code, reason = response.problem
            if response.status == 401:
                raise AuthRequired(f"登录失败：{reason}")
            raise ServerRefused(code, reason, response.status)
        tokens = self._token_pair(response)
        me = self.call("GET", f"{API}/auth/me", headers={"Authorization": f"Bearer {tokens[0]}"}, auth=False)
        if me.status != 200 or not isinstance(me.body, dict) or "id" not in me.body:
            code, reason = me.problem
            raise ServerRefused(code, reason, me.status)
        if me.body.get("role") != "inspector":
            raise LocalError("只有执法人员账号可以在执法平板上同步检查记录")
        with self.store.transaction():
            if previous != (server_url, username):
                self.store.forget_pulled()
            for key, value in (("server_url", server_url), ("username", username), ("device_id", device_id),
                               ("user_id", str(me.body["id"])), ("department_id", str(me.body.get("department_id"))),
                               ("access_token", tokens[0]), ("refresh_token", tokens[1]), ("needs_login", None)):
                self.store.set(key, value)
        return {"username": username, "user_id": str(me.body["id"]), "department_id": me.body.get("department_id"),
                "device_id": device_id, "server_url": server_url}

    @staticmethod
    def _token_pair(response: Response) -> tuple[str, str]:
        body = response.body if isinstance(response.body, dict) else {}
        access, refresh = body.get("access_token"), body.get("refresh_token")
        if not isinstance(access, str) or not isinstance(refresh, str):
            raise ServerUnavailable("服务器返回的登录应答格式不正确")
        return access, refresh

    # ---- HTTP with retries and token refresh --------------------------------------

    def backoff(self, attempt: int, retry_after: str | None) -> float:
        """Exponential backoff with full jitter; a server's Retry-After is a floor."""
        delay = self.rng.uniform(0, min(self.backoff_cap, self.backoff_base * (2 ** (attempt - 1))))
        if retry_after:
            try:
                delay = max(delay, min(float(retry_after), self.backoff_cap))
            except ValueError:
                pass
        return delay

    def call(self, method: str, path: str, *, json_body: Any = None, query: Mapping[str, Any] | None = None,
             headers: Mapping[str, str] | None = None, auth: bool = True, retry_throttled: bool = True,
             retry_statuses: Collection[int] = (), on_attempt: Callable[[], None] | None = None,
             on_failure: Callable[[str, str], None] | None = None) -> Response:
        """One logical request: retried on no answer, 5xx, 429 and ``retry_statuses``; one token refresh on 401."""
        refreshed = False
        attempt = 0
        while True:
            attempt += 1
            sent_headers = dict(headers or {})
            token = None
            if auth:
                token = self.store.get("access_token")
                if not token:
                    raise AuthRequired("尚未登录或登录已失效，请重新登录：fieldsync login")
                sent_headers["Authorization"] = f"Bearer {token}"
            if on_attempt:
                on_attempt()
            retry_after = None
            try:
                response = self.transport().request(method, path, json_body=json_body, query=query,
                                                    headers=sent_headers)
            except TransportError as exc:
                failure = ("network", str(exc))
            else:
                if response.status == 401 and auth:
                    if refreshed:
                        self._lost_session(response)
                    # Another process on this store (the app, say) may have
                    # refreshed already; rotating its token again would look
                    # like token theft to the server and end the session.
                    if self.store.get("access_token") == token:
                        self.refresh()
                    refreshed = True
                    attempt -= 1  # the refresh is not a failed attempt
                    continue
                transient = (response.status >= 500 or response.status in retry_statuses
                             or (response.status == 429 and retry_throttled))
                if not transient:
                    return response
                code, reason = response.problem
                failure = (code, f"HTTP {response.status}：{reason}")
                retry_after = response.header("Retry-After")
            if on_failure:
                on_failure(*failure)
            if attempt >= self.max_attempts:
                raise ServerUnavailable(f"服务器暂时无法完成同步（已尝试 {attempt} 次）：{failure[1]}。"
                                        "已采集的记录都保存在本机，稍后再同步即可")
            self.sleep(self.backoff(attempt, retry_after))

    def refresh(self) -> None:
        """Trade the refresh token for a new pair, once; else the inspector must log in."""
        refresh_token = self.store.get("refresh_token")
        if not refresh_token:
            self.store.set("needs_login", True)
            raise AuthRequired("登录已失效，请重新登录：fieldsync login")
        response = self.call("POST", f"{API}/auth/refresh", json_body={"refresh_token": refresh_token}, auth=False)
        if response.status != 200:
            self._lost_session(response)
        access, refresh = self._token_pair(response)
        with self.store.transaction():
            self.store.set("access_token", access)
            self.store.set("refresh_token", refresh)

    def access_token(self) -> str:
        """The current access token, for requests made outside ``call`` (tus uploads)."""
        token = self.store.get("access_token")
        if not token:
            raise AuthRequired("尚未登录或登录已失效，请重新登录：fieldsync login")
        return str(token)

    def renew_token(self, old: str) -> None:
        """The server refused ``old``: refresh, unless another process on this store already has."""
        if self.store.get("access_token") == old:
            self.refresh()

    def _lost_session(self, response: Response) -> None:
        self.end_session(*response.problem)

    def end_session(self, code: str, reason: str) -> None:
        """Forget the tokens and ask for a new log-in; raises ``AuthRequired``."""
        with self.store.transaction():
            self.store.set("access_token", None)
            self.store.set("refresh_token", None)
            self.store.set("needs_login", True)
        raise AuthRequired(f"登录已失效（{code}：{reason}），请重新登录：fieldsync login。未同步的记录仍保存在本机")
