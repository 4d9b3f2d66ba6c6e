"""Working-day arithmetic on the official Chinese holiday schedule.

Time limits are counted in working days (行政许可法 art. 82), and the day on which the
materials or instruction arrive is not counted (民法典 art. 201): a limit of *n* working days
accepted on day ``d`` ends on the *n*-th working day after ``d``.

A working day is a Monday–Friday that is not an official day off, or a weekend day that the
State Council has made a make-up working day (调休上班). The schedule comes from two sources:

* the ``chinesecalendar`` package, which carries the official schedule for the years it
  knows (2004–2026 in version 1.11);
* an optional per-site override file (YAML), used to load a year the package does not carry
  yet, or to correct one it does.

A year in the override file is fully defined by it and wins over the package for that year.
A day in a year that neither source carries raises :class:`ScheduleMissing`: we refuse rather
than guess from plain weekends, because every year has holidays and 调休 that a guess would miss.

The override file's format and rules (each checked strictly; a violation raises
:class:`InvalidInput` on field ``calendar`` naming the file and the key) are written in
``deploy/calendar/override.example.yaml``: one key per year, copied from the State Council
notice, with exactly the lists ``holidays`` and ``workdays``.
"""

from __future__ import annotations

import bisect
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import MAXYEAR, MINYEAR, date, datetime, timedelta
from typing import Any

import chinese_calendar
import yaml

from services.common.errors import InvalidInput

__all__ = [
    "ScheduleMissing",
    "WorkingCalendar",
    "YearSchedule",
    "load_calendar",
    "parse_override",
]

FIELD = "calendar"

_WEEKDAYS_ZH = ("星期一", "星期二", "星期三", "星期四", "星期五", "星期六", "星期日")
_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
_YEAR_RE = re.compile(r"\d{4}")
_YEAR_KEYS = ("holidays", "workdays")


class ScheduleMissing(InvalidInput):
    """No holiday schedule is loaded for ``year``, so its working days are unknown.

    The constructor arguments are kept in ``args`` so that the error survives a Nameko RPC
    round trip as the same type, with the same year (Nameko sends the year back as text,
    hence the ``int``).
    """

    def __init__(self, year: int, override_path: str | None = None) -> None:
        year = int(year)
        where = f"（{override_path}）" if override_path else "（本站尚未配置日历覆盖文件）"
        message = (
            f"没有{year}年的节假日安排，无法按工作日计算期限，也不会按普通周末推算："
            f"请把《国务院办公厅关于{year}年部分节假日安排的通知》中的放假日期和调休上班日期"
            f"载入本站的日历覆盖文件{where}"
        )
        super().__init__(message, {FIELD: [message]})
        self.args = (year, override_path or "")  # Nameko would send None as "None"
        self.year = year
        self.override_path = override_path or None


@dataclass(frozen=True)
class YearSchedule:
    """One year's official schedule: days off and weekend make-up working days."""

    holidays: frozenset[date]
    workdays: frozenset[date]

    def is_working_day(self, d: date) -> bool:
        if d in self.workdays:
            return True
        return d.weekday() < 5 and d not in self.holidays


