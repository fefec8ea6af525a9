"""Working days on the Chinese statutory calendar, and the publication deadline of a decision.

The calendar is the maintained ``chinesecalendar`` package (import name ``chinese_calendar``): the State
Council's public holidays and the make-up working days (调休, a Saturday or Sunday worked in exchange). It
knows the years the State Council has announced; a day outside them cannot be counted, and counting one
raises ``CalendarOutOfRange`` — never a guess that weekends are the only days off.

How a deadline is counted (the seed §1: "在作出行政执法决定之日起20个工作日内"): the day the decision is
made does not count, the count starts on the next working day (《民法典》第二百零一条: 开始的当日不计入;
《行政许可法》第八十二条: 期限以工作日计算，不含法定节假日). The deadline is the last of those working days
itself: publishing on it is on time. A decision made on a holiday or a weekend starts the count on the first
working day after it, the same rule.

No Flask, no database: a rule over dates, tested against ``chinese_calendar`` itself.
"""
from __future__ import annotations

from datetime import date, timedelta

import chinese_calendar

#: Working days to publish in: licensing and penalty decisions 7, every other decision 20 (the seed §1).
GENERAL_DAYS = 20
LICENSING_AND_PENALTY_DAYS = 7
#: "Due soon": the deadline falls within this many working days from today.
SOON_DAYS = 3


class CalendarOutOfRange(ValueError):
    """A day of a computation lies in a year the calendar has no holiday data for."""

    def __init__(self, day: date) -> None:
        first, last = known_years()
        self.day = day
        self.first_year, self.last_year = first, last
        super().__init__(f"{day.isoformat()} 所在年份的法定节假日安排尚未收录（工作日历只收录 {first}–{last} 年），"
                         "无法计算工作日")


def known_years() -> tuple[int, int]:
    """The first and last year the installed calendar knows the holidays of."""
    years = [d.year for d in chinese_calendar.holidays] + [d.year for d in chinese_calendar.workdays]
    return min(years), max(years)


def is_working_day(day: date) -> bool:
    """A working day: Monday to Friday unless a public holiday, and the weekends worked in exchange (调休)."""
    try:
        return bool(chinese_calendar.is_workday(day))
    except NotImplementedError:  # the package's way of saying it has no data for that year
        raise CalendarOutOfRange(day) from None


def add_working_days(start: date, count: int) -> date:
    """The ``count``-th working day after ``start`` (``start`` itself never counts; 0 gives ``start``)."""
    if count < 0:
        raise ValueError("count must not be negative")
    day, left = start, count
    if count:
        is_working_day(start)  # a start outside the calendar is refused even when the days after it are known
    while left:
        day += timedelta(days=1)
        if is_working_day(day):
            left -= 1
    return day


def working_days_between(after: date, until: date) -> int:
    """How many working days lie in (``after``, ``until``]; negative when ``until`` is before ``after``."""
    if until < after:
        return -working_days_between(until, after)
    is_working_day(after)
    count, day = 0, after
    while day < until:
        day += timedelta(days=1)
        count += is_working_day(day)
    return count


def deadline_days(penalty_or_licensing: bool) -> int:
    """The working days the law gives to publish a decision."""
    return LICENSING_AND_PENALTY_DAYS if penalty_or_licensing else GENERAL_DAYS


def publication_deadline(decided_on: date, penalty_or_licensing: bool) -> date:
    """The last day a decision made on ``decided_on`` may be published on."""
    return add_working_days(decided_on, deadline_days(penalty_or_licensing))
