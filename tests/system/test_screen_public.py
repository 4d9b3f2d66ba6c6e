"""The public pages in a real browser (Debian's Chromium via Playwright), real matters,
rating and gateway processes on RabbitMQ, no sign-in: the 好差评公开报告 shows the figures
``rating.public_report`` computes, holds nothing personal, prints on A4 without its
button, and answers a bad period with a Chinese 400 page and a rating that is down with a
calm 503 page; 办事指南 on a phone finds a matter by a Chinese keyword, lists the whole
catalog a page at a time and shows a guide with its materials; an unknown code is 404."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests
from playwright.sync_api import Browser, Page

from services.common.errors import NotFound
from services.common.privacy import resident_id_check
from tests.conftest import VhostFactory, wait_for
from tests.system.screens_support import PRINT_SPY, Site, new_page, screenshot, site_of

pytestmark = pytest.mark.system

PHONE = "13907221234"
RATER = "欧阳明月"
APPLICANT = "司马长风"
ID_NUMBER = "42130219850505123" + resident_id_check("42130219850505123")
CLERK, HANDLER, LEAD = "clerk-pub-7", "handler-pub-8", "lead-pub-9"
RELEASE = "0700018004421302001"  # 抵押权注销登记 (即办件: completed when accepted)
LOOKUP = "2000018005421302001"  # 不动产登记资料查询 (即办件)
PENSION = "2000021001421302001"  # 城乡居民基本养老保险参保登记 (即办件, another department)
WAIT = 20_000
PHONE_SIZE = (390, 844)
# (matter, window, channel, level); window 4's rating is a real-name bad one with a case.
RATINGS = (
    (RELEASE, "1", "pad", "very_satisfied"),
    (LOOKUP, "2", "pc", "basically_satisfied"),
    (PENSION, "3", "mobile", "satisfied"),
    (RELEASE, "4", "pad", "very_dissatisfied"),
)


def percent(rate: float | None) -> str:
    return "—" if rate is None else f"{rate * 100:.2f}%"


@pytest.fixture(scope="module")
def site(vhost_factory: VhostFactory, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp("public")
    with site_of(vhost_factory, tmp, ("matters", "rating"), {"bridge_timeout_seconds": 3}) as site:
        yield site


def completed(site: Site, code: str, window: str) -> dict[str, Any]:
    """An application of ``code`` accepted (and, a 即办件, completed) at ``window``."""
    with site.rpc() as rpc:
        matter = rpc.matters.get_matter(code)
        application: dict[str, Any] = rpc.matters.submit_application(
            {
                "matter_code": code,
                "applicant": {
                    "kind": "person",
                    "name": APPLICANT,
                    "id_number": ID_NUMBER,
                    "phone": PHONE,
                },
                "channel": "window",
                "materials": [{"name": m["name"]} for m in matter["materials"] if m["required"]],
                "window": window,
                "staff_id": CLERK,
            }
        )
    assert application["state"] == "completed"
    return application


def rated(site: Site, window: str, channel: str, level: str) -> dict[str, Any]:
    with site.rpc() as rpc:
        invited = wait_for(
            lambda: rpc.rating.pending_for_window(window), 20, f"the invitation at {window}"
        )
        bad = level == "very_dissatisfied"
        evaluation: dict[str, Any] = rpc.rating.submit_evaluation(
            {
                "service_ref": invited["service_ref"],
                "invitation_id": invited["id"],
                "channel": channel,
                "level": level,
                **({"reasons": {"tags": ["等候时间长"]}} if bad else {}),
                "rater": {"real_name": True, "name": RATER, "phone": PHONE}
                if bad
                else {"real_name": False},
            }
        )
        return evaluation


def closed(site: Site, case_id: str) -> dict[str, Any]:
    """The bad rating's case taken through callback, rectification and feedback."""
    steps: list[tuple[str, dict[str, Any]]] = [
        ("assign_case", {"handler": HANDLER, "by": LEAD}),
        ("record_callback", {"by": HANDLER, "contacted": True, "note": "已回访"}),
        ("classify_case", {"by": HANDLER, "classification": "fix_now", "note": "当场整改"}),
        ("record_rectification", {"by": HANDLER, "measures": "增开窗口"}),
        ("record_feedback", {"by": HANDLER, "method": "phone", "content": "已告知整改结果"}),
    ]
    with site.rpc() as rpc:
        for method, args in steps:
            case: dict[str, Any] = getattr(rpc.rating, method)({"case_id": case_id, **args})
    assert case["state"] == "closed"
    return case


