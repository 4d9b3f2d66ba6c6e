"""The supervisor's dashboard (辖区看板) in a real browser against a real county site (queue,
rating and the gateway as ``nameko run`` processes on RabbitMQ; no sync running). A town
and a village below the county are simulated by replicating their evaluations and daily
figures into the county as sync would (``apply_replicated``, as the operator): the table
has one row per site with their figures, "—" with the reason where this tier cannot know,
the sync columns blank with the reason while sync does not answer; the drill-down shows a
site's windows and its 30-day trends (one point a day); the CSV and XLSX downloads carry
the table; a clerk is refused and a link without a session gets nothing."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests
from openpyxl import load_workbook
from playwright.sync_api import Browser, Page

from tests.conftest import VhostFactory
from tests.system.screens_support import Site, screenshot, signed_in, site_of

pytestmark = pytest.mark.system

COUNTY, TOWN, VILLAGE = "421302", "421302101", "421302101201"
TIMEOUT = 20_000
TODAY = datetime.now(ZoneInfo("Asia/Shanghai")).date()


def evaluation(site: str, n: int, day: date, level: str = "satisfied") -> dict[str, Any]:
    """An evaluation as a child site replicates it (the fields the rollups count)."""
    return {
        "id": f"ev:{site}:ticket:{site}-t{n}:1",
        "schema": 1,
        "version": 1,
        "site_code": site,
        "recorded_at_site": site,
        "window": str(n % 2 + 1),
        "staff_id": f"{site}-S{n % 2 + 1}",
        "matter_code": "M1",
        "department": "人社局" if n % 2 else "民政局",
        "channel": "pad",
        "level": level,
        "day": day.isoformat(),
        "held": False,
        "excluded": None,
    }


def figure(site: str, day: date, issued: int, called: int, within: int) -> dict[str, Any]:
    return {
        "id": f"{site}:{day.isoformat()}:A",
        "schema": 1,
        "version": 1,
        "site_code": site,
        "date": day.isoformat(),
        "category": "A",
        "issued": issued,
        "served": called,
        "no_show": 0,
        "called": called,
        "within_target": within,
        "wait_p50_s": 60,
        "wait_p90_s": 120,
        "within_target_share": round(within / called, 4) if called else None,
    }


@pytest.fixture(scope="module")
def site(vhost_factory: VhostFactory, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp("dashboard")
    with site_of(vhost_factory, tmp, ("queue", "rating"), {"bridge_timeout_seconds": 3}) as site:
        site.add_staff("V1", ["supervisor"], [])
        site.add_staff("C1", ["clerk"], ["1"])
        town = [evaluation(TOWN, n, TODAY) for n in range(1, 4)]
        town.append(evaluation(TOWN, 4, TODAY, "very_dissatisfied"))
        village = [evaluation(VILLAGE, n, TODAY - timedelta(days=n)) for n in range(1, 6)]
        with site.rpc() as rpc:
            rpc.rating.apply_replicated("evaluations", town + village)
            rpc.queue.apply_replicated(
                "daily_figures",
                [
                    figure(TOWN, TODAY, 12, 10, 8),
                    figure(VILLAGE, TODAY - timedelta(days=2), 4, 4, 4),
                    figure(VILLAGE, TODAY, 2, 0, 0),  # two waiting there, none called yet
                ],
            )
            for _ in range(3):
                rpc.queue.take_ticket("A", "kiosk")  # waiting now, at the county itself
        yield site


@pytest.fixture(scope="module")
def board(browser: Browser, site: Site) -> Page:
    page = signed_in(browser, site, "/dashboard", "V1")
    page.set_viewport_size({"width": 1920, "height": 1080})
    page.wait_for_selector(f"#sites-body tr[data-site='{VILLAGE}']", timeout=TIMEOUT)
    return page


def cells(page: Page, site_code: str) -> list[str]:
    return page.locator(f"#sites-body tr[data-site='{site_code}'] td").all_inner_texts()


def test_one_row_per_site_with_its_figures_and_dashes_with_reasons(board: Page) -> None:
    order = board.locator("#sites-body tr").evaluate_all("rows => rows.map(r => r.dataset.site)")
    assert order == [COUNTY, TOWN, VILLAGE]
    county = cells(board, COUNTY)
    assert county[:3] == [COUNTY, "3", "3"]  # three tickets taken, three waiting now
    town = cells(board, TOWN)
    # 12 tickets, 8 of 10 called on time; 4 evaluations, one bad: 75 %
    assert town[:7] == [TOWN, "12", "—", "80.0%", "4", "75.0%", "1"]
    waiting = board.locator(f"#sites-body tr[data-site='{TOWN}'] td").nth(2)
    assert "不实时上报" in (waiting.get_attribute("title") or "")
    village = cells(board, VILLAGE)
    assert village[1:5] == ["2", "—", "—", "0"]  # none called, none of its ratings is today's
    share = board.locator(f"#sites-body tr[data-site='{VILLAGE}'] td").nth(3)
    assert share.get_attribute("title") == "本期没有叫号"
    sync = board.locator(f"#sites-body tr[data-site='{COUNTY}'] td").nth(10)
    assert (sync.inner_text(), (sync.get_attribute("title") or "")[:5]) == ("—", "同步服务：")
    assert "同步服务" in board.locator("#unavailable").inner_text()
    board.click("#sites thead button[data-key=evaluations]")  # most first
    order = board.locator("#sites-body tr").evaluate_all("rows => rows.map(r => r.dataset.site)")
    assert order[0] == TOWN


def test_the_drill_down_and_its_thirty_day_trends(board: Page) -> None:
    board.click(f"#sites-body button.site[data-site='{VILLAGE}']")
    board.wait_for_selector("#chart-evaluations circle", timeout=TIMEOUT)
    points = board.locator("#chart-evaluations circle")
    assert points.count() == 30
    values = points.evaluate_all("ps => ps.map(p => Number(p.dataset.value))")
    assert sum(values) == 5
    assert (values[-1], values[-2]) == (0, 1)  # none today, yesterday's one
    assert board.locator("#chart-tickets circle").count() == 30
    assert board.locator("#chart-satisfaction circle").count() == 5  # days with ratings only
    board.select_option("#period select[name=span]", "month")
    board.wait_for_function(
        "() => document.querySelectorAll('#by-window tr td.num').length > 0", timeout=TIMEOUT
    )
    if TODAY.day > 5:  # the village's five days all lie in this month
        windows = board.locator("#by-window tr").all_inner_texts()
        assert [w.split("\t")[:2] for w in windows] == [["1 号窗口", "2"], ["2 号窗口", "3"]]
    screenshot(board, "dashboard")
    board.set_viewport_size({"width": 1366, "height": 768})
    width = board.evaluate("document.documentElement.scrollWidth")
    assert width <= 1366  # the wide table scrolls inside its box, the page does not


def test_csv_and_xlsx_downloads_carry_the_table(board: Page) -> None:
    board.select_option("#period select[name=span]", "today")
    board.wait_for_function(
        "() => document.getElementById('export-csv').href.includes('date_from')", timeout=TIMEOUT
    )
    with board.expect_download(timeout=TIMEOUT) as caught:
        board.click("#export-csv")
    data = caught.value.path().read_bytes()
    assert data.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert rows[0][:2] == ["站点", "取号数"]
    town = next(r for r in rows if r[0] == TOWN)
    assert town[1:7] == ["12", "—", "80.0%", "4", "75.0%", "1"]
    with board.expect_download(timeout=TIMEOUT) as caught:
        board.click("#export-xlsx")
    assert caught.value.suggested_filename.endswith(".xlsx")
    book = load_workbook(io.BytesIO(caught.value.path().read_bytes()))
    sheet = book.active
    assert sheet is not None
    values = {row[0]: row for row in sheet.iter_rows(values_only=True)}
    assert values[TOWN][1:7] == (12, "—", 0.8, 4, 0.75, 1)
    assert values[COUNTY][2] == 3


def test_a_clerk_and_a_link_without_session_get_nothing(browser: Browser, site: Site) -> None:
    clerk = signed_in(browser, site, "/window", "C1", window="1")
    answer = clerk.request.get(f"{site.url}/dashboard/export.csv")
    assert answer.status == 403
    denied = clerk.request.get(f"{site.url}/dashboard")
    assert denied.status == 403
    assert "无权访问" in denied.text()
    assert requests.get(f"{site.url}/dashboard/export.xlsx", timeout=10).status_code == 401
    bare = requests.post(f"{site.url}/dashboard/table", json={}, timeout=10)
    assert bare.status_code == 401
    clerk.context.close()
