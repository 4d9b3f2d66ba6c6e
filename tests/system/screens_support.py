"""What the browser tests of the hall's screens share: Debian's Chromium driven by
Playwright (never a downloaded browser), one real site (``nameko run`` processes of the
services a page needs, on RabbitMQ), paired devices and signed-in staff."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests
from playwright.sync_api import Browser, Page, sync_playwright

from tests.conftest import VhostFactory
from tests.system.test_replicas import (
    COUNTY,
    QUEUE_SECTION,
    VILLAGE,
    Replica,
    calendar_override,
    config,
    rpc_factory,
    running,
)

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--autoplay-policy=no-user-gesture-required"]
WAIT_MS = 20000  # other browsers may share this 2-core machine: waits are generous
PASSWORD = "测试口令-Window-2026"  # noqa: S105 - a test account's password
# A Mandarin voice that records what it is asked to say (headless Chromium has none).
VOICE_SPY = """
window.__spoken = [];
class SpyUtterance { constructor(text) { this.text = text; } }
Object.defineProperty(window, "SpeechSynthesisUtterance", { value: SpyUtterance });
Object.defineProperty(window, "speechSynthesis", { value: {
  getVoices: () => [{ lang: "zh-CN", name: "spy" }],
  speak: (u) => { window.__spoken.push(u.text); setTimeout(() => u.onend && u.onend(), 10); },
} });
"""
# The browser's print dialog is counted, not shown; what it would print is checked as PDF.
PRINT_SPY = "window.__printed = 0; window.print = () => { window.__printed += 1; };"
SECTIONS: dict[str, dict[str, Any]] = {
    "QUEUE": {**QUEUE_SECTION, "recall_cooldown_seconds": 0},
    "MATTERS": {"privacy_salt": "screens-test-salt-matters", "seed_catalog": "seed/catalog.yaml"},
    "RATING": {"privacy_salt": "screens-test-salt-rating"},
}


class Site:
    """A running site: its services, the operator's RPC, the gateway's address."""

    def __init__(self, vhost: str, replicas: dict[str, Replica]) -> None:
        self.rpc = rpc_factory(vhost)
        self.replicas = replicas
        self.gateway = replicas["gateway"]
        self.url = f"http://127.0.0.1:{self.gateway.port}"

    def pairing_code(self, role: str, window: str | None = None) -> str:
        with self.rpc() as rpc:
            return str(rpc.gateway.create_pairing(role, window)["code"])

    def device_headers(self, role: str, window: str | None = None) -> dict[str, str]:
        """The Authorization header of a new device of ``role``, paired over HTTP."""
        code = self.pairing_code(role, window)
        answer = requests.post(f"{self.url}/pair", json={"code": code, "name": role}, timeout=10)
        answer.raise_for_status()
        return {"Authorization": f"Bearer {answer.json()['token']}"}

    def add_staff(self, staff_id: str, roles: list[str], windows: list[str]) -> None:
        account = {
            "id": staff_id,
            "name": f"员工{staff_id}",
            "roles": roles,
            "windows": windows,
            "password": PASSWORD,
        }
        with self.rpc() as rpc:
            rpc.gateway.add_staff(account)

    def call(self, window: str) -> dict[str, Any]:
        with self.rpc() as rpc:
            rpc.queue.take_ticket("A", "kiosk")
            ticket: dict[str, Any] = rpc.queue.call_next(window, f"S{window}")
            return ticket


@contextmanager
def site_of(
    vhost_factory: VhostFactory,
    tmp: Path,
    services: tuple[str, ...],
    gateway: dict[str, Any] | None = None,
    code: str = COUNTY,
) -> Iterator[Site]:
    """A site running ``services`` and a gateway (with ``gateway`` settings): the county, or
    the town or village of test_replicas.py named by ``code`` (the village's upstream vhost
    empty: no upstream site runs)."""
    vhost = vhost_factory(f"screens-{tmp.name}")
    upstream = vhost_factory(f"screens-{tmp.name}-up") if code == VILLAGE else None
    extra: dict[str, Any] = {k: v for k, v in SECTIONS.items() if k.lower() in services}
    extra.update(GATEWAY=gateway or {}, **calendar_override(tmp))
    cfg = config(vhost, tmp / "data", code, upstream, **extra)
    replicas = {name: Replica(tmp, name, 0, cfg) for name in (*services, "gateway")}
    with running(list(replicas.values())):
        yield Site(vhost, replicas)


@contextmanager
def chromium() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield browser
        browser.close()


def new_page(browser: Browser, size: tuple[int, int], script: str = "") -> Page:
    page = browser.new_page(viewport={"width": size[0], "height": size[1]}, locale="zh-CN")
    if script:
        page.add_init_script(script)
    return page


def paired(
    browser: Browser, site: Site, role: str, size: tuple[int, int], script: str = "", **pair: Any
) -> Page:
    """A new page of device ``role`` (``/<role>``), paired with a fresh one-time code."""
    page = new_page(browser, size, script)
    page.goto(f"{site.url}/{role}")
    page.fill("input[name=code]", site.pairing_code(role, pair.get("window")))
    page.click("#pairing button")
    return page


def signed_in(
    browser: Browser, site: Site, path: str, staff_id: str, window: str | None = None
) -> Page:
    """A new 1366×768 page of ``path`` for ``staff_id``, through the sign-in page it is sent
    to (each page has its own browser context, so its own session cookie)."""
    context = browser.new_context(viewport={"width": 1366, "height": 768}, locale="zh-CN")
    page = context.new_page()
    page.goto(f"{site.url}{path}")
    page.wait_for_url(re.compile(r"/login\?next="), timeout=WAIT_MS)
    page.fill("input[name=staff_id]", staff_id)
    page.fill("input[name=password]", PASSWORD)
    if window:
        page.fill("input[name=window]", window)
    page.click("#login button")
    page.wait_for_url(re.compile(re.escape(path) + r"$"), timeout=WAIT_MS)
    return page


def prints_alone_on_a4(page: Page) -> None:
    """The desk's document printed: print() called once (``PRINT_SPY``), only the document
    shown in print media, and the PDF an A4 page."""
    page.click("#notice-print")
    assert page.evaluate("window.__printed") == 1
    page.emulate_media(media="print")
    assert page.is_visible("#notice-body")
    assert not page.is_visible("#console")
    assert not page.is_visible("#notice-print")
    pdf = page.pdf(prefer_css_page_size=True)
    width = float(re.search(rb"/MediaBox \[0 0 ([0-9.]+) ", pdf).group(1))  # type: ignore[union-attr]
    assert abs(width - 210 / 25.4 * 72) < 2  # A4
    page.emulate_media(media="screen")


def screenshot(page: Page, name: str) -> None:
    """docs/screens/<name>.png, when HALL_SCREENSHOTS names the folder to write them to."""
    folder = os.environ.get("HALL_SCREENSHOTS")
    if folder:
        page.screenshot(path=str(Path(folder) / f"{name}.png"))
