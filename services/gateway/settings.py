"""The ``GATEWAY:`` configuration section, validated once per container (every key
optional)::

    GATEWAY:
      session_idle_minutes: 30     # a session unused this long ends
      session_max_hours: 12        # and ends this long after sign-in whatever happens
      lockout_failures: 5          # failed sign-ins (per account, per address) before a lock
      lockout_minutes: 15          # how long they count, and how long the lock lasts
      pairing_minutes: 10          # a device pairing code's life
      bridge_timeout_seconds: 10   # a bridged call's deadline
      cookie_secure: false         # true behind HTTPS: the cookie is then sent over TLS only
      board_max_streams: 200       # call-board streams one gateway process serves at once
      board_heartbeat_seconds: 15  # a comment on a quiet stream, so proxies keep it open
      board_stream_seconds: 300    # a stream's life; the screen reconnects at once
      board_idle_seconds: 60       # a screen that takes no bytes this long is dropped
      voice_command: espeak-ng     # renders a call to WAV when the browser has no voice
      voice_name: cmn              # espeak-ng's Mandarin voice
      kiosk_idle_seconds: 30       # the kiosk goes back to its start screen after this
      pad_idle_seconds: 60         # a rating screen nobody touches this long is left unrated
      pad_thanks_seconds: 5        # how long the pad says thank you
      dashboard_silent_minutes: 60 # a child site not heard from this long is red on /dashboard
      public_url: ""               # printed in tickets' QR codes, e.g. http://10.1.2.3:8004
      timezone: Asia/Shanghai      # the local months the public report's index lists
      trusted_proxies: []          # the reverse proxies whose X-Forwarded-For is believed,
                                   # addresses or networks, e.g. [127.0.0.1, 10.1.2.0/24]
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from services.common.config import ConfigError
from services.common.site import Tier
from services.gateway.domain.addresses import Network, parse_network

SECTION = "GATEWAY"
TEXTS = ("voice_command", "voice_name")


@dataclass(frozen=True)
class GatewaySettings:
    session_idle_minutes: int = 30
    session_max_hours: int = 12
    lockout_failures: int = 5
    lockout_minutes: int = 15
    pairing_minutes: int = 10
    bridge_timeout_seconds: int = 10
    cookie_secure: bool = False
    board_max_streams: int = 200
    board_heartbeat_seconds: int = 15
    board_stream_seconds: int = 300
    board_idle_seconds: int = 60
    voice_command: str = "espeak-ng"
    voice_name: str = "cmn"
    kiosk_idle_seconds: int = 30
    pad_idle_seconds: int = 60
    pad_thanks_seconds: int = 5
    dashboard_silent_minutes: int = 60
    public_url: str = ""
    timezone: str = "Asia/Shanghai"
    # Parsed from the section's list: whose ``X-Forwarded-For`` names the client
    # (domain.client_address); empty, the socket's address is the client's.
    trusted_proxies: tuple[Network, ...] = ()

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @classmethod
    def from_section(
        cls,
        section: Any,
        tier: Tier | None = None,  # noqa: ARG003 - the same on every tier
    ) -> GatewaySettings:
        """``ConfigError`` naming ``GATEWAY.<key>`` and the rule for a bad value."""
        section = {} if section is None else section
        if not isinstance(section, dict):
            raise ConfigError(f"{SECTION}：服务配置段必须是映射", {SECTION: ["应为映射"]})
        known = {f.name: f for f in fields(cls)}
        values: dict[str, Any] = {}
        for key, value in section.items():
            if key not in known:
                _fail(key, "不认识的配置项")
            if key == "cookie_secure":
                if not isinstance(value, bool):
                    _fail(key, "应为 true 或 false")
            elif key == "public_url":
                if not isinstance(value, str) or not re.match(r"(https?://[^\s/]+)?\Z", value):
                    _fail(key, "应为 http:// 或 https:// 开头的地址（不带路径），或留空")
            elif key == "timezone":
                _check_zone(value)
            elif key == "trusted_proxies":
                value = _proxies(value)
            elif key in TEXTS:
                if not isinstance(value, str) or not value.strip() or len(value) > 200:
                    _fail(key, "应为非空文字")
            elif isinstance(value, bool) or not isinstance(value, int) or value < 1:
                _fail(key, "应为正整数")
            values[key] = value
        return cls(**values)


def _check_zone(value: Any) -> None:
    try:
        ZoneInfo(str(value))
    except (ZoneInfoNotFoundError, ValueError):
        _fail("timezone", "应为 IANA 时区名，如 Asia/Shanghai")


def _proxies(value: Any) -> tuple[Network, ...]:
    if not isinstance(value, list):
        _fail("trusted_proxies", "应为 IP 地址或网段的列表，如 [127.0.0.1, 10.1.2.0/24]")
    networks = []
    for i, entry in enumerate(value):
        try:
            networks.append(parse_network(entry))
        except ValueError:
            _fail(
                f"trusted_proxies[{i}]",
                "应为反向代理的 IP 地址或网段，如 10.1.2.3 或 10.1.2.0/24（不能是全部地址）",
            )
    return tuple(networks)


def _fail(key: str, rule: str) -> None:
    raise ConfigError(f"{SECTION}.{key}：{rule}", {f"{SECTION}.{key}": [rule]})
