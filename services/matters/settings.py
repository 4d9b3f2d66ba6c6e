"""The ``MATTERS:`` configuration section, validated once per container (defaults below);
every setting of the service lives here (docs/architecture.md, "Service template")."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from services.common.config import ConfigError
from services.common.site import Tier

SECTION = "MATTERS"
DEFAULTS: dict[str, Any] = {
    "due_soon_working_days": 2,
    "publish_within_working_days": 1,
    "privacy_salt": "",  # empty: a random salt generated once and kept in the site's store
    "seed_catalog": "",
    "timezone": "Asia/Shanghai",
    "sweep_interval_seconds": 5.0,
}
KNOWN = {"catalog_source", *DEFAULTS}


@dataclass(frozen=True)
class MattersSettings:
    catalog_source: bool
    due_soon_working_days: int
    publish_within_working_days: int
    privacy_salt: str
    seed_catalog: str
    timezone: ZoneInfo
    sweep_interval_seconds: float

    @classmethod
    def from_section(cls, section: Mapping[str, Any], tier: Tier) -> MattersSettings:
        """Validate the section; a bad value raises ``ConfigError`` naming the key."""
        unknown = sorted(set(section) - KNOWN)
        if unknown:
            _fail(unknown[0], f"不认识的配置项；可用：{'、'.join(sorted(KNOWN))}")
        values = {**DEFAULTS, **{k: v for k, v in section.items() if v is not None}}
        source = section.get("catalog_source")
        if source is None or source == "":
            source = tier.rank <= Tier.COUNTY.rank  # county and above publish the catalog
        if not isinstance(source, bool):
            _fail("catalog_source", "应为 true 或 false")
        if source and tier.rank > Tier.COUNTY.rank:
            _fail("catalog_source", "只有县级及以上站点可以作为事项目录发布源")
        for key in ("due_soon_working_days", "publish_within_working_days"):
            value = values[key]
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 60:
                _fail(key, "应为 0 到 60 之间的整数（工作日）")
        interval = values["sweep_interval_seconds"]
        if not isinstance(interval, int | float) or isinstance(interval, bool) or interval <= 0:
            _fail("sweep_interval_seconds", "应为正数（秒）")
        try:
            zone = ZoneInfo(str(values["timezone"]))
        except (ZoneInfoNotFoundError, ValueError):
            _fail("timezone", f"未知的时区 {values['timezone']!r}（例如 Asia/Shanghai）")
        return cls(
            catalog_source=source,
            due_soon_working_days=values["due_soon_working_days"],
            publish_within_working_days=values["publish_within_working_days"],
            privacy_salt=str(values["privacy_salt"] or ""),
            seed_catalog=str(values["seed_catalog"] or ""),
            timezone=zone,
            sweep_interval_seconds=float(interval),
        )


def _fail(key: str, rule: str) -> Any:
    field = f"{SECTION}.{key}"
    raise ConfigError(f"{field}：{rule}", {field: [rule]})
