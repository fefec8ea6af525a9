"""Rules of the review app checked without a browser: every page declares its permission, the
timeline's layout, the scope of the queue."""
from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from server.review.timeline import Clip, Mark, gaps_between, lay_out

T0 = datetime(2026, 5, 1, 2, 0, tzinfo=UTC)


def test_every_review_page_requires_a_session_and_declares_its_permission(app) -> None:
    public = {"review.login", "review.logout", "review.language", "review.static"}
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/review/") or rule.endpoint in public:
            continue
        view: Callable[..., Any] = app.view_functions[rule.endpoint]
        assert hasattr(view, "_required_permission"), f"{rule.endpoint} has no @office(...)"


def test_every_review_page_with_an_id_refuses_strangers(client, world) -> None:
    import uuid

    for rule in client.application.url_map.iter_rules():
        if rule.rule.startswith("/review/") and rule.arguments and rule.endpoint != "review.static":
            url = rule.rule
            for name in rule.arguments:
                url = url.replace(f"<{name}>", str(uuid.uuid4()))
            method = "POST" if "POST" in rule.methods else "GET"
            assert client.open(url, method=method).status_code in (302, 400, 401), url


def test_segments_and_marks_are_placed_in_percent_of_the_whole_span() -> None:
    clips = [Clip("a", "A", T0, 60.0), Clip("b", "B", T0 + timedelta(seconds=90), 30.0)]
    marks = [Mark("certificate", "CERT", T0 + timedelta(seconds=12), None, "a", 12.0)] + gaps_between(clips)
    timeline = lay_out(clips, marks, (T0 - timedelta(seconds=30), T0 + timedelta(seconds=150)))
    assert timeline is not None and timeline.seconds == 180
    segments = [(p.left, p.width) for p in timeline.placed if p.lane == "segments"]
    assert segments == [(round(100 * 30 / 180, 3), round(100 * 60 / 180, 3)),
                        (round(100 * 120 / 180, 3), round(100 * 30 / 180, 3))]
    placed = {(p.lane, p.item.kind): (p.left, p.width) for p in timeline.placed if isinstance(p.item, Mark)}
    assert placed[("events", "certificate")] == (round(100 * 42 / 180, 3), 0.0)
    assert placed[("problems", "gap")] == (round(100 * 90 / 180, 3), round(100 * 30 / 180, 3))
    assert timeline.ticks[0] == (0.0, T0 - timedelta(seconds=30))


def test_segments_that_touch_leave_no_gap_and_nothing_timed_gives_no_timeline() -> None:
    assert gaps_between([Clip("a", "A", T0, 60.0), Clip("b", "B", T0 + timedelta(seconds=60.5), 30.0)]) == []
    assert lay_out([], [], (None, None)) is None
