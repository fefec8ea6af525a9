"""What a supervisor must look at on an inspection record: the rules, on plain facts.

The service (``server.verification.inspections``) gathers the facts of one
inspection from the database — its window, its team and their certificates,
its evidence with each file's verification report — and ``assess`` turns them
into flags. Nothing here touches the database, so every rule is tested on
hand-made facts.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from media.continuity import Segment, window_coverage
from server.clocks.ledger import describe_offset
from server.db_types import OFFICE_TIMEZONE, office_day

#: Bumped whenever a rule is added or changed: the sweeper re-assesses inspections assessed by older rules.
#: 2: code-missing, outside-window, late-registration, not-on-team (issue 18).
#: 3: clock-offset, clock-jumped-back (issue 17, the clock ledger).
#: 4: capture-provenance (issue 17, signed capture manifests).
RULES_VERSION = 4
#: A record first reaching the server this long after the visit ended was synced unusually late.
LATE_SYNC_AFTER = timedelta(hours=48)
#: Between bodycam segments, differences up to this many seconds are clock jitter, not gaps.
GAP_TOLERANCE_SECONDS = 2.0
#: A tablet's clock (which dates the visit) and the server's (which dates the task) may differ this much.
CLOCK_TOLERANCE = timedelta(minutes=5)
#: A capturing device's clock further than this from the server's at a sync around the capture
#: (INSPECT_ONCE_CLOCK_OFFSET_LIMIT_SECONDS) leaves its capture times untrusted.
CLOCK_OFFSET_LIMIT = timedelta(seconds=300)

FLAG_LABELS: dict[str, str] = {
    "certificate-missing": "未见亮证",
    "certificate-unreadable": "执法证无法识别",
    "certificate-not-own": "出示的不是检查组成员本人的执法证",
    "certificate-invalid": "执法证在检查当日无效",
    "footage-missing": "采取强制措施但无执法记录仪视频",
    "recording-gap": "执法记录仪录像不连续",
    "lens-covered": "镜头被遮挡",
    "hash-mismatch": "文件哈希值与采集时不一致",
    "media-failed": "证据文件损坏或无法解码",
    "evidence-missing": "证据文件尚未上传",
    "late-sync": "记录同步过晚",
    "merge-conflict": "多人编辑冲突",
    "code-missing": "未凭有效检查码检查",
    "outside-window": "检查时间不在批准时段内",
    "late-registration": "补登记的检查",
    "not-on-team": "检查组以外人员记录",
    "capture-provenance": "采集签名存疑",
    "clock-offset": "采集设备时钟偏差过大",
    "clock-jumped-back": "采集设备时钟曾被调回",
}


@dataclass(frozen=True)
class Flag:
    code: str
    severity: str  # "error" | "warning"
    message: str
    details: dict[str, Any] = field(default_factory=dict)
    media_id: uuid.UUID | None = None


@dataclass(frozen=True)
class CertificateFacts:
    """A certificate read off the evidence (by its number) as the directory knows it."""

    number: str
    holder_id: uuid.UUID
    holder_name: str
    status_on_day: str  # valid | suspended | revoked | expired | not-yet-valid


@dataclass(frozen=True)
class MemberFacts:
    user_id: uuid.UUID
    name: str
    certificate_numbers: tuple[str, ...]


@dataclass(frozen=True)
class Sighting:
    """A certificate QR text read in a file, seconds from the file's start (None for a photo)."""

    text: str
    start: float | None
    end: float | None


@dataclass(frozen=True)
class EvidenceFacts:
    """One file of the inspection's evidence and what its verification found."""

    media_id: uuid.UUID | None  # None: the tablet synced the record but the file has not arrived
    source: str  # "record" | "bodycam"
    status: str  # pending | verified | failed | needs_review | missing | quarantined
    kind: str | None = None  # video | photo | audio (from the probe)
    proves: str | None = None
    start: datetime | None = None
    duration: float | None = None
    device_id: str | None = None
    reason_codes: tuple[str, ...] = ()
    # The file's capture-provenance reasons (server.provenance) that bear on it, as (code, message);
    # a legacy unsigned file (its device has no key) is not among them.
    provenance: tuple[tuple[str, str], ...] = ()
    sightings: tuple[Sighting, ...] = ()
    unreadable_code: bool = False
    covered: tuple[tuple[float | None, float | None], ...] = ()
    name: str | None = None

    @property
    def end(self) -> datetime | None:
        if self.start is None or self.duration is None:
            return None
        return self.start + timedelta(seconds=self.duration)

    @property
    def usable(self) -> bool:
        """Whether what the analysis saw in it can be relied on."""
        return self.status in ("verified", "needs_review")


