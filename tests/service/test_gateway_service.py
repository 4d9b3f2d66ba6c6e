"""The gateway (docs/security.md, "Gateway") with the real queue on the real broker, over
real HTTP: a clerk signs in at a window and calls a number through the bridge, and what an
attacker on the hall's LAN would try — no session, no or a wrong CSRF token, another
window, password guessing, a disabled account's session, a pairing code used twice, a
revoked device, bridging to sync — fails."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from services.gateway.service import GatewayService
from services.gateway.web.staff import COOKIE
from tests.conftest import free_port, operator_rpc, site_config
from tests.service.test_queue_service import NOW, SECTION, START, QueueAtTen

pytestmark = pytest.mark.service

SITE = "421302"
PASSWORD = "Window-Pass-2026"  # noqa: S105  (a test account of a throw-away site)


@pytest.fixture
def hall(start: Any, vhost_factory: Any, tmp_path: Path) -> Iterator[dict[str, Any]]:
    NOW[0] = START
    vhost = vhost_factory("gateway")
    port = free_port()
    start(QueueAtTen, site_config(vhost, tmp_path, SITE, "county", QUEUE=SECTION))
    gateway = site_config(
        vhost, tmp_path, SITE, "county", port=port, GATEWAY={"lockout_failures": 5}
    )
    start(GatewayService, gateway)
    with operator_rpc(vhost) as rpc:
        rpc.gateway.add_staff(
            {
                "id": "S1",
                "name": "窗口一",
                "roles": ["clerk"],
                "windows": ["1"],
                "password": PASSWORD,
            }
        )
        yield {"url": f"http://127.0.0.1:{port}", "rpc": rpc}


def sign_in(hall: dict[str, Any], window: str | None = "1", password: str = PASSWORD) -> Any:
    session = requests.Session()
    answer = session.post(
        f"{hall['url']}/login",
        json={"staff_id": "S1", "password": password, "window": window},
        timeout=10,
    )
    session.headers["X-CSRF-Token"] = answer.json().get("csrf", "") if answer.ok else ""
    session.answer = answer  # type: ignore[attr-defined]
    return session


def bridge(session: Any, url: str, method: str, *args: Any, **kwargs: Any) -> requests.Response:
    return session.post(  # type: ignore[no-any-return]
        f"{url}/rpc/queue/{method}", json={"args": list(args), "kwargs": kwargs}, timeout=10
    )


def test_a_clerk_signs_in_and_calls_a_number_as_themselves(hall: dict[str, Any]) -> None:
    ticket = hall["rpc"].queue.take_ticket("A")
    clerk = sign_in(hall)
    assert clerk.answer.status_code == 200
    cookie = clerk.answer.headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    assert bridge(clerk, hall["url"], "open_window", "1").status_code == 200
    called = bridge(clerk, hall["url"], "call_next", "1")
    assert called.status_code == 200, called.text
    assert called.json()["result"]["id"] == ticket["id"]
    assert called.json()["result"]["staff_id"] == "S1"  # from the signed identity
    other = bridge(clerk, hall["url"], "call_next", "2")
    assert other.status_code == 403  # queue's own rule: not the window signed in at
    me = clerk.get(f"{hall['url']}/me", timeout=5).json()
    assert me == {"kind": "staff", "id": "S1", "roles": ["clerk"], "window": "1"}


def test_no_session_no_csrf_and_no_sync_through_the_bridge(hall: dict[str, Any]) -> None:
    url = hall["url"]
    assert bridge(requests.Session(), url, "board").status_code == 401
    clerk = sign_in(hall)
    forged = requests.Session()
    forged.cookies.set(COOKIE, clerk.cookies[COOKIE])  # a page of another origin: no token
    assert bridge(forged, url, "board").status_code == 403
    forged.headers["X-CSRF-Token"] = "0" * 64
    assert bridge(forged, url, "board").status_code == 403
    sync = clerk.post(f"{url}/rpc/sync/push_now", json={}, timeout=5)
    assert sync.status_code == 404
    assert bridge(clerk, url, "board").status_code == 200


def test_password_guessing_is_locked_out_even_for_the_right_password(hall: dict[str, Any]) -> None:
    for _ in range(5):
        wrong = sign_in(hall, password="guess-123456")  # noqa: S106  (a guess)
        assert wrong.answer.status_code == 401
        assert wrong.answer.json()["message"] == "账号或密码不正确"
    unknown = requests.post(
        f"{hall['url']}/login", json={"staff_id": "nobody", "password": "x" * 12}, timeout=10
    )
    assert unknown.status_code == 429  # the address is locked too
    assert sign_in(hall).answer.status_code == 429  # the right password, still locked
    audit = hall["rpc"].gateway.audit(50)
    assert [a["outcome"] for a in audit].count("wrong") == 5
    assert PASSWORD not in repr(audit)


def test_a_disabled_account_loses_its_session_at_once(hall: dict[str, Any]) -> None:
    clerk = sign_in(hall)
    assert bridge(clerk, hall["url"], "board").status_code == 200
    hall["rpc"].gateway.disable_staff("S1")
    assert bridge(clerk, hall["url"], "board").status_code == 401
    assert sign_in(hall).answer.status_code == 401


def test_a_device_pairs_once_and_is_refused_after_revocation(hall: dict[str, Any]) -> None:
    url, rpc = hall["url"], hall["rpc"]
    code = rpc.gateway.create_pairing("kiosk")["code"]
    paired = requests.post(f"{url}/pair", json={"code": code, "name": "大厅取号机"}, timeout=10)
    assert paired.status_code == 200, paired.text
    again = requests.post(f"{url}/pair", json={"code": code, "name": "第二台"}, timeout=10)
    assert again.status_code == 401
    kiosk = requests.Session()
    kiosk.headers["Authorization"] = f"Bearer {paired.json()['token']}"
    taken = bridge(kiosk, url, "take_ticket", "A")
    assert taken.status_code == 200, taken.text
    assert bridge(kiosk, url, "call_next", "1").status_code == 403  # a kiosk calls nobody
    rpc.gateway.revoke_device(paired.json()["id"])
    assert bridge(kiosk, url, "take_ticket", "A").status_code == 401
    assert "token" not in repr(rpc.gateway.list_devices())
