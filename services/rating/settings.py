"""The ``RATING:`` configuration section, validated once per container (defaults below).

Framework-free: the domain reads these values through ``domain.rules.Rules``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, NoReturn
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from services.common.config import ConfigError
from services.common.site import Tier

SECTION = "RATING"


@dataclass(frozen=True)
class RatingSettings:
    """Every number is a documented default (docs/operations.md)."""

    supplementary_working_days: int = 5
    default_rating_after_days: int | None = None  # None: no system default rating
    callback_working_days: int = 1
    rectification_working_days: int = 5
    appeal_working_days: int = 3
    privacy_salt: str | None = None  # None: generated once and kept in the site's store
    timezone: str = "Asia/Shanghai"
    max_ratings_per_phone_per_day: int = 5
    max_ratings_per_device_per_day: int = 50
    ranking_min_evaluations: int = 1
    sweep_interval_seconds: float = 30.0
    # Days a bad real-name rater's clear contact is kept after its case closes.
    contact_retention_days: int = 180
    # Days the per-phone and per-device daily rating counters are kept (today's always).
    counter_retention_days: int = 7

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @classmethod
    def from_section(cls, section: Mapping[str, Any], tier: Tier | None = None) -> RatingSettings:
        """Validate the section; a bad value raises ``ConfigError`` naming ``RATING.<key>``.
        Every tier takes the same keys (``tier`` is part of the template's signature)."""
        del tier
        known = {f.name for f in fields(cls)}
        if unknown := sorted(set(section) - known):
            _fail(unknown[0], f"不认识的配置项；可用：{', '.join(sorted(known))}")
        values: dict[str, Any] = {}
        for name, minimum in _INT_KEYS.items():
            if name in section:
                value = section[name]
                if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                    _fail(name, f"应为不小于 {minimum} 的整数")
                values[name] = value
        if section.get("default_rating_after_days") is not None:
            value = section["default_rating_after_days"]
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                _fail("default_rating_after_days", "应为不小于 1 的自然日天数，或留空表示关闭")
            values["default_rating_after_days"] = value
        if section.get("privacy_salt") is not None:
            salt = str(section["privacy_salt"])
            if len(salt) < 16:
                _fail("privacy_salt", "至少 16 个字符")
            values["privacy_salt"] = salt
        if "timezone" in section:
            try:
                ZoneInfo(str(section["timezone"]))
            except (ZoneInfoNotFoundError, ValueError):
                _fail("timezone", "应为 IANA 时区名，如 Asia/Shanghai")
            values["timezone"] = str(section["timezone"])
        if "sweep_interval_seconds" in section:
            value = section["sweep_interval_seconds"]
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                _fail("sweep_interval_seconds", "应为正数（秒）")
            values["sweep_interval_seconds"] = float(value)
        return cls(**values)


_INT_KEYS = {
    "supplementary_working_days": 0,
    "callback_working_days": 1,
    "rectification_working_days": 1,
    "appeal_working_days": 1,
    "max_ratings_per_phone_per_day": 1,
    "max_ratings_per_device_per_day": 1,
    "ranking_min_evaluations": 1,
    "contact_retention_days": 1,
    "counter_retention_days": 1,
}


def _fail(key: str, rule: str) -> NoReturn:
    field = f"{SECTION}.{key}"
    raise ConfigError(f"{field}：{rule}", {field: [rule]})