class WorkingCalendar:
    """Working days from the ``chinesecalendar`` package plus per-year overrides.

    Immutable from the outside; it memoises each year's sorted working days on first use so
    that :meth:`add_working_days` and :meth:`working_days_between` cost one bisection per
    year crossed, whatever ``n`` is.
    """

    def __init__(
        self,
        overrides: Mapping[int, YearSchedule] | None = None,
        *,
        override_path: str | None = None,
    ) -> None:
        """``overrides`` maps a year to its full schedule; ``override_path`` is where it was
        read from (only used in messages)."""
        self._overrides: dict[int, YearSchedule] = dict(overrides or {})
        for year, schedule in self._overrides.items():
            _check_schedule(year, schedule)
        self.override_path = override_path or None
        self._package = _package_schedules()
        self._working: dict[int, tuple[int, ...]] = {}

    def __repr__(self) -> str:
        return (
            f"WorkingCalendar(package={min(self._package, default=None)}–"
            f"{max(self._package, default=None)}, overrides={sorted(self._overrides)}, "
            f"override_path={self.override_path!r})"
        )

    def covers(self, year: int) -> bool:
        """Whether a schedule (override or package) is loaded for ``year``."""
        return year in self._overrides or year in self._package

    def days_covered_after(self, today: date) -> int:
        """Days from ``today`` to the end of the last year with a loaded schedule: how far
        ahead deadlines can be computed (negative once that year is over)."""
        last = max((*self._overrides, *self._package), default=today.year - 1)
        return (date(last, 12, 31) - today).days

    def is_working_day(self, d: date) -> bool:
        """Whether ``d`` is a working day; raises :class:`ScheduleMissing` for an unknown year."""
        d = _as_date(d)
        return self._schedule(d.year).is_working_day(d)

    def add_working_days(self, start: date, n: int) -> date:
        """The ``n``-th working day after ``start`` (``start`` itself is never counted).

        ``n == 0`` returns ``start`` unchanged, whatever kind of day it is, without needing a
        schedule. Raises :class:`ScheduleMissing` when the count runs into a year with no
        schedule, and ``ValueError`` for a negative ``n``.
        """
        start = _as_date(start)
        if isinstance(n, bool) or not isinstance(n, int):
            raise TypeError(f"n must be an int, not {type(n).__name__}")
        if n < 0:
            raise ValueError(f"n must not be negative: {n}")
        if n == 0:
            return start
        first = start + timedelta(days=1)
        year = first.year
        days = self._working_days(year)
        index = bisect.bisect_left(days, first.toordinal())
        remaining = n
        while True:
            available = len(days) - index
            if remaining <= available:
                return date.fromordinal(days[index + remaining - 1])
            remaining -= available
            year += 1
            days = self._working_days(year)
            index = 0

    def working_days_between(self, start: date, end: date) -> int:
        """The number of working days in ``(start, end]``: how many have elapsed at ``end``.

        ``start`` is not counted and ``end`` is, so ``working_days_between(s,
        add_working_days(s, n)) == n``. ``end == start`` gives 0; ``end < start`` gives the
        negated count of ``(end, start]`` (the count is antisymmetric — clamp with ``max(0,
        ...)`` if "not started yet" should read as zero). Every year holding a day of the
        interval needs a schedule, otherwise :class:`ScheduleMissing`.
        """
        start, end = _as_date(start), _as_date(end)
        if end < start:
            return -self.working_days_between(end, start)
        if end == start:
            return 0
        first = start + timedelta(days=1)
        low, high = start.toordinal(), end.toordinal()
        total = 0
        for year in range(first.year, end.year + 1):
            days = self._working_days(year)
            total += bisect.bisect_right(days, high) - bisect.bisect_right(days, low)
        return total

    def _schedule(self, year: int) -> YearSchedule:
        schedule = self._overrides.get(year)
        if schedule is None:
            schedule = self._package.get(year)
        if schedule is None:
            raise ScheduleMissing(year, self.override_path)
        return schedule

    def _working_days(self, year: int) -> tuple[int, ...]:
        """The ordinals of ``year``'s working days, ascending (memoised per instance)."""
        days = self._working.get(year)
        if days is None:
            schedule = self._schedule(year)
            first = date(year, 1, 1).toordinal()
            last = date(year, 12, 31).toordinal()
            days = tuple(
                o for o in range(first, last + 1) if schedule.is_working_day(date.fromordinal(o))
            )
            self._working[year] = days
        return days


def load_calendar(override_path: str | None) -> WorkingCalendar:
    """The package schedule plus the site's override file at ``override_path``, if any.

    ``None`` or ``""`` means the package alone. A path that does not exist, cannot be read,
    or breaks a rule of the format (see the module docstring) raises :class:`InvalidInput`
    on field ``calendar`` naming the path.
    """
    if not override_path:
        return WorkingCalendar()
    if not os.path.exists(override_path):
        raise _invalid(f"日历覆盖文件不存在：{override_path}")
    try:
        with open(override_path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise _invalid(f"日历覆盖文件无法读取：{override_path}（{exc}）") from exc
    return WorkingCalendar(parse_override(text, override_path), override_path=override_path)


def parse_override(text: str, path: str) -> dict[int, YearSchedule]:
    """Parse and validate the text of an override file; ``path`` is named in every error."""
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # noqa: S506  (a SafeLoader subclass)
    except _DuplicateKey as exc:
        raise _invalid(f"日历覆盖文件 {path} 中的键 {exc.key} 出现了不止一次") from exc
    except yaml.YAMLError as exc:
        detail = " ".join(str(exc).split())
        raise _invalid(f"日历覆盖文件不是有效的 YAML：{path}（{detail}）") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise _invalid(f"日历覆盖文件 {path} 的顶层应为“年份: 安排”的映射，例如 2027: {{...}}")
    result: dict[int, YearSchedule] = {}
    for key, value in data.items():
        year = _parse_year(key, path)
        if year in result:
            raise _invalid(f"日历覆盖文件 {path} 中的年份 {year} 出现了不止一次")
        result[year] = _parse_year_schedule(year, value, path)
    return result


class _DuplicateKey(yaml.YAMLError):
    def __init__(self, key: object) -> None:
        super().__init__(f"duplicate key {key!r}")
        self.key = key


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys and leaves dates as strings.

    Dates stay strings so that an impossible date such as ``2027-02-30`` is reported with its
    key instead of failing the whole load, and so that only ``YYYY-MM-DD`` is accepted.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[object] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, str) and _YEAR_RE.fullmatch(key):
                key = int(key)
            try:
                duplicate = key in seen
            except TypeError:  # an unhashable key; construct_mapping reports it
                continue
            if duplicate:
                raise _DuplicateKey(key)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


