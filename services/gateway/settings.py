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
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from services.common.config import ConfigError
from services.common.site import Tier

SECTION = "GATEWAY"


@dataclass(frozen=True)
class GatewaySettings:
    session_idle_minutes: int = 30
    session_max_hours: int = 12
    lockout_failures: int = 5
    lockout_minutes: int = 15
    pairing_minutes: int = 10
    bridge_timeout_seconds: int = 10
    cookie_secure: bool = False

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
            elif isinstance(value, bool) or not isinstance(value, int) or value < 1:
                _fail(key, "应为正整数")
            values[key] = value
        return cls(**values)


def _fail(key: str, rule: str) -> None:
    raise ConfigError(f"{SECTION}.{key}：{rule}", {f"{SECTION}.{key}": [rule]})
