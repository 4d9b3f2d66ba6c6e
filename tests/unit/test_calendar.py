"""Working-day deadlines on the official schedule, with 调休 and per-site overrides.

Expected dates are worked out by hand from the State Council notices as carried by
``chinesecalendar`` 1.11:

* 2025 春节 1-28 (Tue) … 2-4 (Tue) off; 1-26 (Sun) and 2-8 (Sat) worked.
* 2025 国庆/中秋 10-1 (Wed) … 10-8 (Wed) off; 9-28 (Sun) and 10-11 (Sat) worked.
* 2026 春节 2-15 (Sun) … 2-23 (Mon) off; 2-14 (Sat) and 2-28 (Sat) worked.
* 2026 中秋 9-25 (Fri) off; 国庆 10-1 (Thu) … 10-7 (Wed) off; 9-20 (Sun) and 10-10 (Sat) worked.

Every 2027 date in these tests is FICTIONAL test data, not the official 2027 schedule.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import chinese_calendar
import pytest
from nameko.exceptions import deserialize, serialize

from services.common import remote  # noqa: F401  (typed remote errors)
from services.common.calendar import (
    ScheduleMissing,
    WorkingCalendar,
    YearSchedule,
    load_calendar,
)
from services.common.errors import InvalidInput

pytestmark = pytest.mark.unit

SHANGHAI = ZoneInfo("Asia/Shanghai")
EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "calendar" / "override.example.yaml"

# Fictional 2027 for tests: 1-1 (Fri) and 1-4 (Mon) off, 1-9 (Sat) worked.
OVERRIDE_2027 = """\
# test data only, not the official 2027 schedule
2027:
  holidays: [2027-01-01, 2027-01-04]
  workdays: [2027-01-09]
