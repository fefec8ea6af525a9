"""What the inspector reads when the server refuses: the server's Chinese words, or ours for its codes.

The server's problem+json carries a Chinese ``title`` and ``detail`` for
people and, for validation failures, ``errors`` (field path -> English
messages) for programs. The inspector is shown the former only. A rejected
mutation carries a machine ``code`` and a Chinese ``reason``; when the reason
is missing or not Chinese (an older server, a proxy, a code from a newer
server), the client explains the code itself.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")

# Per-mutation rejection codes (docs/sync.md), and those the client gives a mutation it sets aside.
REJECTION_TEXTS = {
    "id-reused": "该变更编号已用于内容不同的另一项变更，服务器已拒绝",
    "clock-skew": "平板时钟超前服务器时间过多，请校准平板时钟后重新记录",
    "invalid-fields": "记录中有字段的取值不符合要求",
    "unknown-entity": "所属的记录在服务器上不存在，请先同步",
    "forbidden": "您无权修改该记录（不是检查组成员，或记录属于其他部门）",
    "task-closed": "检查任务已关闭，不能再修改其记录",
    "task-not-dispatched": "检查任务尚未派发，不能提交检查记录",
    "unknown-check-item": "检查事项不存在、已停用或不在本次检查任务中",
    "immutable-field": "记录中有创建后不能修改的字段被修改",
    "hlc-node-mismatch": "记录时间戳中的设备编号与本平板不一致",
    "inspection-id": "检查记录编号与检查任务不对应，请更新 fieldsync 后重新开始检查",
    "unknown-entity-kind": "服务器不认识这种记录（可能来自更新版本的应用），无法保存",
    "invalid-mutation": "服务器无法读取这条记录（本机记录可能已损坏）",
    "payload-too-large": "这条记录过大，服务器拒收",
}

# Whole-request problems (``type`` slugs) the client may meet, for when the server's words are not Chinese.
PROBLEM_TEXTS = {
    "unknown-device": "本设备不是已登记的在用执法平板",
    "validation-failed": "提交的数据未通过校验",
    "bad-request": "请求格式错误",
    "unauthenticated": "未登录或凭证无效",
    "token-expired": "访问令牌已过期",
    "forbidden": "无权执行此操作",
    "not-found": "资源不存在",
    "conflict": "与现有数据冲突",
    "payload-too-large": "请求体过大",
    "too-many-requests": "请求过于频繁，请稍后再试",
    "invalid-cursor": "同步游标无效",
    "unavailable": "服务暂时不可用",
    "media-store-unavailable": "服务器的证据存储暂时不可用",
    "internal-error": "服务器内部错误",
}

_STATUS_TEXTS = {
    400: "请求格式错误", 401: "未登录或凭证无效", 403: "无权执行此操作", 404: "资源不存在",
    405: "服务器不支持该请求", 408: "请求超时", 409: "与现有数据冲突", 410: "资源已不存在",
    413: "请求体过大", 415: "服务器不接受该内容类型", 422: "提交的数据未通过校验", 429: "请求过于频繁，请稍后再试",
    500: "服务器内部错误", 502: "服务器网关错误", 503: "服务暂时不可用", 504: "服务器网关超时",
}

# What the inspector can do about a whole-request refusal.
_PROBLEM_HINTS = {
    "unknown-device": "请管理员在本部门将本平板登记为执法平板（create-device --kind tablet），"
                      "或以已登记的设备编号重新登录。未同步的记录仍保存在本机",
}

# Names of a mutation's envelope fields, for a mutation the server could not read.
FIELD_NAMES = {"id": "变更编号", "entity": "记录类型", "entity_id": "记录编号", "op": "操作类型",
               "base_version": "版本号", "hlc": "时间戳", "fields": "字段内容"}


def is_chinese(text: Any) -> bool:
    """True for text written in Chinese (it holds at least one CJK character)."""
    return isinstance(text, str) and bool(_CJK.search(text))


def problem_reason(status: int, body: Any) -> str:
    """The Chinese sentence for a problem+json answer; never the field-level ``errors``."""
    body = body if isinstance(body, dict) else {}
    kind = str(body.get("type") or "")
    slug = kind.rsplit("/", 1)[-1] if kind else ""
    detail, title = body.get("detail"), body.get("title")
    if is_chinese(detail):  # the specific sentence; the title is the generic one for its status
        text = str(detail).strip()
    elif is_chinese(title):
        text = str(title).strip()
    else:
        text = PROBLEM_TEXTS.get(slug) or _STATUS_TEXTS.get(status) or f"服务器拒绝了请求（HTTP {status}）"
    hint = _PROBLEM_HINTS.get(slug)
    return f"{text}。{hint}" if hint else text


def rejection_reason(code: str, reason: Any) -> str:
    """The Chinese reason of a rejected mutation: the server's if it is Chinese, else ours for its code."""
    if is_chinese(reason):
        return str(reason)
    return REJECTION_TEXTS.get(code) or f"服务器拒绝了这条记录（代码 {code}）"


def unreadable_reason(fields: Iterable[str]) -> str:
    """Why the server could not read a mutation whose envelope ``fields`` it named."""
    names = sorted({FIELD_NAMES.get(f, f) for f in fields if f})
    text = REJECTION_TEXTS["invalid-mutation"]
    return f"{text}：{'、'.join(names)}有误" if names else text
