"""Access over the real broker (docs/security.md): a caller on the hall's LAN who can reach
RabbitMQ tries the queue's RPCs with no identity, a forged one, an expired one, another
site's, and a device's or a clerk's beyond its role. Each is refused before the service
runs, nothing is stored, and the refusal is counted and written to the audit log."""

from __future__ import annotations

import logging
import socket
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from nameko.standalone.rpc import ServiceRpcProxy

from services.common.callers import SignedContext
from services.common.errors import Forbidden
from services.common.identity import (
    IDENTITY_KEY,
    Kind,
    Principal,
    Unauthenticated,
    read_keys,
    sign,
    write_key,
)
from tests.conftest import access_key_file, amqp_uri, free_port, operator_context, site_config
from tests.service.test_queue_service import NOW, SECTION, START, QueueAtTen

pytestmark = pytest.mark.service

SITE = "421302"


@pytest.fixture
def hall(start: Any, vhost_factory: Any, tmp_path: Path) -> dict[str, str]:
    NOW[0] = START
    vhost = vhost_factory("access")
    port = free_port()
    start(QueueAtTen, site_config(vhost, tmp_path, SITE, "county", port=port, QUEUE=SECTION))
    return {"uri": amqp_uri(vhost), "http": f"http://127.0.0.1:{port}"}


def queue(hall: dict[str, str], context: dict[str, Any] | None) -> ServiceRpcProxy:
    return ServiceRpcProxy("queue", {"AMQP_URI": hall["uri"]}, timeout=20, context_data=context)


def as_(principal: Principal) -> SignedContext:
    return SignedContext(principal, read_keys(access_key_file()))


CLERK_AT_1 = Principal(Kind.STAFF, "S1", SITE, frozenset({"clerk"}), "1")
KIOSK = Principal(Kind.DEVICE, "kiosk-1", SITE, frozenset({"kiosk"}))


