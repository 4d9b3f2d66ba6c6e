"""The public pages' markup from data (services/gateway/web/report.py, guide.py): figures
as rating gives them, the months an index lists across a new year, every catalog text
escaped, the list's pager, and the gateway's timezone setting."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from services.common.config import ConfigError
from services.gateway.settings import GatewaySettings
from services.gateway.web import guide, report

ATTACK = "<script>alert(1)</script>"


def figures(**counts: int) -> dict[str, Any]:
    total = sum(counts.values())
    return {
        "counts": counts,
        "total": total,
        "good_rate": None,
        "satisfaction_rate": 0.6667 if total else None,
        "bad": 0,
        "excluded": 0,
        "held": 0,
        "cases": 0,
        "cases_closed": 0,
        "cases_closed_on_time": 0,
        "closed_on_time_rate": None,
        "real_name_bad": 0,
        "callback_rate": None,
        "rectification_rate": None,
    }


def test_rates_show_as_rating_rounded_them() -> None:
    assert report.percent(0.6667) == "66.67%"
    assert report.percent(1.0) == "100.00%"
    assert report.percent(0.0) == "0.00%"
    assert report.percent(None) == "—"  # no denominator: no rate, never 0%


def test_the_index_lists_twelve_months_back_across_the_new_year() -> None:
    months = report.recent_periods(date(2026, 2, 15))
    assert months[:3] == ["2026-02", "2026-01", "2025-12"]
    assert months[-1] == "2025-03"
    assert len(months) == 12
    assert report.period_name("2026-02") == "2026年2月"
    assert report.period_name("2026") == "2026年度"


def test_catalog_text_in_the_report_is_escaped() -> None:
    data = {
        "total": figures(satisfied=2, dissatisfied=1),
        "by_department": [{"key": ATTACK, **figures(satisfied=2)}],
        "by_matter": [{"key": "0700018004421302001", **figures(satisfied=1)}],
        "by_channel": [{"key": "pad", **figures(satisfied=1)}],
        "by_site": [],
        "windows": [{"key": "421302:1", "rank": 1, **figures(satisfied=1)}],
        "note": "说明",
    }
    page = report.render(data, {"0700018004421302001": ATTACK})
    assert ATTACK not in page
    assert "&lt;script&gt;" in page
    assert "窗口评价器" in page
    assert "421302 · 1 号窗口" in page
    assert "本期无评价" in page  # by_site is empty


def test_catalog_text_in_the_guide_is_escaped_and_links_are_quoted() -> None:
    matter = {
        "code": "07/../x",
        "name": ATTACK,
        "department": ATTACK,
        "case_type": "2",
        "promised_limit_days": 5,
        "materials": [{"name": ATTACK, "required": True, "form_name": "纸质"}],
        "consultation_phone": "0722-3301201",
    }
    item = guide.result_item(matter)
    assert ATTACK not in item
    assert "href='/m/guide/07%2F..%2Fx'" in item
    body = guide.guide_body(matter)
    assert ATTACK not in body
    assert "href='tel:07223301201'" in body
    assert "承诺 5 个工作日办结" in body


def test_the_pager_keeps_the_keywords() -> None:
    found = {"total": 45, "items": []}
    count, _, pager = guide.results(found, "社保 登记", 2)
    assert count == "共 45 项，第 2/3 页"
    assert "page=1" in pager
    assert "page=3" in pager
    assert "q=%E7%A4%BE" in pager
    assert guide.results({"total": 0, "items": []}, "量子", 1)[0].startswith("没有找到")


def test_the_gateway_timezone_is_checked() -> None:
    assert GatewaySettings.from_section({"timezone": "Asia/Urumqi"}).zone.key == "Asia/Urumqi"
    with pytest.raises(ConfigError) as refused:
        GatewaySettings.from_section({"timezone": "Mars/Olympus"})
    assert "GATEWAY.timezone" in str(refused.value)
