"""Reading a request's JSON body: every body the parser cannot take is a 400, never a crash.

Python's ``json`` raises more than ``JSONDecodeError``: a ValueError for an integer longer than the
interpreter's int-string limit (4300 digits), and a RecursionError for a body nested about a thousand
levels deep, both well under the size limit. It also takes ``NaN`` and ``Infinity``, which are not JSON
and which no database column stores. This module turns each into one problem+json answer, and refuses
nesting deeper than any of our documents needs, so nothing downstream meets it.
"""
from __future__ import annotations

import json
import math
from typing import Any

from flask import Request
from webargs import core
from webargs.flaskparser import FlaskParser, is_json_request

from server.errors import Problem

# Our deepest document (a push: envelope, mutations, a mutation, its fields, a coercive measure) is six
# levels; a generous margin, far below what recursion elsewhere would trip over.
MAX_DEPTH = 32

_TITLE = "请求体不是有效的 JSON"


def _malformed(detail: str) -> Problem:
    return Problem(400, "malformed-json", detail, title=_TITLE, errors={"_body": [detail]})


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("number out of range")
    return value


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_json_body(data: bytes | str) -> Any:
    """The body as Python values; Problem 400 (``malformed-json``) naming what is wrong, whatever the bytes."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError:
            raise _malformed("请求体不是 UTF-8 编码的 JSON") from None
    try:
        value = json.loads(data, parse_float=_finite, parse_constant=_no_constants)
    except RecursionError:
        raise _malformed(f"JSON 嵌套层数过多（最多 {MAX_DEPTH} 层）") from None
    except json.JSONDecodeError as exc:
        raise _malformed(f"请求体不是有效的 JSON 文档（第 {exc.lineno} 行第 {exc.colno} 列：{exc.msg}）") from None
    except ValueError as exc:
        if "integer string conversion" in str(exc) or "digits" in str(exc):
            raise _malformed("JSON 中的整数位数过多") from None
        raise _malformed("JSON 中含有超出范围的数值（如 NaN、Infinity 或过大的数）") from None
    if _depth_exceeds(value, MAX_DEPTH):
        raise _malformed(f"JSON 嵌套层数过多（最多 {MAX_DEPTH} 层）")
    return value


def _depth_exceeds(value: Any, limit: int) -> bool:
    """Whether containers nest deeper than ``limit`` (iterative: the check itself must not recurse)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


class JSONRequest(Request):
    """``request.get_json()`` through ``parse_json_body`` (the app's request class)."""

    def get_json(self, force: bool = False, silent: bool = False, cache: bool = True) -> Any:
        if not (force or self.is_json):
            return super().get_json(force=force, silent=silent, cache=cache)
        data = self.get_data(cache=cache)
        try:
            return parse_json_body(data)
        except Problem:
            if silent:
                return None
            raise


class JSONBodyParser(FlaskParser):
    """webargs' parser reading bodies through ``parse_json_body`` (it catches JSONDecodeError only)."""

    def _raw_load_json(self, req: Any) -> Any:
        if not is_json_request(req):
            return core.missing
        data = req.get_data(cache=True)
        if not data:
            return core.missing  # no body: the schema says which fields are missing
        return parse_json_body(data)
