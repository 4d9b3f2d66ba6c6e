"""What the rules need from outside the domain: the settings' values and the working-day
calendar, as protocols (``RatingSettings`` and ``WorkingCalendar`` satisfy them)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Protocol
from zoneinfo import ZoneInfo


class Calendar(Protocol):
    def add_working_days(self, start: date, n: int) -> date: ...


class Rules(Protocol):
    """The ``RATING:`` values the rules read (``settings.RatingSettings``)."""

    @property
    def supplementary_working_days(self) -> int: ...
    @property
    def callback_working_days(self) -> int: ...
    @property
    def rectification_working_days(self) -> int: ...
    @property
    def appeal_working_days(self) -> int: ...
    @property
    def max_ratings_per_phone_per_day(self) -> int: ...
    @property
    def max_ratings_per_device_per_day(self) -> int: ...
    @property
    def zone(self) -> ZoneInfo: ...


def local_day(moment: datetime, zone: ZoneInfo) -> date:
    """The site's calendar day of ``moment``."""
    return moment.astimezone(zone).date()
