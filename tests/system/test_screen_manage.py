"""The manager's console (大厅管理) in a real browser against a real site (queue, matters,
rating and the gateway as ``nameko run`` processes on RabbitMQ): windows and waiting
counts live, a bad rating turned into a case that the manager assigns, calls back and
cannot review (a supervisor's step), the phone revealed once, an application due soon
shown masked, the queue's configuration edited, a pairing code that pairs a real device;
and the console's own routes refusing a clerk, a device, a missing CSRF token and a
missing session."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from playwright.sync_api import Browser, Page

from tests.conftest import VhostFactory, wait_for
from tests.system.screens_support import Site, screenshot, signed_in, site_of

pytestmark = pytest.mark.system

PHONE = "13812345678"
ID_NUMBER = "421302198001010011"
DUE_SOON_MATTER = "0700018003421302001"  # 抵押权首次登记: promised in 1 working day
TIMEOUT = 20_000


@pytest.fixture(scope="module")
def site(vhost_factory: VhostFactory, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp("manage")
    with site_of(vhost_factory, tmp, ("queue", "matters", "rating")) as site:
        site.add_staff("M1", ["manager"], [])
        site.add_staff("S1", ["clerk"], ["1"])
        with site.rpc() as rpc:
            rpc.queue.open_window("1", "S1")
        yield site


@pytest.fixture(scope="module")
def manager(browser: Browser, site: Site) -> Page:
    return signed_in(browser, site, "/manage", "M1")


def tab(page: Page, name: str) -> None:
    page.click(f".tabs button[data-tab={name}]")
    page.wait_for_selector(f"#{name}:not([hidden])", timeout=TIMEOUT)


def waiting_cell(category: str) -> str:
    return f"#hall-waiting tr[data-category={category}] td.count"


def bad_rating(site: Site) -> dict[str, Any]:
    """A ticket served at window 1 and rated 非常不满意 on the pad, real-name: its case."""
    with site.rpc() as rpc:
        rpc.queue.take_ticket("B", "kiosk")
        ticket = rpc.queue.call_next("1", "S1")
        rpc.queue.start_service(ticket["id"])
        rpc.queue.complete(ticket["id"])
        ref = {"kind": "ticket", "id": ticket["id"]}

        def invitation() -> Any:
            found = rpc.rating.pending_for_window("1")
            return found if found and found["service_ref"] == ref else None

        invited = wait_for(invitation, 20, "the ticket's evaluation invitation")
        evaluation = rpc.rating.submit_evaluation(
            {
                "service_ref": invited["service_ref"],
                "invitation_id": invited["id"],
                "channel": "pad",
                "level": "very_dissatisfied",
                "reasons": {"tags": ["等候时间长", "态度不好"]},
                "rater": {"real_name": True, "phone": PHONE},
            }
        )
        case: dict[str, Any] = rpc.rating.get_case(evaluation["case_id"])
        return case


def test_windows_and_waiting_counts_are_live(manager: Page, site: Site) -> None:
    started = time.monotonic()
    card = manager.locator("#hall-windows li[data-window='1']")
    card.locator(".clerk:has-text('S1')").wait_for(timeout=TIMEOUT)
    assert "open" in (card.get_attribute("class") or "")
    assert "开放" in card.locator(".state").inner_text()
    assert "closed" in (manager.get_attribute("#hall-windows li[data-window='2']", "class") or "")
    before = int(manager.inner_text(waiting_cell("A")))
    with site.rpc() as rpc:
        rpc.queue.take_ticket("A", "kiosk")
        rpc.queue.take_ticket("A", "kiosk")
    manager.wait_for_selector(f"{waiting_cell('A')}:text-is('{before + 2}')", timeout=TIMEOUT)
    with site.rpc() as rpc:
        called = rpc.queue.call_next("1", "S1")
    card.locator(f".ticket:has-text('{called['number']}')").wait_for(timeout=TIMEOUT)
    manager.wait_for_selector(f"{waiting_cell('A')}:text-is('{before + 1}')", timeout=TIMEOUT)
    assert manager.inner_text("dd[data-figure=waiting-now]").startswith(str(before + 1))
    assert manager.inner_text("dd[data-figure=windows-open]") == "1 / 6"
    assert time.monotonic() - started < 15  # refreshed within a few seconds, not on reload
    with site.rpc() as rpc:
        served = sum(f["served"] for f in rpc.queue.today_figures())
        rpc.queue.complete(called["id"])
    # the queue's own figures of the day, current to the last action
    manager.wait_for_selector(f"dd[data-figure=served]:text-is('{served + 1} 人')", timeout=TIMEOUT)
    assert "A 100.0%" in manager.inner_text("dd[data-figure=within-target]")
    screenshot(manager, "manage")


def test_a_bad_rating_is_a_case_the_manager_assigns_and_calls_back(
    manager: Page, site: Site
) -> None:
    case = bad_rating(site)
    assert case["state"] == "callback_pending"
    tab(manager, "cases")
    row = manager.locator(f"#case-list tr[data-case='{case['id']}']")
    row.wait_for(timeout=TIMEOUT)
    assert "待回访核实" in row.inner_text()
    assert case["callback_due"] in row.inner_text()
    row.locator("button").click()
    dialog = manager.locator("dialog#case")
    dialog.locator("dd[data-fact=差评原因]:has-text('等候时间长')").wait_for(timeout=TIMEOUT)

    dialog.locator("form[data-method=assign_case] button").click()  # the handler: M1 itself
    dialog.locator("dd[data-fact=经办人]:text-is('M1')").wait_for(timeout=TIMEOUT)
    callback = dialog.locator("form[data-method=record_callback]")
    callback.locator("textarea[name=note]").fill("已电话联系，群众反映等候时间较长")
    callback.locator("button").click()
    dialog.locator("dd[data-fact=状态]:text-is('待定性')").wait_for(timeout=TIMEOUT)
    with site.rpc() as rpc:
        seen = rpc.rating.get_case(case["id"])
    assert (seen["state"], seen["handler"], seen["called_back"]) == (
        "classification_pending",
        "M1",
        True,
    )
    assert [s["by"] for s in seen["steps"][1:]] == ["M1", "M1"]

    review = dialog.locator("form[data-method=review_appeal]")
    review.locator("textarea[name=reason]").fill("复核")
    review.locator("button").click()
    review.locator(".error:not(:empty)").wait_for(timeout=TIMEOUT)
    refusal = review.locator(".error").inner_text()
    assert "无权调用 review_appeal" in refusal
    assert "supervisor" in refusal

    dialog.locator("#reveal").click()
    dialog.locator(f"#phone:has-text('{PHONE}')").wait_for(timeout=TIMEOUT)
    dialog.locator("#case-close").click()
    # the dialog's close wipes the number (the close event fires just after close())
    manager.wait_for_selector("dialog#case:not([open]) #phone:empty", state="attached")
    with site.rpc() as rpc:
        audit = rpc.rating.reveal_audit(case["id"])
    assert [a["by"] for a in audit] == ["M1"]
    manager.wait_for_selector(f"#case-list tr[data-case='{case['id']}']:has-text('待定性')")


def test_an_application_due_soon_shows_masked(manager: Page, site: Site) -> None:
    with site.rpc() as rpc:
        matter = rpc.matters.get_matter(DUE_SOON_MATTER)
        application = rpc.matters.submit_application(
            {
                "matter_code": DUE_SOON_MATTER,
                "applicant": {"kind": "person", "name": "张三丰", "id_number": ID_NUMBER},
                "channel": "window",
                "materials": [{"name": m["name"]} for m in matter["materials"] if m["required"]],
                "window": "1",
                "staff_id": "S1",
            }
        )
    assert application["due_state"] == "due_soon"
    tab(manager, "deadlines")
    row = manager.locator(f"#due-soon tr[data-application='{application['number']}']")
    row.wait_for(timeout=TIMEOUT)
    text = row.inner_text()
    assert application["due_date"] in text
    assert "抵押权首次登记" in text
    assert ID_NUMBER not in text
    assert "张三丰" not in text
    assert application["applicant"]["id_masked"] in text
    manager.wait_for_selector("#overdue td.empty", timeout=TIMEOUT)


def test_the_queue_configuration_is_edited_on_the_page(manager: Page, site: Site) -> None:
    tab(manager, "config")
    cap = manager.locator("#categories tr[data-prefix=B] input[name=daily_cap]")
    cap.wait_for(timeout=TIMEOUT)
    with site.rpc() as rpc:
        version = rpc.queue.configuration()["config_version"]
    cap.fill("80")
    manager.click("#categories-form button")
    manager.wait_for_selector(f"#config-version:has-text('第 {version + 1} 版')", timeout=TIMEOUT)
    with site.rpc() as rpc:
        saved = rpc.queue.configuration()
    assert saved["changed_by"] == "M1"
    assert [c["daily_cap"] for c in saved["config"]["categories"]] == [None, 80]

    hours = manager.locator("#categories tr[data-prefix=A] input[name=hours]")
    hours.fill("25:00-26:00")
    manager.click("#categories-form button")
    refused = manager.locator("#categories-form .error:not(:empty)")
    refused.wait_for(timeout=TIMEOUT)
    assert "hours" in refused.inner_text()

    manager.fill("#config-json textarea", '{"categories": [')
    manager.click("#config-json button")
    broken = manager.locator("#config-json .error:not(:empty)")
    broken.wait_for(timeout=TIMEOUT)
    assert "不是有效的 JSON" in broken.inner_text()
    with site.rpc() as rpc:
        assert rpc.queue.configuration()["config_version"] == version + 1


def test_a_pairing_code_from_the_page_pairs_a_device_that_can_be_revoked(
    manager: Page, site: Site
) -> None:
    tab(manager, "people")
    manager.select_option("#pairing-form select[name=role]", "pad")
    manager.click("#pairing-form button")  # a pad needs its window
    manager.wait_for_selector("#pairing-form .error:has-text('窗口')", timeout=TIMEOUT)
    manager.fill("#pairing-form input[name=window]", "1")
    manager.click("#pairing-form button")
    manager.wait_for_selector("#pairing:not([hidden])", timeout=TIMEOUT)
    code = manager.inner_text("#pairing-code")
    assert len(code) == 8
    assert code.isdigit()
    assert "有效期至" in manager.inner_text("#pairing-expiry")
    paired = requests.post(f"{site.url}/pair", json={"code": code, "name": "1号评价器"}, timeout=10)
    assert paired.status_code == 200, paired.text
    device = paired.json()
    assert (device["role"], device["window"]) == ("pad", "1")
    again = requests.post(f"{site.url}/pair", json={"code": code, "name": "又一台"}, timeout=10)
    assert again.status_code == 401  # one time only

    tab(manager, "cases")
    tab(manager, "people")  # shown again: read again
    row = manager.locator(f"#devices tr[data-device='{device['id']}']")
    row.wait_for(timeout=TIMEOUT)
    token = {"Authorization": f"Bearer {device['token']}"}
    assert requests.get(f"{site.url}/me", headers=token, timeout=10).status_code == 200
    row.locator("button:has-text('撤销')").click()
    row.locator("td:has-text('已撤销')").wait_for(timeout=TIMEOUT)
    assert requests.get(f"{site.url}/me", headers=token, timeout=10).status_code == 401


def test_staff_accounts_are_added_and_disabled_within_a_managers_reach(
    manager: Page, site: Site
) -> None:
    tab(manager, "people")
    form = manager.locator("#staff-form")
    form.locator("input[name=id]").fill("S2")
    form.locator("input[name=name]").fill("李四")
    form.locator("input[name=windows]").fill("2")
    form.locator("input[name=password]").fill("窗口口令-Two-2026")
    form.locator("button").click()
    row = manager.locator("#staff tr[data-staff=S2]")
    row.wait_for(timeout=TIMEOUT)
    assert "窗口人员" in row.inner_text()
    row.locator("button:has-text('停用')").click()
    row.locator("td:text-is('已停用')").wait_for(timeout=TIMEOUT)
    with site.rpc() as rpc:
        accounts = {s["id"]: s for s in rpc.gateway.list_staff()}
    assert accounts["S2"]["disabled"] is True
    assert manager.locator("#staff tr[data-staff=M1] button").count() == 0  # not oneself

    csrf = manager.get_attribute("meta[name=csrf]", "content") or ""
    api = manager.context.request
    supervisor = {
        "id": "X1",
        "name": "督查",
        "roles": ["supervisor"],
        "password": "督查口令-X-2026",
    }
    refused = api.post(
        f"{site.url}/manage/staff/add", data=supervisor, headers={"X-CSRF-Token": csrf}
    )
    assert refused.status == 403
    myself = api.post(
        f"{site.url}/manage/staff/disable", data={"staff_id": "M1"}, headers={"X-CSRF-Token": csrf}
    )
    assert myself.status == 403
    site.add_staff("V1", ["supervisor"], [])  # an oversight account, the operator's
    overseer = api.post(
        f"{site.url}/manage/staff/disable", data={"staff_id": "V1"}, headers={"X-CSRF-Token": csrf}
    )
    assert overseer.status == 403
    with site.rpc() as rpc:
        ids = {s["id"]: s["disabled"] for s in rpc.gateway.list_staff()}
    assert ids["V1"] is False
    assert "X1" not in ids
    assert ids["M1"] is False


def test_the_console_refuses_a_clerk_a_device_no_csrf_and_no_session(
    browser: Browser, manager: Page, site: Site
) -> None:
    clerk = signed_in(browser, site, "/window", "S1", "1")
    csrf = clerk.get_attribute("meta[name=csrf]", "content") or ""
    assert clerk.goto(f"{site.url}/manage").status == 403  # type: ignore[union-attr]
    as_clerk = clerk.context.request.post(
        f"{site.url}/manage/pairing", data={"role": "kiosk"}, headers={"X-CSRF-Token": csrf}
    )
    assert as_clerk.status == 403
    clerk.context.close()

    api = manager.context.request
    for route in ("/manage/pairing", "/manage/devices", "/manage/staff"):
        assert api.post(f"{site.url}{route}", data={"role": "kiosk"}).status == 403  # no CSRF
        answer = requests.post(f"{site.url}{route}", json={"role": "kiosk"}, timeout=10)
        assert answer.status_code == 401  # no session

    token = site.device_headers("kiosk")
    for route in ("/manage/pairing", "/manage/devices", "/manage/staff"):
        answer = requests.post(
            f"{site.url}{route}", json={"role": "kiosk"}, headers=token, timeout=10
        )
        assert answer.status_code == 403
