"""The citizen's phone pages (390×844, no sign-in) in a real browser: Debian's Chromium
driven by Playwright, real queue, matters, rating and gateway processes (``nameko run``)
on RabbitMQ.

Rating: a ticket completed over RPC shows 去评价 on its mobile page; the link rates it
once, 非常不满意 with a reason tag, stored with channel ``qr_code``; a reload says it was
rated; a forged token is a 404 page. An application submitted and completed over RPC is
rated from the QR code the window console prints on its 受理凭证. Progress: the right
number and ID suffix show the state and dates and nothing personal; a wrong suffix and an
unknown number get the identical answer; repeated wrong guesses lock the address (429),
and neither the number nor the suffix is ever in a URL or the console."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import zxingcpp
from PIL import Image
from playwright.sync_api import Browser, Page

from services.common.errors import NotFound
from services.common.privacy import resident_id_check
from tests.conftest import VhostFactory, wait_for
from tests.system.screens_support import PASSWORD, Site, new_page, screenshot, site_of

pytestmark = pytest.mark.system

SITE = "421302"
PHONE = (390, 844)
WAIT = 20000  # ms: an invitation reaches rating within seconds; two cores are shared
MATTER = "0700018002421302001"  # 承诺件 (二手房转移登记)
ID_NUMBER = "42130219900101123" + resident_id_check("42130219900101123")
FAILURES = 5  # GATEWAY.lockout_failures for this site


@pytest.fixture(scope="module")
def site(vhost_factory: VhostFactory, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp("mobile")
    services = ("queue", "matters", "rating")
    with site_of(vhost_factory, tmp, services, {"lockout_failures": FAILURES}) as site:
        with site.rpc() as rpc:
            rpc.queue.open_window("1", "S1")
        site.add_staff("S1", ["clerk"], ["1"])
        yield site


def phone(browser: Browser) -> Page:
    return new_page(browser, PHONE)


def completed_ticket(site: Site) -> tuple[dict[str, Any], str]:
    """A kiosk's ticket (its slip's link) called, served and completed at window 1."""
    kiosk = site.device_headers("kiosk")
    slip = requests.post(
        f"{site.url}/kiosk/ticket", json={"category": "A"}, headers=kiosk, timeout=10
    )
    slip.raise_for_status()
    with site.rpc() as rpc:
        ticket: dict[str, Any] = rpc.queue.call_next("1", "S1")
        assert ticket["number"] == slip.json()["ticket"]["number"]
        rpc.queue.start_service(ticket["id"], window="1")
        rpc.queue.complete(ticket["id"], window="1")
    return ticket, slip.json()["link"]


def invited(site: Site, kind: str, ref_id: str) -> None:
    with site.rpc() as rpc:
        wait_for(
            lambda: rpc.rating.invitation_status(kind, ref_id)["state"] == "open",
            15,
            f"the invitation of {kind} {ref_id}",
        )


def test_a_completed_ticket_is_rated_once_from_the_phone(browser: Browser, site: Site) -> None:
    ticket, link = completed_ticket(site)
    invited(site, "ticket", ticket["id"])
    page = phone(browser)
    page.goto(link)
    page.click("a.go-rate:text-is('去评价')")
    page.wait_for_selector("#rate:not([hidden])")
    assert page.locator("html").get_attribute("lang") == "zh-CN"
    levels = page.locator("#levels button")
    assert levels.all_inner_texts() == ["非常满意", "满意", "基本满意", "不满意", "非常不满意"]
    for box in (b.bounding_box() for b in levels.all()):
        assert box is not None
        assert box["height"] >= 56
        assert box["width"] >= 300  # one column across the phone
    page.click("#levels button:text-is('非常不满意')")
    page.wait_for_selector("#reasons-box:not([hidden])")
    assert page.is_disabled("#submit"), "a bad rating without a reason can be sent"
    page.click("#reasons button:text-is('服务效率')")
    page.fill("#reason-text", "等候太久")
    screenshot(page, "rate")
    sent: list[str] = []
    page.on("request", lambda r: sent.append(r.post_data or "") if r.method == "POST" else None)
    page.click("#submit")
    page.wait_for_selector("#thanks:not([hidden])", timeout=WAIT)
    assert len(sent) == 1
    assert set(json.loads(sent[0])) == {"level", "request_id", "tags", "text", "phone"}

    with site.rpc() as rpc:
        stored = rpc.rating.get_evaluation(f"ev:{SITE}:ticket:{ticket['id']}:1")
        assert (stored["channel"], stored["level"]) == ("qr_code", "very_dissatisfied")
        assert stored["reasons"]["tags"] == ["服务效率"]
        assert stored["window"] == "1"
        with pytest.raises(NotFound):
            rpc.rating.get_evaluation(f"ev:{SITE}:ticket:{ticket['id']}:2")

    page.reload()
    page.wait_for_selector("#closed:not([hidden]):has-text('已评价过')")
    assert page.is_hidden("#rate")
    token = link.rsplit("/", 1)[1]
    again = requests.post(
        f"{site.url}/m/r/{token}", json={"level": "satisfied", "request_id": "qr-other"}, timeout=10
    )
    assert again.status_code == 409
    assert "已评价过" in again.json()["message"]
    forged = token[:-1] + ("0" if token[-1] != "0" else "1")
    page.goto(f"{site.url}/m/r/{forged}")
    assert "链接无效" in page.inner_text("main")
    assert requests.get(f"{site.url}/m/r/{forged}", timeout=5).status_code == 404
    refused = requests.post(f"{site.url}/m/r/{forged}", json={}, timeout=5)
    assert refused.status_code == 404
    assert ticket["id"] not in refused.text
    page.close()


def test_a_ticket_not_yet_served_cannot_be_rated(browser: Browser, site: Site) -> None:
    kiosk = site.device_headers("kiosk")
    slip = requests.post(
        f"{site.url}/kiosk/ticket", json={"category": "A"}, headers=kiosk, timeout=10
    ).json()
    page = phone(browser)
    page.goto(slip["link"])
    assert page.locator("a.go-rate").count() == 0
    page.goto(slip["link"].replace("/m/t/", "/m/r/"))
    assert "服务结束后即可评价" in page.inner_text("#closed")
    assert page.is_hidden("#rate")
    page.close()
    with site.rpc() as rpc:  # leave the queue empty for the next test's ticket
        rpc.queue.cancel(rpc.queue.call_next("1", "S1")["id"])


def application(site: Site) -> dict[str, Any]:
    with site.rpc() as rpc:
        matter = rpc.matters.get_matter(MATTER)
        submitted: dict[str, Any] = rpc.matters.submit_application(
            {
                "matter_code": MATTER,
                "applicant": {
                    "kind": "person",
                    "name": "张三丰",
                    "id_number": ID_NUMBER,
                    "phone": "13912345678",
                },
                "channel": "window",
                "materials": [{"name": m["name"]} for m in matter["materials"] if m["required"]],
                "window": "1",
                "staff_id": "S1",
            }
        )
        return submitted


def receipt_link(browser: Browser, site: Site, application_id: str) -> str:
    """The link in the QR code the window console draws for a 受理凭证, as a phone reads it."""
    session = requests.Session()
    login = session.post(
        f"{site.url}/login",
        json={"staff_id": "S1", "password": PASSWORD, "window": "1"},
        timeout=10,
    )
    login.raise_for_status()
    headers = {"X-CSRF-Token": login.json()["csrf"]}
    drawn = session.post(
        f"{site.url}/desk/receipt-link",
        json={"application_id": application_id},
        headers=headers,
        timeout=10,
    )
    drawn.raise_for_status()
    page = new_page(browser, (400, 400))
    page.set_content(f'<img id="qr" src="{drawn.json()["qr"]}" width="300" height="300">')
    shot = page.locator("#qr").screenshot()
    page.close()
    codes = zxingcpp.read_barcodes(Image.open(io.BytesIO(shot)))
    assert len(codes) == 1
    link = codes[0].text
    assert link == drawn.json()["link"]
    assert application_id not in link  # a capability, not the id
    refused = requests.post(
        f"{site.url}/desk/receipt-link", json={"application_id": application_id}, timeout=10
    )
    assert refused.status_code == 401  # no session: nobody else draws receipt links
    return link


def test_an_application_is_rated_from_its_receipt_qr_code(browser: Browser, site: Site) -> None:
    submitted = application(site)
    link = receipt_link(browser, site, submitted["id"])
    page = phone(browser)
    page.goto(link)
    assert "服务结束后即可评价" in page.inner_text("#closed")  # accepted, not completed
    with site.rpc() as rpc:
        rpc.matters.start_review(submitted["id"])
        rpc.matters.decide_application(submitted["id"], "approve")
        rpc.matters.complete_application(submitted["id"])
    invited(site, "application", submitted["id"])
    page.reload()
    page.click("#levels button:text-is('满意')")
    assert page.is_hidden("#reasons-box")
    page.click("#submit")
    page.wait_for_selector("#thanks:not([hidden])", timeout=WAIT)
    with site.rpc() as rpc:
        stored = rpc.rating.get_evaluation(f"ev:{SITE}:application:{submitted['id']}:1")
    assert (stored["channel"], stored["level"]) == ("qr_code", "satisfied")
    assert stored["matter_code"] == MATTER
    page.close()


def ask(page: Page, number: str, suffix: str) -> str:
    """The page's answer (or its message) to one query."""
    page.fill("#number", number)
    page.fill("#id-suffix", suffix)
    with page.expect_response(lambda r: r.url.endswith("/m/a") and r.request.method == "POST"):
        page.click("#ask")
    page.wait_for_function("!document.getElementById('ask').disabled")
    return page.inner_text("#answer") if page.is_visible("#answer") else page.inner_text("#message")


