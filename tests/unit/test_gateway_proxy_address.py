"""The client's address behind the hall's reverse proxies (``GATEWAY.trusted_proxies``,
services/gateway/domain/addresses.py), as an attacker would try it: the sign-in and the
progress lockouts are driven through their HTTP routes with a socket address and an
``X-Forwarded-For`` header, so what the routes count is what is checked."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from services.common.clock import ManualClock
from services.common.config import ConfigError
from services.common.errors import NotFound, TooManyRequests
from services.common.identity import Unauthenticated
from services.gateway import domain
from services.gateway.app import GatewayApp
from services.gateway.citizen import Citizens
from services.gateway.service import GatewayService
from services.gateway.settings import GatewaySettings
from services.gateway.web.citizen import CitizenPages

pytestmark = pytest.mark.unit

GOOD = "Counter-Pass-77"
GUESS = "not-the-pass-1"  # an attacker's
PROXY, INNER = "10.0.0.5", "10.0.0.6"  # the hall's TLS proxy, and a load balancer behind it
PROXIES = ["10.0.0.0/29"]
RIGHT = {"number": "421302-20261207-0001", "id_suffix": "12345X"}
WRONG = {**RIGHT, "id_suffix": "000000"}
FAILURES = GatewaySettings().lockout_failures


def networks(*entries: str) -> tuple[domain.Network, ...]:
    return GatewaySettings.from_section({"trusted_proxies": list(entries)}).trusted_proxies


def request(path: str, body: dict[str, Any], remote: str, forwarded: str | None) -> Request:
    headers = [] if forwarded is None else [("X-Forwarded-For", forwarded)]
    environ = EnvironBuilder(
        method="POST", path=path, json=body, headers=headers, environ_base={"REMOTE_ADDR": remote}
    ).get_environ()
    return Request(environ)


class Door:
    """``POST /login`` and ``POST /m/a`` of the gateway, on one app; matters knows one
    application (``RIGHT``)."""

    def __init__(self, app: GatewayApp) -> None:
        self.app = app
        self.pages = Phone(app)

    def login(self, remote: str, forwarded: str | None = None, **body: Any) -> Any:
        sent = {"staff_id": "S1", "password": GOOD, "window": "1", **body}
        service: Any = SimpleNamespace(app=self.app)
        return GatewayService.login(service, request("/login", sent, remote, forwarded))

    def guess(self, remote: str, forwarded: str | None = None) -> None:
        """Five wrong sign-ins, each for another unknown account (no account locks)."""
        for n in range(FAILURES):
            with pytest.raises(Unauthenticated):
                self.login(remote, forwarded, staff_id=f"X{n}", password=GUESS)

    def progress(self, remote: str, forwarded: str | None = None, **body: Any) -> Any:
        return self.pages.progress(request("/m/a", {**RIGHT, **body}, remote, forwarded))


class Phone(CitizenPages):
    def __init__(self, app: GatewayApp) -> None:
        self.app = app

    def _citizens(self) -> Citizens:
        return Citizens(self.app, matters)


def matters(service: str, method: str, number: str, suffix: str) -> dict[str, Any]:
    assert (service, method) == ("matters", "application_progress")
    if {"number": number, "id_suffix": suffix} != RIGHT:
        raise NotFound("没有这个办件", {"number": ["未找到"]})
    return {"state": "accepted"}


@pytest.fixture
def door(make_context: Callable[..., Any]) -> Door:
    clock = ManualClock(datetime(2026, 12, 7, 1, 0, tzinfo=UTC))
    settings = GatewaySettings.from_section({"trusted_proxies": PROXIES})
    app = GatewayApp(make_context("gateway"), settings, clock)
    app.add_staff(
        {"id": "S1", "name": "窗口一", "roles": ["clerk"], "windows": ["1"], "password": GOOD},
        "operator:hallctl",
    )
    return Door(app)


def addresses(door: Door, outcome: str) -> list[str]:
    return [d["address"] for d in door.app.audit_log() if d["outcome"] == outcome]


# --- a client that connects directly -------------------------------------------------------


def test_a_direct_client_forging_the_header_is_locked_by_its_own_address(door: Door) -> None:
    attacker = "198.51.100.9"
    for n in range(FAILURES):  # a new forged address each time
        with pytest.raises(Unauthenticated):
            door.login(attacker, f"203.0.113.{n}", staff_id=f"X{n}", password=GUESS)
    with pytest.raises(TooManyRequests):
        door.login(attacker, "203.0.113.200")  # the right password, still locked
    with pytest.raises(TooManyRequests):
        door.login(attacker, f"203.0.113.201, {PROXY}")  # posing as the proxy's client
    assert set(addresses(door, "wrong")) == {attacker}  # the audit names the real address

    for n in range(FAILURES):
        with pytest.raises(NotFound):
            door.progress(attacker, f"203.0.113.{n}", id_suffix="000000")
    with pytest.raises(TooManyRequests, match="查询失败次数过多"):
        door.progress(attacker, "203.0.113.200")


# --- behind the hall's proxy ---------------------------------------------------------------


def test_behind_the_proxy_each_client_is_locked_out_alone(door: Door) -> None:
    door.guess(PROXY, "198.51.100.1")
    with pytest.raises(TooManyRequests, match="失败次数过多"):
        door.login(PROXY, "198.51.100.1")
    assert door.login(PROXY, "198.51.100.2").status_code == 200  # not the first one's lock
    assert set(addresses(door, "wrong")) == {"198.51.100.1"}
    assert addresses(door, "ok") == ["198.51.100.2"]
    assert door.login(PROXY).status_code == 200  # the proxy itself (no header) is not locked

    for _ in range(FAILURES):
        with pytest.raises(NotFound):
            door.progress(PROXY, "198.51.100.3", id_suffix="000000")
    with pytest.raises(TooManyRequests, match="查询失败次数过多"):
        door.progress(PROXY, "198.51.100.3")
    assert door.progress(PROXY, "198.51.100.4") == {"state": "accepted"}


def test_a_chain_of_two_trusted_proxies_names_the_client_and_ignores_what_it_forged(
    door: Door,
) -> None:
    for n in range(FAILURES):  # the client forges the left part anew each time
        with pytest.raises(Unauthenticated):
            door.login(PROXY, f"203.0.113.{n}, 198.51.100.1, {INNER}", staff_id=f"X{n}")
    with pytest.raises(TooManyRequests):
        door.login(PROXY, f"{PROXY}, 198.51.100.1, {INNER}")
    assert door.login(PROXY, f"198.51.100.1, 198.51.100.2, {INNER}").status_code == 200
    assert set(addresses(door, "wrong")) == {"198.51.100.1"}


def test_an_untrusted_proxy_in_the_chain_is_the_client(door: Door) -> None:
    relay = "192.0.2.99"  # a proxy the hall does not run: what it says is not believed
    for n in range(FAILURES):
        with pytest.raises(Unauthenticated):
            door.login(PROXY, f"198.51.100.{n}, {relay}", staff_id=f"X{n}")
    with pytest.raises(TooManyRequests):
        door.login(PROXY, f"198.51.100.200, {relay}")
    assert door.login(PROXY, f"{relay}, 198.51.100.200").status_code == 200
    assert set(addresses(door, "wrong")) == {relay}


def test_a_malformed_header_counts_against_the_last_trusted_hop(door: Door) -> None:
    for n in range(FAILURES):  # garbage right of a forged address: neither is believed
        with pytest.raises(Unauthenticated):
            door.login(PROXY, f"198.51.100.{n}, not-an-address", staff_id=f"X{n}")
    assert set(addresses(door, "wrong")) == {PROXY}
    with pytest.raises(TooManyRequests):
        door.login(PROXY, "198.51.100.1:4431")  # a port is malformed too


@pytest.mark.parametrize(
    ("remote", "forwarded", "client"),
    [
        (PROXY, "198.51.100.1, junk", PROXY),
        (PROXY, f"198.51.100.1, {INNER}, 198.51.100.2:80", PROXY),
        (PROXY, f"198.51.100.1, junk, {INNER}", INNER),  # the last trusted hop
        (PROXY, f"junk, {INNER}", INNER),
        (PROXY, f"198.51.100.1,,{INNER}", INNER),  # an empty field
        (PROXY, "", PROXY),
        (PROXY, None, PROXY),
        (PROXY, f"{INNER}", INNER),  # every hop trusted: the leftmost
        (PROXY, " 198.51.100.1 ,\t198.51.100.2 ", "198.51.100.2"),
        ("198.51.100.9", "198.51.100.1", "198.51.100.9"),  # not a proxy: never read
        ("not-an-address", "198.51.100.1", "not-an-address"),
        ("", "198.51.100.1", ""),
    ],
)
def test_the_header_is_read_from_the_right_as_far_as_it_is_trusted(
    remote: str, forwarded: str | None, client: str
) -> None:
    assert domain.client_address(remote, forwarded, networks(*PROXIES)) == client


def test_without_trusted_proxies_the_header_is_never_read() -> None:
    assert GatewaySettings().trusted_proxies == ()
    assert domain.client_address(PROXY, "198.51.100.1", ()) == PROXY


# --- IPv6 ----------------------------------------------------------------------------------


def test_ipv6_clients_behind_an_ipv6_proxy_are_locked_alone(
    make_context: Callable[..., Any],
) -> None:
    clock = ManualClock(datetime(2026, 12, 7, 1, 0, tzinfo=UTC))
    settings = GatewaySettings.from_section({"trusted_proxies": ["2001:db8:1::/64"]})
    door = Door(GatewayApp(make_context("gateway"), settings, clock))
    proxy = "2001:db8:1::5"
    for n in range(FAILURES):  # one client, written in two forms: one address
        with pytest.raises(NotFound):
            door.progress(proxy, "2001:DB8:2:0::1" if n % 2 else "2001:db8:2::1", **WRONG)
    with pytest.raises(TooManyRequests):
        door.progress(proxy, "2001:db8:2:0:0:0:0:1")
    assert door.progress(proxy, "2001:db8:2::2") == {"state": "accepted"}
    assert door.progress("2001:db8:3::1", "2001:db8:2::1") == {"state": "accepted"}  # direct


@pytest.mark.parametrize(
    ("remote", "forwarded", "trusted", "client"),
    [
        ("::ffff:10.0.0.5", "198.51.100.1", PROXIES, "198.51.100.1"),  # a dual-stack socket
        ("::1", "2001:db8::7, ::1", ["::1"], "2001:db8::7"),
        ("2001:db8::7", "198.51.100.1", PROXIES, "2001:db8::7"),
        (PROXY, "2001:db8::7", PROXIES, "2001:db8::7"),
        (PROXY, "[2001:db8::7]:443", PROXIES, PROXY),  # brackets and a port: malformed
        ("fe80::1%eth0", "198.51.100.1", ["fe80::/10"], "198.51.100.1"),
    ],
)
def test_ipv6_addresses_and_networks(
    remote: str, forwarded: str, trusted: list[str], client: str
) -> None:
    assert domain.client_address(remote, forwarded, networks(*trusted)) == client


# --- the setting ---------------------------------------------------------------------------


def test_entries_are_addresses_or_networks_with_host_bits_allowed() -> None:
    found = networks("127.0.0.1", " 10.1.2.3/24 ", "2001:db8::/48")
    assert [str(n) for n in found] == ["127.0.0.1/32", "10.1.2.0/24", "2001:db8::/48"]


@pytest.mark.parametrize(
    ("value", "key"),
    [
        (["10.0.0.1", "proxy.hall.local"], "GATEWAY.trusted_proxies[1]"),
        (["10.0.0.0/33"], "GATEWAY.trusted_proxies[0]"),
        (["10.0.0.1", "", "10.0.0.2"], "GATEWAY.trusted_proxies[1]"),
        ([167772161], "GATEWAY.trusted_proxies[0]"),  # a number is not an address here
        (["0.0.0.0/0"], "GATEWAY.trusted_proxies[0]"),  # every client could pick its address
        (["10.0.0.1", "::/0"], "GATEWAY.trusted_proxies[1]"),
        ("10.0.0.1", "GATEWAY.trusted_proxies"),
        ({"proxy": "10.0.0.1"}, "GATEWAY.trusted_proxies"),
    ],
)
def test_a_bad_entry_refuses_the_start_naming_it(value: Any, key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        GatewaySettings.from_section({"trusted_proxies": value})
    assert list(caught.value.fields) == [key]
    assert key in str(caught.value)
