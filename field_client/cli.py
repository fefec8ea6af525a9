"""``fieldsync``: the inspector's command line over the offline client, and the docking station.

Everything except ``enrol``, ``login``, ``sync``, ``upload`` and ``dock`` works with no
network. Exit codes: 0 done, 1 refused or failed (the message says why),
2 usage error.
"""
from __future__ import annotations

import argparse
import getpass
import io
import json
import os
import sqlite3
import sys
import time
from collections.abc import Callable, Sequence
from datetime import tzinfo
from pathlib import Path
from typing import Any, TextIO

from field_client.dock import Dock, DockConfig, DockError, parse_utc_offset
from field_client.engine import (
    COERCIVE_KINDS,
    RESULTS,
    FieldClient,
    FieldClientError,
    Rejection,
    Status,
    UploadReport,
    inspection_code_of,
    inspection_id_for,
)
from field_client.store import StoreError
from field_client.times import OFFICE_TIMEZONE, TIMEZONE_ENV, office_time, office_zone
from field_client.transport import Transport

DEFAULT_STORE = "~/.inspect-once/field.db"
EXIT_CLOSED_PIPE = 141  # 128 + SIGPIPE, what a shell reports for a tool a closed pipe ended

ENTITY_NAMES = {"inspection": "检查记录", "finding": "检查结论", "media": "证据文件", "signature": "签名"}
RESULT_NAMES = {"compliant": "符合", "non_compliant": "不符合", "not_applicable": "不适用"}
PROVES_NAMES = {"certificate": "亮证", "scene": "现场", "signature": "签名"}


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of exiting, so ``main`` returns 2 and tests can call it."""

    def error(self, message: str) -> Any:  # type: ignore[override]
        raise UsageError(f"{self.prog}: 用法错误：{message}\n{self.format_usage().rstrip()}")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="fieldsync", description="执法平板离线采集与同步")
    parser.add_argument("--store", help=f"本地数据库路径（默认 $FIELDSYNC_STORE 或 {DEFAULT_STORE}）")
    parser.add_argument("--timezone", metavar="ZONE",
                        help=f"显示时间所用的时区，如 Asia/Shanghai 或 +08:00"
                             f"（默认 ${TIMEZONE_ENV} 或 {OFFICE_TIMEZONE}）")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    enrol = commands.add_parser("enrol", help="用一次性登记码把本机登记为执法平板（需要联网，只需一次）")
    enrol.add_argument("--server", required=True, help="服务器地址，如 https://zf.example.gov.cn")
    enrol.add_argument("code", metavar="CODE", nargs="?",
                       help="管理员签发的登记码，如 ABCD-EFGH-JKLM（24 小时内有效，只能用一次）")
    enrol.add_argument("--device", metavar="ID", help="用 create-device 登记的平板：设备编号（与 --secret-file 一起）")
    enrol.add_argument("--secret-file", metavar="PATH", help="用 create-device 登记的平板：设备密钥文件")

    login = commands.add_parser("login", help="在已登记的平板上登录（需要联网）")
    login.add_argument("--server", required=True, help="服务器地址，如 https://zf.example.gov.cn")
    login.add_argument("--username", required=True)
    login.add_argument("--device", help="本平板的设备编号（可省略：即本机登记的平板）")
    login.add_argument("--password-stdin", action="store_true", help="从标准输入读取密码")

    commands.add_parser("sync", help="推送本机记录并拉取最新任务（需要联网）")
    commands.add_parser("tasks", help="列出本机的检查任务")

    inspect = commands.add_parser("inspect", help="检查记录")
    inspect_commands = inspect.add_subparsers(dest="inspect_command", metavar="ACTION", parser_class=_Parser)
    start = inspect_commands.add_parser("start", help="开始（或加入）一项任务的检查记录")
    start.add_argument("task", metavar="TASK_ID")
    start.add_argument("--place", help="检查地点")
    start.add_argument("--new", action="store_true", help="在本任务的检查记录上重新记下开始时间")
    show = inspect_commands.add_parser("show", help="查看检查记录")
    show.add_argument("inspection", metavar="INSPECTION")
    reopen = inspect_commands.add_parser("reopen", help="重新打开已结束或被退回的检查记录以便修改")
    reopen.add_argument("inspection", metavar="INSPECTION")

    finding = commands.add_parser("finding", help="记录本部门某检查事项的检查结论")
    finding.add_argument("inspection", metavar="INSPECTION")
    finding.add_argument("check_item", metavar="CHECK_ITEM", help="检查事项编号或代码")
    finding.add_argument("--result", required=True, choices=RESULTS)
    finding.add_argument("--note")
    finding.add_argument("--evidence", action="append", default=[], metavar="MEDIA_ID", help="证据文件编号（可重复）")

    measure = commands.add_parser("measure", help="记录柔性措施或强制措施")
    measure.add_argument("inspection", metavar="INSPECTION")
    which = measure.add_mutually_exclusive_group(required=True)
    which.add_argument("--soft", metavar="TEXT", help="柔性措施（说服教育、指导、提醒等）")
    which.add_argument("--coercive", metavar="KIND", choices=COERCIVE_KINDS, help="强制措施类型")
    measure.add_argument("--description", metavar="TEXT", help="强制措施说明（与 --coercive 一起使用）")

    attach = commands.add_parser("attach", help="附加照片、录音或录像作为证据")
    attach.add_argument("inspection", metavar="INSPECTION")
    attach.add_argument("file", metavar="FILE")
    attach.add_argument("--proves", required=True, choices=tuple(PROVES_NAMES))

    finish = commands.add_parser("finish", help="结束检查")
    finish.add_argument("inspection", metavar="INSPECTION")
    finish.add_argument("--conclusion")

    status = commands.add_parser("status", help="待同步、被拒绝和有冲突的记录")
    status.add_argument("--json", action="store_true", help="以 JSON 输出")

    upload = commands.add_parser("upload", help="只上传证据文件（需要联网；sync 也会上传）")
    upload.add_argument("--retry-failed", action="store_true", help="重新上传此前失败的文件")

    dock = commands.add_parser(
        "dock", help="采集工作站：上传执法记录仪录像（无人值守）",
        description="扫描目录中的录像分段（DEVICE_YYYYMMDDHHMMSS_NNNN.MP4），断点续传到服务器并确认。"
                    "凭据也可由环境变量 FIELDSYNC_SERVER、FIELDSYNC_DEVICE_ID、FIELDSYNC_SECRET_FILE "
                    "（或 FIELDSYNC_DEVICE_SECRET）给出")
    dock.add_argument("dir", metavar="DIR", help="执法记录仪挂载或拷贝录像的目录")
    dock.add_argument("--device", metavar="ID", help="只处理该执法记录仪的录像（文件名中的设备编号）")
    dock.add_argument("--server", metavar="URL", help="服务器地址（默认 $FIELDSYNC_SERVER）")
    dock.add_argument("--device-id", metavar="ID",
                      help="用于登录的设备编号：采集站或执法记录仪本身（默认 $FIELDSYNC_DEVICE_ID，其次 --device）")
    dock.add_argument("--secret-file", metavar="PATH", help="设备密钥文件（默认 $FIELDSYNC_SECRET_FILE）")
    dock.add_argument("--utc-offset", default="+08:00", metavar="±HH:MM",
                      help="文件名中时间所用的 UTC 偏移（默认 +08:00）")
    dock.add_argument("--state", metavar="PATH", help="状态库路径（默认 DIR/.fieldsync-dock.db）")
    dock.add_argument("--log", metavar="FILE", help="追加写入英文日志（不含密钥和令牌）")
    when = dock.add_mutually_exclusive_group()
    when.add_argument("--once", action="store_true", help="扫描、上传、确认一轮后退出（默认）")
    when.add_argument("--watch", type=float, metavar="SECONDS", help="每隔 SECONDS 秒扫描一轮，直到中断")
    dock.add_argument("--delete-verified", action="store_true",
                      help="服务器校验通过（verified）后删除本机文件；校验未完成或未通过的文件保留")
    dock.add_argument("--retry-failed", action="store_true", help="重新上传此前失败的文件")
    dock.add_argument("--chunk-mib", type=float, default=4.0, metavar="MIB", help="每次上传的块大小（默认 4 MiB）")
    return parser


def store_path(option: str | None) -> Path:
    return Path(option or os.environ.get("FIELDSYNC_STORE") or DEFAULT_STORE).expanduser()


class _Progress:
    """A one-line progress display on stderr: 推送 500/2000, 上传 12.0/80.0 MiB."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.shown = False
        self._upload_at = 0.0

    def __call__(self, phase: str, done: int, total: int) -> None:
        label = {"push": "推送", "pull": "拉取", "upload": "上传证据文件"}.get(phase, phase)
        if phase == "upload":
            if total < 8 * 1024 * 1024:
                return  # a few photos: no progress needed
            now = time.monotonic()
            if not self.stream.isatty() and now - self._upload_at < 10 and done < total:
                return  # a log, not a terminal: a line every 10 s is enough
            self._upload_at = now
            text = f"{label} {done / 1048576:.1f}/{total / 1048576:.1f} MiB（{done * 100 // max(total, 1)}%）"
        else:
            text = f"{label} {done}/{total}" if phase == "push" else f"{label} {done} 条"
        if self.stream.isatty():
            self.stream.write("\r\033[K" + text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
        self.shown = True

    def end(self) -> None:
        if self.shown and self.stream.isatty():
            self.stream.write("\n")


def _describe(entity: str, fields: dict[str, Any]) -> str:
    name = ENTITY_NAMES.get(entity, entity)
    if entity == "finding" and "result" in fields:
        return f"{name}（{RESULT_NAMES.get(fields['result'], fields['result'])}）"
    if entity == "media" and fields.get("file_name"):
        return f"{name}（{fields['file_name']}）"
    if entity == "inspection" and "task_id" in fields:
        return f"{name}（开始检查）"
    if entity == "inspection" and fields.get("status") == "finished":
        return f"{name}（结束检查）"
    if entity == "inspection" and {"soft_measures", "coercive_measures"} & set(fields):
        return f"{name}（措施）"
    return name


def _print_rejection(out: TextIO, r: Rejection) -> None:
    out.write(f"  ✗ {_describe(r.entity, r.fields)} {r.entity_id}\n    [{r.code}] {r.reason}\n")


def _print_status(out: TextIO, s: Status, zone: tzinfo) -> None:
    who = f"{s.username}@{s.server_url}，设备 {s.device_id}" if s.username else "尚未登录"
    out.write(f"账号：{who}\n")
    if s.needs_login:
        out.write("登录已失效，请重新登录：fieldsync login\n")
    out.write(f"上次推送：{office_time(s.last_push_at, zone) or '从未'}；"
              f"上次拉取：{office_time(s.last_pull_at, zone) or '从未'}\n")
    out.write(f"待推送：{len(s.pending)} 条\n")
    for p in s.pending[:20]:
        error = f"（已尝试 {p.attempts} 次，上次错误 [{p.error_code}] {p.error_reason}）" if p.error_code else ""
        out.write(f"  · {_describe(p.entity, p.fields)} {p.entity_id}{error}\n")
    if len(s.pending) > 20:
        out.write(f"  …… 另有 {len(s.pending) - 20} 条\n")
    _print_uploads(out, s)
    out.write(f"被服务器拒绝：{len(s.rejected)} 条\n")
    for r in s.rejected:
        _print_rejection(out, r)
    out.write(f"冲突：{len(s.conflicts)} 条\n")
    for c in s.conflicts:
        out.write(f"  ! {_describe(c.entity, c.fields)} {c.entity_id}：与他人同时修改了 {', '.join(sorted(c.fields))}；"
                  "以时间较晚者为准，另一值已留存供审核人员查看\n")
        for name, value in c.overridden.items():
            out.write(f"    {name} 现为 {json.dumps(value, ensure_ascii=False)}（您的值为 "
                      f"{json.dumps(c.fields.get(name), ensure_ascii=False)}）\n")


UPLOAD_STATES = {"pending": "待上传", "uploading": "上传中", "done": "已上传", "failed": "失败"}
VERIFICATION_NAMES = {"pending": "校验中", "verified": "校验通过", "failed": "校验未通过", "needs_review": "待人工审核"}


def _mib(size: int) -> str:
    return f"{size / 1048576:.1f} MiB" if size >= 1048576 else f"{size} 字节"


def _print_uploads(out: TextIO, s: Status) -> None:
    done = [u for u in s.uploads if u.status == "done"]
    failed = [u for u in s.uploads if u.status == "failed"]
    waiting = [u for u in s.uploads if u.status in ("pending", "uploading")]
    unqueued = max(0, s.uploads_waiting - len({u.sha256 for u in waiting}))
    if not (s.uploads or s.uploads_waiting):
        return
    out.write(f"待上传证据文件：{len(waiting) + unqueued} 个（已上传 {len(done)} 个，失败 {len(failed)} 个）\n")
    if unqueued:
        out.write(f"  · {unqueued} 个文件的记录尚未推送到服务器，推送后上传\n")
    for u in waiting:
        where = f"已传 {_mib(u.offset)}/{_mib(u.size)}" if u.status == "uploading" else _mib(u.size)
        error = f"（上次错误 [{u.error_code}] {u.error_reason}）" if u.error_code else ""
        out.write(f"  · {UPLOAD_STATES[u.status]} {u.file_name or u.sha256[:12]} {u.media_id}，{where}{error}\n")
    for u in failed:
        out.write(f"  ✗ {u.file_name or u.sha256[:12]} {u.media_id}\n    [{u.error_code}] {u.error_reason}\n")
    for u in done[-5:]:
        check = f"，{VERIFICATION_NAMES.get(u.verification, u.verification)}" if u.verification else ""
        out.write(f"  ✓ {u.file_name or u.sha256[:12]} {u.media_id}（sha256 {u.sha256[:12]}…{check}）\n")
    if len(done) > 5:
        out.write(f"  …… 另有 {len(done) - 5} 个已上传\n")


def _report_uploads(out: TextIO, err: TextIO, report: UploadReport) -> bool:
    """Say what the upload step did; False if something failed or was left unfinished."""
    if report.uploaded or report.already or report.waiting or report.failed or report.error:
        resumed = f"，其中续传 {report.resumed} 个" if report.resumed else ""
        already = f"，服务器已有 {report.already} 个" if report.already else ""
        out.write(f"证据文件：上传 {report.uploaded} 个（{_mib(report.bytes_sent)}{resumed}）{already}；"
                  f"待上传 {report.waiting} 个\n")
    if report.error:
        err.write(f"证据文件上传中断：{report.error}\n文件保存在本机，下次同步时从中断处继续\n")
    if report.failed:
        err.write("以下证据文件被服务器拒绝，不会自动重试（fieldsync upload --retry-failed 可重试）：\n")
        for f in report.failed:
            err.write(f"  ✗ {f.file_name or f.sha256[:12]} {f.media_id}\n    [{f.code}] {f.reason}\n")
    return not (report.failed or report.error)


def _status_json(s: Status) -> dict[str, Any]:
    from dataclasses import asdict
    return asdict(s)


def _print_tasks(out: TextIO, client: FieldClient, zone: tzinfo) -> None:
    tasks = client.tasks()
    if not tasks:
        out.write("本机没有检查任务。联网后执行 fieldsync sync 下载任务。\n")
        return
    department = client.store.get("department_id")
    for task in tasks:
        enterprise = task.get("enterprise") or {}
        out.write(f"{task['id']}  {task.get('title')}  [{task.get('status')}]\n")
        out.write(f"  检查对象：{enterprise.get('name')}（{enterprise.get('credit_code')}）"
                  f"{enterprise.get('address') or ''}\n")
        out.write(f"  时间窗口：{office_time(task.get('window_start'), zone)} ~ "
                  f"{office_time(task.get('window_end'), zone)}\n")
        team = "、".join(f"{m.get('full_name') or m.get('username')}（{m.get('certificate_number') or '无执法证'}）"
                        for m in task.get("team") or [])
        out.write(f"  检查组：{team}\n")
        code = task.get("inspection_code")
        if inspection_code_of(task) and isinstance(code, dict):
            out.write(f"  检查码：{code.get('url')}（有效期至 {office_time(code.get('expires_at'), zone)}）\n")
        else:
            out.write("  检查码：本任务暂无检查码，请联系派发部门\n")
        for item in task.get("check_items") or []:
            mine = "（本部门）" if department and item.get("department_id") == department else ""
            out.write(f"  - {item.get('code', '')} {item.get('title', '')}{mine}  {item['id']}\n")
        for inspection in task.get("inspections") or []:
            pending = "，未同步" if inspection.get("unconfirmed") else ""
            out.write(f"  检查记录 {inspection['id']}（{inspection.get('status', 'open')}{pending}）\n")
            _print_review(out, inspection, zone, indent="    ")


def _print_review(out: TextIO, inspection: dict[str, Any], zone: tzinfo, indent: str = "  ") -> None:
    """The supervisor's latest decision on the record (``review``, written by the server), if any."""
    review = inspection.get("review")
    if not isinstance(review, dict):
        return
    who = (review.get("decided_by") or {}).get("full_name") or "审核人"
    when = office_time(review.get("decided_at"), zone)
    comment = review.get("comment") or "（无意见）"
    if review.get("status") == "returned":
        if inspection.get("status") == "finished":
            out.write(f"{indent}已修改并重新提交，等待审核（退回意见：{comment}；{who} {when}）\n")
            return
        out.write(f"{indent}被退回：{comment}（{who} {when}）\n"
                  f"{indent}请按意见修改后执行 fieldsync finish {inspection['id']} 重新提交\n")
    elif review.get("status") == "approved":
        out.write(f"{indent}已批准：{comment}（{who} {when}）\n")


def _print_inspection(out: TextIO, client: FieldClient, inspection_id: str, zone: tzinfo) -> None:
    view = client.inspection(inspection_id)
    out.write(f"检查记录 {view['id']}（{view.get('status', 'open')}{'，未同步' if view['unconfirmed'] else ''}）\n")
    _print_review(out, view, zone)
    for key, label in (("place", "地点"), ("started_at", "开始"), ("ended_at", "结束"),
                       ("representative", "企业代表"), ("conclusion", "结论")):
        if view.get(key):
            value = office_time(view[key], zone) if key in ("started_at", "ended_at") else view[key]
            out.write(f"  {label}：{value}\n")
    out.write("  检查码：已记录（开始检查时本机持有的检查码）\n" if view.get("inspection_code")
              else "  检查码：未记录（开始检查时本机没有本任务的检查码）\n")
    for text in view.get("soft_measures") or []:
        out.write(f"  柔性措施：{text}\n")
    for measure in view.get("coercive_measures") or []:
        out.write(f"  强制措施：{measure.get('kind')} {measure.get('description', '')}\n")
    for finding in view["findings"]:
        item = client.store.reference("check_item", finding.get("check_item_id", "")) or {}
        out.write(f"  检查结论 {item.get('code', finding.get('check_item_id'))} {item.get('title', '')}："
                  f"{RESULT_NAMES.get(finding.get('result', ''), finding.get('result'))}"
                  f"{'  ' + finding['note'] if finding.get('note') else ''}\n")
    for media in view["media"]:
        out.write(f"  证据 {media['id']} {media.get('file_name')} {media.get('proves')} sha256={media.get('sha256')}\n")
    for signature in view["signatures"]:
        out.write(f"  签名 {signature.get('signer_role')} {signature.get('signer_name') or ''}\n")


def _print_started(out: TextIO, task_id: str, inspection_id: str, before: dict[str, Any] | None, new: bool,
                   zone: tzinfo) -> None:
    """Say what ``inspect start`` did: a new record, a fresh start, or the record already there."""
    if before is None:
        out.write(f"已开始检查：{inspection_id}\n")
    elif new:
        out.write(f"已在该任务的检查记录上重新开始检查（开始时间已更新）：{inspection_id}\n")
    elif before.get("status") == "returned":
        comment = (before.get("review") or {}).get("comment") or "（无意见）"
        out.write(f"该任务的检查记录已被退回：{comment}\n"
                  f"  请按意见修改（fieldsync finding / attach / measure），再执行 fieldsync finish {inspection_id} "
                  "重新提交\n")
    elif before.get("status") == "finished":
        ended = office_time(before.get("ended_at"), zone)
        out.write(f"该任务的检查记录已结束{f'（结束于 {ended}）' if ended else ''}：{inspection_id}\n"
                  "（一个检查任务只有一份联合检查记录）\n"
                  f"  查看记录：fieldsync inspect show {inspection_id}\n"
                  "  任务未关闭前，仍可补充检查结论（fieldsync finding）、证据（fieldsync attach）"
                  "和措施（fieldsync measure）\n"
                  f"  如需重新开始现场检查：fieldsync inspect start {task_id} --new\n")
    else:
        out.write(f"该任务已有进行中的检查记录，已加入：{inspection_id}\n（一个检查任务只有一份联合检查记录）\n")


def _sync(client: FieldClient, out: TextIO, err: TextIO) -> int:
    progress = _Progress(err)
    client.progress = progress
    try:
        report = client.sync()
    finally:
        progress.end()
    push = report.push
    out.write(f"同步完成：推送 {push.sent} 条（新保存 {push.applied}，此前已保存 {push.duplicate}，"
              f"冲突 {push.conflict}，被拒绝 {len(push.rejected)}）；拉取 {report.pull.changes} 条更新\n")
    if push.conflict:
        out.write("有记录与他人同时修改，详见 fieldsync status\n")
    returned = client.returned()
    if returned:
        out.write(f"有 {len(returned)} 份检查记录被审核退回，请查看意见并修改：fieldsync tasks\n")
    uploads_ok = _report_uploads(out, err, report.uploads)
    if push.rejected:
        err.write("以下记录被服务器拒绝，不会自动重试：\n")
        for r in push.rejected:
            _print_rejection(err, r)
        return 1
    return 0 if uploads_ok else 1


def _dock(args: argparse.Namespace, out: TextIO, err: TextIO, transport: Transport | None,
          options: dict[str, Any]) -> int:
    env = os.environ
    server = args.server or env.get("FIELDSYNC_SERVER")
    device_id = args.device_id or env.get("FIELDSYNC_DEVICE_ID") or args.device
    secret_file = args.secret_file or env.get("FIELDSYNC_SECRET_FILE")
    if not server:
        raise UsageError("请用 --server 或环境变量 FIELDSYNC_SERVER 给出服务器地址")
    if not device_id:
        raise UsageError("请用 --device-id 或环境变量 FIELDSYNC_DEVICE_ID 给出登录用的设备编号")
    if secret_file:
        try:
            path = Path(secret_file).expanduser()
            if path.stat().st_mode & 0o077:
                err.write(f"注意：密钥文件 {path} 的权限过宽，建议 chmod 600\n")
            secret = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            err.write(f"无法读取设备密钥文件 {secret_file}：{getattr(exc, 'strerror', None) or exc}\n")
            return 1
    else:
        secret = env.get("FIELDSYNC_DEVICE_SECRET", "").strip()
    if not secret:
        raise UsageError("请用 --secret-file 或环境变量 FIELDSYNC_SECRET_FILE（FIELDSYNC_DEVICE_SECRET）给出设备密钥")
    try:
        offset = parse_utc_offset(args.utc_offset)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if args.watch is not None and args.watch <= 0:
        raise UsageError("--watch 的间隔应大于 0 秒")
    if not 0 < args.chunk_mib <= 1024:
        raise UsageError("--chunk-mib 应在 0 到 1024 之间")
    config = DockConfig(folder=Path(args.dir), server_url=server.rstrip("/"), device_id=device_id, secret=secret,
                        camera=args.device, utc_offset=offset, state_path=Path(args.state) if args.state else None,
                        log_path=Path(args.log) if args.log else None, delete_verified=args.delete_verified,
                        retry_failed=args.retry_failed, chunk_size=max(1, int(args.chunk_mib * 1024 * 1024)))
    options = dict(options)
    passes = options.pop("passes", None)
    try:
        dock = Dock(config, transport=transport, out=out, err=err, **options)
    except ValueError as exc:  # the server address
        err.write(f"{exc}\n")
        return 1
    with dock:
        return dock.run(watch=args.watch, passes=passes)


def main(argv: Sequence[str] | None = None, *, transport: Transport | None = None,
         stdin: TextIO | None = None, stdout: TextIO | None = None, stderr: TextIO | None = None,
         password_prompt: Callable[[str], str] = getpass.getpass,
         client_options: dict[str, Any] | None = None, dock_options: dict[str, Any] | None = None) -> int:
    """Run ``fieldsync``; returns the exit code.

    The keyword arguments let tests (or an embedding app) supply the transport,
    the streams, the password prompt, FieldClient options such as ``sleep`` and
    Dock options (``session``, ``sleep``, ``passes``, …).

    Output to a reader that has gone (``fieldsync tasks | head``) ends the
    command quietly with 141, as for a tool that SIGPIPE ended; what was done
    until then is saved as always, each change being its own transaction.
    """
    out, err = stdout or sys.stdout, stderr or sys.stderr
    try:
        code = _main(argv, transport, stdin, out, err, password_prompt, client_options, dock_options)
        out.flush()  # a pipe's reader may have gone before the buffered output leaves
        return code
    except BrokenPipeError:
        _silence(out, err)
        return EXIT_CLOSED_PIPE


def _silence(*streams: TextIO) -> None:
    """Point the standard streams among ``streams`` at /dev/null, so exiting flushes into nothing."""
    for stream in streams:
        if stream not in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
            continue
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, stream.fileno())
            os.close(devnull)
        except (OSError, ValueError, io.UnsupportedOperation):
            pass