@pytest.fixture(scope="module")
def seeded(site: Site) -> dict[str, Any]:
    """Four rated applications, one of them a real-name bad rating whose case is closed;
    everything that identifies a person or a record, to look for in the pages."""
    applications = [completed(site, code, window) for code, window, _, _ in RATINGS]
    evaluations = [rated(site, w, channel, level) for _, w, channel, level in RATINGS]
    case = closed(site, evaluations[-1]["case_id"])
    period = datetime.now(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m")
    with site.rpc() as rpc:
        report = wait_for(
            lambda: (r := rpc.rating.public_report(period))["total"]["cases_closed"] == 1 and r,
            20,
            "the closed case in the report",
        )
    secrets = [PHONE, RATER, APPLICANT, ID_NUMBER, CLERK, HANDLER, LEAD]
    secrets += [a["id"] for a in applications] + [a["number"] for a in applications]
    secrets += [e["id"] for e in evaluations] + [case["id"], RATER[0] + "*"]
    return {"period": period, "report": report, "secrets": secrets}


@pytest.fixture(scope="module")
def report_page(browser: Browser, site: Site, seeded: dict[str, Any]) -> Page:
    page = new_page(browser, (1280, 900), PRINT_SPY)  # the print dialog is counted
    page.goto(f"{site.url}/report/{seeded['period']}")
    page.wait_for_selector("table", timeout=WAIT)
    return page


def rows(page: Page, table: str) -> list[list[str]]:
    body = page.locator(f"[data-table={table}] tbody tr")
    return [r.locator("th, td").all_inner_texts() for r in body.all()]


def level_row(name: str, fig: dict[str, Any]) -> list[str]:
    counts = fig["counts"]
    levels = ("very_satisfied", "satisfied", "basically_satisfied", "dissatisfied")
    return [
        name,
        *(str(counts[k]) for k in (*levels, "very_dissatisfied")),
        str(fig["total"]),
        percent(fig["satisfaction_rate"]),
        percent(fig["good_rate"]),
    ]


def test_the_report_shows_the_figures_rating_computes(
    report_page: Page, site: Site, seeded: dict[str, Any]
) -> None:
    report = seeded["report"]
    page = report_page
    assert page.locator("html").get_attribute("lang") == "zh-CN"
    head = page.inner_text("header")
    year, month = seeded["period"].split("-")
    assert f"{year}年{int(month)}月" in head
    assert "好差评公开报告" in head
    total = report["total"]
    assert total["total"] == 4
    assert total["bad"] == 1
    assert rows(page, "levels") == [level_row("全部", total)]
    departments = [level_row(g["key"], g) for g in report["by_department"]]
    assert rows(page, "department") == departments
    assert {r[0] for r in departments} == {
        "随州市曾都区不动产登记中心",
        "随州市曾都区社会保险事业中心",
    }
    with site.rpc() as rpc:
        names = {g["key"]: rpc.matters.get_matter(g["key"])["name"] for g in report["by_matter"]}
    assert rows(page, "matter") == [level_row(names[g["key"]], g) for g in report["by_matter"]]
    assert "抵押权注销登记" in names.values()
    channel_names = {"pad": "窗口评价器", "pc": "政务服务网（电脑）", "mobile": "移动端"}
    assert rows(page, "channel") == [
        level_row(channel_names[g["key"]], g) for g in report["by_channel"]
    ]
    cases = rows(page, "cases")[0]
    expected = [
        "全部",
        str(total["cases"]),
        str(total["cases_closed"]),
        str(total["cases_closed_on_time"]),
        percent(total["closed_on_time_rate"]),
        str(total["real_name_bad"]),
        percent(total["callback_rate"]),
        percent(total["rectification_rate"]),
    ]
    assert cases == expected
    assert cases[1:4] == ["1", "1", "1"]
    assert cases[7] == "100.00%"
    windows = rows(page, "windows")
    assert [r[0] for r in windows] == [str(w["rank"]) for w in report["windows"]]
    assert report["note"] in page.inner_text("main")
    screenshot(page, "report")


def test_the_report_holds_nothing_personal_and_may_be_cached_briefly(
    site: Site, seeded: dict[str, Any]
) -> None:
    answer = requests.get(f"{site.url}/report/{seeded['period']}", timeout=10)
    assert answer.status_code == 200
    for secret in seeded["secrets"]:
        assert secret not in answer.text, secret
    assert "138****" not in answer.text
    assert "139****" not in answer.text
    assert answer.headers["Cache-Control"] == "public, max-age=300"
    assert "script-src 'self'" in answer.headers["Content-Security-Policy"]
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert "<script>" not in answer.text
    assert "style=" not in answer.text


def test_the_report_prints_on_a4_without_its_button(report_page: Page) -> None:
    page = report_page
    assert page.is_visible("#print")
    page.click("#print")
    assert page.evaluate("window.__printed") == 1
    page.emulate_media(media="print")
    try:
        assert not page.is_visible("#print")
        assert (
            page.eval_on_selector("[data-table=department]", "e => getComputedStyle(e).breakInside")
            == "avoid"
        )
        pdf = page.pdf(format="A4", print_background=True)
    finally:
        page.emulate_media(media="screen")
    assert pdf.startswith(b"%PDF")
    pages = len(re.findall(rb"/Type\s*/Page[^s]", pdf))
    assert 1 <= pages <= 4
    assert "好差评公开报告" in pdf_title(pdf)


def pdf_title(pdf: bytes) -> str:
    """The document title in the PDF's information dictionary (Chromium writes the page's
    ``<title>`` there, as UTF-16 in a hex string)."""
    found = re.search(rb"/Title\s*(<[0-9A-Fa-f]+>|\((?:\\.|[^\\)])*\))", pdf)
    assert found, "the PDF has no title"
    raw = found.group(1)
    if raw.startswith(b"<"):
        return bytes.fromhex(raw[1:-1].decode()).decode("utf-16")
    body = re.sub(rb"\\([0-7]{3})", lambda m: bytes([int(m.group(1), 8)]), raw[1:-1])
    return body.decode("utf-16") if body.startswith(b"\xfe\xff") else body.decode("latin-1")


def test_a_bad_period_is_a_chinese_400_page(site: Site) -> None:
    for period in ("2026-13x", "26", "２０２６", "2026-1", "2026-13"):
        answer = requests.get(f"{site.url}/report/{period}", timeout=10)
        assert answer.status_code == 400, period
        assert "期间应为 YYYY-MM" in answer.text
        assert "报告期间有误" in answer.text
        assert answer.headers["Cache-Control"] == "no-store"
    assert "月份应在 01 到 12 之间" in answer.text  # rating's own words for 2026-13


def test_the_index_lists_the_year_and_the_last_twelve_months(browser: Browser, site: Site) -> None:
    page = new_page(browser, (1280, 900))
    page.goto(f"{site.url}/report")
    now = datetime.now(ZoneInfo("Asia/Shanghai"))
    months = page.locator("#months a")
    assert months.count() == 12
    assert months.first.get_attribute("href") == f"/report/{now:%Y-%m}"
    assert page.locator("#years a").first.get_attribute("href") == f"/report/{now:%Y}"
    page.click("#years a")
    page.wait_for_selector("[data-table=summary]", timeout=WAIT)
    assert f"{now.year}年度" in page.inner_text("header")
    page.close()


def test_guide_search_finds_a_matter_and_opens_its_guide_on_a_phone(
    browser: Browser, site: Site
) -> None:
    page = new_page(browser, PHONE_SIZE)
    page.goto(f"{site.url}/m/guide")
    assert page.locator("html").get_attribute("lang") == "zh-CN"
    page.fill("#q", "抵押 注销")
    page.click("#search button")
    page.wait_for_url(re.compile(r"/m/guide\?q="), timeout=WAIT)
    found = page.locator("#results a.matter")
    assert found.count() == 1
    text = found.first.inner_text()
    assert "抵押权注销登记" in text
    assert "随州市曾都区不动产登记中心" in text
    assert "即办件" in text
    assert "本站可办" in text
    box = found.first.bounding_box()
    assert box is not None
    assert box["height"] >= 48
    assert box["width"] >= 300
    search = page.locator("#search button").bounding_box()
    assert search is not None
    assert search["height"] >= 48
    found.first.click()
    page.wait_for_url(re.compile(f"/m/guide/{RELEASE}$"), timeout=WAIT)
    with site.rpc() as rpc:
        matter = rpc.matters.get_matter(RELEASE)
    listed = page.locator(".materials .material .name").all_inner_texts()
    assert listed == [m["name"] for m in matter["materials"]]
    body = page.inner_text("main")
    for shown in ("受理条件", matter["conditions"][0], matter["place"], "0722-3301201", "不收费"):
        assert shown in body
    assert "原件 1 份" in body
    assert "纸质或电子" in body
    phone = page.locator("a.tel").first
    assert phone.get_attribute("href") == "tel:07223301201"
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE_SIZE[0]  # no sideways
    screenshot(page, "guide")
    page.close()


def test_an_empty_search_lists_the_whole_catalog_a_page_at_a_time(site: Site) -> None:
    with site.rpc() as rpc:
        total = rpc.matters.search_matters(limit=1)["total"]
    first = requests.get(f"{site.url}/m/guide", params={"q": ""}, timeout=10)
    assert first.status_code == 200
    assert f"共 {total} 项，第 1/{-(-total // 20)} 页" in first.text
    assert first.text.count("class='matter'") == 20
    assert "rel='next'" in first.text
    assert "rel='prev'" not in first.text
    last = requests.get(f"{site.url}/m/guide", params={"page": "2"}, timeout=10)
    assert last.text.count("class='matter'") == total - 20
    assert "rel='prev'" in last.text
    none = requests.get(f"{site.url}/m/guide", params={"q": "量子纠缠"}, timeout=10)
    assert "没有找到相关事项" in none.text


def test_an_unknown_matter_is_a_chinese_404_page(site: Site) -> None:
    answer = requests.get(f"{site.url}/m/guide/0700018999421302001", timeout=10)
    assert answer.status_code == 404
    assert "没有这个事项" in answer.text
    assert 'lang="zh-CN"' in answer.text
    with site.rpc() as rpc, pytest.raises(NotFound):
        rpc.matters.get_matter("0700018999421302001")


def test_a_rating_service_that_is_down_gives_a_calm_503_page(
    site: Site, seeded: dict[str, Any]
) -> None:
    site.replicas["rating"].stop()  # the last test of the module: the site is done after it
    answer = requests.get(f"{site.url}/report/{seeded['period']}", timeout=20)
    assert answer.status_code == 503
    assert "报告暂时无法生成" in answer.text
    assert "请稍后再试" in answer.text
    assert "Traceback" not in answer.text
    assert "rating" not in answer.text
    assert requests.get(f"{site.url}/m/guide/{RELEASE}", timeout=10).status_code == 200
