"""The clock every service reads, and the one way a moment is written and read back.

Stored moments are UTC ISO-8601 text with microseconds and a ``Z``
(``2026-11-24T07:18:04.123456Z``): one fixed width, so the text sorts as the moments do
and a store can compare and index them as strings. Use cases take a ``Clock`` so tests
can move time (tests/conftest.py ``clock``); nothing else calls ``datetime.now``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The system clock, timezone-aware in UTC."""
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    """``moment`` as stored: UTC, microseconds, ``Z``. A naive moment is refused."""
    if moment.tzinfo is None:
        raise ValueError("a stored moment must carry its timezone")
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def parse_iso(value: str) -> datetime:
    """A stored (or any timezone-aware ISO-8601) moment back as an aware UTC datetime.

    Raises ``ValueError`` for text that is not ISO-8601 or has no timezone."""
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise ValueError(f"{value!r} has no timezone")
    return moment.astimezone(UTC)


def day_of(value: str) -> date:
    """The calendar day of a stored ``YYYY-MM-DD`` (or a stored moment's UTC day)."""
    return date.fromisoformat(value[:10])


class ManualClock:
    """A clock that moves only when told: for tests, simulations and benchmarks."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("a clock's time must carry its timezone")
        self.now = start.astimezone(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        """Move forward by ``timedelta(**delta)``; the new time."""
        self.now += timedelta(**delta)
        return self.now

    def set(self, moment: datetime) -> None:
        self.now = moment.astimezone(UTC)
