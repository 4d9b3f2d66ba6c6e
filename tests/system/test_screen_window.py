"""The window console (窗口叫号) in a real browser: Debian's Chromium driven by Playwright
against real queue, matters, rating and gateway processes (``nameko run``) on RabbitMQ.
A clerk signed in at a window calls, recalls, starts, completes, misses, requeues, holds,
resumes and transfers tickets with the function keys or the buttons; two clerks calling at
the same moment each see the distinct ticket the queue gave them; the desk ends a
submission in the one-time notice, the receipt or the refusal, each printed alone; a
stopped service is shown and the page goes on; whoever may not use the page is refused."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from playwright.sync_api import Browser, Page

from tests.conftest import VhostFactory, wait_for
from tests.system.screens_support import (
    PASSWORD,
    PRINT_SPY,
    Site,
    chromium,
    prints_alone_on_a4,
    screenshot,
    signed_in,
    site_of,
)

pytestmark = pytest.mark.system

TIMEOUT = 15000  # ms: other browsers share this machine's two cores
UNEMPLOYMENT = "0500021004421302001"  # 失业保险金申领: 承诺件, two required materials
CLERKS = {"S1": "1", "S2": "2", "S3": "3"}


def id_number(body: str = "42130219900307123") -> str:
    """An 18-digit resident ID with its GB 11643 check digit."""
    weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    total = sum(int(d) * w for d, w in zip(body, weights, strict=True))
    return body + "10X98765432"[total % 11]


@pytest.fixture(scope="module")
def site(vhost_factory: VhostFactory, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp("window")
    services = ("queue", "matters", "rating")
    with site_of(vhost_factory, tmp, services, {"bridge_timeout_seconds": 3}) as site:
        with site.rpc() as rpc:
            for staff, window in CLERKS.items():
                rpc.queue.open_window(window, staff)
        for staff, window in CLERKS.items():
            site.add_staff(staff, ["clerk"], [window])
        site.add_staff("V1", ["supervisor"], [])
        yield site


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as browser:
        yield browser


def console(browser: Browser, site: Site, staff: str, script: str = "") -> Page:
    page = signed_in(browser, site, "/window", staff, CLERKS[staff])
    page.set_default_timeout(TIMEOUT)
    if script:
        page.add_init_script(script)
        page.reload()
    page.wait_for_selector("#actions button:has(kbd:text-is('F9'))")
    page.wait_for_selector("#window-state.window-open")
    return page


def key(page: Page, name: str) -> Any:
    return page.locator(f"#actions button:has(kbd:text-is('{name}'))")


def shown(page: Page, state: str) -> str:
    """The ticket number on the page once it shows ``state``."""
    page.wait_for_selector(f"#ticket-state:text-is('{state}')")
    return page.inner_text("#ticket-number")


def at_window(site: Site, window: str) -> dict[str, Any]:
    with site.rpc() as rpc:
        mine = next(w for w in rpc.queue.windows() if w["number"] == window)
        ticket: dict[str, Any] = rpc.queue.ticket(mine["last_ticket"])
        return ticket


def take(site: Site, count: int = 1) -> None:
    with site.rpc() as rpc:
        for _ in range(count):
            rpc.queue.take_ticket("A", "kiosk")


def call_one(page: Page, site: Site) -> str:
    """A ticket taken at the kiosk, then F1: the number the page shows as called."""
    take(site)
    page.keyboard.press("F1")
    return shown(page, "已叫号")


def test_whoever_is_not_a_signed_in_clerk_or_manager_is_refused(site: Site) -> None:
    bare = requests.get(f"{site.url}/window", allow_redirects=False, timeout=5)
    assert bare.status_code == 303
    assert bare.headers["Location"] == "/login?next=%2Fwindow"
    as_pad = site.device_headers("pad", "1")
    # a device token is no session: the console is not served to it
    shell = requests.get(f"{site.url}/window", headers=as_pad, allow_redirects=False, timeout=5)
    assert shell.status_code == 303
    called = requests.post(
        f"{site.url}/rpc/queue/call_next",
        json={"args": ["1"], "kwargs": {}},
        headers=as_pad,
        timeout=10,
    )
    assert called.status_code == 403
    # a supervisor may sign in but not use the window console
    supervisor = requests.Session()
    login = {"staff_id": "V1", "password": PASSWORD, "window": None}
    assert supervisor.post(f"{site.url}/login", json=login, timeout=5).ok
    denied = supervisor.get(f"{site.url}/window", allow_redirects=False, timeout=5)
    assert denied.status_code == 403
    # a clerk's session: without the CSRF token nothing is bridged; at another window, refused
    clerk = requests.Session()
    signed = clerk.post(
        f"{site.url}/login", json={"staff_id": "S1", "password": PASSWORD, "window": "1"}, timeout=5
    ).json()
    bridge = f"{site.url}/rpc/queue/call_next"
    other = {"args": [], "kwargs": {"window": "2", "staff_id": "S1"}}
    assert clerk.post(bridge, json=other, timeout=10).status_code in (401, 403)
    forged = clerk.post(bridge, json=other, headers={"X-CSRF-Token": signed["csrf"]}, timeout=10)
    assert forged.status_code == 403
    assert "1 号窗口" in forged.json()["message"]


def test_a_ticket_is_called_started_and_completed_by_key_and_button_then_rated(
    browser: Browser, site: Site
) -> None:
    page = console(browser, site, "S1")
    assert "F1" in key(page, "F1").inner_text()
    assert "叫下一位" in key(page, "F1").inner_text()
    assert key(page, "F4").is_disabled()  # nothing to complete yet
    number = call_one(page, site)
    queue_says = at_window(site, "1")
    assert number == queue_says["number"]
    assert queue_says["state"] == "called"
    assert page.inner_text("#info") == f"请{number}号到1号窗口办理"
    assert key(page, "F3").is_enabled()
    assert key(page, "F1").is_disabled()
    assert key(page, "F5").is_disabled()  # a no-show needs three calls first
    page.keyboard.press("F3")
    shown(page, "办理中")
    assert key(page, "F2").is_disabled()
    assert key(page, "F4").is_enabled()
    key(page, "F4").click()
    shown(page, "已办结")
    assert at_window(site, "1")["state"] == "completed"
    # the citizen has not rated yet; once they have, the console says so
    page.wait_for_selector("#rating.pending", timeout=30000)
    assert number in page.inner_text("#rating")
    with site.rpc() as rpc:
        ref = {"kind": "ticket", "id": queue_says["id"]}
        rpc.rating.submit_evaluation({"service_ref": ref, "channel": "pad", "level": "satisfied"})
    page.wait_for_selector("#rating.rated:text-is('已评价/无待评价')")
    # the queue's own count of the window's day: one called here, and it was completed
    page.wait_for_selector("#today li:first-child b:text-is('1')", timeout=10000)
    assert page.inner_text("#today").split() == ["叫号", "1", "办结", "1", "过号", "0"]
    page.context.close()


def test_recall_no_show_and_requeue_follow_the_queues_rules(browser: Browser, site: Site) -> None:
    page = console(browser, site, "S1")
    number = call_one(page, site)
    for calls in (2, 3):
        page.keyboard.press("F2")
        page.wait_for_selector(f"#ticket-calls:text-is('已呼叫 {calls} 次')")
    assert key(page, "F2").is_disabled()  # three calls: now it is a no-show
    page.keyboard.press("F5")
    assert shown(page, "过号") == number
    assert key(page, "F6").is_enabled()
    assert key(page, "F1").is_enabled()
    page.keyboard.press("F6")
    shown(page, "等候中")
    with site.rpc() as rpc:
        assert rpc.queue.ticket(at_window(site, "1")["id"])["requeued"] is True
    page.keyboard.press("F1")  # whatever the queue calls next is what the page shows
    called = shown(page, "已叫号")
    ticket = at_window(site, "1")
    assert called == ticket["number"]
    # the ticket is completed elsewhere before the page hears of it (its refresh held back):
    # the queue refuses the clerk's key, and the alert line carries its own words
    for held_back in ("windows", "ticket"):
        page.route(f"**/rpc/queue/{held_back}", lambda route: route.abort())
    with site.rpc() as rpc:
        rpc.queue.complete(ticket["id"], "done", None, None, "1")
    page.keyboard.press("F4")
    page.wait_for_selector("#alert:not(:empty)")
    assert page.inner_text("#alert") == f"{called} 当前为“已办结”，不能办结"
    for held_back in ("windows", "ticket"):
        page.unroute(f"**/rpc/queue/{held_back}")
    shown(page, "已办结")
    page.context.close()


def test_hold_resume_transfer_and_pause(browser: Browser, site: Site) -> None:
    page = console(browser, site, "S1")
    number = call_one(page, site)
    assert "暂挂" in key(page, "F8").inner_text()
    page.keyboard.press("F8")
    shown(page, "暂挂")
    assert "恢复" in key(page, "F8").inner_text()
    page.wait_for_selector(f"#held button:text-is('恢复 {number}')")
    assert key(page, "F1").is_enabled()  # a held ticket leaves the window free
    page.click(f"#held button:text-is('恢复 {number}')")
    shown(page, "等候中")
    page.wait_for_selector("#held-box", state="hidden")
    page.keyboard.press("F1")  # sent back to this window, keeping its place in time
    assert shown(page, "已叫号") == at_window(site, "1")["number"]
    ticket = at_window(site, "1")
    page.keyboard.press("F7")
    page.wait_for_selector("#transfer:not([hidden])")
    page.select_option("#transfer-to", "w:2")
    page.keyboard.press("Tab")  # to 确认转移: the form is worked from the keyboard too
    page.keyboard.press("Enter")
    shown(page, "等候中")
    with site.rpc() as rpc:
        moved = rpc.queue.ticket(ticket["id"])
    assert moved["state"] == "waiting"
    assert moved["target_window"] == "2"
    page.keyboard.press("F9")
    page.wait_for_selector("#window-state.window-paused")
    assert key(page, "F1").is_disabled()
    assert "开放窗口" in key(page, "F9").inner_text()
    with site.rpc() as rpc:
        assert next(w for w in rpc.queue.windows() if w["number"] == "1")["state"] == "paused"
    page.keyboard.press("F9")
    page.wait_for_selector("#window-state.window-open")
    page.context.close()


def test_two_clerks_calling_at_once_each_see_their_own_distinct_ticket(
    browser: Browser, site: Site
) -> None:
    first, second = console(browser, site, "S1"), console(browser, site, "S2")
    take(site, 3)
    key(first, "F1").click()  # both calls are in flight together: neither waits for the other
    second.keyboard.press("F1")
    one, two = shown(first, "已叫号"), shown(second, "已叫号")
    assert one != two
    assert one == at_window(site, "1")["number"]
    assert two == at_window(site, "2")["number"]
    for page in (first, second):
        page.keyboard.press("F4")
        shown(page, "已办结")
        page.context.close()


def test_the_desk_gives_the_one_time_notice_the_receipt_and_the_refusal(
    browser: Browser, site: Site
) -> None:
    page = console(browser, site, "S1", PRINT_SPY)
    seen: list[str] = []
    page.on("request", lambda r: seen.append(r.url))
    page.on("console", lambda m: seen.append(m.text))
    call_one(page, site)
    page.fill("#q", "失业保险")
    page.press("#q", "Enter")
    page.click("#results button:has-text('失业保险金申领')")
    page.wait_for_selector("#guide h3:text-is('失业保险金申领')")
    assert "法定时限" in page.inner_text("#guide .limits")
    assert "解除或终止劳动关系证明" in page.inner_text("#guide table")
    screenshot(page, "window")
    page.click("#guide button:text-is('按此事项受理')")
    citizen = id_number()

    def applicant() -> None:
        page.fill("#applicant-name", "张三丰")
        page.fill("#applicant-id", citizen)

    applicant()
    page.check("#materials li:nth-child(1) .given")
    page.click("#desk-submit")
    page.wait_for_selector("#notice:not([hidden]) h1:text-is('一次性告知单')")
    assert page.inner_text("#notice .missing") == "解除或终止劳动关系证明（未提交）"
    page.keyboard.press("Escape")

    applicant()
    page.check("#materials li:nth-child(2) .given")
    page.click("#desk-submit")
    page.wait_for_selector("#notice:not([hidden]) h1:text-is('受理凭证')")
    with site.rpc() as rpc:
        found = rpc.matters.list_applications({"matter_code": UNEMPLOYMENT, "state": "accepted"})
    receipt = found["items"][0]["receipt"]
    assert page.inner_text("#notice .doc-number") == receipt["number"]
    assert page.inner_text("#notice .due") == receipt["due_date"]
    assert "张三丰" not in page.inner_text("#notice")  # the name is printed masked
    assert "受理人：员工S1" in page.inner_text("#notice .signature")
    # the QR code of the application's rating page (一事一评, test_screen_mobile.py rates it)
    rate = page.locator("#notice .rate-qr:not([hidden])")
    rate.wait_for()
    assert (rate.get_attribute("data-link") or "").startswith(f"{site.url}/m/r/")
    assert (rate.locator("img").get_attribute("src") or "").startswith("data:image/svg+xml")
    prints_alone_on_a4(page)
    page.keyboard.press("Escape")

    applicant()
    page.check("#refuse")
    page.fill("#refusal-reason", "申请人不属于失业保险参保人员")
    page.fill("#refusal-basis", "《失业保险条例》第十四条")
    page.click("#desk-submit")
    page.wait_for_selector("#notice:not([hidden]) h1:text-is('不予受理通知书')")
    assert "《失业保险条例》第十四条" in page.inner_text("#notice")
    page.keyboard.press("Escape")
    assert page.input_value("#applicant-id") == ""  # not left on the desk for the next one
    page.keyboard.press("F4")  # the ticket ends with the application's outcome
    shown(page, "已办结")
    assert at_window(site, "1")["outcome"] == "not_accepted"
    assert not [s for s in seen if citizen in s or "张三丰" in s]
    page.context.close()


def test_a_refused_id_number_shows_the_services_reason(browser: Browser, site: Site) -> None:
    page = console(browser, site, "S2")
    page.fill("#q", "失业保险金")
    page.press("#q", "Enter")
    page.click("#results button:has-text('失业保险金申领')")
    page.click("#guide button:text-is('按此事项受理')")
    page.fill("#applicant-name", "李四")
    page.fill("#applicant-id", id_number()[:-1] + ("0" if id_number()[-1] != "0" else "1"))
    page.click("#desk-submit")
    page.wait_for_selector("#desk-error:not(:empty)")
    assert re.search(r"[\u4e00-\u9fff]", page.inner_text("#desk-error"))
    assert page.is_hidden("#notice")
    page.context.close()


def test_an_ended_session_sends_the_next_action_to_sign_in(browser: Browser, site: Site) -> None:
    page = console(browser, site, "S3")
    with site.rpc() as rpc:
        rpc.gateway.disable_staff("S3")
    page.keyboard.press("F9")
    page.wait_for_url(re.compile(r"/login\?next=%2Fwindow&expired=1$"))
    page.context.close()


def test_a_stopped_service_is_shown_and_the_rest_goes_on(browser: Browser, site: Site) -> None:
    page = console(browser, site, "S2")
    page.wait_for_selector("#rating.rated, #rating.pending")
    site.replicas["rating"].stop()
    page.wait_for_selector("#health:not([hidden])", timeout=30000)
    assert "rating" in page.inner_text("#health")
    assert page.inner_text("#rating") == "评价状态暂不可知"
    assert call_one(page, site) == at_window(site, "2")["number"]  # the queue still works
    page.keyboard.press("F4")
    shown(page, "已办结")
    site.replicas["rating"].start()
    wait_for(site.replicas["rating"].healthy, 60, "rating back")
    page.wait_for_selector("#health", state="hidden", timeout=30000)
    page.wait_for_selector("#rating.rated, #rating.pending")
    page.context.close()