@dataclass(frozen=True)
class CodeFacts:
    """The inspection code the record carries (``inspection_code``), as this server reads it.

    ``status``: valid (signed by this server, for this task) · absent · not-ours (malformed, an unknown
    key or a bad signature: ``reason`` says which) · other-task.
    """

    status: str
    reason: str | None = None
    window_start: datetime | None = None  # the window the code names, when valid
    window_end: datetime | None = None


@dataclass(frozen=True)
class TaskFacts:
    """The task the inspection carries out, as registered."""

    window_start: datetime
    window_end: datetime
    dispatched_at: datetime | None  # when its code first existed
    late_registration_reason: str | None = None


@dataclass(frozen=True)
class RecorderFacts:
    """Someone who created records of the inspection (the record itself, findings, media, signatures)."""

    user_id: uuid.UUID
    name: str
    kinds: tuple[str, ...]  # entity kinds, sorted
    records: int


@dataclass(frozen=True)
class ClockFacts:
    """A capture time read against its device's clock ledger (``server.clocks``).

    Offsets are device clock − server time at the device's syncs nearest the capture time by its own clock,
    before and after it (None: no such sync). ``jumped_back_by``: the clock was set back by about this much
    between two syncs around the capture; ``behind_by``: a sync after the file reached the server showed the
    device's clock this far *before* the capture time (the capture lies in the device's future).
    """

    media_id: uuid.UUID | None
    name: str
    device_id: str
    captured_at: datetime  # as the device's clock stated it
    before: timedelta | None
    after: timedelta | None
    jumped_back_by: timedelta | None = None
    behind_by: timedelta | None = None


@dataclass(frozen=True)
class InspectionFacts:
    inspection_id: uuid.UUID
    started_at: datetime | None
    ended_at: datetime | None
    first_received_at: datetime
    members: tuple[MemberFacts, ...]
    certificates: dict[str, CertificateFacts]  # QR text -> certificate, for the texts the directory knows
    coercive_measures: int
    evidence: tuple[EvidenceFacts, ...]
    conflicts: int = 0
    late_after: timedelta = LATE_SYNC_AFTER
    gap_tolerance: float = GAP_TOLERANCE_SECONDS
    # The task, the code and the recorders: None/() where not known (the rules on them then stay silent).
    task: TaskFacts | None = None
    code: CodeFacts | None = None
    recorders: tuple[RecorderFacts, ...] = ()
    clock_tolerance: timedelta = CLOCK_TOLERANCE
    clocks: tuple[ClockFacts, ...] = ()
    clock_offset_limit: timedelta = CLOCK_OFFSET_LIMIT


def inspection_day(started_at: datetime | None) -> date | None:
    """The calendar day of the visit where the office is, not in UTC."""
    return office_day(started_at) if started_at else None


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat() if moment else None


def _at(evidence: EvidenceFacts, offset: float | None) -> str | None:
    if evidence.start is None or offset is None:
        return None
    return _iso(evidence.start + timedelta(seconds=offset))


def _certificate_flags(facts: InspectionFacts) -> list[Flag]:
    flags: list[Flag] = []
    usable = [e for e in facts.evidence if e.usable]
    waiting = any(e.status in ("pending", "missing") for e in facts.evidence)
    team = {m.user_id for m in facts.members}
    shown: set[uuid.UUID] = set()
    reported: set[str] = set()
    for evidence in usable:
        for sighting in evidence.sightings:
            known = facts.certificates.get(sighting.text)
            seen = {"number": sighting.text, "start": _at(evidence, sighting.start), "end": _at(evidence, sighting.end)}
            if known is None or known.holder_id not in team:
                if sighting.text not in reported:
                    reported.add(sighting.text)
                    holder = f"（持证人：{known.holder_name}）" if known else "（系统中无此证件）"
                    flags.append(Flag("certificate-not-own", "error",
                                      f"识别到的执法证 {sighting.text}{holder}不属于检查组成员", seen,
                                      evidence.media_id))
                continue
            shown.add(known.holder_id)
            if known.status_on_day != "valid" and sighting.text not in reported:
                reported.add(sighting.text)
                flags.append(Flag("certificate-invalid", "error",
                                  f"{known.holder_name} 的执法证 {known.number} "
                                  f"在检查当日无效（{_STATUS_WORDS[known.status_on_day]}）",
                                  {**seen, "status": known.status_on_day, "user_id": str(known.holder_id)},
                                  evidence.media_id))
    unreadable = [e for e in usable if e.unreadable_code]
    for member in facts.members:
        if member.user_id in shown:
            continue
        who = {"user_id": str(member.user_id), "name": member.name}
        if not member.certificate_numbers:
            flags.append(Flag("certificate-invalid", "error", f"{member.name} 没有执法证记录，不能参加执法检查",
                              {**who, "status": "none"}))
        elif unreadable:
            flags.append(Flag("certificate-unreadable", "error",
                              f"未能识别 {member.name} 的执法证：画面中的二维码无法读取",
                              {**who, "media": [str(e.media_id) for e in unreadable]}, unreadable[0].media_id))
        elif not waiting:
            flags.append(Flag("certificate-missing", "error", f"证据中未见 {member.name} 出示执法证", who))
    return flags


