"""Continuity of a device's recording: gaps, overlaps, and coverage of a window."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from media import Segment, analyse_continuity, find_gaps_and_overlaps, window_coverage

T0 = 1_714_530_600.0  # 2024-05-01 10:30 +08:00


def run(*spans: tuple[float, float]) -> list[Segment]:
    """Segments named s1, s2 … starting at T0 + offset, lasting the given seconds."""
    return [Segment(T0 + start, length, f"s{i}") for i, (start, length) in enumerate(spans, 1)]


def test_back_to_back_segments_are_continuous() -> None:
    report = analyse_continuity(run((0, 300), (300, 300), (600, 300)))

    assert report.continuous and report.gaps == () and report.overlaps == ()
    assert (report.segments, report.start, report.end) == (3, T0, T0 + 900)


def test_missing_middle_segment_is_a_gap_between_its_neighbours() -> None:
    gaps, overlaps = find_gaps_and_overlaps(run((0, 300), (600, 300)))

    assert overlaps == ()
    (gap,) = gaps
    assert (gap.start, gap.end, gap.duration, gap.after, gap.before) == (T0 + 300, T0 + 600, 300, "s1", "s2")


def test_jitter_within_the_tolerance_is_not_a_gap_nor_an_overlap() -> None:
    segments = run((0, 300), (300.8, 299.2), (600.4, 300))

    assert analyse_continuity(segments, tolerance=1.0).continuous
    report = analyse_continuity(segments, tolerance=0.5)
    assert [g.after for g in report.gaps] == ["s1"]
    assert report.overlaps == ()


def test_overlap_beyond_the_tolerance() -> None:
    report = analyse_continuity(run((0, 300), (290, 300)), tolerance=1.0)

    (overlap,) = report.overlaps
    assert (overlap.start, overlap.end, overlap.duration) == (T0 + 290, T0 + 300, 10)
    assert (overlap.first, overlap.second) == ("s1", "s2")
    assert not report.continuous


def test_a_segment_inside_another_is_an_overlap_and_order_of_input_does_not_matter() -> None:
    segments = run((0, 600), (100, 50), (600, 100))

    report = analyse_continuity(list(reversed(segments)))

    assert [(o.first, o.second, o.duration) for o in report.overlaps] == [("s1", "s2", 50)]
    assert report.gaps == ()  # s3 follows s1, not the short s2


def test_window_fully_covered() -> None:
    coverage = window_coverage(run((0, 300), (300, 300)), T0 + 10, T0 + 590)

    assert coverage.complete and coverage.gaps == ()
    assert coverage.covered_seconds == 580 and coverage.coverage == 1.0


def test_window_with_late_start_missing_middle_and_early_end() -> None:
    segments = run((60, 240), (400, 200))  # window: T0 .. T0 + 700

    coverage = window_coverage(segments, T0, T0 + 700)

    assert [(g.start - T0, g.end - T0, g.after, g.before) for g in coverage.gaps] == [
        (0, 60, None, "s1"), (300, 400, "s1", "s2"), (600, 700, "s2", None)]
    assert coverage.covered_seconds == 440
    assert coverage.coverage == pytest.approx(440 / 700, abs=1e-4)
    assert not coverage.complete


def test_window_holes_within_the_tolerance_are_not_gaps_but_seconds_stay_exact() -> None:
    coverage = window_coverage(run((0, 100), (100.5, 100)), T0, T0 + 200.5, tolerance=1.0)

    assert coverage.complete and coverage.covered_seconds == 200


def test_window_without_any_footage() -> None:
    coverage = window_coverage(run((0, 100)), T0 + 500, T0 + 600)

    assert coverage.covered_seconds == 0 and coverage.coverage == 0
    assert [(g.duration, g.after, g.before) for g in coverage.gaps] == [(100, None, None)]


def test_report_with_window_serialises() -> None:
    report = analyse_continuity(run((0, 300), (600, 300)), window=(T0, T0 + 900))

    document = report.to_dict()
    assert document["window"]["gaps"][0]["after"] == "s1"
    assert document["gaps"][0]["duration"] == 300


def test_segments_from_datetimes() -> None:
    start = datetime(2024, 5, 1, 10, 30, tzinfo=timezone(timedelta(hours=8)))

    assert Segment.from_datetime(start, 60, "a").start == T0
    with pytest.raises(ValueError):
        Segment.from_datetime(start.replace(tzinfo=None), 60)


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError):
        Segment(T0, -1)
    with pytest.raises(ValueError):
        Segment(float("nan"), 1)
    with pytest.raises(ValueError):
        window_coverage([], T0 + 10, T0)
    with pytest.raises(ValueError):
        find_gaps_and_overlaps([], tolerance=-1)


def test_no_segments() -> None:
    report = analyse_continuity([], window=(T0, T0 + 60))

    assert report.segments == 0 and report.continuous
    assert report.window is not None and report.window.covered_seconds == 0


spans = st.lists(
    st.tuples(st.integers(0, 1000), st.integers(0, 300)), min_size=0, max_size=8
)


@settings(max_examples=60)
@given(spans=spans, window=st.tuples(st.integers(0, 1200), st.integers(0, 400)))
def test_covered_seconds_and_gaps_add_up_to_the_window_without_tolerance(
    spans: list[tuple[int, int]], window: tuple[int, int]
) -> None:
    start, length = window
    coverage = window_coverage(run(*spans), T0 + start, T0 + start + length, tolerance=0)

    holes = sum(g.duration for g in coverage.gaps)
    assert coverage.covered_seconds + holes == pytest.approx(length, abs=1e-6)
    assert 0 <= coverage.coverage <= 1