"""


@pytest.fixture
def cal() -> WorkingCalendar:
    return load_calendar(None)


@pytest.fixture
def cal_2027(tmp_path: Path) -> WorkingCalendar:
    path = tmp_path / "calendar.yaml"
    path.write_text(OVERRIDE_2027, encoding="utf-8")
    return load_calendar(str(path))


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "override.yaml"
    path.write_text(text, encoding="utf-8")
    return str(path)


# --- Spring Festival 2026 -------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "n", "expected"),
    [
        # accepted on Sat 2-14, the 调休 working day right before the holiday
        (date(2026, 2, 14), 1, date(2026, 2, 24)),
        (date(2026, 2, 14), 5, date(2026, 2, 28)),  # 2-24..2-27, then 调休 Sat 2-28
        (date(2026, 2, 14), 6, date(2026, 3, 2)),
        # accepted on Fri 2-13: the next day is a 调休 Saturday and counts
        (date(2026, 2, 13), 1, date(2026, 2, 14)),
        (date(2026, 2, 13), 2, date(2026, 2, 24)),
        (date(2026, 2, 13), 20, date(2026, 3, 19)),
        # accepted during the holiday (on-line application): counting starts after it
        (date(2026, 2, 17), 1, date(2026, 2, 24)),
        (date(2026, 2, 23), 1, date(2026, 2, 24)),
        # accepted on Fri 2-27: Sat 2-28 is a 调休 working day, Sun 3-1 is not
        (date(2026, 2, 27), 1, date(2026, 2, 28)),
        (date(2026, 2, 27), 2, date(2026, 3, 2)),
    ],
)
def test_spring_festival_2026(cal: WorkingCalendar, start: date, n: int, expected: date) -> None:
    assert cal.add_working_days(start, n) == expected


# --- National Day 2026 (with 中秋 9-25) -----------------------------------------------


@pytest.mark.parametrize(
    ("start", "n", "expected"),
    [
        # accepted Wed 9-30, the day before the holiday
        (date(2026, 9, 30), 1, date(2026, 10, 8)),
        (date(2026, 9, 30), 2, date(2026, 10, 9)),
        (date(2026, 9, 30), 3, date(2026, 10, 10)),  # 调休 Saturday
        (date(2026, 9, 30), 4, date(2026, 10, 12)),
        # Thu 9-24: 中秋 Fri 9-25 and the weekend are off, then 9-28, 9-29, 9-30, 10-8, 10-9
        (date(2026, 9, 24), 5, date(2026, 10, 9)),
        # Fri 9-18: Sat 9-19 is off but Sun 9-20 is a 调休 working day
        (date(2026, 9, 18), 1, date(2026, 9, 20)),
        (date(2026, 9, 18), 2, date(2026, 9, 21)),
        # an ordinary Friday
        (date(2026, 3, 6), 1, date(2026, 3, 9)),
    ],
)
def test_national_day_2026(cal: WorkingCalendar, start: date, n: int, expected: date) -> None:
    assert cal.add_working_days(start, n) == expected


# --- 2025 ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "n", "expected"),
    [
        (date(2025, 1, 24), 1, date(2025, 1, 26)),  # Fri → 调休 Sunday
        (date(2025, 1, 27), 1, date(2025, 2, 5)),  # day before 春节 → first day after it
        (date(2025, 1, 27), 4, date(2025, 2, 8)),  # 2-5, 2-6, 2-7, 调休 Sat 2-8
        (date(2025, 1, 27), 5, date(2025, 2, 10)),
        (date(2025, 9, 26), 1, date(2025, 9, 28)),  # Fri → 调休 Sunday
        (date(2025, 9, 30), 1, date(2025, 10, 9)),
        (date(2025, 9, 30), 3, date(2025, 10, 11)),  # 10-9, 10-10, 调休 Sat 10-11
        (date(2025, 9, 30), 4, date(2025, 10, 13)),
    ],
)
def test_holidays_2025(cal: WorkingCalendar, start: date, n: int, expected: date) -> None:
    assert cal.add_working_days(start, n) == expected


def test_is_working_day(cal: WorkingCalendar) -> None:
    assert cal.is_working_day(date(2026, 2, 14))  # 调休 Saturday
    assert not cal.is_working_day(date(2026, 2, 16))  # Monday in 春节
    assert not cal.is_working_day(date(2026, 9, 25))  # 中秋 Friday
    assert not cal.is_working_day(date(2026, 3, 7))  # ordinary Saturday
    assert cal.is_working_day(date(2026, 3, 9))  # ordinary Monday
    assert cal.is_working_day(datetime(2026, 2, 14, 16, 30, tzinfo=SHANGHAI))  # its date


def test_n_zero_returns_start(cal: WorkingCalendar) -> None:
    assert cal.add_working_days(date(2026, 2, 16), 0) == date(2026, 2, 16)  # even a holiday
    assert cal.add_working_days(date(2027, 6, 1), 0) == date(2027, 6, 1)  # no schedule needed


def test_negative_n_is_refused(cal: WorkingCalendar) -> None:
    with pytest.raises(ValueError, match="negative"):
        cal.add_working_days(date(2026, 3, 2), -1)


def test_returns_date_for_datetime_start(cal: WorkingCalendar) -> None:
    result = cal.add_working_days(datetime(2026, 2, 13, 17, 59, tzinfo=SHANGHAI), 1)
    assert result == date(2026, 2, 14)
    assert type(result) is date


def test_agrees_with_package_day_by_day(cal: WorkingCalendar) -> None:
    """Cross-check against a naive day-by-day walk over chinesecalendar itself."""

    def naive(start: date, n: int) -> date:
        d = start
        while n:
            d += timedelta(days=1)
            n -= chinese_calendar.is_workday(d)
        return d

    start = date(2025, 1, 1)
    while start < date(2026, 11, 30):
        for n in (1, 2, 3, 5, 10, 15, 20):
            assert cal.add_working_days(start, n) == naive(start, n), (start, n)
        start += timedelta(days=1)


def test_large_n_spans_every_packaged_year(cal: WorkingCalendar) -> None:
    total = cal.working_days_between(date(2003, 12, 31), date(2026, 12, 31))
    assert total > 22 * 245
    assert cal.add_working_days(date(2003, 12, 31), total) == date(2026, 12, 31)  # a Thursday
    # 2004-01-01 is 元旦, so starting on it instead of the day before changes nothing
    assert cal.add_working_days(date(2004, 1, 1), total) == date(2026, 12, 31)
    assert cal.add_working_days(date(2004, 1, 2), total - 1) == date(2026, 12, 31)


# --- years without a schedule ---------------------------------------------------------


def test_2027_without_override_is_refused(cal: WorkingCalendar) -> None:
    assert not cal.covers(2027)
    with pytest.raises(ScheduleMissing) as info:
        cal.add_working_days(date(2026, 12, 30), 2)  # 12-31, then into 2027
    err = info.value
    assert isinstance(err, InvalidInput)
    assert err.year == 2027
    assert "2027年" in err.message
    assert "国务院办公厅关于2027年部分节假日安排的通知" in err.message
    assert "日历覆盖文件" in err.message
    assert list(err.fields) == ["calendar"]
    assert err.to_json()["error"] == "invalid_input"


def test_deadline_inside_known_year_needs_no_next_year(cal: WorkingCalendar) -> None:
    assert cal.add_working_days(date(2026, 12, 30), 1) == date(2026, 12, 31)


def test_is_working_day_in_unknown_year_is_refused(cal: WorkingCalendar) -> None:
    with pytest.raises(ScheduleMissing, match="2027"):
        cal.is_working_day(date(2027, 3, 1))  # a Monday: still not guessed
    with pytest.raises(ScheduleMissing, match="2003"):
        cal.is_working_day(date(2003, 12, 31))


def test_schedule_missing_names_the_override_path(tmp_path: Path) -> None:
    path = write(tmp_path, "2099:\n  holidays: []\n  workdays: []\n")
    with pytest.raises(ScheduleMissing) as info:
        load_calendar(path).is_working_day(date(2027, 1, 5))
    assert path in info.value.message


@pytest.mark.parametrize("path", ["/etc/hall/calendar.yaml", None])
def test_schedule_missing_survives_rpc(path: str | None) -> None:
    err = ScheduleMissing(2027, path)
    back = deserialize(serialize(err))
    assert type(back) is ScheduleMissing
    assert back.year == 2027
    assert back.override_path == path
    assert back.message == err.message
    assert "None" not in back.message
    assert back.fields == err.fields


def test_covers(cal: WorkingCalendar, cal_2027: WorkingCalendar) -> None:
    assert cal.covers(2004)
    assert cal.covers(2026)
    assert not cal.covers(2003)
    assert not cal.covers(2027)
    assert cal_2027.covers(2026)
    assert cal_2027.covers(2027)
    assert not cal_2027.covers(2028)


# --- with an override file ------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "n", "expected"),
    [
        # Wed 12-30-2026 → Thu 12-31; Fri 1-1 off; weekend; Mon 1-4 off (fictional)
        (date(2026, 12, 30), 1, date(2026, 12, 31)),
        (date(2026, 12, 30), 2, date(2027, 1, 5)),
        (date(2026, 12, 30), 6, date(2027, 1, 9)),  # 1-5..1-8, then fictional 调休 Sat 1-9
        (date(2026, 12, 30), 7, date(2027, 1, 11)),
        (date(2026, 12, 31), 1, date(2027, 1, 5)),
        (date(2027, 1, 8), 1, date(2027, 1, 9)),
        (date(2027, 6, 4), 1, date(2027, 6, 7)),  # plain weekend rule inside a loaded year
    ],
)
def test_deadline_with_2027_override(
    cal_2027: WorkingCalendar, start: date, n: int, expected: date
) -> None:
    assert cal_2027.add_working_days(start, n) == expected


def test_deadline_crossing_2026_into_2027_needs_both(cal_2027: WorkingCalendar) -> None:
    # 2026 from the package (春节 and 国庆 skipped), 2027 from the override
    start = date(2026, 12, 1)
    n = cal_2027.working_days_between(start, date(2027, 1, 11))
    assert n == 22 + 6  # 12-2..12-31 has 22 working days; 1-5..1-8, 1-9 (fictional), 1-11
    assert cal_2027.add_working_days(start, n) == date(2027, 1, 11)
    with pytest.raises(ScheduleMissing, match="2028"):
        cal_2027.add_working_days(date(2027, 12, 1), 30)


def test_override_year_wins_over_package(tmp_path: Path) -> None:
    path = write(tmp_path, "2026:\n  holidays: []\n  workdays: []\n")
    cal = load_calendar(path)
    assert cal.is_working_day(date(2026, 2, 16))  # 春节 gone: the override defines 2026
    assert not cal.is_working_day(date(2026, 2, 14))  # and so is the 调休 Saturday
    assert not cal.is_working_day(date(2025, 2, 1))  # 2025 still from the package
    assert cal.is_working_day(date(2025, 1, 26))


def test_quoted_year_and_dates_are_accepted(tmp_path: Path) -> None:
    path = write(tmp_path, '"2027":\n  holidays: ["2027-01-01"]\n  workdays: []\n')
    cal = load_calendar(path)
    assert not cal.is_working_day(date(2027, 1, 1))


def test_empty_override_file_overrides_nothing(tmp_path: Path) -> None:
    cal = load_calendar(write(tmp_path, "# nothing yet\n"))
    assert not cal.covers(2027)
    assert cal.add_working_days(date(2026, 2, 13), 2) == date(2026, 2, 24)


def test_empty_path_means_package_only() -> None:
    assert not load_calendar("").covers(2027)
    assert load_calendar("").covers(2026)


def test_example_file_loads() -> None:
    cal = load_calendar(str(EXAMPLE))
    assert cal.covers(2099)
    assert not cal.covers(2027)  # the example must not pretend to know a real year
    assert not cal.is_working_day(date(2099, 1, 1))
    assert cal.is_working_day(date(2099, 1, 4))


def test_calendar_built_in_code() -> None:
    schedule = YearSchedule(holidays=frozenset({date(2027, 1, 1)}), workdays=frozenset())
    cal = WorkingCalendar({2027: schedule})
    assert cal.add_working_days(date(2026, 12, 31), 1) == date(2027, 1, 4)
    with pytest.raises(ValueError, match="another year"):
        WorkingCalendar({2028: schedule})


# --- malformed override files ---------------------------------------------------------


def test_missing_file_is_named(tmp_path: Path) -> None:
    path = str(tmp_path / "nope.yaml")
    with pytest.raises(InvalidInput) as info:
        load_calendar(path)
    assert path in info.value.message
    assert "不存在" in info.value.message
    assert list(info.value.fields) == ["calendar"]


def test_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="无法读取") as info:
        load_calendar(str(tmp_path))
    assert str(tmp_path) in info.value.message


@pytest.mark.parametrize(
    ("text", "words"),
    [
        pytest.param("2027: [unclosed\n", ["YAML"], id="yaml-syntax"),
        pytest.param("- 2027-01-01\n", ["顶层"], id="top-level-list"),
        pytest.param("abc:\n  holidays: []\n  workdays: []\n", ["'abc'", "年份"], id="bad-year"),
        pytest.param("2027: [2027-01-01]\n", ["2027", "映射"], id="year-not-mapping"),
        pytest.param(
            "2027:\n  holidays: []\n  workdays: []\n2027:\n  holidays: []\n  workdays: []\n",
            ["2027", "不止一次"],
            id="duplicate-year",
        ),
        pytest.param(
            '2027:\n  holidays: []\n  workdays: []\n"2027":\n  holidays: []\n  workdays: []\n',
            ["2027", "不止一次"],
            id="duplicate-year-quoted",
        ),
        pytest.param(
            "2027:\n  holidays: []\n  workdays: []\n  holiday: []\n",
            ["holiday", "未知"],
            id="unknown-key",
        ),
        pytest.param("2027:\n  holidays: []\n", ["2027.workdays", "缺少"], id="missing-key"),
        pytest.param(
            "2027:\n  holidays: 2027-01-01\n  workdays: []\n",
            ["2027.holidays", "列表"],
            id="not-a-list",
        ),
        pytest.param(
            "2027:\n  holidays: [2027-02-30]\n  workdays: []\n",
            ["2027.holidays[0]", "2027-02-30", "YYYY-MM-DD"],
            id="impossible-date",
        ),
        pytest.param(
            "2027:\n  holidays: [2027-01-01, 2027-1-4]\n  workdays: []\n",
            ["2027.holidays[1]", "2027-1-4"],
            id="unpadded-date",
        ),
        pytest.param(
            "2027:\n  holidays: [20270101]\n  workdays: []\n",
            ["2027.holidays[0]", "20270101"],
            id="number-not-date",
        ),
        pytest.param(
            "2027:\n  holidays: [2027-01-01 08:00:00]\n  workdays: []\n",
            ["2027.holidays[0]"],
            id="timestamp-not-date",
        ),
        pytest.param(
            "2027:\n  holidays: [2026-12-31]\n  workdays: []\n",
            ["2027.holidays[0]", "2026-12-31", "不在 2027 年内"],
            id="date-outside-year",
        ),
        pytest.param(
            "2027:\n  holidays: [2027-01-01, 2027-01-01]\n  workdays: []\n",
            ["2027.holidays[1]", "重复"],
            id="duplicate-date",
        ),
        pytest.param(
            "2027:\n  holidays: [2027-01-09]\n  workdays: [2027-01-09]\n",
            ["2027-01-09", "2027.holidays", "2027.workdays", "同时"],
            id="holiday-and-workday",
        ),
        pytest.param(
            "2027:\n  holidays: []\n  workdays: [2027-01-05]\n",
            ["2027.workdays[0]", "2027-01-05", "星期二", "周六或周日"],
            id="workday-on-weekday",
        ),
    ],
)
def test_malformed_override_names_path_and_key(tmp_path: Path, text: str, words: list[str]) -> None:
    path = write(tmp_path, text)
    with pytest.raises(InvalidInput) as info:
        load_calendar(path)
    err = info.value
    assert not isinstance(err, ScheduleMissing)
    assert path in err.message
    for word in words:
        assert word in err.message
    assert err.fields == {"calendar": [err.message]}


def test_non_utf8_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "gbk.yaml"
    path.write_bytes("# 国务院办公厅\n".encode("gbk"))
    with pytest.raises(InvalidInput, match="无法读取"):
        load_calendar(str(path))


# --- working_days_between -------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (date(2026, 2, 13), date(2026, 2, 13), 0),
        (date(2026, 2, 13), date(2026, 2, 14), 1),  # 调休 Saturday counts
        (date(2026, 2, 14), date(2026, 2, 23), 0),  # the whole holiday
        (date(2026, 2, 13), date(2026, 2, 28), 6),  # 2-14, 2-24..2-28
        (date(2026, 2, 28), date(2026, 2, 13), -6),  # antisymmetric
        (date(2026, 9, 30), date(2026, 10, 10), 3),  # 10-8, 10-9, 调休 10-10
        (date(2025, 9, 30), date(2025, 10, 12), 3),  # 10-9, 10-10, 调休 10-11
        (date(2026, 3, 6), date(2026, 3, 8), 0),  # Friday to Sunday
        (date(2026, 3, 7), date(2026, 3, 9), 1),  # the end day counts
    ],
)
def test_working_days_between(cal: WorkingCalendar, start: date, end: date, expected: int) -> None:
    assert cal.working_days_between(start, end) == expected


def test_between_inverts_add(cal: WorkingCalendar) -> None:
    for start in (date(2025, 1, 24), date(2026, 2, 13), date(2026, 9, 18), date(2026, 2, 17)):
        for n in range(60):
            assert cal.working_days_between(start, cal.add_working_days(start, n)) == n


def test_between_refuses_unknown_year(cal: WorkingCalendar) -> None:
    with pytest.raises(ScheduleMissing, match="2027"):
        cal.working_days_between(date(2026, 12, 30), date(2027, 1, 5))
    with pytest.raises(ScheduleMissing, match="2027"):
        cal.working_days_between(date(2027, 1, 5), date(2026, 12, 30))
    # a start on 12-31 of an unknown year needs none of that year
    assert cal.working_days_between(date(2003, 12, 31), date(2004, 1, 2)) == 1


def test_days_covered_ahead_reach_the_end_of_the_last_loaded_year(
    cal: WorkingCalendar, cal_2027: WorkingCalendar
) -> None:
    assert cal.days_covered_after(date(2026, 11, 22)) == 39  # the package ends with 2026
    assert cal.days_covered_after(date(2027, 1, 2)) == -2
    assert cal_2027.days_covered_after(date(2026, 11, 22)) == 39 + 365
