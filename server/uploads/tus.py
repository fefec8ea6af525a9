"""tus 1.0.0 header rules: plain functions, no Flask, no database.

Each refusal is a ``Problem`` with a stable type, so a client branches on
``/problems/offset-mismatch`` rather than on text.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

from server.errors import Problem

TUS_VERSION = "1.0.0"
OFFSET_OCTET_STREAM = "application/offset+octet-stream"
# Extensions the protocol always implements; ``expiration`` is added when the store supports it.
BASE_EXTENSIONS = ("creation", "creation-with-upload", "termination", "checksum")
CHECKSUM_ALGORITHMS: dict[str, Callable[[], Any]] = {"sha1": hashlib.sha1, "sha256": hashlib.sha256}
MAX_METADATA_HEADER = 4096
# Status 460 is tus's "Checksum Mismatch".
CHECKSUM_MISMATCH = 460

_DIGITS = re.compile(r"^[0-9]{1,20}$")
_METADATA_KEY = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}$")


@dataclass(frozen=True)
class Checksum:
    algorithm: str
    digest: bytes

    def new(self) -> Any:
        return CHECKSUM_ALGORITHMS[self.algorithm]()


def check_version(value: str | None) -> None:
    if value != TUS_VERSION:
        raise Problem(412, "tus-version-unsupported",
                      f"本服务器只支持 tus {TUS_VERSION}（请求头 Tus-Resumable: {TUS_VERSION}）",
                      title="不支持的 tus 协议版本", headers={"Tus-Version": TUS_VERSION})


def _non_negative(value: str | None, header: str) -> int:
    if value is None:
        raise Problem(400, f"missing-{header.lower()}", f"缺少请求头 {header}", title=f"缺少 {header}")
    value = value.strip()
    if not _DIGITS.match(value):
        raise Problem(400, f"invalid-{header.lower()}", f"{header} 应为非负整数", title=f"{header} 无效")
    return int(value)


def parse_length(value: str | None, defer: str | None) -> int:
    """``Upload-Length`` of a creation request; deferred length is not offered."""
    if defer is not None:
        raise Problem(400, "deferred-length-unsupported",
                      "本服务器不支持 Upload-Defer-Length，请在创建时给出 Upload-Length", title="不支持延后给出长度")
    return _non_negative(value, "Upload-Length")


def parse_offset(value: str | None) -> int:
    return _non_negative(value, "Upload-Offset")


def _malformed_metadata(detail: str) -> Problem:
    return Problem(400, "malformed-upload-metadata", f"Upload-Metadata 格式错误：{detail}",
                   title="Upload-Metadata 格式错误")


def parse_metadata(value: str | None) -> dict[str, str]:
    """``key base64(value)`` pairs, comma-separated; a key may come without a value.

    Values must be UTF-8 text. Keys are kept as sent; the meaning of each is
    checked by the caller's schema.
    """
    if value is None or not value.strip():
        return {}
    if len(value) > MAX_METADATA_HEADER:
        raise _malformed_metadata(f"超过 {MAX_METADATA_HEADER} 个字符")
    pairs: dict[str, str] = {}
    for item in value.split(","):
        parts = item.strip().split(" ")
        if len(parts) > 2 or not parts[0]:
            raise _malformed_metadata("每一项应为“键 Base64值”")
        key = parts[0]
        if not _METADATA_KEY.match(key):
            raise _malformed_metadata("键只能由 ASCII 字母、数字和少数符号组成")
        if key in pairs:
            raise _malformed_metadata(f"键 {key} 重复")
        raw = parts[1] if len(parts) == 2 else ""
        try:
            decoded = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            raise _malformed_metadata(f"{key} 的值不是有效的 Base64") from None
        try:
            pairs[key] = decoded.decode("utf-8")
        except UnicodeDecodeError:
            raise _malformed_metadata(f"{key} 的值不是 UTF-8 文本") from None
    return pairs


def parse_checksum(value: str | None) -> Checksum | None:
    """``Upload-Checksum: <algorithm> <base64 digest>`` of one PATCH body."""
    if value is None:
        return None
    parts = value.strip().split(" ")
    if len(parts) != 2:
        raise Problem(400, "invalid-upload-checksum", "Upload-Checksum 应为“算法 Base64摘要”",
                      title="Upload-Checksum 无效")
    algorithm, encoded = parts[0].lower(), parts[1]
    if algorithm not in CHECKSUM_ALGORITHMS:
        raise Problem(400, "checksum-algorithm-unsupported",
                      f"不支持的校验算法 {parts[0][:20]}；可用：{', '.join(CHECKSUM_ALGORITHMS)}",
                      title="不支持的校验算法", headers={"Tus-Checksum-Algorithm": ",".join(CHECKSUM_ALGORITHMS)})
    try:
        digest = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise Problem(400, "invalid-upload-checksum", "Upload-Checksum 的摘要不是有效的 Base64",
                      title="Upload-Checksum 无效") from None
    if len(digest) != CHECKSUM_ALGORITHMS[algorithm]().digest_size:
        raise Problem(400, "invalid-upload-checksum", f"{algorithm} 摘要的长度不对", title="Upload-Checksum 无效")
    return Checksum(algorithm, digest)


def check_content_type(value: str | None) -> None:
    if (value or "").split(";")[0].strip().lower() != OFFSET_OCTET_STREAM:
        raise Problem(415, "unsupported-media-type", f"上传数据的 Content-Type 应为 {OFFSET_OCTET_STREAM}")


def http_date(moment: datetime) -> str:
    """RFC 9110 date, as ``Upload-Expires`` carries it."""
    return format_datetime(moment.astimezone(UTC), usegmt=True)
