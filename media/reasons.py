"""Why a file is not simply "verified": stable codes for machines, Chinese text for supervisors.

The codes are part of the contract with the server and the review app: branch on ``code``, show
``message``. A reason is an ``error`` (the file cannot serve as evidence as it is) or a ``warning``
(a person has to look).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from media._json import JsonReport


class Severity(StrEnum):
    """How a reason weighs on the verdict."""

    ERROR = "error"
    WARNING = "warning"


#: code -> (severity, message shown to supervisors)
CATALOGUE: dict[str, tuple[Severity, str]] = {
    "file-missing": (Severity.ERROR, "文件不存在或无法读取"),
    "empty-file": (Severity.ERROR, "文件为空"),
    "not-media": (Severity.ERROR, "文件不是可识别的图片、音频或视频（与扩展名无关）"),
    "index-missing": (Severity.ERROR, "视频文件不完整：缺少索引（moov），文件可能在录制或传输中被截断"),
    "truncated": (Severity.ERROR, "文件被截断：实际内容少于文件声明的帧数或时长"),
    "decode-errors": (Severity.ERROR, "解码出错：文件中有损坏的数据"),
    "corrupt-frames": (Severity.ERROR, "部分画面损坏，解码器只能修补显示"),
    "no-decodable-stream": (Severity.ERROR, "文件中没有可解码的图像、音频或视频"),
    "hash-mismatch": (Severity.ERROR, "文件的 SHA-256 与采集时记录的不一致，文件可能被改动"),
    "extension-mismatch": (Severity.WARNING, "文件扩展名与实际格式不符"),
    "lens-covered": (Severity.WARNING, "镜头疑似被遮挡：画面长时间全黑或没有内容"),
}


@dataclass(frozen=True)
class Reason(JsonReport):
    """One finding that keeps a file from being simply verified."""

    code: str
    severity: Severity
    message: str
    details: dict[str, Any] = field(default_factory=dict)


def reason(code: str, **details: Any) -> Reason:
    """Build the catalogued reason ``code`` with optional machine-readable details."""
    severity, message = CATALOGUE[code]
    return Reason(code=code, severity=severity, message=message, details=details)
