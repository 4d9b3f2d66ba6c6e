"""Time limits of applications (办结时限): working days on the official calendar, suspension
(行政许可法 art. 45), due states, and the deadline for publishing an approved change.

Standard library only; the calendar is the site's ``WorkingCalendar`` (with 调休), passed in.
A date with no official schedule raises ``ScheduleMissing`` from the calendar: a deadline is
refused, never guessed.
"""

from __future__ import annotations

from datetime import date, datetime, tzinfo
from typing import Protocol

# Clock of the time limit: none before acceptance, running, suspended, stopped once done.
CLOCK_NONE, CLOCK_RUNNING, CLOCK_SUSPENDED, CLOCK_STOPPED = (
    "none",
    "running",
    "suspended",
    "stopped",
)
DUE_STATES = {
    "on_time": "正常",
    "due_soon": "即将到期",
    "overdue": "已超期",
    "suspended": "计时中止",
}


class Calendar(Protocol):
    def add_working_days(self, start: date, n: int) -> date: ...
    def working_days_between(self, start: date, end: date) -> int: ...


def due_date(calendar: Calendar, accepted_on: date, limit_days: int, suspended_days: int) -> date:
    """The last day of the time limit: counted in working days from the day after acceptance
    (the acceptance day itself is not counted), extended by suspended working days."""
    return calendar.add_working_days(accepted_on, limit_days + suspended_days)


def suspended_working_days(calendar: Calendar, since: date, until: date) -> int:
    """Working days in (since, until] do not count: the clock stops the day after the
    suspension and restarts the day after the resumption."""
    return max(0, calendar.working_days_between(since, until))


def due_soon_until(calendar: Calendar, today: date, working_days: int) -> date:
    """The last due date that counts as "due soon" today."""
    return calendar.add_working_days(today, working_days)


def due_state(
    calendar: Calendar, today: date, due: date | None, clock: str, due_soon_days: int
) -> str | None:
    """on_time / due_soon / overdue / suspended for an application whose clock runs."""
    if clock == CLOCK_SUSPENDED:
        return "suspended"
    if clock != CLOCK_RUNNING or due is None:
        return None
    if today > due:
        return "overdue"
    if due <= due_soon_until(calendar, today, due_soon_days):
        return "due_soon"
    return "on_time"


def publish_due(calendar: Calendar, approved_on: date, within_days: int) -> date:
    """A change approved on ``approved_on`` must be published by this day."""
    return calendar.add_working_days(approved_on, within_days)


def local_date(moment: datetime, tz: tzinfo) -> date:
    """The calendar day of ``moment`` at the site (its configured timezone)."""
    return moment.astimezone(tz).date()
