"""The rating pad (评价器) in a real browser: Debian's Chromium driven by Playwright, real
queue, rating and gateway processes (``nameko run``) on RabbitMQ. A ticket served at the
pad's window brings the five levels; a bad level needs a reason and is stored once, with
its case opened and the phone gone from the screen; a reply lost on the way is retried
with the same request_id and stored once; an already-rated service and a rating service
that is down get calm Chinese messages. Through the bridge, a pad reads and rates only
its own window, and a board cannot rate at all."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from playwright.sync_api import Browser, Page, Request, Route

from services.common.errors import NotFound
from tests.conftest import VhostFactory, wait_for
from tests.system.screens_support import Site, paired, screenshot, site_of

pytestmark = pytest.mark.system

SITE = "421302"
LEVELS = ["非常满意", "满意", "基本满意", "不满意", "非常不满意"]
PHONE = "13812345678"
RATE = "#rate:not([hidden])"
IDLE = "#idle:not([hidden])"
THANKS = "#thanks:not([hidden])"
WAIT = 20000  # ms: an invitation reaches rating within seconds; two cores are shared


@pytest.fixture(scope="module")
def site(vhost_factory: VhostFactory, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp("pad")
    with site_of(vhost_factory, tmp, ("queue", "rating"), {"bridge_timeout_seconds": 3}) as site:
        with site.rpc() as rpc:
            for n in ("1", "2", "3", "4", "5", "6"):
                rpc.queue.open_window(n, f"S{n}")
        yield site


def served(site: Site, window: str) -> dict[str, Any]:
    """A ticket taken, called, served and completed at ``window``: its invitation follows."""
    with site.rpc() as rpc:
        rpc.queue.take_ticket("A", "kiosk")
        ticket: dict[str, Any] = rpc.queue.call_next(window, f"S{window}")
        rpc.queue.start_service(ticket["id"], window=window)
        rpc.queue.complete(ticket["id"], window=window)
        return ticket


def pad(browser: Browser, site: Site, window: str) -> Page:
    page = paired(browser, site, "pad", (1280, 800), window=window)
    page.wait_for_selector(IDLE, timeout=WAIT)
    return page


def evaluation_id(ticket: dict[str, Any], sequence: int = 1) -> str:
    return f"ev:{SITE}:ticket:{ticket['id']}:{sequence}"


def token(site: Site, role: str, window: str | None = None) -> dict[str, str]:
    return site.device_headers(role, window)


def bridged(site: Site, headers: dict[str, str], method: str, *args: Any) -> requests.Response:
    body = {"args": list(args), "kwargs": {}}
    return requests.post(f"{site.url}/rpc/rating/{method}", json=body, headers=headers, timeout=10)


def pad_rating(invitation: dict[str, Any], window: str | None) -> dict[str, Any]:
    return {
        "service_ref": invitation["service_ref"],
        "invitation_id": invitation["id"],
        "window": window,
        "channel": "pad",
        "level": "satisfied",
    }


def open_invitation(site: Site, window: str) -> dict[str, Any]:
    with site.rpc() as rpc:
        found: dict[str, Any] = wait_for(
            lambda: rpc.rating.pending_for_window(window), 15, f"an invitation at {window}"
        )
        return found


def test_a_bad_rating_needs_a_reason_and_is_stored_once_with_its_case(
    browser: Browser, site: Site
) -> None:
    page = pad(browser, site, "1")
    assert page.locator("html").get_attribute("lang") == "zh-CN"
    assert page.inner_text("#idle-window") == "1 号窗口"
    page.wait_for_selector("#idle-clerk:text-is('服务人员 工号 S1')", timeout=WAIT)
    assert "请对本次服务进行评价" not in page.inner_text("body")  # no invitation yet

    ticket = served(site, "1")
    page.wait_for_selector(RATE, timeout=WAIT)
    assert page.locator("#levels button").all_inner_texts() == LEVELS
    for box in (b.bounding_box() for b in page.locator("#levels button").all()):
        assert box is not None
        assert box["height"] >= 150  # huge touch targets
    assert ticket["number"] not in page.inner_text("body")  # nothing about the citizen
    screenshot(page, "pad")

    page.click("#levels button:text-is('不满意')")
    page.wait_for_selector("#reasons-box:not([hidden])")
    assert page.locator("#reasons button").all_inner_texts() == ["服务效率", "服务水平", "服务态度"]
    page.fill("#reason-text", "等候时间太长")
    assert page.is_disabled("#submit"), "a bad rating without a chosen reason can be sent"
    page.click("#reasons button:text-is('服务态度')")
    assert page.is_enabled("#submit")

    page.fill("#phone", "12ab")  # the service's own refusal is shown
    page.click("#submit")
    page.wait_for_selector("#message:has-text('电话')", timeout=WAIT)
    with site.rpc() as rpc, pytest.raises(NotFound):
        rpc.rating.get_evaluation(evaluation_id(ticket))

    page.fill("#phone", PHONE)
    page.click("#submit")
    page.wait_for_selector(f"{THANKS}:has-text('感谢您的评价')", timeout=WAIT)
    assert PHONE not in page.content()
    assert PHONE not in page.evaluate("[...document.querySelectorAll('input')].map(i => i.value)")

    with site.rpc() as rpc:
        stored = rpc.rating.get_evaluation(evaluation_id(ticket))
        assert stored["level"] == "dissatisfied"
        assert stored["channel"] == "pad"
        assert stored["window"] == "1"
        assert stored["reasons"]["tags"] == ["服务态度"]
        assert stored["rater"]["real_name"] is True
        assert stored["rater"]["phone_masked"] == "138****5678"
        cases = [c for c in rpc.rating.list_cases() if c["id"] == stored["case_id"]]
        assert len(cases) == 1
        with pytest.raises(NotFound):
            rpc.rating.get_evaluation(evaluation_id(ticket, 2))
    page.wait_for_selector(IDLE, timeout=WAIT)  # the thank-you screen gives way
    page.close()


def test_a_lost_reply_is_retried_with_the_same_request_id_and_stored_once(
    browser: Browser, site: Site
) -> None:
    page = pad(browser, site, "3")
    sent: list[dict[str, Any]] = []

    def lose_the_first_reply(route: Route, request: Request) -> None:
        sent.append(json.loads(request.post_data or "{}")["args"][0])
        if len(sent) == 1:
            route.fetch()  # the server stores the rating ...
            route.abort()  # ... and its reply never reaches the pad
        else:
            route.continue_()

    page.route("**/rpc/rating/submit_evaluation", lose_the_first_reply)
    ticket = served(site, "3")
    page.wait_for_selector(RATE, timeout=WAIT)
    page.click("#levels button:text-is('非常满意')")
    assert page.is_hidden("#reasons-box")  # a good level asks for no reason, no phone
    page.click("#submit")
    page.wait_for_selector(THANKS, timeout=WAIT)
    assert len(sent) == 2
    assert sent[0]["request_id"] == sent[1]["request_id"]
    assert sent[0]["request_id"].startswith("pad-")
    assert sent[0]["rater"] == {"real_name": False, "device_id": sent[0]["rater"]["device_id"]}
    with site.rpc() as rpc:
        assert rpc.rating.get_evaluation(evaluation_id(ticket))["level"] == "very_satisfied"
        with pytest.raises(NotFound):  # the retry made no second (supplementary) rating
            rpc.rating.get_evaluation(evaluation_id(ticket, 2))
    page.close()


def test_an_untouched_rating_screen_goes_back_to_idle_and_stays_there(
    browser: Browser, site: Site
) -> None:
    page = pad(browser, site, "4")
    page.clock.install()  # the 60 s without a touch, fast-forwarded
    served(site, "4")
    page.wait_for_selector(RATE, timeout=WAIT)
    page.clock.fast_forward(61000)
    page.wait_for_selector(IDLE, timeout=WAIT)
    with page.expect_response("**/rpc/rating/pending_for_window", timeout=WAIT) as polled:
        pass
    assert polled.value.json()["result"] is not None  # still open at rating ...
    page.wait_for_timeout(300)
    assert page.is_hidden("#rate")  # ... but not offered again to the next citizen
    page.close()


def test_an_already_rated_service_gets_a_friendly_message(browser: Browser, site: Site) -> None:
    page = pad(browser, site, "5")
    ticket = served(site, "5")
    page.wait_for_selector(RATE, timeout=WAIT)
    page.route("**/rpc/rating/pending_for_window", lambda route: route.abort())
    invitation = open_invitation(site, "5")
    with site.rpc() as rpc:  # rated twice elsewhere (first and supplementary) meanwhile
        for level in ("satisfied", "very_satisfied"):
            rpc.rating.submit_evaluation({**pad_rating(invitation, None), "level": level})
    page.click("#levels button:text-is('基本满意')")
    page.click("#submit")
    page.wait_for_selector(f"{THANKS}:has-text('已评价过')", timeout=WAIT)
    with site.rpc() as rpc:
        assert rpc.rating.get_evaluation(evaluation_id(ticket, 2))["level"] == "very_satisfied"
    page.unroute("**/rpc/rating/pending_for_window")
    page.wait_for_selector(IDLE, timeout=WAIT)
    page.close()


def test_a_pad_reads_and_rates_only_its_own_window_and_a_board_rates_nothing(
    site: Site,
) -> None:
    served(site, "1")
    invitation = open_invitation(site, "1")
    window_two = token(site, "pad", "2")
    assert bridged(site, window_two, "pending_for_window", "1").status_code == 403
    assert bridged(site, window_two, "pending_for_window", "2").status_code == 200
    for claimed in ("1", None):  # naming window 1, or none: the pad's own window 2 is used
        answer = bridged(site, window_two, "submit_evaluation", pad_rating(invitation, claimed))
        assert answer.status_code == 403, answer.text
        assert "窗口" in answer.json()["message"]
    board = token(site, "board")
    answer = bridged(site, board, "submit_evaluation", pad_rating(invitation, "1"))
    assert answer.status_code == 403
    kiosk = token(site, "kiosk")
    assert bridged(site, kiosk, "pending_for_window", "1").status_code == 403
    assert requests.post(f"{site.url}/rpc/rating/pending_for_window", timeout=5).status_code == 401
    with site.rpc() as rpc:  # nothing stored by any of them
        assert rpc.rating.pending_for_window("1")["id"] == invitation["id"]


def test_a_kiosk_cannot_give_a_pad_rating(site: Site) -> None:
    served(site, "6")
    invitation = open_invitation(site, "6")
    kiosk = token(site, "kiosk")
    answer = bridged(site, kiosk, "submit_evaluation", pad_rating(invitation, "6"))
    assert answer.status_code == 403, answer.text


def test_while_rating_is_down_the_pad_says_so_calmly_and_keeps_polling(
    browser: Browser, site: Site
) -> None:
    page = pad(browser, site, "2")
    site.replicas["rating"].stop()
    try:
        page.wait_for_selector("#status:has-text('评价服务暂时无法连接')", timeout=WAIT)
        assert page.is_visible(IDLE)
    finally:
        site.replicas["rating"].start()
    wait_for(site.replicas["rating"].healthy, 60, "rating back")
    page.wait_for_selector("#status", state="hidden", timeout=WAIT)
    served(site, "2")
    page.wait_for_selector(RATE, timeout=WAIT)  # polling went on: the next invitation shows
    page.close()
