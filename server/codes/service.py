"""Inspection codes (涉企行政检查码): issued for a dispatched task, checked by anyone who scans one.

Other capabilities call:

- ``issued_code(task) -> IssuedCode | None``: the code of a dispatched (or closed) task: its token, its
  URL under ``/public/c/`` and when it expires; None for a task that is not the team's to carry out.
- ``check_code(token, now) -> CodeCheck``: what the public page shows for a scanned token: whether this
  server signed it, whether it is still the task's current code, and the visit as the enterprise may see it.
- ``verify_token(token) -> Claims``: the claims of a token this server signed (BadToken otherwise).
- ``public_keys() -> dict[str, Ed25519PublicKey]``: the keys whose tokens are accepted, by key id.

The token itself is ``server.codes.token`` (pure); the key is ``code-key.pem`` under the installation's
var folder, generated on first use and never rotated silently (printed codes must stay checkable).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from flask import current_app, has_request_context, request
from sqlalchemy import select

from server import keyfiles
from server.codes.token import BadToken, Claims, key_id, mask_credit_code, sign, verify
from server.db_types import office_day
from server.directory.models import CheckItem, Department, User
from server.directory.service import certificate_status_on
from server.extensions import db
from server.planning.approval import task_approvals
from server.planning.frequency import VisitCount, visit_count
from server.tasks.models import InspectionTask, TaskStatus

KEY_FILE = keyfiles.KEY_FILES["inspection codes"]
URL_PREFIX = "/public/c/"
#: Task states in which a code exists: the team may carry the visit out (or has).
CODED_STATUSES = (TaskStatus.DISPATCHED, TaskStatus.CLOSED)


@dataclass(frozen=True)
class IssuedCode:
    token: str
    url: str
    expires_at: datetime


def _key() -> Ed25519PrivateKey:
    cache = current_app.extensions.setdefault("inspection_code_key", {})
    var_dir: Path = current_app.config["SETTINGS"].var_dir
    key = cache.get(var_dir)
    if key is None:
        key = cache[var_dir] = keyfiles.private_key(var_dir / KEY_FILE)
    return key


def public_keys() -> dict[str, Ed25519PublicKey]:
    public = _key().public_key()
    return {key_id(public): public}


def claims_for(task: InspectionTask) -> Claims:
    departments = db.session.scalars(select(Department.name).where(
        Department.id.in_({task.department_id} | {m.department_id for m in task.members})))
    return Claims(key_id=key_id(_key().public_key()), task_id=task.id, enterprise_name=task.enterprise.name,
                  credit_code_masked=mask_credit_code(task.enterprise.credit_code),
                  departments=tuple(sorted(departments)), window_start=task.window_start,
                  window_end=task.window_end, issued_at=task.dispatched_at or task.created_at)


def public_base_url() -> str:
    """Where the public reaches this server: INSPECT_ONCE_PUBLIC_URL, else the address the request came to."""
    configured = current_app.config["SETTINGS"].public_url
    if configured:
        return configured.rstrip("/")
    if has_request_context():
        return request.host_url.rstrip("/")
    return f"http://{current_app.config['SETTINGS'].host}:{current_app.config['SETTINGS'].port}"


def issued_code(task: InspectionTask) -> IssuedCode | None:
    if task.status not in CODED_STATUSES:
        return None
    token = sign(_key(), claims_for(task))
    return IssuedCode(token=token, url=public_base_url() + URL_PREFIX + token, expires_at=task.window_end)


def verify_token(token: str) -> Claims:
    return verify(token, public_keys())


def mask_name(full_name: str) -> str:
    """The surname and a star per other character: 张三 → 张*, 欧阳娜娜 → 欧***."""
    name = (full_name or "").strip()
    if not name:
        return "*"
    return name[0] + "*" * max(1, len(name) - 1)


@dataclass(frozen=True)
class PublicApproval:
    department: str
    approver: str | None  # masked name
    approved_at: datetime | None


@dataclass(frozen=True)
class PublicInspector:
    name: str  # masked
    department: str
    certificate_status: str  # valid | suspended | revoked | expired | not-yet-valid | none


@dataclass(frozen=True)
class PublicCheckItem:
    title: str
    department: str
    legal_basis: str


@dataclass(frozen=True)
class CodeCheck:
    """A scanned token, as the public page shows it.

    ``state``: valid · not-yet-valid (before the window) · expired (after it) · cancelled ·
    superseded (the task changed since: a newer code exists) · withdrawn (sent back for approval) ·
    unknown-task · forged (not signed by this server) · malformed.
    """

    state: str
    message: str
    claims: Claims | None = None
    task: InspectionTask | None = None
    approvals: tuple[PublicApproval, ...] = ()
    inspectors: tuple[PublicInspector, ...] = ()
    check_items: tuple[PublicCheckItem, ...] = ()
    frequency: VisitCount | None = None
    day: date | None = None

    @property
    def genuine(self) -> bool:
        """Signed by this server for a task it knows (whatever the task's state now)."""
        return self.task is not None


STATE_MESSAGES = {
    "valid": "检查码有效：本次检查已登记并经批准",
    "not-yet-valid": "检查码尚未生效：本次检查的计划时间还没有开始",
    "expired": "检查码已过期：计划检查时间已经结束，不能再凭此码入企检查",
    "cancelled": "检查任务已取消：不能凭此码入企检查",
    "superseded": "检查码已作废：该检查任务已变更并换发新码，请检查人员出示最新检查码",
    "withdrawn": "检查任务已退回重新审批：在重新批准前不能凭此码入企检查",
    "unknown-task": "系统中没有该检查码对应的检查任务",
}


def check_code(token: str, now: datetime) -> CodeCheck:
    try:
        claims = verify_token(token)
    except BadToken as exc:
        return CodeCheck("malformed" if exc.code == "malformed" else "forged", str(exc))
    task = db.session.get(InspectionTask, claims.task_id)
    if task is None:
        return CodeCheck("unknown-task", STATE_MESSAGES["unknown-task"], claims)
    state = _state(task, claims, token, now)
    return CodeCheck(state, STATE_MESSAGES[state], claims, task, *_visit(task, now))


def _state(task: InspectionTask, claims: Claims, token: str, now: datetime) -> str:
    if task.status == TaskStatus.CANCELLED:
        return "cancelled"
    if task.status not in CODED_STATUSES:
        return "withdrawn"
    if sign(_key(), claims_for(task)) != token:
        return "superseded"
    if now < task.window_start:
        return "not-yet-valid"
    if now > task.window_end:
        return "expired"
    return "valid"


def _visit(task: InspectionTask, now: datetime) -> tuple[tuple[PublicApproval, ...], tuple[PublicInspector, ...],
                                                         tuple[PublicCheckItem, ...], VisitCount, date]:
    names = {row.id: row.name for row in db.session.execute(select(Department.id, Department.name))}
    approvers = {a.decided_by_id for a in task_approvals(task.id) if a.decided_by_id}
    people = {u.id: u for u in db.session.scalars(select(User).where(User.id.in_(approvers)))} if approvers else {}
    approvals = tuple(
        PublicApproval(names.get(a.department_id, ""),
                       mask_name(people[a.decided_by_id].full_name) if a.decided_by_id in people else None,
                       a.decided_at)
        for a in task_approvals(task.id))
    day = office_day(now)
    inspectors = []
    for member in task.members:
        certificates = member.user.certificates
        standing = "none"
        if certificates:
            statuses = [certificate_status_on(c, day) for c in certificates]
            standing = "valid" if "valid" in statuses else statuses[0]
        inspectors.append(PublicInspector(mask_name(member.user.full_name), names.get(member.department_id, ""),
                                          standing))
    item_ids = [i.check_item_id for i in task.check_items]
    items = tuple(PublicCheckItem(i.title, names.get(i.department_id, ""), i.legal_basis)
                  for i in db.session.scalars(select(CheckItem).where(CheckItem.id.in_(item_ids))
                                              .order_by(CheckItem.department_id, CheckItem.code))) if item_ids else ()
    return approvals, tuple(inspectors), items, visit_count(task), day
