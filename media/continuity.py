"""Continuity of one device's recording: gaps and overlaps between its segments.

A bodycam splits a recording into segments (files). Given their start times and durations — plain
numbers, no files — this module finds where footage is missing between segments, where segments
overlap (a clock jump or a duplicated file), and how well the recording covers a time window such
as an inspection's. Differences up to ``tolerance`` seconds are clock jitter, not gaps.

Times are seconds on one clock (POSIX timestamps are the usual choice); :meth:`Segment.from_datetime`
converts timezone-aware datetimes.
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from media._json import JsonReport

DEFAULT_TOLERANCE = 1.0


@dataclass(frozen=True)
class Segment(JsonReport):
    """One file of a recording."""

    start: float
    duration: float
    name: str | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.start) and math.isfinite(self.duration)):
            raise ValueError("a segment's start and duration must be finite numbers")
        if self.duration < 0:
            raise ValueError(f"segment {self.name or self.start}: negative duration")

    @property
    def end(self) -> float:
        """When the segment stops."""
        return self.start + self.duration

    @classmethod
    def from_datetime(cls, start: datetime, duration: float, name: str | None = None) -> Segment:
        """A segment that starts at a timezone-aware ``start``."""
        if start.tzinfo is None:
            raise ValueError("segment start times must carry a timezone")
        return cls(start=start.timestamp(), duration=float(duration), name=name)


@dataclass(frozen=True)
class Gap(JsonReport):
    """Time without footage."""

    start: float
    end: float
    duration: float
    after: str | None
    """The segment before the gap (``None`` at the start of a window)."""
    before: str | None
    """The segment after the gap (``None`` at the end of a window)."""


@dataclass(frozen=True)
class Overlap(JsonReport):
    """Time covered twice."""

    start: float
    end: float
    duration: float
    first: str | None
    second: str | None


@dataclass(frozen=True)
class WindowCoverage(JsonReport):
    """How a recording covers a time window."""

    start: float
    end: float
    covered_seconds: float
    coverage: float
    """Share of the window with footage, 0–1."""
    gaps: tuple[Gap, ...]
    """Holes longer than the tolerance, including a late start and an early end."""
    complete: bool


@dataclass(frozen=True)
class ContinuityReport(JsonReport):
    """Gaps and overlaps of a recording, and optionally its coverage of a window."""

    segments: int
    start: float | None
    end: float | None
    tolerance: float
    gaps: tuple[Gap, ...]
    overlaps: tuple[Overlap, ...]
    continuous: bool
    """No gap and no overlap beyond the tolerance."""
    window: WindowCoverage | None


def _r(value: float) -> float:
    return round(value, 3)


def _ordered(segments: Iterable[Segment]) -> list[Segment]:
    return sorted(segments, key=lambda s: (s.start, s.end))


def find_gaps_and_overlaps(
    segments: Iterable[Segment], tolerance: float = DEFAULT_TOLERANCE
) -> tuple[tuple[Gap, ...], tuple[Overlap, ...]]:
    """Gaps and overlaps longer than ``tolerance`` between consecutive segments (by start time)."""
    if tolerance < 0:
        raise ValueError("tolerance must not be negative")
    gaps: list[Gap] = []
    overlaps: list[Overlap] = []
    reach: float | None = None
    reach_name: str | None = None
    for segment in _ordered(segments):
        if reach is not None:
            delta = segment.start - reach
            if delta > tolerance:
                gaps.append(Gap(_r(reach), _r(segment.start), _r(delta), reach_name, segment.name))
            elif delta < -tolerance:
                end = min(reach, segment.end)
                if end - segment.start > tolerance:
                    overlaps.append(Overlap(
                        _r(segment.start), _r(end), _r(end - segment.start), reach_name, segment.name
                    ))
        if reach is None or segment.end > reach:
            reach, reach_name = segment.end, segment.name
    return tuple(gaps), tuple(overlaps)


def window_coverage(
    segments: Iterable[Segment],
    start: float,
    end: float,
    tolerance: float = DEFAULT_TOLERANCE,
) -> WindowCoverage:
    """How the segments cover the window [``start``, ``end``]: footage seconds and the holes in it.

    Holes of at most ``tolerance`` seconds are not reported, but the covered seconds are exact.
    """
    if end < start:
        raise ValueError("the window ends before it starts")
    if tolerance < 0:
        raise ValueError("tolerance must not be negative")
    # Merge the segments, clipped to the window, into disjoint runs.
    runs: list[list[float]] = []
    names: list[list[str | None]] = []
    for segment in _ordered(segments):
        a, b = max(segment.start, start), min(segment.end, end)
        if b <= a and not (segment.duration == 0 and start <= segment.start <= end):
            continue
        if runs and a <= runs[-1][1]:
            if b > runs[-1][1]:
                runs[-1][1] = b
                names[-1][1] = segment.name
        else:
            runs.append([a, b])
            names.append([segment.name, segment.name])
    covered = sum(b - a for a, b in runs)
    gaps: list[Gap] = []
    cursor, previous = start, None
    for (a, b), (first, last) in zip(runs, names, strict=True):
        if a - cursor > tolerance:
            gaps.append(Gap(_r(cursor), _r(a), _r(a - cursor), previous, first))
        cursor, previous = max(cursor, b), last
    if end - cursor > tolerance:
        gaps.append(Gap(_r(cursor), _r(end), _r(end - cursor), previous, None))
    length = end - start
    return WindowCoverage(
        start=_r(start), end=_r(end), covered_seconds=_r(covered),
        coverage=round(covered / length, 4) if length > 0 else 1.0,
        gaps=tuple(gaps), complete=not gaps,
    )


def analyse_continuity(
    segments: Iterable[Segment],
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    window: tuple[float, float] | None = None,
) -> ContinuityReport:
    """Gaps and overlaps between the segments of one device's recording, with ``tolerance``
    seconds of slack, and the coverage of ``window`` (start, end) if given."""
    ordered = _ordered(segments)
    gaps, overlaps = find_gaps_and_overlaps(ordered, tolerance)
    coverage = window_coverage(ordered, window[0], window[1], tolerance) if window else None
    return ContinuityReport(
        segments=len(ordered),
        start=_r(ordered[0].start) if ordered else None,
        end=_r(max(s.end for s in ordered)) if ordered else None,
        tolerance=tolerance,
        gaps=gaps,
        overlaps=overlaps,
        continuous=not gaps and not overlaps,
        window=coverage,
    )
