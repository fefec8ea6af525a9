"""Office time as the inspector reads it: the client's own zone setting, never the machine's."""
from __future__ import annotations

from datetime import timedelta, timezone

import pytest

from field_client.times import office_time, office_zone

SHANGHAI = office_zone("Asia/Shanghai")


@pytest.mark.parametrize(("value", "shown"), [
    ("2026-12-01T16:00:00.999999+00:00", "2026-12-02 00:00"),  # just after midnight in the offices
    ("2026-12-02T15:59:59+00:00", "2026-12-02 23:59"),
    ("2026-12-02T09:00:00+08:00", "2026-12-02 09:00"),
    ("2026-12-02T01:00:00", "2026-12-02 09:00"),  # the server's instants are UTC
    ("2026-12-02", "2026-12-02"),  # a date stays the date it is
    ("not a time", "not a time"),
    (None, ""),
])
def test_instants_are_shown_to_the_minute_in_the_offices_zone(value: str | None, shown: str) -> None:
    assert office_time(value, SHANGHAI) == shown


def test_the_zone_comes_from_the_option_then_the_environment_then_the_default(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FIELDSYNC_TIMEZONE", raising=False)
    assert office_time("2026-12-02T01:00:00+00:00", office_zone()) == "2026-12-02 09:00"
    monkeypatch.setenv("FIELDSYNC_TIMEZONE", "Europe/Berlin")
    assert office_time("2026-12-02T01:00:00+00:00", office_zone()) == "2026-12-02 02:00"
    assert office_zone("-03:30") == timezone(-timedelta(hours=3, minutes=30))
    assert office_zone("UTC+0800") == timezone(timedelta(hours=8))
    for bad in ("Mars/Olympus", "+25:00", "+08:75", ""):
        with pytest.raises(ValueError):
            office_zone(bad)