def test_progress_answers_the_right_pair_alone_and_locks_out_guessing(
    browser: Browser, site: Site
) -> None:
    submitted = application(site)
    number, suffix = submitted["number"], ID_NUMBER[-6:]
    page = phone(browser)
    urls: list[str] = []
    console: list[str] = []
    page.on("request", lambda r: urls.append(r.url))
    page.on("console", lambda m: console.append(m.text))
    page.goto(f"{site.url}/m/a")
    assert page.locator("html").get_attribute("lang") == "zh-CN"
    for field in ("#number", "#id-suffix", "#ask"):
        box = page.locator(field).bounding_box()
        assert box is not None
        assert box["height"] >= 56

    shown = ask(page, number, suffix)
    assert submitted["matter_name"] in shown
    assert "已受理" in shown
    assert submitted["due_date"] in shown
    assert "正常" in shown or "即将到期" in shown
    screenshot(page, "progress")
    body = page.inner_text("body")
    for personal in (
        "张",
        "13912345678",
        "3912",
        ID_NUMBER[-4:],
        submitted["applicant"]["id_masked"],
    ):
        assert personal not in body
    assert page.input_value("#id-suffix") == ""  # the suffix leaves the screen

    wrong = "000000" if suffix != "000000" else "111111"
    unknown = number[:-5] + "99999"
    answers = [ask(page, number, wrong), ask(page, unknown, suffix)]
    assert answers[0] == answers[1] == "没有找到该办件，请核对办件编号和证件号码后 6 位"
    replies = [
        requests.post(f"{site.url}/m/a", json={"number": n, "id_suffix": s}, timeout=10)
        for n, s in ((number, wrong), (unknown, suffix))
    ]
    assert [r.status_code for r in replies] == [404, 404]
    assert replies[0].json() == replies[1].json()
    for _ in range(FAILURES - 4):
        ask(page, unknown, suffix)
    locked = ask(page, number, suffix)  # the right pair, from a locked address
    assert re.search(r"查询失败次数过多，请 \d+ 分钟后再试", locked), locked
    again = requests.post(
        f"{site.url}/m/a", json={"number": number, "id_suffix": suffix}, timeout=10
    )
    assert again.status_code == 429
    assert submitted["matter_name"] not in again.text

    for url in urls:  # the form travels in JSON bodies only
        assert number not in url
        assert suffix not in url
    assert not [line for line in console if number in line or suffix in line]
    assert page.url == f"{site.url}/m/a"
    page.close()
