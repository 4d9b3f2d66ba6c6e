"""The hall's screens in a real browser: Debian's Chromium driven by Playwright, a real
queue and gateway (``nameko run``) on RabbitMQ. The call board (叫号屏) pairs with a
one-time code, shows each window's call and the last calls live, announces every call and
every recall once in Mandarin (the browser's voice, here a spy; else the server's
espeak-ng WAV), and a gateway restart (a real cut) makes it reconnect without announcing
any call twice. The ticket machine (取号机) shows each category's wait, takes tickets
(green channel, booking check-in) and prints an 80 mm slip whose QR code reads back as
the ticket's link."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator

import pytest
import requests
import zxingcpp
from PIL import Image
from playwright.sync_api import Browser, Page

from tests.conftest import VhostFactory, wait_for
from tests.system.screens_support import (
    PASSWORD,
    PRINT_SPY,
    VOICE_SPY,
    Site,
    paired,
    screenshot,
    signed_in,
    site_of,
)

pytestmark = pytest.mark.system


@pytest.fixture(scope="module")
def site(vhost_factory: VhostFactory, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp("board")
    with site_of(vhost_factory, tmp, ("queue",), {"kiosk_idle_seconds": 3}) as site:
        with site.rpc() as rpc:
            for n in ("1", "2", "3", "4"):
                rpc.queue.open_window(n, f"S{n}")
        yield site


def paired_board(browser: Browser, site: Site, spy: bool) -> Page:
    page = paired(browser, site, "board", (1920, 1080), VOICE_SPY if spy else "")
    page.wait_for_selector("#screen:not([hidden])")
    return page


def spoken(page: Page) -> list[str]:
    return list(page.evaluate("window.__spoken"))


def test_a_board_announces_each_call_and_recall_once_across_a_reconnect(
    browser: Browser, site: Site
) -> None:
    before = site.call("1")  # on the board when it opens: shown, not announced
    page = paired_board(browser, site, spy=True)
    page.wait_for_selector(f"#windows li:first-child .number:text-is('{before['number']}')")
    assert page.locator("html").get_attribute("lang") == "zh-CN"
    page.wait_for_timeout(500)
    assert spoken(page) == []

    second = site.call("2")
    number = second["number"]
    wait_for(lambda: spoken(page), 10, "the call announced")
    digits = " ".join("零一二三四五六七八九"[int(c)] if c.isdigit() else c for c in number)
    assert spoken(page) == [f"请 {digits} 号，到 二 号窗口办理"]
    newest = page.locator("#recent li").first
    assert newest.locator(".number").inner_text() == number
    assert "flash" in (newest.get_attribute("class") or "")

    with site.rpc() as rpc:
        rpc.queue.recall(second["id"], "2", "S2")
    wait_for(lambda: len(spoken(page)) == 2, 10, "the recall announced")

    site.gateway.stop()  # a real cut: the board's stream breaks
    page.wait_for_selector("#status.bad")
    site.gateway.start()
    wait_for(site.gateway.healthy, 60, "the gateway back")
    page.wait_for_selector("#status:not(.bad)", timeout=20000)
    page.wait_for_timeout(1000)
    assert len(spoken(page)) == 2, "a reconnect announced an old call again"

    third = site.call("3")
    wait_for(lambda: len(spoken(page)) == 3, 10, "the next call announced")
    page.wait_for_timeout(1000)
    assert len(spoken(page)) == 3
    said = " ".join("零一二三四五六七八九"[int(c)] if c.isdigit() else c for c in third["number"])
    assert spoken(page)[2] == f"请 {said} 号，到 三 号窗口办理"
    screenshot(page, "board")
    page.close()


def test_without_a_browser_voice_the_board_plays_the_servers_wav(
    browser: Browser, site: Site
) -> None:
    page = paired_board(browser, site, spy=False)
    page.wait_for_timeout(500)
    with page.expect_response(lambda r: "/board/announce/" in r.url, timeout=15000) as got:
        site.call("4")
    answer = got.value
    assert answer.status == 200
    assert answer.headers["content-type"] == "audio/wav"
    # the same WAV, fetched again with the board's token: Mandarin speech from espeak-ng
    token = page.evaluate("localStorage.getItem('hall.device.token')")
    wav = requests.get(answer.url, headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert wav.content[:4] == b"RIFF"
    assert len(wav.content) > 20000  # about a second of speech, not an empty file
    health = requests.get(f"{site.url}/health", timeout=5).json()
    assert health["notes"] == {"board": "ok", "voice": "ok"}
    page.close()


def test_the_board_routes_refuse_whoever_is_not_a_paired_screen(site: Site) -> None:
    stream = f"{site.url}/board/stream"
    assert requests.get(stream, timeout=5).status_code == 401  # no token
    bogus = {"Authorization": "Bearer not-a-token"}
    assert requests.get(stream, headers=bogus, timeout=5).status_code == 401
    as_pad = site.device_headers("pad", "1")
    assert requests.get(stream, headers=as_pad, timeout=5).status_code == 403
    as_board = site.device_headers("board")
    # the voice says only calls on the board: no text of the caller's choosing
    unknown = requests.get(
        f"{site.url}/board/announce/0123456789abcdef0123.wav", headers=as_board, timeout=5
    )
    assert unknown.status_code == 404
    assert requests.get(f"{site.url}/static/../service.py", timeout=5).status_code == 404
    assert requests.get(f"{site.url}/static/app.py", timeout=5).status_code == 404
    shell = requests.get(f"{site.url}/board", timeout=5)
    assert "script-src 'self'" in shell.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in shell.headers["Content-Security-Policy"]


def test_the_kiosk_issues_a_green_channel_ticket_and_prints_its_slip(
    browser: Browser, site: Site
) -> None:
    page = paired(browser, site, "kiosk", (1080, 1920), PRINT_SPY)
    first = page.locator("#categories button").first
    first.wait_for()
    screenshot(page, "kiosk")
    assert "等候" in first.inner_text()
    assert "分钟" in first.inner_text() or "无需等候" in first.inner_text()
    box = first.bounding_box()
    assert box is not None
    assert box["height"] >= 48  # a touch target
    page.check("#green")
    page.select_option("#reason", "elderly")
    first.click()
    page.wait_for_selector("#slip:not([hidden])")
    number = page.inner_text("#slip-number")
    assert number.startswith("A")
    assert "（优先）" in page.inner_text("#slip-category")
    assert page.evaluate("window.__printed") == 1
    page.emulate_media(media="print")
    pdf = page.pdf(prefer_css_page_size=True)
    width = float(re.search(rb"/MediaBox \[0 0 ([0-9.]+) ", pdf).group(1))  # type: ignore[union-attr]
    assert abs(width - 80 / 25.4 * 72) < 2  # 80 mm thermal paper
    page.emulate_media(media="screen")
    shot = page.locator("#slip-qr").screenshot()
    codes = zxingcpp.read_barcodes(Image.open(io.BytesIO(shot)))
    assert len(codes) == 1
    link = codes[0].text
    assert link.startswith(f"{site.url}/m/t/")
    assert number not in link  # a capability, not a guessable number
    mobile = browser.new_page(viewport={"width": 390, "height": 844}, locale="zh-CN")
    mobile.goto(link)
    assert mobile.inner_text(".number") == number
    assert "您前面还有" in mobile.inner_text(".where")
    screenshot(mobile, "ticket")
    token = link.rsplit("/", 1)[1]
    forged = token[:-1] + ("0" if token[-1] != "0" else "1")
    assert requests.get(f"{site.url}/m/t/{forged}", timeout=5).status_code == 404
    mobile.close()

    page.wait_for_selector("#start:not([hidden])", timeout=8000)  # idle: back to the start
    assert page.is_hidden("#slip")
    page.fill("#booking", "no-such-booking")
    page.click("#checkin button")
    page.wait_for_selector("#message:not(:empty)")
    assert re.search(r"[\u4e00-\u9fff]", page.inner_text("#message"))
    page.close()


def test_staff_pages_send_to_sign_in_and_back_and_refuse_the_wrong_role(
    browser: Browser, site: Site
) -> None:
    site.add_staff("S1", ["clerk"], ["1"])
    site.add_staff("K9", ["clerk"], ["9"])
    # an attacker's link: after signing in, the browser must not go to another host
    evil = requests.get(f"{site.url}/login?next=//evil.example/window", timeout=5)
    assert "evil.example" not in evil.text
    page = signed_in(browser, site, "/window", "S1", "1")
    assert page.inner_text("#staff-window") == "1 号窗口"
    assert page.locator("html").get_attribute("lang") == "zh-CN"
    csrf = page.locator("meta[name=csrf]").get_attribute("content")
    assert csrf
    assert len(csrf) >= 32
    # a manager's page for a clerk: a 403 page in Chinese, not the console
    denied = page.goto(f"{site.url}/manage")
    assert denied is not None
    assert denied.status == 403
    assert "无权访问" in page.inner_text("h1")  # a page without scripts: nothing polls
    # the operator disables the account: the session ends, the next page load asks again
    with site.rpc() as rpc:
        rpc.gateway.disable_staff("S1")
    page.goto(f"{site.url}/window")
    page.wait_for_url(re.compile(r"/login\?next=%2Fwindow&expired=1"))
    assert "登录已过期" in page.inner_text("#reason")
    # a wrong password: the same words as an unknown account, shown on the form
    page.fill("input[name=staff_id]", "K9")
    page.fill("input[name=password]", "not-the-password")
    page.fill("input[name=window]", "9")
    page.click("#login button")
    page.wait_for_selector("#login .error:not(:empty)")
    assert page.inner_text("#login .error") == "账号或密码不正确"
    screenshot(page, "login")
    # a clerk signing in at a window that is not theirs is refused by the gateway
    page.fill("input[name=password]", PASSWORD)
    page.fill("input[name=window]", "2")
    page.click("#login button")
    page.wait_for_selector("#login .error:not(:empty):not(:text-is('账号或密码不正确'))")
    assert re.search(r"[\u4e00-\u9fff]", page.inner_text("#login .error"))
    assert "/login" in page.url
    page.context.close()
