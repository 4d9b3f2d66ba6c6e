"""代办 at a village station's window console, in a real browser (Debian's Chromium driven
by Playwright) against real queue, matters, rating and gateway processes (``nameko run``)
of a village site on RabbitMQ. The village holds the county's seed catalog (replicated
with the operator's ``matters.apply_catalog``), so the matters it only proxies are
``proxy_only`` there: the desk says so, offers no 不予受理, submits with channel ``proxy``
and prints the 代办受理单 naming the site that handles the application; the ticket ends as
accepted. No upstream runs: the village forwards regardless."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser

from services.matters.app import MattersApp
from services.matters.settings import MattersSettings
from tests.conftest import VhostFactory, site_context
from tests.system.screens_support import (
    PRINT_SPY,
    Site,
    chromium,
    prints_alone_on_a4,
    screenshot,
    site_of,
)
from tests.system.test_replicas import COUNTY, TOWN, VILLAGE
from tests.system.test_screen_window import at_window, call_one, console, id_number, shown

pytestmark = pytest.mark.system

CHRONIC = "0700022003421302001"  # 门诊慢特病待遇认定: handled at the county, 代办 below
PENSION = "2000021001421302001"  # 城乡居民基本养老保险参保登记: handled at the town too
RECORDS = "2000021006421302001"  # 个人权益记录查询打印: made offered at this village


def county_catalog(tmp: Path) -> list[dict[str, Any]]:
    """The county's catalog versions, as its matters publishes them from the seed: a county
    ``MattersApp`` on a SQLite store of its own, in this process."""
    section = {"seed_catalog": "seed/catalog.yaml"}
    ctx = site_context("matters", COUNTY, "county", f"sqlite:///{tmp}", section)
    try:
        county = MattersApp(ctx, MattersSettings.from_section(section, ctx.identity.tier))
        county.start()
        docs: list[dict[str, Any]] = []
        since = 0
        while page := county.catalog_changes(since, 500)["items"]:
            docs += [{k: v for k, v in doc.items() if k != "_seq"} for doc in page]
            since = page[-1]["_seq"]
        return docs
    finally:
        ctx.store.close()


@pytest.fixture(scope="module")
def site(vhost_factory: VhostFactory, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp("proxy")
    docs = county_catalog(tmp_path_factory.mktemp("county-catalog"))
    services = ("queue", "matters", "rating")
    with site_of(vhost_factory, tmp, services, code=VILLAGE) as site:
        with site.rpc() as rpc:
            assert rpc.matters.apply_catalog(docs)["applied"] == len(docs)
            assert rpc.matters.get_matter(CHRONIC)["availability"] == "proxy_only"
            rpc.matters.set_local_availability(RECORDS, "offered")
            rpc.queue.open_window("1", "S1")
        site.add_staff("S1", ["clerk"], ["1"])
        yield site


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as browser:
        yield browser


def test_the_desk_forwards_a_proxy_only_matter_and_prints_the_proxy_receipt(
    browser: Browser, site: Site
) -> None:
    page = console(browser, site, "S1", PRINT_SPY)
    call_one(page, site)
    page.fill("#q", "门诊慢特病")
    page.press("#q", "Enter")
    page.click("#results button:has-text('门诊慢特病待遇认定')")
    page.wait_for_selector("#guide h3:text-is('门诊慢特病待遇认定')")
    assert "本站代办" in page.inner_text("#guide")
    assert "县（市、区）级" in page.inner_text("#guide .proxy-note")
    page.click("#guide button:text-is('按此事项受理')")
    # the form says it is 代办 and offers no 不予受理 (the handling site decides)
    assert page.inner_text("#desk-matter").startswith("代办事项：门诊慢特病待遇认定")
    assert page.is_visible("#desk-proxy")
    assert "转报" in page.inner_text("#desk-proxy")
    assert not page.is_visible("#refuse")
    assert page.is_disabled("#refuse")
    assert page.inner_text("#desk-submit") == "代办转报"
    citizen = id_number()
    page.fill("#applicant-name", "张三丰")
    page.fill("#applicant-id", citizen)
    for row in (1, 2, 3):  # the three required materials
        page.check(f"#materials li:nth-child({row}) .given")
    page.click("#desk-submit")
    page.wait_for_selector("#notice:not([hidden]) h1:text-is('代办受理单')")
    with site.rpc() as rpc:
        found = rpc.matters.list_applications({"matter_code": CHRONIC, "state": "forwarded"})
        stored = rpc.matters.get_application(found["items"][0]["id"])
    assert stored["channel"] == "proxy"
    assert stored["state"] == "forwarded"
    assert stored["handled_by"] == COUNTY
    assert "receipt" not in stored or not stored["receipt"]
    sheet = page.inner_text("#notice")
    assert page.inner_text("#notice .doc-number") == stored["number"]
    assert page.inner_text("#notice .received") == stored["received_on"]
    assert page.inner_text("#notice .handled-by").startswith(COUNTY)
    assert "门诊慢特病待遇认定" in sheet
    assert stored["applicant"]["name"] in sheet  # masked, as the service returns it
    assert "张三丰" not in sheet
    for name in ("参保人居民身份证", "门诊慢特病申请表", "二级及以上医疗机构诊断证明"):
        assert name in page.inner_text("#notice ol")
    assert "办理结果由本站通知您领取" in sheet
    assert "代办窗口：1 号窗口" in page.inner_text("#notice .signature")
    assert "经办人：员工S1" in page.inner_text("#notice .signature")
    screenshot(page, "proxy")
    prints_alone_on_a4(page)
    page.keyboard.press("Escape")
    assert page.input_value("#applicant-id") == ""
    page.keyboard.press("F4")  # the station took the application in: the ticket is accepted
    shown(page, "已办结")
    assert at_window(site, "1")["outcome"] == "accepted"

    # a matter the town handles is forwarded to the town
    page.click("#tab-guide")
    page.fill("#q", "养老保险参保")
    page.press("#q", "Enter")
    page.click("#results button:has-text('城乡居民基本养老保险参保登记')")
    page.click("#guide button:text-is('按此事项受理')")
    page.fill("#applicant-name", "李四")
    page.fill("#applicant-id", citizen)
    page.check("#materials li:nth-child(1) .given")
    page.click("#desk-submit")
    page.wait_for_selector("#notice:not([hidden]) h1:text-is('代办受理单')")
    assert page.inner_text("#notice .handled-by") == f"{TOWN}（乡镇（街道）级办理站点）"
    page.keyboard.press("Escape")

    # a matter this station handles itself: the desk is the ordinary one again
    page.click("#tab-guide")
    page.fill("#q", "个人权益记录")
    page.press("#q", "Enter")
    page.click("#results button:has-text('个人权益记录查询打印')")
    page.click("#guide button:text-is('按此事项受理')")
    assert page.inner_text("#desk-matter").startswith("办理事项：")
    assert not page.is_visible("#desk-proxy")
    assert page.is_visible("#refuse")
    assert page.is_enabled("#refuse")
    assert page.inner_text("#desk-submit") == "提交"
    page.context.close()
