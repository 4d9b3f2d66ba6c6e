"""The gateway's use cases on a real SQLite store with a manual clock: password rules,
lock-out and its end, session expiry (idle and absolute), revocation, CSRF, pairing codes
that expire or are used up, and the settings section."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from services.common.clock import ManualClock
from services.common.config import ConfigError
from services.common.errors import Conflict, Forbidden, InvalidInput, TooManyRequests
from services.common.identity import Kind, Unauthenticated
from services.gateway import domain
from services.gateway.app import GatewayApp
from services.gateway.settings import GatewaySettings

pytestmark = pytest.mark.unit

GOOD = "Counter-Pass-77"
ADDRESS = "192.0.2.50"


@pytest.fixture
def gateway(make_context: Callable[..., Any]) -> tuple[GatewayApp, ManualClock]:
    clock = ManualClock(datetime(2026, 12, 7, 1, 0, tzinfo=UTC))
    app = GatewayApp(make_context("gateway"), GatewaySettings(), clock)
    app.add_staff(
        {"id": "S1", "name": "窗口一", "roles": ["clerk"], "windows": ["1"], "password": GOOD},
        "operator:hallctl",
    )
    return app, clock


def login(app: GatewayApp, password: str = GOOD, window: str | None = "1") -> Any:
    return app.login({"staff_id": "S1", "password": password, "window": window}, ADDRESS)


@pytest.mark.parametrize(
    ("password", "rule"),
    [("short-1A", "至少 10"), ("alllowercaseletters", "两类"), ("S1-S1-S1-S1-x", "不能包含账号")],
)
def test_weak_passwords_are_refused_with_their_rule(
    gateway: tuple[GatewayApp, ManualClock], password: str, rule: str
) -> None:
    app, _ = gateway
    with pytest.raises(InvalidInput, match=rule):
        app.reset_password("S1", password, "operator:hallctl")


def test_accounts_need_known_roles_and_unique_ids(gateway: tuple[GatewayApp, ManualClock]) -> None:
    app, _ = gateway
    account = {"id": "S2", "name": "二", "roles": ["boss"], "password": GOOD + "x"}
    with pytest.raises(InvalidInput) as caught:
        app.add_staff(account, "operator:hallctl")
    assert "roles" in caught.value.fields
    with pytest.raises(Conflict):
        app.add_staff({**account, "id": "S1", "roles": ["clerk"]}, "operator:hallctl")
    assert "password_hash" not in repr(app.list_staff())


def test_a_session_carries_the_window_and_checks_its_csrf(
    gateway: tuple[GatewayApp, ManualClock],
) -> None:
    app, _ = gateway
    signed = login(app)
    principal = app.session_principal(signed.secret, signed.view["csrf"])
    assert (principal.kind, principal.id, principal.window) == (Kind.STAFF, "S1", "1")
    assert signed.view["csrf"] == domain.csrf_token(signed.secret)
    with pytest.raises(Forbidden):
        app.session_principal(signed.secret, None)
    with pytest.raises(Forbidden, match="窗口"):
        login(app, window="7")  # not one of the account's windows


def test_sessions_end_when_idle_and_after_the_day(gateway: tuple[GatewayApp, ManualClock]) -> None:
    app, clock = gateway
    signed = login(app)
    clock.advance(minutes=29)
    app.session_principal(signed.secret, signed.view["csrf"])  # used: the idle time restarts
    clock.advance(minutes=31)
    with pytest.raises(Unauthenticated, match="30 分钟"):
        app.session_principal(signed.secret, signed.view["csrf"])
    busy = login(app)
    for _ in range(24):  # used every 29 minutes: 11 h 36 min
        clock.advance(minutes=29)
        app.session_principal(busy.secret, busy.view["csrf"])
    clock.advance(minutes=29)  # 12 h 05 min after sign-in
    with pytest.raises(Unauthenticated, match="12 小时"):
        app.session_principal(busy.secret, busy.view["csrf"])


def test_lockout_counts_per_account_and_ends(gateway: tuple[GatewayApp, ManualClock]) -> None:
    app, clock = gateway
    for _ in range(5):
        with pytest.raises(Unauthenticated):
            login(app, password="not-the-pass-1")  # noqa: S106  (a guess)
    with pytest.raises(TooManyRequests):
        login(app)  # the right password, locked
    clock.advance(minutes=16)
    assert login(app).view["staff_id"] == "S1"


def test_pairing_codes_expire_and_serve_once(gateway: tuple[GatewayApp, ManualClock]) -> None:
    app, clock = gateway
    with pytest.raises(InvalidInput, match="窗口"):
        app.create_pairing("pad", None, "operator:hallctl")
    late = app.create_pairing("pad", "3", "operator:hallctl")["code"]
    clock.advance(minutes=11)
    with pytest.raises(Unauthenticated):
        app.pair({"code": late, "name": "三号评价器"}, ADDRESS)
    code = app.create_pairing("pad", "3", "operator:hallctl")["code"]
    device = app.pair({"code": code, "name": "三号评价器"}, ADDRESS)
    principal = app.device_principal(device["token"])
    assert (principal.kind, principal.roles, principal.window) == (
        Kind.DEVICE,
        frozenset({"pad"}),
        "3",
    )
    with pytest.raises(Unauthenticated):
        app.pair({"code": code, "name": "再来一台"}, ADDRESS)
    app.revoke_device(device["id"], "operator:hallctl")
    with pytest.raises(Unauthenticated):
        app.device_principal(device["token"])


@pytest.mark.parametrize(
    ("section", "key"),
    [
        ({"lockout_failures": 0}, "GATEWAY.lockout_failures"),
        ({"cookie_secure": "yes"}, "GATEWAY.cookie_secure"),
        ({"colour": 1}, "GATEWAY.colour"),
    ],
)
def test_a_bad_section_refuses_the_start(section: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        GatewaySettings.from_section(section)
    assert key in caught.value.fields
