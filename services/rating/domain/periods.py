"""Statistics periods: weeks, months and years of local calendar days, and which rollup
buckets (whole months, or days at the edges) cover a date range."""

from __future__ import annotations

import re
from datetime import date, timedelta

from services.common.errors import InvalidInput


def week_key(day: date) -> str:
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def month_key(day: date) -> str:
    return f"{day.year}-{day.month:02d}"


def parse_period(period: str) -> tuple[date, date]:
    """``YYYY-MM`` (a month) or ``YYYY`` (a year) → first and last day."""
    if isinstance(period, str) and re.fullmatch(r"[0-9]{4}-[0-9]{2}", period):
        year, month = int(period[:4]), int(period[5:])
        if year < 1:
            raise InvalidInput.field("period", "年份应在 0001 到 9999 之间")
        if not 1 <= month <= 12:
            raise InvalidInput.field("period", "月份应在 01 到 12 之间")
        first = date(year, month, 1)
        nxt = date(year + month // 12, month % 12 + 1, 1)
        return first, nxt - timedelta(days=1)
    if isinstance(period, str) and re.fullmatch(r"[0-9]{4}", period):
        year = int(period)
        if year < 1:
            raise InvalidInput.field("period", "年份应在 0001 到 9999 之间")
        return date(year, 1, 1), date(year, 12, 31)
    raise InvalidInput.field("period", "应为 YYYY-MM（月）或 YYYY（年）")


def plan_periods(
    date_from: date, date_to: date, by_day: bool
) -> tuple[list[str], list[tuple[str, str]]]:
    """Whole months inside the range read month buckets; the edges read day buckets."""
    if by_day:
        return [], [(date_from.isoformat(), date_to.isoformat())]
    months: list[str] = []
    days: list[tuple[str, str]] = []
    first = date_from.replace(day=1)
    while first <= date_to:
        nxt = date(first.year + first.month // 12, first.month % 12 + 1, 1)
        last = nxt - timedelta(days=1)
        if first >= date_from and last <= date_to:
            months.append(month_key(first))
        else:
            days.append((max(first, date_from).isoformat(), min(last, date_to).isoformat()))
        first = nxt
    return months, days


DayRanges = list[tuple[str, str]]


def plan_trimmed(
    date_from: date, date_to: date, by_day: bool, today: date
) -> tuple[list[str], DayRanges, DayRanges]:
    """Like ``plan_periods``, but a month is read whole, less the days outside the range,
    when fewer of those can hold buckets (none after ``today``) than the range covers:
    (months, day ranges to add, day ranges to subtract). This month to date then reads one
    bucket a site instead of one a day; the counters are exact sums, so the difference is
    exact."""
    months, days = plan_periods(date_from, date_to, by_day)
    added: DayRanges = []
    minus: DayRanges = []
    for first_s, last_s in days:
        first, last = date.fromisoformat(first_s), date.fromisoformat(last_s)
        start = first.replace(day=1)
        end = date(start.year + start.month // 12, start.month % 12 + 1, 1) - timedelta(days=1)
        covered = (last - first).days + 1
        outside = (first - start).days + max(0, (min(end, today) - last).days)
        if by_day or covered <= outside:
            added.append((first_s, last_s))
            continue
        months.append(month_key(start))
        if first > start:
            minus.append((start.isoformat(), (first - timedelta(days=1)).isoformat()))
        if last < end:
            minus.append(((last + timedelta(days=1)).isoformat(), end.isoformat()))
    return sorted(months), added, minus
