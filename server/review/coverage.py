"""Review coverage (issue 17): how much of each video each reviewer actually fetched, and the sampling quota.

The measure is bytes. Every stream request of a reviewer is one ``media.stream`` audit entry whose details
hold the status and the ``Content-Range`` sent; the union of those byte intervals, per reviewer per file,
over the file's size is that reviewer's coverage of the file. Bytes rather than seconds: the audit log
records bytes exactly, while seconds would need the container's index (a share of the bytes is a share
of the time for the steady bitrate of bodycam footage, and never credits a skipped part).

A player asks for ``bytes=0-`` and stops reading when it has enough; the review app's stream therefore
answers at most ``STREAM_CHUNK`` bytes a request (``capped_range``), so an entry claims only what was sent,
and coverage overstates what was played by at most the player's read-ahead. A whole-file answer (200, no
Range asked: a download) counts as the whole file fetched.
"""
from __future__ import annotations

import math
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import Any

from sqlalchemy import select

from server.audit.models import ActorKind, AuditEntry, Outcome
from server.audit.service import record as audit
from server.auth.policy import OFFICE, Permission, Principal, can
from server.db_types import OFFICE_TIMEZONE, utcnow
from server.directory.models import Department, User
from server.errors import Problem
from server.extensions import db
from server.review import service
from server.review.models import ReviewQuota
from server.sync.models import SyncedEntity

STREAM_CHUNK = 4 * 1024 * 1024  # bytes answered at most per request of the review player (a few seconds)
FULL = 0.95                     # a file is watched in full at this coverage by one reviewer
QUOTA_ROLES = frozenset({"head", "admin"})  # who sets a department's quota (a head their own, an admin any)
_IDS_PER_QUERY = 500
_OPEN_RANGE = re.compile(r"^\s*bytes\s*=\s*(\d{1,19})-(\d{0,19})\s*$", re.IGNORECASE)
_CONTENT_RANGE = re.compile(r"^bytes (\d{1,19})-(\d{1,19})/(\d{1,19})$")

Interval = tuple[int, int]  # [start, end): bytes start … end - 1


# ---- intervals (plain inputs, no database) ------------------------------------------------------

def merge(intervals: Iterable[Interval]) -> list[Interval]:
    """The union of half-open intervals, sorted and disjoint (touching ones joined); empty ones dropped."""
    merged: list[Interval] = []
    for start, end in sorted((s, e) for s, e in intervals if e > s):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def coverage(intervals: Iterable[Interval], size: int) -> float:
    """The share (0–1) of a file of ``size`` bytes covered by the union of ``intervals`` (cut to the file)."""
    if size <= 0:
        return 0.0
    inside = ((max(0, s), min(size, e)) for s, e in intervals)
    return sum(e - s for s, e in merge(inside)) / size


def capped_range(header: str | None) -> str | None:
    """The Range to answer for the review player: one ``bytes=a-`` or ``bytes=a-b`` longer than
    ``STREAM_CHUNK`` is cut to its first chunk (a shorter 206 is allowed; players ask again)."""
    match = _OPEN_RANGE.match(header or "")
    if match is None:
        return header
    start = int(match.group(1))
    if match.group(2) and int(match.group(2)) - start < STREAM_CHUNK:
        return header
    return f"bytes={start}-{start + STREAM_CHUNK - 1}"


def served(details: Mapping[str, Any], size: int) -> Interval | None:
    """The bytes a ``media.stream`` audit entry says were sent: its Content-Range (206), the file (200)."""
    status = details.get("status")
    if status == 200:
        return (0, size)
    if status != 206:
        return None
    match = _CONTENT_RANGE.match(str(details.get("content_range") or ""))
    if match is None:
        return None
    return (int(match.group(1)), int(match.group(2)) + 1)


# ---- coverage from the audit log ----------------------------------------------------------------

@dataclass(frozen=True)
class Watch:
    user_id: uuid.UUID
    name: str
    share: float  # 0–1

    @property
    def percent(self) -> int:
        """Rounded down, so 100% is shown only for a file watched to its last byte."""
        return math.floor(self.share * 100 + 1e-9)


@dataclass
class FileCoverage:
    media_id: uuid.UUID
    size: int
    watches: list[Watch] = field(default_factory=list)  # the reviewers who streamed it, the most watched first

    @property
    def full(self) -> bool:
        """Watched in full (``FULL``) by at least one reviewer."""
        return any(w.share >= FULL for w in self.watches)


def file_coverage(sizes: Mapping[uuid.UUID, int]) -> dict[uuid.UUID, FileCoverage]:
    """Per file (id → size in bytes), each office user's coverage from their successful audited streams."""
    found: dict[uuid.UUID, dict[str, list[Interval]]] = {media_id: {} for media_id in sizes}
    by_text = {str(media_id): media_id for media_id in sizes}
    ids = list(by_text)
    for begin in range(0, len(ids), _IDS_PER_QUERY):
        rows = db.session.execute(select(AuditEntry.object_id, AuditEntry.actor_id, AuditEntry.details).where(
            AuditEntry.action == "media.stream", AuditEntry.object_type == "media",
            AuditEntry.object_id.in_(ids[begin:begin + _IDS_PER_QUERY]), AuditEntry.outcome == Outcome.SUCCESS,
            AuditEntry.actor_kind == ActorKind.USER))
        for object_id, actor_id, details in rows:
            media_id = by_text[object_id]
            interval = served(details if isinstance(details, dict) else {}, sizes[media_id])
            if interval is not None and actor_id:
                found[media_id].setdefault(actor_id, []).append(interval)
    actors: set[uuid.UUID] = set()
    for per_actor in found.values():
        for actor_id in per_actor:
            try:
                actors.add(uuid.UUID(actor_id))
            except ValueError:
                continue
    # Reviewers are office users: an inspector fetching a file through the API is not reviewing it.
    people = {str(u.id): u for u in db.session.scalars(select(User).where(
        User.id.in_(actors), User.role.in_(sorted(OFFICE))))} if actors else {}
    result = {}
    for media_id, per_actor in found.items():
        watches = [Watch(people[actor].id, people[actor].full_name, coverage(intervals, sizes[media_id]))
                   for actor, intervals in per_actor.items() if actor in people]
        watches.sort(key=lambda w: (-w.share, w.name))
        result[media_id] = FileCoverage(media_id, sizes[media_id], watches)
    return result


