"""The ``QUEUE:`` configuration section, validated once per container.

The section holds two kinds of keys: operational settings, read from the file only (the
privacy salt and the timers' periods, below), and the site's queue configuration
(policy, categories, windows, staff; schemas.ConfigSchema), which the file seeds as the
first stored version and managers may change later with ``queue.configure``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from services.common.config import ConfigError
from services.common.errors import InvalidInput
from services.common.site import Tier
from services.queue import schemas

SECTION = "QUEUE"


@dataclass(frozen=True)
class QueueSettings:
    privacy_salt: str = ""  # empty: one generated once per site and kept in its store
    sweep_seconds: float = 5.0  # invitation, booking and day-close sweeps
    figures_seconds: float = 30.0  # how often daily figures are published
    board_poll_seconds: float = 25.0  # longest wait of a board long-poll
    board_heartbeat_seconds: float = 15.0  # quiet time before a board stream's heartbeat
    board_stream_seconds: float = 300.0  # a board stream's life (the browser reconnects)
    board_idle_seconds: float = 60.0  # a board socket that takes no bytes this long is closed
    max_streams: int = 200  # board streams and long-polls open at once in one process
    counter_retention_days: int = 90  # per-day counters and past bookings kept this long
    prune_seconds: float = 3600.0  # how often the timer prunes them
    site_config: Mapping[str, Any] = field(default_factory=dict)  # the seed configuration

    @classmethod
    def from_section(
        cls,
        section: Any,
        tier: Tier | None = None,  # noqa: ARG003 - the queue's settings are the same on every tier
    ) -> QueueSettings:
        """Validate the section (as read from the file, maybe missing or not a mapping); a
        bad value raises ``ConfigError`` naming ``QUEUE.<key>`` and the rule."""
        if section is None:
            section = {}
        if not isinstance(section, Mapping):
            rule = "服务配置段必须是映射"
            raise ConfigError(f"{SECTION}：{rule}", {SECTION: [rule]})
        values: dict[str, Any] = {}
        for key in OPERATION_KEYS:
            value = section.get(key)
            if key == "privacy_salt":
                values[key] = "" if value is None else str(value)
            elif key in WHOLE_KEYS:
                if value is not None:
                    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                        _fail(key, "应为正整数")
                    values[key] = value
            elif value is not None:
                if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                    _fail(key, "应为正数（秒）")
                values[key] = float(value)
        data = {k: v for k, v in section.items() if k not in OPERATION_KEYS}
        try:
            loaded = schemas.load_config(data)
        except InvalidInput as exc:
            fields = {f"{SECTION}.{k}": v for k, v in exc.fields.items()}
            raise ConfigError(f"{SECTION}：{exc.message}", fields) from None
        return cls(**values, site_config=loaded)


OPERATION_KEYS = (
    "privacy_salt",
    "sweep_seconds",
    "figures_seconds",
    "board_poll_seconds",
    "board_heartbeat_seconds",
    "board_stream_seconds",
    "board_idle_seconds",
    "max_streams",
    "counter_retention_days",
    "prune_seconds",
)
WHOLE_KEYS = ("max_streams", "counter_retention_days")


def _fail(key: str, rule: str) -> None:
    name = f"{SECTION}.{key}"
    raise ConfigError(f"{name}：{rule}", {name: [rule]})
