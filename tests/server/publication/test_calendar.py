"""Working days and publication deadlines around the National Day and Spring Festival holidays.

The expected days are asked of ``chinese_calendar`` itself (its list of working days in a span), never written
down by hand: the rule under test is how we count, not what the State Council announced.
"""
from __future__ import annotations

from datetime import date, timedelta

import chinese_calendar
import pytest

from server.publication.calendar import (
    CalendarOutOfRange,
    add_working_days,
    is_working_day,
    known_years,
    publication_deadline,
    working_days_between,
)


def expected_deadline(decided_on: date, days: int) -> date:
    """The ``days``-th working day after ``decided_on`` by chinese_calendar's own list of working days."""
    span = chinese_calendar.get_workdays(decided_on + timedelta(days=1), decided_on + timedelta(days=days * 3))
    return span[days - 1]


# Days around the holidays: before them, on their first day, inside them, on the make-up working days.
AROUND_HOLIDAYS = [
    date(2025, 9, 26), date(2025, 9, 28),  # a Friday before National Day 2025; Sunday 28 September was worked
    date(2025, 9, 30), date(2025, 10, 1), date(2025, 10, 5), date(2025, 10, 11),  # Saturday 11 October worked
    date(2026, 2, 13), date(2026, 2, 14),  # Friday before Spring Festival 2026; Saturday 14 February worked
    date(2026, 2, 15), date(2026, 2, 18), date(2026, 2, 23), date(2026, 2, 28),  # Saturday 28 February worked
    date(2026, 9, 20), date(2026, 9, 30), date(2026, 10, 1), date(2026, 10, 7), date(2026, 10, 10),
]


@pytest.mark.parametrize("decided_on", AROUND_HOLIDAYS, ids=str)
@pytest.mark.parametrize("penalty", [False, True], ids=["20-days", "7-days"])
def test_the_deadline_agrees_with_chinese_calendar(decided_on: date, penalty: bool) -> None:
    days = 7 if penalty else 20
    assert publication_deadline(decided_on, penalty) == expected_deadline(decided_on, days)


def test_make_up_saturdays_are_working_days_and_holiday_weekdays_are_not() -> None:
    saturday = date(2026, 10, 10)
    assert saturday.weekday() == 5 and chinese_calendar.is_workday(saturday)
    assert is_working_day(saturday)
    assert not is_working_day(date(2026, 10, 1)) and not is_working_day(date(2026, 2, 17))
    assert is_working_day(date(2026, 2, 14)) and is_working_day(date(2026, 2, 28))


def test_a_decision_made_on_a_make_up_saturday_counts_from_the_next_working_day() -> None:
    saturday = date(2026, 10, 10)  # worked in exchange for the National Day holiday
    # The day of the decision itself never counts, working day or not: the first working day is Monday 12th.
    assert add_working_days(saturday, 1) == date(2026, 10, 12)
    assert publication_deadline(saturday, True) == expected_deadline(saturday, 7) == date(2026, 10, 20)
    assert publication_deadline(saturday, False) == expected_deadline(saturday, 20)


def test_a_decision_made_before_the_holiday_skips_all_of_it() -> None:
    # Decided on Wednesday 30 September 2026: 1–7 October are the holiday, Saturday 10 October is worked.
    decided = date(2026, 9, 30)
    assert add_working_days(decided, 1) == date(2026, 10, 8)
    assert add_working_days(decided, 3) == date(2026, 10, 10)
    # Spring Festival 2026: decided on Friday 13 February, Saturday 14th is worked, 15–23 February are off.
    assert add_working_days(date(2026, 2, 13), 1) == date(2026, 2, 14)
    assert add_working_days(date(2026, 2, 13), 2) == date(2026, 2, 24)


def test_zero_days_is_the_day_itself_and_counting_back_is_refused() -> None:
    assert add_working_days(date(2026, 10, 3), 0) == date(2026, 10, 3)
    with pytest.raises(ValueError):
        add_working_days(date(2026, 10, 3), -1)


def test_working_days_between_counts_the_days_after_the_first() -> None:
    assert working_days_between(date(2026, 9, 30), date(2026, 10, 8)) == 1
    assert working_days_between(date(2026, 9, 30), date(2026, 10, 12)) == 4
    assert working_days_between(date(2026, 10, 12), date(2026, 9, 30)) == -4
    assert working_days_between(date(2026, 10, 12), date(2026, 10, 12)) == 0


def test_a_date_outside_the_known_years_is_an_error_not_a_guess() -> None:
    first, last = known_years()
    after = date(last + 1, 1, 5)  # a Tuesday or so: a plain weekday guess would call it a working day
    with pytest.raises(CalendarOutOfRange) as raised:
        is_working_day(after)
    assert str(last) in str(raised.value) and raised.value.day == after
    with pytest.raises(CalendarOutOfRange):
        is_working_day(date(first - 1, 6, 2))
    # A decision late in the last known year: its deadline falls in a year the calendar does not know yet.
    with pytest.raises(CalendarOutOfRange):
        publication_deadline(date(last, 12, 20), False)
    with pytest.raises(CalendarOutOfRange):
        publication_deadline(date(first - 1, 12, 31), True)