_STATUS_WORDS = {"valid": "有效", "suspended": "已暂扣", "revoked": "已吊销", "expired": "已过期",
                 "not-yet-valid": "尚未生效"}


def _overlaps_window(evidence: EvidenceFacts, facts: InspectionFacts) -> bool:
    if facts.started_at is None or evidence.start is None or evidence.end is None:
        return True  # cannot tell: do not claim it is missing
    window_end = facts.ended_at or facts.started_at
    return evidence.start <= window_end and evidence.end >= facts.started_at


def _footage_flags(facts: InspectionFacts) -> list[Flag]:
    if not facts.coercive_measures:
        return []
    videos = [e for e in facts.evidence if e.kind == "video" and e.usable and _overlaps_window(e, facts)]
    waiting = any(e.status in ("pending", "missing") for e in facts.evidence)
    if videos or waiting:
        return []
    return [Flag("footage-missing", "error",
                 f"采取了 {facts.coercive_measures} 项强制措施，但没有覆盖检查过程的执法记录仪视频",
                 {"coercive_measures": facts.coercive_measures})]


def _gap_flags(facts: InspectionFacts) -> list[Flag]:
    if facts.started_at is None or facts.ended_at is None or facts.ended_at <= facts.started_at:
        return []
    by_device: dict[str, list[EvidenceFacts]] = {}
    for evidence in facts.evidence:
        if evidence.source == "bodycam" and evidence.device_id and evidence.start and evidence.duration is not None \
                and evidence.status not in ("failed", "quarantined") and _overlaps_window(evidence, facts):
            # A device with no footage in the window did not record this visit: that is
            # footage-missing's business, not a gap.
            by_device.setdefault(evidence.device_id, []).append(evidence)
    flags = []
    for device_id, segments in sorted(by_device.items()):
        coverage = window_coverage(
            [Segment.from_datetime(s.start, s.duration, s.name) for s in segments
             if s.start and s.duration is not None],
            facts.started_at.timestamp(), facts.ended_at.timestamp(), tolerance=facts.gap_tolerance)
        if not coverage.gaps:
            continue
        gaps = [{"start": _iso(datetime.fromtimestamp(g.start, UTC)),
                 "end": _iso(datetime.fromtimestamp(g.end, UTC)),
                 "seconds": round(g.duration, 1), "after": g.after, "before": g.before} for g in coverage.gaps]
        missing = sum(g.duration for g in coverage.gaps)
        flags.append(Flag("recording-gap", "warning",
                          f"执法记录仪 {device_id} 在检查期间有 {len(gaps)} 处录像中断，共缺少 {missing:.0f} 秒",
                          {"device_id": device_id, "gaps": gaps, "missing_seconds": round(missing, 1)}))
    return flags


def _file_flags(facts: InspectionFacts) -> list[Flag]:
    flags = []
    for evidence in facts.evidence:
        label = evidence.name or (str(evidence.media_id) if evidence.media_id else "证据")
        if evidence.status == "quarantined" or "hash-mismatch" in evidence.reason_codes:
            flags.append(Flag("hash-mismatch", "error",
                              f"{label} 的内容与采集时记录的 SHA-256 不一致，可能被改动", {"name": label},
                              evidence.media_id))
        elif evidence.status == "failed":
            flags.append(Flag("media-failed", "error",
                              f"{label} 未通过完整性校验（{'、'.join(evidence.reason_codes)}）",
                              {"name": label, "reasons": list(evidence.reason_codes)}, evidence.media_id))
        elif evidence.status == "missing":
            flags.append(Flag("evidence-missing", "warning", f"{label} 的记录已同步，但文件尚未上传", {"name": label}))
        if evidence.usable and evidence.covered:
            intervals = [{"start": _at(evidence, start), "end": _at(evidence, end), "offset_start": start,
                          "offset_end": end} for start, end in evidence.covered]
            flags.append(Flag("lens-covered", "warning", f"{label} 中有 {len(intervals)} 段画面疑似镜头被遮挡",
                              {"name": label, "intervals": intervals}, evidence.media_id))
    return flags


