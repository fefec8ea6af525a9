"""The joint report: the joint record as one document for the enterprise and the file (HTML, PDF)."""
from __future__ import annotations

import subprocess
from datetime import UTC, datetime
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from server.db_types import OFFICE_TIMEZONE
from server.joint.service import JointRecord

# The PDF embeds this family; without it pango falls back to a font with no Chinese glyphs and every
# character becomes a box, so the report refuses instead (and `make run` says what to install).
CJK_FONT_FAMILY = "Noto Sans CJK SC"
CJK_FONT_PACKAGE = "fonts-noto-cjk"

LABELS: dict[str, dict[str, str]] = {
    "result": {"compliant": "符合", "non_compliant": "不符合", "not_applicable": "不适用"},
    "verification": {"pending": "待校验", "verified": "校验通过", "failed": "校验未通过", "needs_review": "需人工复核",
                     "not_uploaded": "文件未上传"},
    "coercive": {"seizure": "查封", "impoundment": "扣押", "demolition": "强制拆除", "closure": "关闭",
                 "other": "其他"},
    "signer": {"inspector": "执法人员", "representative": "企业代表", "witness": "见证人"},
    "inspection_status": {"open": "进行中", "finished": "已结束"},
    "task_status": {"pending_approval": "待审批", "rejected": "已驳回", "dispatched": "已派发", "closed": "已关闭",
                    "cancelled": "已撤销"},
    "certificate": {"valid": "有效", "suspended": "暂扣", "revoked": "吊销"},
    "proves": {"certificate": "亮证", "scene": "现场", "signature": "签名", "other": "其他", "recording": "执法记录仪"},
    "field": {"started_at": "到达时间", "ended_at": "离开时间", "place": "检查地点", "representative": "企业代表",
              "conclusion": "检查结论", "status": "状态", "soft_measures": "柔性措施", "coercive_measures": "强制措施",
              "result": "检查结果", "note": "说明", "evidence": "证据", "recorded_at": "记录时间"},
}


def _label(value: Any, kind: str) -> str:
    if value is None:
        return "—"
    return LABELS[kind].get(str(value), str(value))


def _beijing(value: str | None) -> str:
    """An ISO 8601 time as Beijing time, to the minute."""
    if not value:
        return "—"
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(OFFICE_TIMEZONE).strftime("%Y-%m-%d %H:%M")


def _size(value: int | None) -> str:
    if value is None:
        return "—"
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value = value / 1024  # type: ignore[assignment]
    return str(value)


_environment = Environment(loader=PackageLoader("server.joint", "templates"),
                           autoescape=select_autoescape(["html"]), undefined=StrictUndefined,
                           trim_blocks=True, lstrip_blocks=True)
_environment.filters.update(label=_label, beijing=_beijing, size=_size)


def render_html(record: JointRecord) -> str:
    """The report as a standalone HTML page (Simplified Chinese)."""
    return _environment.get_template("joint_report.html").render(record=record.to_dict())


def chinese_font_families() -> set[str]:
    """Font families fontconfig (which pango, and so WeasyPrint, uses) knows for Chinese text."""
    try:
        listed = subprocess.run(["fc-list", ":lang=zh", "family"], capture_output=True, text=True, timeout=20,
                                check=False)
    except (OSError, subprocess.TimeoutExpired):
        return set()
    return {name.strip() for line in listed.stdout.splitlines() for name in line.split(",") if name.strip()}


def missing_cjk_font() -> str | None:
    """What to install for the PDF report to show Chinese, or None when it can."""
    if CJK_FONT_FAMILY in chinese_font_families():
        return None
    return CJK_FONT_PACKAGE


class ReportUnavailable(RuntimeError):
    """The PDF cannot be made on this server as it is installed (the message says what is missing)."""


def render_pdf(record: JointRecord) -> bytes:
    """The report as PDF with the CJK font embedded; needs WeasyPrint, pango and fonts-noto-cjk.

    Raises ``ReportUnavailable`` rather than render Chinese as boxes when the font is missing."""
    package = missing_cjk_font()
    if package is not None:
        raise ReportUnavailable(f"the font {CJK_FONT_FAMILY} is not installed (Debian package {package})")
    from weasyprint import HTML

    return HTML(string=render_html(record)).write_pdf()  # type: ignore[no-any-return]