def refused_count(hall: dict[str, str], reason: str) -> float:
    text = requests.get(f"{hall['http']}/metrics", timeout=5).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith("hall_access_refused_total{") and f'reason="{reason}"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_anonymous_forged_expired_and_foreign_identities_are_refused(
    hall: dict[str, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with queue(hall, as_(KIOSK)) as kiosk:
        ticket = kiosk.take_ticket("A")  # a kiosk may take a ticket
    forged_key = tmp_path / "forged.key"
    write_key(forged_key)
    ring = read_keys(access_key_file())
    attempts = {
        "none": None,
        "forged": SignedContext(CLERK_AT_1, read_keys(forged_key)),
        "expired": {IDENTITY_KEY: sign(CLERK_AT_1, ring, now=time.time() - 3600)},
        "other site": SignedContext(
            Principal(Kind.STAFF, "S1", "421302101", frozenset({"clerk"}), "1"), ring
        ),
        "garbage": {IDENTITY_KEY: "v1.x.y.z"},
    }
    caplog.set_level(logging.WARNING, logger="hall.audit")
    for context in attempts.values():
        with queue(hall, context) as q, pytest.raises(Unauthenticated):
            q.call_next(window="1", staff_id="S1")
    with queue(hall, operator_context()) as q:
        assert q.ticket(ticket["id"])["state"] == "waiting"  # nothing was called
    assert refused_count(hall, "unauthenticated") == len(attempts)
    audit = [r.getMessage() for r in caplog.records if r.name == "hall.audit"]
    assert len(audit) == len(attempts)
    assert all("queue.call_next" in line and "unauthenticated" in line for line in audit)


def test_roles_windows_and_actors_are_those_of_the_caller(hall: dict[str, str]) -> None:
    with queue(hall, as_(KIOSK)) as kiosk:
        ticket = kiosk.take_ticket("A")
        with pytest.raises(Forbidden):  # a kiosk cannot call a number
            kiosk.call_next(window="1", staff_id="S1")
    with queue(hall, as_(CLERK_AT_1)) as clerk:
        with pytest.raises(Forbidden):  # opening another window
            clerk.open_window("2", "S1")
        clerk.open_window("1")  # signs the clerk in at the window of the identity
        with pytest.raises(Forbidden):  # not the window the clerk is signed in at
            clerk.call_next(window="2")
        with pytest.raises(Forbidden):  # not in someone else's name
            clerk.call_next(window="1", staff_id="S2")
        called = clerk.call_next(window="1")  # the staff member comes from the identity
    assert called["id"] == ticket["id"]
    assert called["window"] == "1"
    assert called["staff_id"] == "S1"
    assert refused_count(hall, "forbidden") == 4


def test_applications_by_id_number_are_for_staff_audited_and_throttled(
    start: Any, vhost_factory: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from services.common.errors import TooManyRequests
    from services.matters.service import MattersService

    vhost = vhost_factory("access-matters")
    start(MattersService, site_config(vhost, tmp_path, SITE, "county"))
    caplog.set_level(logging.INFO, logger="hall.audit")
    lookup = {"applicant_id_number": "42130219800101001X"}
    config = {"AMQP_URI": amqp_uri(vhost)}
    kiosk = ServiceRpcProxy("matters", config, timeout=20, context_data=as_(KIOSK))
    with kiosk as device, pytest.raises(Forbidden):
        device.list_applications(lookup)
    with ServiceRpcProxy("matters", config, timeout=20, context_data=as_(CLERK_AT_1)) as clerk:
        for _ in range(30):
            assert clerk.list_applications(lookup)["count"] == 0
        with pytest.raises(TooManyRequests):
            clerk.list_applications(lookup)
    lines = [r.getMessage() for r in caplog.records if r.name == "hall.audit"]
    assert lines.count("called matters.list_applications by staff:S1") == 30
    assert "42130219800101001X" not in "\n".join(lines)


def lan_address() -> str:
    """This machine's address on its LAN (what another PC in the hall would connect to)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("192.0.2.254", 9))  # TEST-NET: nothing is sent, a route is chosen
        address: str = probe.getsockname()[0]
    assert not address.startswith("127."), "this test needs a non-loopback interface"
    return address


def test_data_routes_answer_only_this_machine_health_and_metrics_the_lan(
    start: Any, vhost_factory: Any, tmp_path: Path
) -> None:
    NOW[0] = START
    port = free_port()
    config = site_config(vhost_factory("access-http"), tmp_path, SITE, "county", QUEUE=SECTION)
    start(QueueAtTen, {**config, "WEB_SERVER_ADDRESS": f"0.0.0.0:{port}"})
    lan, local = f"http://{lan_address()}:{port}", f"http://127.0.0.1:{port}"
    refused = requests.get(f"{lan}/board", timeout=5)
    assert refused.status_code == 403
    assert refused.json()["error"] == "forbidden"
    assert requests.get(f"{local}/board", timeout=5).status_code == 200
    assert requests.get(f"{lan}/health", timeout=5).status_code == 200
    assert requests.get(f"{lan}/metrics", timeout=5).status_code == 200


def test_subtree_figures_over_rpc_for_a_supervisor_not_a_clerk(hall: dict[str, str]) -> None:
    """The dashboard's queue RPC: a child's replicated figure and the site's own live ones,
    per site and day; a supervisor (as the gateway bridges them) may read it, a clerk not."""
    child = {
        "id": "421302101:2026-11-23:A",
        "schema": 1,
        "version": 1,
        "site_code": "421302101",
        "date": "2026-11-23",
        "category": "A",
        "issued": 7,
        "served": 5,
        "no_show": 0,
        "called": 5,
        "within_target": 4,
        "wait_p50_s": 60,
        "wait_p90_s": 120,
        "within_target_share": 0.8,
    }
    with queue(hall, operator_context()) as q:
        assert q.apply_replicated("daily_figures", [child]) == {"applied": 1}
        q.take_ticket("A")
    supervisor = Principal(Kind.STAFF, "V1", SITE, frozenset({"supervisor"}))
    with queue(hall, as_(supervisor)) as q:
        got = q.subtree_figures("2026-11-23", "2026-11-23")
    assert got["waiting_now"] == {SITE: 1}
    rows = {r["site_code"]: r for r in got["rows"]}
    assert (rows[SITE]["issued"], rows["421302101"]["within_target_share"]) == (1, 0.8)
    with queue(hall, as_(CLERK_AT_1)) as q, pytest.raises(Forbidden):
        q.subtree_figures("2026-11-23", "2026-11-23")