def _sync_flags(facts: InspectionFacts) -> list[Flag]:
    flags = []
    ended = facts.ended_at or facts.started_at
    if ended is not None and facts.first_received_at - ended > facts.late_after:
        hours = (facts.first_received_at - ended).total_seconds() / 3600
        flags.append(Flag("late-sync", "warning", f"检查结束 {hours:.0f} 小时后记录才首次同步到服务器",
                          {"hours": round(hours, 1), "ended_at": _iso(ended),
                           "first_received_at": _iso(facts.first_received_at)}))
    if facts.conflicts:
        flags.append(Flag("merge-conflict", "warning", f"检查记录有 {facts.conflicts} 处多人同时修改的冲突，请核对",
                          {"conflicts": facts.conflicts}))
    return flags


def _office_time(moment: datetime) -> str:
    return moment.astimezone(OFFICE_TIMEZONE).strftime("%Y-%m-%d %H:%M")


_CODE_WORDS = {
    "absent": "检查记录未附检查码：检查开始时执法终端没有该任务的检查码",
    "not-ours": "检查记录所附检查码不是本系统签发的",
    "other-task": "检查记录所附检查码属于其他检查任务",
    "before-issue": "检查开始时检查码尚未签发",
}


def _code_flags(facts: InspectionFacts) -> list[Flag]:
    """code-missing: the visit began without a valid code of its own task; late-registration: the task was
    registered after its visit began, with a reason (a warning, not an error: the rules allow it)."""
    task, code = facts.task, facts.code
    if task is None or code is None:
        return []
    flags = []
    reasons = [] if code.status == "valid" else [code.status]
    started = facts.started_at
    before_issue = bool(started and task.dispatched_at and started < task.dispatched_at - facts.clock_tolerance)
    if before_issue and not task.late_registration_reason:
        reasons.append("before-issue")
    if reasons:
        words = [_CODE_WORDS[r] + (f"（{code.reason}）" if r == "not-ours" and code.reason else "") for r in reasons]
        flags.append(Flag("code-missing", "error", "；".join(words),
                          {"reasons": reasons, "started_at": _iso(started), "issued_at": _iso(task.dispatched_at),
                           **({"token_error": code.reason} if code.reason else {})}))
    if task.late_registration_reason:
        when = "，检查开始时检查码尚未签发" if before_issue else ""
        flags.append(Flag("late-registration", "warning",
                          f"检查任务为补登记{when}；补登记理由：{task.late_registration_reason}",
                          {"reason": task.late_registration_reason, "started_before_code": before_issue,
                           "started_at": _iso(started), "issued_at": _iso(task.dispatched_at)}))
    return flags


def _window_flags(facts: InspectionFacts) -> list[Flag]:
    """outside-window (an error): the visit began outside the window it was approved for, when its code
    was not valid for it (not yet, or no longer); a few minutes of tablet clock drift are allowed."""
    task, started = facts.task, facts.started_at
    if task is None or started is None:
        return []
    code = facts.code
    coded = code is not None and code.status == "valid" and code.window_start and code.window_end
    start, end = (code.window_start, code.window_end) if coded else (task.window_start, task.window_end)
    assert start is not None and end is not None
    if start - facts.clock_tolerance <= started <= end + facts.clock_tolerance:
        return []
    side = "之前" if started < start else "之后"
    return [Flag("outside-window", "error",
                 f"检查开始于 {_office_time(started)}，在批准的检查时间（{_office_time(start)} 至 "
                 f"{_office_time(end)}）{side}",
                 {"started_at": _iso(started), "window_start": _iso(start), "window_end": _iso(end),
                  "window_of": "code" if coded else "task"})]


_KIND_WORDS = {"inspection": "检查记录", "finding": "检查结论", "media": "证据文件", "signature": "签名"}


def _team_flags(facts: InspectionFacts) -> list[Flag]:
    """not-on-team (an error): records of the inspection made by someone who is not on its team."""
    team = {m.user_id for m in facts.members}
    flags = []
    for recorder in sorted(facts.recorders, key=lambda r: str(r.user_id)):
        if recorder.user_id in team:
            continue
        kinds = "、".join(_KIND_WORDS.get(k, k) for k in recorder.kinds)
        flags.append(Flag("not-on-team", "error",
                          f"{recorder.name} 不是检查组成员，却记录了本次检查的 {recorder.records} 条记录（{kinds}）",
                          {"user_id": str(recorder.user_id), "name": recorder.name, "kinds": list(recorder.kinds),
                           "records": recorder.records}))
    return flags


