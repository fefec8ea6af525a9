"""Domain events are heard once the announcing transaction commits, never when it rolls back."""
from __future__ import annotations

import logging

import pytest

from server import events
from server.events import Event
from server.extensions import db


@pytest.fixture
def heard(app) -> list[tuple[str, dict[str, object]]]:  # type: ignore[no-untyped-def]
    got: list[tuple[str, dict[str, object]]] = []
    events.subscribe(app, Event.MEDIA_STORED, lambda **payload: got.append(("media", payload)))
    return got


def test_an_event_is_heard_only_after_commit(app, heard) -> None:  # type: ignore[no-untyped-def]
    db.session.execute(db.text("SELECT 1"))
    events.emit(Event.MEDIA_STORED, media_id="m-1")
    db.session.flush()
    assert heard == []
    db.session.commit()
    assert heard == [("media", {"media_id": "m-1"})]
    db.session.commit()
    assert len(heard) == 1  # delivered once


def test_a_rolled_back_event_is_never_heard(app, heard) -> None:  # type: ignore[no-untyped-def]
    db.session.execute(db.text("SELECT 1"))
    events.emit(Event.MEDIA_STORED, media_id="m-2")
    db.session.rollback()
    db.session.execute(db.text("SELECT 1"))
    db.session.commit()
    assert heard == []


def test_a_failing_subscriber_does_not_keep_the_others_from_hearing(app, heard, caplog) -> None:  # type: ignore[no-untyped-def]
    def broken(**_: object) -> None:
        raise RuntimeError("subscriber bug")

    events.subscribe(app, Event.MEDIA_STORED, broken)
    events.subscribe(app, Event.MEDIA_STORED, lambda **payload: heard.append(("second", payload)))
    db.session.execute(db.text("SELECT 1"))
    events.emit(Event.MEDIA_STORED, media_id="m-3")
    with caplog.at_level(logging.ERROR, logger="server.events"):
        db.session.commit()
    assert [who for who, _ in heard] == ["media", "second"]
    assert "subscriber" in caplog.text


def test_other_events_are_not_delivered_to_a_subscriber(app, heard) -> None:  # type: ignore[no-untyped-def]
    db.session.execute(db.text("SELECT 1"))
    events.emit(Event.INSPECTIONS_CHANGED, inspection_ids=set())
    db.session.commit()
    assert heard == []