# A copy without the timestamp resolver (the class attribute is shared with SafeLoader).
_StrictLoader.yaml_implicit_resolvers = {
    first: [r for r in resolvers if r[0] != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _parse_year(key: object, path: str) -> int:
    year: int | None = None
    if isinstance(key, int) and not isinstance(key, bool):
        year = key
    elif isinstance(key, str) and _YEAR_RE.fullmatch(key):
        year = int(key)
    if year is None or not MINYEAR <= year <= MAXYEAR:
        raise _invalid(f"日历覆盖文件 {path} 中的键 {key!r} 不是年份（应为四位数字，例如 2027）")
    return year


def _parse_year_schedule(year: int, value: object, path: str) -> YearSchedule:
    where = f"日历覆盖文件 {path} 中"
    if not isinstance(value, dict):
        raise _invalid(f"{where} {year} 的内容应为包含 holidays 和 workdays 两个列表的映射")
    unknown = sorted(str(k) for k in value if k not in _YEAR_KEYS)
    if unknown:
        raise _invalid(
            f"{where} {year} 下有未知的键 {'、'.join(unknown)}（只允许 holidays 和 workdays）"
        )
    lists: dict[str, frozenset[date]] = {}
    for name in _YEAR_KEYS:
        if name not in value:
            raise _invalid(f"{where}缺少 {year}.{name}（没有这类日期时写 []）")
        items = value[name]
        if not isinstance(items, list):
            raise _invalid(f"{where} {year}.{name} 应为日期列表，例如 [{year}-01-01]")
        lists[name] = _parse_dates(year, name, items, where)
    holidays, workdays = lists["holidays"], lists["workdays"]
    both = sorted(holidays & workdays)
    if both:
        raise _invalid(
            f"{where}日期 {both[0].isoformat()} 同时出现在 {year}.holidays 和 {year}.workdays 中"
        )
    return YearSchedule(holidays=holidays, workdays=workdays)


def _parse_dates(year: int, name: str, items: list[Any], where: str) -> frozenset[date]:
    seen: set[date] = set()
    for i, item in enumerate(items):
        key = f"{year}.{name}[{i}]"
        d = _parse_date(item)
        if d is None:
            raise _invalid(f"{where} {key} 的值 {item!r} 不是有效日期（应写成 YYYY-MM-DD）")
        if d.year != year:
            raise _invalid(f"{where} {key} 的日期 {d.isoformat()} 不在 {year} 年内")
        if d in seen:
            raise _invalid(f"{where} {key} 的日期 {d.isoformat()} 在 {year}.{name} 中重复")
        if name == "workdays" and d.weekday() < 5:
            raise _invalid(
                f"{where} {key} 的日期 {d.isoformat()} 是{_WEEKDAYS_ZH[d.weekday()]}："
                "调休上班日应为周六或周日（平日本来就是工作日）"
            )
        seen.add(d)
    return frozenset(seen)


def _parse_date(item: object) -> date | None:
    if not isinstance(item, str) or not _DATE_RE.fullmatch(item):
        return None
    try:
        return date(int(item[0:4]), int(item[5:7]), int(item[8:10]))
    except ValueError:
        return None


def _check_schedule(year: int, schedule: YearSchedule) -> None:
    """Guard for schedules built in code rather than parsed from a file."""
    outside = [d for d in (*schedule.holidays, *schedule.workdays) if d.year != year]
    if outside:
        raise ValueError(f"schedule for {year} holds dates of another year: {sorted(outside)}")
    if schedule.holidays & schedule.workdays:
        raise ValueError(f"schedule for {year} lists dates as both holiday and workday")


def _package_schedules() -> dict[int, YearSchedule]:
    """The ``chinesecalendar`` data, one schedule per year it covers."""
    holidays: Iterable[date] = chinese_calendar.holidays.keys()
    workdays: Iterable[date] = chinese_calendar.workdays.keys()
    by_year: dict[int, tuple[set[date], set[date]]] = {}
    for d in holidays:
        by_year.setdefault(d.year, (set(), set()))[0].add(d)
    for d in workdays:
        by_year.setdefault(d.year, (set(), set()))[1].add(d)
    if not by_year:
        return {}
    # The package itself supports every year between its first and last holiday.
    years = range(min(by_year), max(by_year) + 1)
    return {
        y: YearSchedule(
            holidays=frozenset(by_year.get(y, ((), ()))[0]),
            workdays=frozenset(by_year.get(y, ((), ()))[1]),
        )
        for y in years
    }


def _as_date(d: date) -> date:
    if isinstance(d, datetime):
        return d.date()
    if not isinstance(d, date):
        raise TypeError(f"expected a date, not {type(d).__name__}")
    return d


def _invalid(message: str) -> InvalidInput:
    return InvalidInput(message, {FIELD: [message]})