def clock_words(before: timedelta | None, after: timedelta | None) -> str:
    """「设备时钟偏差：同步前 +2 分 10 秒 / 同步后 +2 分 12 秒」."""
    shown = [describe_offset(o) if o is not None else "未知" for o in (before, after)]
    return f"设备时钟偏差：同步前 {shown[0]} / 同步后 {shown[1]}"


def _seconds(offset: timedelta | None) -> float | None:
    return round(offset.total_seconds(), 3) if offset is not None else None


#: Files of one device listed in a clock flag's details (the count says how many there were).
CLOCK_FILES_LISTED = 50


def _clock_details(clock: ClockFacts) -> dict[str, Any]:
    return {"name": clock.name, "media_id": str(clock.media_id) if clock.media_id else None,
            "captured_at": _iso(clock.captured_at), "offset_before_seconds": _seconds(clock.before),
            "offset_after_seconds": _seconds(clock.after), "jumped_back_seconds": _seconds(clock.jumped_back_by),
            "behind_seconds": _seconds(clock.behind_by)}


def _clock_flags(facts: InspectionFacts) -> list[Flag]:
    """clock-jumped-back (an error): the capturing device's clock was set back around the capture, so its
    time may have been read twice; clock-offset (a warning): the device's clock was further from the
    server's than the limit at a sync around the capture, so the capture time needs that correction.
    One flag per device and code, naming its earliest such file, with every file in the details."""
    limit = facts.clock_offset_limit
    groups: dict[tuple[str, str], list[ClockFacts]] = {}
    for clock in sorted(facts.clocks, key=lambda c: (c.device_id, c.captured_at, c.name)):
        if clock.jumped_back_by is not None or clock.behind_by is not None:
            groups.setdefault(("clock-jumped-back", clock.device_id), []).append(clock)
        if any(o is not None and abs(o) > limit for o in (clock.before, clock.after)):
            groups.setdefault(("clock-offset", clock.device_id), []).append(clock)
    flags = []
    for (code, device), clocks in sorted(groups.items()):
        first = clocks[0]
        words = clock_words(first.before, first.after)
        more = f"等 {len(clocks)} 个文件" if len(clocks) > 1 else ""
        where = f"{first.name}{more}（设备 {device}，采集时间 {_office_time(first.captured_at)}）"
        details = {**_clock_details(first), "device_id": device, "count": len(clocks),
                   "files": [_clock_details(c) for c in clocks[:CLOCK_FILES_LISTED]]}
        if code == "clock-jumped-back":
            if first.jumped_back_by is not None:
                why = f"设备时钟在采集前后被调回约 {describe_offset(first.jumped_back_by)[1:]}"
            else:
                assert first.behind_by is not None
                why = f"采集时间比设备之后同步时的时钟还晚 {describe_offset(first.behind_by)[1:]}"
            flags.append(Flag(code, "error", f"{where}的采集时间不可信：{why}；{words}", details, first.media_id))
        else:
            flags.append(Flag(code, "warning", f"{where}的设备时钟与服务器相差超过 {describe_offset(limit)[1:]}，"
                                               f"采集时间须按偏差校正后使用；{words}",
                              {**details, "limit_seconds": _seconds(limit)}, first.media_id))
    return flags


def _provenance_flags(facts: InspectionFacts) -> list[Flag]:
    """capture-provenance: a file whose signed capture manifest is missing, invalid, revoked, out of its
    device's chain, differs from the file or was used before (an error for a bad signature)."""
    flags = []
    for evidence in facts.evidence:
        if not evidence.provenance:
            continue
        label = evidence.name or (str(evidence.media_id) if evidence.media_id else "证据")
        found = [code for code, _ in evidence.provenance]
        flags.append(Flag("capture-provenance", "error" if "bad-signature" in found else "warning",
                          f"{label} 的采集签名存疑：{'；'.join(message for _, message in evidence.provenance)}",
                          {"name": label, "reasons": found}, evidence.media_id))
    return flags


def assess(facts: InspectionFacts) -> list[Flag]:
    """Every flag the inspection deserves, errors first, in a stable order."""
    flags = (_certificate_flags(facts) + _footage_flags(facts) + _gap_flags(facts)
             + _file_flags(facts) + _sync_flags(facts) + _code_flags(facts) + _window_flags(facts)
             + _team_flags(facts) + _clock_flags(facts) + _provenance_flags(facts))
    return sorted(flags, key=lambda f: (f.severity != "error", f.code, str(f.media_id or ""), str(f.details)))
