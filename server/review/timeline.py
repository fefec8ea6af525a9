"""One timeline for an inspection: the recording's segments and what happened when.

Pure layout: times in, percentages out, so the page draws it with positioned boxes (no script
needed) and the tests check it without a browser.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from media.continuity import Segment, find_gaps_and_overlaps

# Segments further apart than this are a gap in the recording (seconds), as media.continuity counts it.
GAP_TOLERANCE = 1.0


@dataclass(frozen=True)
class Clip:
    """A video segment on the timeline."""

    media_id: str
    name: str
    start: datetime
    duration: float


@dataclass(frozen=True)
class Mark:
    """Something at a moment or over an interval: ``kind`` is certificate, covered, gap, finding or flag."""

    kind: str
    label: str
    start: datetime
    end: datetime | None = None
    media_id: str | None = None   # the segment that shows it, to seek the player to it
    offset: float | None = None   # seconds into that segment


@dataclass(frozen=True)
class Placed:
    item: Clip | Mark
    left: float   # percent of the timeline's width
    width: float  # percent; 0 for a moment
    lane: str


@dataclass
class Timeline:
    start: datetime
    end: datetime
    placed: list[Placed] = field(default_factory=list)
    ticks: list[tuple[float, datetime]] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()


def gaps_between(clips: list[Clip]) -> list[Mark]:
    """Holes between consecutive segments, from media.continuity."""
    if len(clips) < 2:
        return []
    segments = [Segment.from_datetime(c.start, c.duration, c.media_id) for c in clips]
    gaps, _ = find_gaps_and_overlaps(segments, GAP_TOLERANCE)
    base = clips[0].start - timedelta(seconds=clips[0].start.timestamp())
    return [Mark("gap", f"{gap.duration:.0f}s", base + timedelta(seconds=gap.start), base + timedelta(seconds=gap.end))
            for gap in gaps]


def _ticks(start: datetime, end: datetime, count: int = 5) -> list[tuple[float, datetime]]:
    span = (end - start).total_seconds()
    return [(100.0 * i / count, start + timedelta(seconds=span * i / count)) for i in range(count + 1)]


def lay_out(clips: list[Clip], marks: list[Mark], window: tuple[datetime | None, datetime | None]) -> Timeline | None:
    """Place everything between the inspection's window and the recording's extent; None if nothing is timed."""
    moments = [c.start for c in clips] + [c.start + timedelta(seconds=c.duration) for c in clips]
    moments += [m.start for m in marks] + [m.end for m in marks if m.end]
    moments += [w for w in window if w]
    if not moments:
        return None
    start, end = min(moments), max(moments)
    if end - start < timedelta(seconds=1):
        end = start + timedelta(seconds=1)
    timeline = Timeline(start, end, ticks=_ticks(start, end))
    span = timeline.seconds

    def place(item: Clip | Mark, begin: datetime, finish: datetime | None, lane: str) -> None:
        left = 100.0 * (begin - start).total_seconds() / span
        width = 100.0 * (finish - begin).total_seconds() / span if finish else 0.0
        timeline.placed.append(Placed(item, round(left, 3), round(max(width, 0.0), 3), lane))

    for clip in sorted(clips, key=lambda c: c.start):
        place(clip, clip.start, clip.start + timedelta(seconds=clip.duration), "segments")
    for mark in sorted(marks, key=lambda m: m.start):
        place(mark, mark.start, mark.end, "events" if mark.kind in ("certificate", "finding") else "problems")
    return timeline
