"""The dashboard's rows from given service answers: one row per site known to any answer,
the red rule (a direct child silent longer than the setting), and "—" (None plus a
reason) for every figure this tier cannot know; the CSV and XLSX exports."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from openpyxl import load_workbook

from services.common.errors import InvalidInput, UpstreamUnavailable
from services.gateway import dashboard
from services.gateway.settings import GatewaySettings

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai
COUNTY, TOWN, VILLAGE, QUIET = "421302", "421302101", "421302101201", "421302102"
HOUR = timedelta(hours=1)


def figures_f(total: int, satisfied: int, **extra: Any) -> dict[str, Any]:
    """The part of rating's F the dashboard reads."""
    return {
        "total": total,
        "satisfaction_rate": round(satisfied / total, 4) if total else None,
        "bad": total - satisfied,
        "cases": extra.get("cases", 0),
        "cases_closed": extra.get("cases_closed", 0),
        "callback_rate": extra.get("callback_rate"),
    }


STATS = {
    "groups": [
        {"key": COUNTY, **figures_f(10, 9, cases=1, cases_closed=1, callback_rate=1.0)},
        {"key": TOWN, **figures_f(4, 3, cases=1)},
        {"key": VILLAGE, **figures_f(2, 2)},
    ]
}
FIGURES = {
    "waiting_now": {COUNTY: 6},
    "rows": [
        {
            "site_code": COUNTY,
            "date": "2026-11-23",
            "issued": 30,
            "called": 20,
            "within_target": 15,
            "within_target_share": 0.75,
        },
        {
            "site_code": TOWN,
            "date": "2026-11-23",
            "issued": 8,
            "called": 5,
            "within_target": 5,
            "within_target_share": 1.0,
        },
        {
            "site_code": QUIET,
            "date": "2026-11-23",
            "issued": 3,
            "called": 0,
            "within_target": 0,
            "within_target_share": None,
        },
        # an older child: a share without the counts behind it
        {
            "site_code": VILLAGE,
            "date": "2026-11-23",
            "issued": 2,
            "called": 2,
            "within_target": 0,
            "within_target_share": None,
        },
    ],
}
SYNC: dict[str, Any] = {
    "upstream": "420000",
    "up": {
        "rating.evaluations": {
            "backlog": 3,
            "oldest_unsent_age_seconds": 42.5,
            "last_success": "2026-11-23T01:59:00.000000Z",
        },
        "queue.daily_figures": {
            "backlog": 1,
            "oldest_unsent_age_seconds": 7.0,
            "last_success": "2026-11-23T01:58:00.000000Z",
        },
    },
    "children": {
        TOWN: {"rating.evaluations": {"high_water": 9, "last_received": "2026-11-23T01:30:00Z"}},
        QUIET: {
            "rating.evaluations": {"high_water": 2, "last_received": "2026-11-23T00:30:00Z"},
            "queue.daily_figures": {"high_water": 5, "last_received": "2026-11-23T00:59:00Z"},
        },
    },
}


def rows(sync: dict[str, Any] = SYNC, overdue: int | None = 2) -> dict[str, dict[str, Any]]:
    built = dashboard.build_rows(COUNTY, STATS, FIGURES, sync, overdue, NOW, HOUR)
    return {r["site_code"]: r for r in built}


def test_one_row_per_site_of_any_answer_with_the_figures() -> None:
    table = rows()
    assert list(table) == [COUNTY, TOWN, VILLAGE, QUIET]
    county = table[COUNTY]["cells"]
    assert (county["tickets"], county["waiting"], county["within_target_share"]) == (30, 6, 0.75)
    assert (county["evaluations"], county["satisfaction_rate"], county["bad"]) == (10, 0.9, 1)
    assert (county["cases_open"], county["cases_overdue"], county["callback_rate"]) == (0, 2, 1.0)
    assert (county["sync_backlog"], county["oldest_unsent_s"]) == (4, 42.5)
    assert county["last_success"] == "2026-11-23T01:58:00.000000Z"  # the older of the feeds
    town = table[TOWN]["cells"]
    assert (town["tickets"], town["evaluations"], town["cases_open"]) == (8, 4, 1)
    assert town["last_success"] == "2026-11-23T01:30:00+00:00"


def test_a_child_silent_over_the_setting_is_red_and_one_never_heard_from_too() -> None:
    table = rows()
    assert table[TOWN]["red"] is None  # heard from 30 minutes ago
    assert table[QUIET]["red"] == "已 61 分钟未收到该站点的数据"  # the latest feed counts
    assert table[COUNTY]["red"] is None
    never = {**SYNC, "children": {**SYNC["children"], TOWN: {}}}
    assert rows(never)[TOWN]["red"] == "从未收到该站点的数据"
    wider = dashboard.build_rows(COUNTY, STATS, FIGURES, SYNC, 0, NOW, 2 * HOUR)
    assert all(r["red"] is None for r in wider)


