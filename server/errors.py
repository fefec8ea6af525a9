"""RFC 9457 problem details for every error the server returns.

Every error has a stable machine-readable ``type`` (``/problems/<slug>``) so
clients branch on it, a short ``title``, a human ``detail`` and, for
validation failures, ``errors``: field name -> list of messages.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from flask import Flask, Response, json
from werkzeug.exceptions import HTTPException, InternalServerError

log = logging.getLogger(__name__)

PROBLEM_MIMETYPE = "application/problem+json"
TYPE_PREFIX = "/problems/"

# Default slug and Chinese title per status, for errors raised by Flask/werkzeug itself.
_DEFAULTS: dict[int, tuple[str, str]] = {
    400: ("bad-request", "请求格式错误"),
    401: ("unauthenticated", "未登录或凭证无效"),
    403: ("forbidden", "无权执行此操作"),
    404: ("not-found", "资源不存在"),
    405: ("method-not-allowed", "不支持该请求方法"),
    409: ("conflict", "与现有数据冲突"),
    410: ("gone", "资源已不存在"),
    412: ("precondition-failed", "前置条件不满足"),
    413: ("payload-too-large", "请求体过大"),
    415: ("unsupported-media-type", "不支持的内容类型"),
    422: ("validation-failed", "提交的数据未通过校验"),
    423: ("locked", "资源正被占用"),
    429: ("too-many-requests", "请求过于频繁，请稍后再试"),
    500: ("internal-error", "服务器内部错误"),
    503: ("unavailable", "服务暂时不可用"),
}


class Problem(HTTPException):
    """An error answered as problem+json. Raise it from services or routes."""

    def __init__(
        self,
        status: int,
        slug: str | None = None,
        detail: str | None = None,
        *,
        title: str | None = None,
        errors: Mapping[str, list[str]] | None = None,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(description=detail)
        self.code = status
        default_slug, default_title = _DEFAULTS.get(status, ("error", "请求失败"))
        self.slug = slug or default_slug
        self.title = title or default_title
        self.detail = detail
        self.errors = dict(errors) if errors else None
        self.extra_headers = dict(headers or {})
        self.extra = dict(extra or {})


def flatten_messages(messages: Any, prefix: str = "") -> dict[str, list[str]]:
    """Turn marshmallow/webargs nested messages into ``{"a.b.0.c": [..]}``."""
    flat: dict[str, list[str]] = {}
    if isinstance(messages, Mapping):
        for key, value in messages.items():
            name = str(key)
            if name == "_schema":
                name = ""
            path = f"{prefix}.{name}" if prefix and name else (prefix or name)
            for k, v in flatten_messages(value, path).items():
                flat.setdefault(k, []).extend(v)
    elif isinstance(messages, (list, tuple)):
        if all(isinstance(m, str) for m in messages):
            flat.setdefault(prefix or "_body", []).extend(messages)
        else:
            for item in messages:
                for k, v in flatten_messages(item, prefix).items():
                    flat.setdefault(k, []).extend(v)
    else:
        flat.setdefault(prefix or "_body", []).append(str(messages))
    return flat


def _webargs_errors(data: Mapping[str, Any]) -> dict[str, list[str]] | None:
    messages = data.get("errors") or data.get("messages")
    if not messages:
        return None
    flat: dict[str, list[str]] = {}
    # webargs nests messages under the request location; the body's fields are
    # named plainly, other locations keep their name as prefix.
    for location, inner in messages.items() if isinstance(messages, Mapping) else [("json", messages)]:
        prefix = "" if location in ("json", "form", "json_or_form") else str(location)
        for k, v in flatten_messages(inner, prefix).items():
            flat.setdefault(k, []).extend(v)
    return flat


def problem_response(
    status: int,
    slug: str,
    title: str,
    detail: str | None = None,
    errors: Mapping[str, list[str]] | None = None,
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Response:
    body: dict[str, Any] = {"type": TYPE_PREFIX + slug, "title": title, "status": status}
    body["detail"] = detail or title
    if errors:
        body["errors"] = errors
    if extra:
        body.update(extra)
    response = Response(json.dumps(body, ensure_ascii=False), status=status, mimetype=PROBLEM_MIMETYPE)
    for key, value in (headers or {}).items():
        response.headers[key] = value
    if status == 401 and "WWW-Authenticate" not in response.headers:
        response.headers["WWW-Authenticate"] = 'Bearer realm="inspect-once"'
    return response


def handle_http_exception(error: HTTPException) -> Response:
    status = error.code or 500
    if isinstance(error, Problem):
        return problem_response(status, error.slug, error.title, error.detail, error.errors, error.extra_headers,
                                error.extra)
    slug, title = _DEFAULTS.get(status, ("error", error.name))
    data = getattr(error, "data", None) or {}
    errors = _webargs_errors(data) if data else None
    headers: dict[str, str] = dict(data.get("headers") or {}) if data else {}
    if status == 405 and hasattr(error, "valid_methods") and error.valid_methods:
        headers["Allow"] = ", ".join(error.valid_methods)
    detail = data.get("message") if data else None
    if errors and status == 400 and any("Invalid JSON" in m for msgs in errors.values() for m in msgs):
        slug, title, detail = "malformed-json", "请求体不是有效的 JSON", "请求体不是有效的 JSON 文档"
    elif errors and status == 422:
        detail = detail or "以下字段有误：" + "，".join(sorted(k or "_body" for k in errors))
    if isinstance(error, InternalServerError):
        detail = None
    elif detail is None and error.description and status != 500:
        detail = str(error.description)
    return problem_response(status, slug, title, detail, errors, headers)


def handle_unexpected(error: Exception) -> Response:
    # Never leak internals; the log carries the traceback for the operator.
    log.exception("unhandled error: %s", type(error).__name__)
    slug, title = _DEFAULTS[500]
    return problem_response(500, slug, title, "服务器发生意外错误，已记录，请联系管理员")


def handle_integrity_error(error: Exception) -> Response:
    # Two requests raced past the service's own checks (a duplicate created
    # between our look-up and our insert). Nothing was stored; a retry will
    # see the winner and get a precise answer.
    from server.extensions import db

    db.session.rollback()
    log.info("request refused by a database constraint: %s", type(error).__name__)
    return problem_response(409, "conflict", _DEFAULTS[409][1], "与同时进行的另一项操作冲突，未保存任何内容，请重试")


def handle_missing_key(error: Exception) -> Response:
    """A signing key that is to be provided is missing (the operator removed it from a running server)."""
    log.error("%s", error)
    return problem_response(503, "signing-key-missing", "服务暂时不可用",
                            "服务器的签名密钥缺失，无法签发或签名；请联系系统管理员", headers={"Retry-After": "300"})


def init_app(app: Flask) -> None:
    from sqlalchemy.exc import IntegrityError

    from server.keyfiles import KeyMissing

    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(IntegrityError, handle_integrity_error)
    app.register_error_handler(KeyMissing, handle_missing_key)
    app.register_error_handler(Exception, handle_unexpected)
