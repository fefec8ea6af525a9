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
from field_client.clock import with_device_clock
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
                              "fieldsync login --server URL --username 用户名（本机须先用 fieldsync enrol 登记）")
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

    # ---- the tablet's own credential (enrolment) -------------------------------------

    def enrolment(self) -> dict[str, Any] | None:
        """The tablet credential this store holds: device id, server, department, label (never the secret)."""
        device, secret = self.store.get("enrolled_device_id"), self.store.get("device_secret")
        if not device or not secret:
            return None
        return {"device_id": str(device), "server_url": self.store.get("enrolled_server"),
                "department": self.store.get("device_department"), "label": self.store.get("device_label")}

    def _use_server(self, server_url: str) -> None:
        if self._transport is None or (isinstance(self._transport, HttpTransport)
                                       and self._transport.base_url != server_url):
            try:
                self._transport = HttpTransport(server_url)
            except ValueError as exc:
                raise LocalError(str(exc)) from None

    def enrol(self, server_url: str, code: str) -> dict[str, Any]:
        """Spend a one-time enrolment code: the server makes this store a tablet and hands it its secret.

        The secret is kept in the store; the log-ins of this store are bound to it from now on.
        """
        server_url = server_url.rstrip("/")
        if not code.strip():
            raise LocalError("请输入登记码（形如 ABCD-EFGH-JKLM，"
                             "由管理员在审核端“平板管理”或服务器命令 enrol-tablet 签发）")
        self._use_server(server_url)
        # A code is spent once: if the answer was lost and the retry meets enrolment-code-used, the hint says
        # to ask for a new code (the secret of the lost answer is unknown to everyone).
        response = self.call("POST", f"{API}/devices/enrol", json_body={"code": code}, auth=False,
                             retry_throttled=False)
        if response.status != 201:
            code_slug, reason = response.problem
            hints = {"enrolment-code-used": "若上一次登记时网络中断，请向管理员索取新的登记码",
                     "enrolment-code-expired": "请向管理员索取新的登记码",
                     "enrolment-code-invalid": "请核对登记码（不含数字 0、1 和字母 O、I）"}
            hint = hints.get(code_slug)
            raise ServerRefused(code_slug, f"登记失败：{reason}" + (f"。{hint}" if hint and hint not in reason else ""),
                                response.status)
        body = response.body if isinstance(response.body, dict) else {}
        device_id, secret = body.get("device_id"), body.get("device_secret")
        if not isinstance(device_id, str) or not isinstance(secret, str) or not hlc.valid_node(device_id):
            raise ServerUnavailable("服务器返回的登记应答格式不正确")
        self.remember_device(server_url, device_id, secret, department=body.get("department"),
                             label=body.get("label"))
        return {"device_id": device_id, "server_url": server_url, "department": body.get("department"),
                "label": body.get("label")}

    def remember_device(self, server_url: str, device_id: str, secret: str, *, department: Any = None,
                        label: str | None = None) -> None:
        """Keep a tablet credential (from an enrolment, or ``create-device`` for tablets provisioned by script).

        The session of another credential ends: its tokens were bound to the old one.
        """
        if not hlc.valid_node(device_id):
            raise LocalError(f"设备编号 {device_id!r} 无效：只能包含字母、数字和连字符，且不超过 64 个字符")
        pending = self.store.count("pending")
        current = self.store.get("device_id")
        if pending and current and current != device_id:
            raise LocalError(f"本机还有 {pending} 条以平板 {current} 名义记录、尚未同步的记录。"
                             "请先同步，再把本机登记为另一台平板")
        changed = (self.store.get("enrolled_device_id"), self.store.get("device_secret")) != (device_id, secret)
        with self.store.transaction():
            for key, value in (("enrolled_device_id", device_id), ("device_secret", secret),
                               ("enrolled_server", server_url.rstrip("/")), ("device_department", department),
                               ("device_label", label)):
                self.store.set(key, value)
            if changed:
                self.store.set("access_token", None)
                self.store.set("refresh_token", None)

    def login(self, server_url: str, username: str, password: str, device_id: str | None = None) -> dict[str, Any]:
        """Log in as an inspector on this enrolled tablet; keeps tokens, user and device in the store.

        The log-in is bound to the tablet's credential (``enrol``); ``device_id``, if given, must be that tablet.
        Pulled data is forgotten when the user or server changes; the outbox stays.
        """
        server_url = server_url.rstrip("/")
        enrolled = self.enrolment()
        if enrolled is None:
            raise LocalError("本机尚未登记为执法平板，不能登录。请管理员签发一次性登记码（审核端“平板管理”，"
                             "或服务器上 flask --app server enrol-tablet），然后执行："
                             "fieldsync enrol --server 服务器地址 登记码")
        if device_id is not None and device_id != enrolled["device_id"]:
            raise LocalError(f"本机登记的平板是 {enrolled['device_id']}，不是 {device_id}；"
                             "登录只能使用本机登记的平板（可省略 --device）")
        if enrolled["server_url"] and enrolled["server_url"] != server_url:
            raise LocalError(f"本机登记在服务器 {enrolled['server_url']}，不能登录 {server_url}；"
                             "如需更换服务器，请在新服务器上重新登记本机")
        device_id = enrolled["device_id"]
        previous = (self.store.get("server_url"), self.store.get("username"))
        self._use_server(server_url)
        # A throttled log-in (429) is reported at once: the inspector is waiting.
        response = self.call("POST", f"{API}/auth/token", auth=False, retry_throttled=False, json_body={
            "username": username, "password": password, "device_id": device_id,
            "device_secret": str(self.store.get("device_secret"))})
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
            sent_headers = with_device_clock(headers)  # the server's clock ledger reads it (field_client.clock)
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