@dataclass(frozen=True)
class Footage:
    """An inspection's recordings and how many of them someone watched in full."""

    videos: int
    full: int

    @property
    def complete(self) -> bool:
        return self.videos > 0 and self.full == self.videos

    @property
    def percent(self) -> int:
        return math.floor(100 * self.full / self.videos) if self.videos else 0


def footage(inspection: SyncedEntity) -> tuple[Footage, dict[uuid.UUID, FileCoverage]]:
    files = file_coverage(service.video_sizes(inspection))
    return Footage(len(files), sum(1 for f in files.values() if f.full)), files


def sees_coverage(principal: Principal, department_id: uuid.UUID) -> bool:
    """Coverage is the department's own business: its reviewers (and administrators) see it."""
    return can(principal, Permission.USE_REVIEW) and (principal.is_admin or principal.department_id == department_id)


def queue_footage(principal: Principal, inspections: Iterable[SyncedEntity]) -> dict[uuid.UUID, Footage]:
    """The footage figures of a page of queue rows, for the rows the caller's department owns."""
    return {i.id: footage(i)[0] for i in inspections if sees_coverage(principal, i.department_id)}


# ---- the sampling quota -------------------------------------------------------------------------

@dataclass(frozen=True)
class QuotaStatus:
    """What a department's quota asks of this calendar month (office time) and what it still needs."""

    quota: ReviewQuota
    month: date                # the first day of the month
    coercive: int              # records with coercive measures and footage
    coercive_pending: int      # of those, not yet watched in full (0 when the quota does not ask it)
    others: int                # the other records with footage
    others_watched: int        # of those, watched in full
    others_needed: int         # still to be watched in full to reach the share

    @property
    def met(self) -> bool:
        return self.coercive_pending == 0 and self.others_needed == 0


def month_of(moment: datetime) -> tuple[date, datetime, datetime]:
    """The calendar month (office time) holding ``moment``: its first day, its start and its end in UTC."""
    first = moment.astimezone(OFFICE_TIMEZONE).date().replace(day=1)
    following = first.replace(year=first.year + 1, month=1) if first.month == 12 else first.replace(
        month=first.month + 1)
    return (first, datetime.combine(first, time.min, OFFICE_TIMEZONE).astimezone(UTC),
            datetime.combine(following, time.min, OFFICE_TIMEZONE).astimezone(UTC))


def needed(percent: int, total: int, watched: int) -> int:
    """How many more of ``total`` records must be watched for ``percent`` of them (rounded up) to be."""
    return max(0, math.ceil(total * percent / 100) - watched)


def quota_status(principal: Principal, department_id: uuid.UUID) -> QuotaStatus | None:
    """This month's quota of the department and what it still needs; None: no quota set, or not the
    caller's department. Records count by their visit date; only records with footage count."""
    if not sees_coverage(principal, department_id):
        return None
    quota = db.session.get(ReviewQuota, department_id)
    if quota is None:
        return None
    first, start, end = month_of(utcnow())
    coercive = coercive_pending = others = others_watched = 0
    for inspection in service.visited_between(department_id, start, end):
        figures, _ = footage(inspection)
        if not figures.videos:
            continue
        if service.needs_legal_review(inspection):
            coercive += 1
            coercive_pending += int(quota.coercive_in_full and not figures.complete)
        else:
            others += 1
            others_watched += int(figures.complete)
    return QuotaStatus(quota, first, coercive, coercive_pending, others, others_watched,
                       needed(quota.other_percent, others, others_watched))


def get_quota(principal: Principal, department_id: uuid.UUID) -> ReviewQuota | None:
    _quota_department(principal, department_id)
    return db.session.get(ReviewQuota, department_id)


def _quota_department(principal: Principal, department_id: uuid.UUID) -> Department:
    department = db.session.get(Department, department_id)
    if department is None or not sees_coverage(principal, department_id):
        raise Problem(404, "not-found", "部门不存在")
    if principal.role not in QUOTA_ROLES:
        raise Problem(403, "forbidden", "只有本部门负责人或管理员可以设置抽查要求")
    return department


def set_quota(principal: Principal, department_id: uuid.UUID, coercive_in_full: bool,
              other_percent: int) -> ReviewQuota:
    """A head sets their department's quota (an administrator any department's)."""
    department = _quota_department(principal, department_id)
    if not 0 <= other_percent <= 100:
        raise Problem(422, "validation-failed", "抽看比例须在 0 到 100 之间",
                      errors={"other_percent": ["between 0 and 100"]})
    row = db.session.get(ReviewQuota, department.id) or ReviewQuota(department_id=department.id)
    row.coercive_in_full, row.other_percent = coercive_in_full, other_percent
    row.updated_by_id, row.updated_at = principal.user_id, utcnow()
    db.session.add(row)
    db.session.flush()
    audit("review_quota.set", object_type="department", object_id=str(department.id), actor=principal,
          details={"coercive_in_full": coercive_in_full, "other_percent": other_percent})
    return row