def _main(argv: Sequence[str] | None, transport: Transport | None, stdin: TextIO | None, out: TextIO,
          err: TextIO, password_prompt: Callable[[str], str], client_options: dict[str, Any] | None,
          dock_options: dict[str, Any] | None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
        try:
            zone = office_zone(args.timezone)
        except ValueError as exc:
            source = "--timezone" if args.timezone is not None else f"环境变量 {TIMEZONE_ENV}"
            raise UsageError(f"{source} 无效：{exc}") from None
        if args.command is None:
            raise UsageError(parser.format_usage().rstrip() + "\n请给出一个命令，例如 fieldsync status")
        if args.command == "inspect" and args.inspect_command is None:
            raise UsageError("用法：fieldsync inspect start TASK_ID [--place 地点] | fieldsync inspect show INSPECTION")
        if args.command == "measure" and args.coercive and not args.description:
            raise UsageError("强制措施需要 --description 说明")
        if args.command == "measure" and args.soft and args.description:
            raise UsageError("--description 只用于强制措施（--coercive）")
    except UsageError as exc:
        err.write(f"{exc}\n")
        return 2
    except SystemExit as exc:  # --help
        return int(exc.code or 0)

    if args.command == "dock":
        try:
            return _dock(args, out, err, transport, dock_options or {})
        except UsageError as exc:
            err.write(f"{exc}\n")
            return 2
        except DockError as exc:
            err.write(f"{exc}\n")
            return 1
        except sqlite3.Error as exc:
            err.write(f"状态库暂时无法使用（{exc}）\n")
            return 1
        except KeyboardInterrupt:
            err.write("\n已中断；已完成的部分都已记录，下次从中断处继续\n")
            return 1

    try:
        client = FieldClient(store_path(args.store), transport, **(client_options or {}))
    except StoreError as exc:
        err.write(f"{exc}\n")
        return 1
    try:
        return _run(client, args, out, err, stdin or sys.stdin, password_prompt, zone)
    except FieldClientError as exc:
        err.write(f"{exc}\n")
        return 1
    except UsageError as exc:
        err.write(f"{exc}\n")
        return 2
    except sqlite3.Error as exc:
        err.write(f"本地数据库暂时无法使用（{exc}）；如另一个程序正在同步，请稍后再试\n")
        return 1
    except KeyboardInterrupt:
        err.write("\n已中断。已完成的部分都已保存，未同步的记录仍在本机，可再次执行 fieldsync sync\n")
        return 1
    finally:
        client.close()


def _enrol(client: FieldClient, args: argparse.Namespace, out: TextIO) -> int:
    if args.code and (args.device or args.secret_file):
        raise UsageError("fieldsync enrol: 用法错误：登记码与 --device/--secret-file 只能二选一")
    if args.code:
        enrolled = client.enrol(args.server, args.code)
        department = enrolled.get("department") or {}
        out.write(f"本机已登记为执法平板 {enrolled['device_id']}（{department.get('name') or department.get('code')}"
                  f"{'，' + enrolled['label'] if enrolled.get('label') else ''}），服务器 {enrolled['server_url']}\n"
                  "下一步：fieldsync login --server 服务器地址 --username 用户名\n")
        return 0
    if not (args.device and args.secret_file):
        raise UsageError("fieldsync enrol: 用法错误：请给出登记码，或同时给出 --device 和 --secret-file")
    try:
        secret = Path(args.secret_file).expanduser().read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise UsageError(f"无法读取设备密钥文件 {args.secret_file}：{exc.strerror or exc}") from None
    if not secret:
        raise UsageError(f"设备密钥文件 {args.secret_file} 是空的")
    client.remember_device(args.server, args.device, secret)
    out.write(f"本机已记下平板 {args.device} 的设备密钥，服务器 {args.server.rstrip('/')}\n"
              "下一步：fieldsync login --server 服务器地址 --username 用户名\n")
    return 0


def _run(client: FieldClient, args: argparse.Namespace, out: TextIO, err: TextIO, stdin: TextIO,
         password_prompt: Callable[[str], str], zone: tzinfo) -> int:
    command = args.command
    if command == "enrol":
        return _enrol(client, args, out)
    if command == "login":
        if args.password_stdin:
            password = stdin.readline().rstrip("\r\n")
        else:
            password = password_prompt(f"{args.username} 的密码：")
        if not password:
            raise UsageError("密码不能为空")
        who = client.login(args.server, args.username, password, args.device)
        out.write(f"已登录：{who['username']}，设备 {who['device_id']}，服务器 {who['server_url']}\n"
                  "下一步：fieldsync sync 下载检查任务\n")
        return 0
    if command == "sync":
        return _sync(client, out, err)
    if command == "upload":
        progress = _Progress(err)
        client.progress = progress
        try:
            report = client.upload_media(retry_failed=args.retry_failed)
        finally:
            progress.end()
        ok = _report_uploads(out, err, report)
        if not (report.uploaded or report.already or report.waiting or report.failed or report.error):
            out.write("没有需要上传的证据文件\n")
        return 0 if ok else 1
    if command == "tasks":
        _print_tasks(out, client, zone)
        return 0
    if command == "status":
        status = client.status()
        if args.json:
            out.write(json.dumps(_status_json(status), ensure_ascii=False, indent=2) + "\n")
        else:
            enrolled = client.enrolment()
            if enrolled is None:
                out.write("本机尚未登记为执法平板（请用管理员签发的登记码执行 fieldsync enrol）\n")
            else:
                department = enrolled.get("department") or {}
                out.write(f"本机平板：{enrolled['device_id']}"
                          f"{'（' + department['name'] + '）' if department.get('name') else ''}\n")
            _print_status(out, status, zone)
            returned = client.returned()
            if returned:
                out.write(f"被审核退回、待修改：{len(returned)} 份（fieldsync tasks 查看意见）\n")
        return 0
    if command == "inspect":
        if args.inspect_command == "show":
            _print_inspection(out, client, client.resolve("inspection", args.inspection), zone)
            return 0
        if args.inspect_command == "reopen":
            inspection_id = client.resolve("inspection", args.inspection)
            client.reopen(inspection_id)
            out.write(f"已重新打开检查记录：{inspection_id}\n"
                      f"修改完成后执行 fieldsync finish {inspection_id} 重新提交\n")
            return 0
        task_id = client.resolve("task", args.task)
        before = client.entity(inspection_id_for(task_id))
        inspection_id = client.start_inspection(task_id, place=args.place, new=args.new)
        _print_started(out, task_id, inspection_id, before, args.new, zone)
        return 0

    inspection_id = client.resolve("inspection", args.inspection)
    if command == "finding":
        item_id = client.resolve("check_item", args.check_item)
        evidence = [client.resolve("media", m) for m in args.evidence]
        finding_id = client.record_finding(inspection_id, item_id, args.result, note=args.note, evidence=evidence)
        out.write(f"已记录检查结论（{RESULT_NAMES[args.result]}）：{finding_id}\n")
    elif command == "measure":
        if args.soft is not None:
            client.add_measure(inspection_id, soft=args.soft)
            out.write("已记录柔性措施\n")
        else:
            client.add_measure(inspection_id, coercive_kind=args.coercive, description=args.description)
            out.write("已记录强制措施\n")
    elif command == "attach":
        media_id = client.attach(inspection_id, args.file, args.proves)
        media = client.entity(media_id) or {}
        out.write(f"已保存证据（{PROVES_NAMES[args.proves]}）：{media_id}\n  sha256 {media.get('sha256')}，"
                  f"{media.get('size')} 字节\n")
    elif command == "finish":
        client.finish(inspection_id, conclusion=args.conclusion)
        out.write(f"已结束检查：{inspection_id}\n")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