def test_what_this_tier_cannot_know_is_none_with_the_reason() -> None:
    table = rows()
    town, village = table[TOWN], table[VILLAGE]
    assert town["cells"]["waiting"] is None
    assert town["why"]["waiting"] == dashboard.NOT_LIVE
    assert town["cells"]["sync_backlog"] is None
    assert town["why"]["sync_backlog"] == dashboard.CHILD_BACKLOG
    assert town["cells"]["cases_overdue"] is None
    assert town["why"]["cases_overdue"] == dashboard.CHILD_OVERDUE
    # a village reached through its town: no sync marks of its own here
    assert village["cells"]["last_success"] is None
    assert village["why"]["last_success"] == dashboard.NOT_DIRECT
    assert village["red"] is None
    assert village["cells"]["within_target_share"] is None
    assert village["why"]["within_target_share"] == dashboard.OLD_CHILD
    quiet = table[QUIET]
    assert quiet["cells"]["satisfaction_rate"] is None
    assert quiet["why"]["satisfaction_rate"] == dashboard.NO_RATINGS
    assert quiet["why"]["within_target_share"] == dashboard.NO_CALLS
    for row in table.values():  # every None carries its reason
        missing = {k for k, v in row["cells"].items() if v is None}
        assert missing <= set(row["why"]), row["site_code"]
    top = rows({"upstream": None, "up": {}, "children": {}}, overdue=None)[COUNTY]
    assert top["why"]["sync_backlog"] == dashboard.NO_UPSTREAM
    assert top["cells"]["cases_overdue"] is None


def test_the_period_defaults_to_today_and_is_bounded() -> None:
    today = date(2026, 11, 23)
    assert dashboard.period({}, today) == dashboard.Period(today, today)
    span = dashboard.period({"date_from": "2026-11-01", "date_to": "2026-11-23"}, today)
    assert span.date_from == date(2026, 11, 1)
    with pytest.raises(InvalidInput) as caught:
        dashboard.period({"date_from": "2026-01-01"}, today)
    assert "date_to" in caught.value.fields
    with pytest.raises(InvalidInput) as caught:
        dashboard.period({"date_from": "2026-11-24"}, today)
    assert "date_from" in caught.value.fields
    with pytest.raises(InvalidInput):
        dashboard.period({"date_from": "2026-13-01"}, today)


def test_the_table_calls_the_services_as_given_and_exports() -> None:
    calls: list[tuple[Any, ...]] = []
    answers = {
        ("rating", "stats"): STATS,
        ("queue", "subtree_figures"): FIGURES,
        ("sync", "status"): SYNC,
        ("rating", "list_cases"): [{"id": "c1"}, {"id": "c2"}, {"id": "c3"}],
    }

    def call(service: str, method: str, *args: Any) -> Any:
        calls.append((service, method, *args))
        return answers[(service, method)]

    board = dashboard.Dashboard(COUNTY, GatewaySettings(dashboard_silent_minutes=60))
    table = board.table(call, {}, NOW)
    assert (table["date_from"], table["date_to"]) == ("2026-11-23", "2026-11-23")
    assert (
        "rating",
        "stats",
        {"date_from": "2026-11-23", "date_to": "2026-11-23"},
        "site",
    ) in calls
    assert ("queue", "subtree_figures", "2026-11-23", "2026-11-23") in calls
    assert table["rows"][0]["cells"]["cases_overdue"] == 3
    text = dashboard.export_csv(table)
    assert text.startswith("\ufeff".encode())
    lines = list(csv.reader(io.StringIO(text.decode("utf-8-sig"))))
    assert lines[0][:3] == ["站点", "取号数", "当前等候"]
    assert lines[1][:4] == [COUNTY, "30", "6", "75.0%"]
    assert lines[2][2] == "—"
    book = load_workbook(io.BytesIO(dashboard.export_xlsx(table)))
    sheet = book.active
    assert sheet is not None
    values = [[c.value for c in row] for row in sheet.iter_rows()]
    assert values[0][0] == "站点"
    assert values[1][:4] == [COUNTY, 30, 6, 0.75]
    assert sheet.cell(2, 4).number_format == "0.0%"
    assert values[2][2] == "—"
    assert len(values) == 1 + len(table["rows"])


def test_a_service_that_does_not_answer_blanks_only_its_columns() -> None:
    def call(service: str, method: str, *args: Any) -> Any:
        if service == "sync":
            raise UpstreamUnavailable("sync 服务在 10 秒内没有应答")
        return {"rating": STATS, "queue": FIGURES}[service] if method != "list_cases" else []

    board = dashboard.Dashboard(COUNTY, GatewaySettings())
    table = board.table(call, {}, NOW)
    assert table["unavailable"] == ["同步服务：sync 服务在 10 秒内没有应答"]
    county = next(r for r in table["rows"] if r["site_code"] == COUNTY)
    assert county["cells"]["sync_backlog"] is None
    assert county["why"]["last_success"].startswith("同步服务：")
    assert county["cells"]["tickets"] == 30  # the rest is shown
    assert all(r["red"] is None for r in table["rows"])  # no sync answer: nothing to judge
