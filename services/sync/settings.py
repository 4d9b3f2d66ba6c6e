"""All settings of ``sync``: the ``SYNC:`` section, validated once at start."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from services.common import validation
from services.common.config import ConfigError
from services.common.errors import InvalidInput
from services.common.site import Tier, is_proper_ancestor
from services.sync.domain import Backoff, FeedRef
from services.sync.schemas import SettingsSchema

SECTION = "SYNC"


@dataclass(frozen=True)
class PlatformSettings:
    """``SYNC.platform``: where and how this site pushes its evaluations to the external
    好差评 platform (docs/api.md, "sync: the platform connector"). ``secret`` is the token
    or the HMAC key: never logged, never in a status or an error."""

    url: str
    profile: str
    auth: str
    secret: str = field(repr=False)
    batch_size: int
    connect_timeout: float
    read_timeout: float
    interval: float
    backoff: Backoff
    zone: ZoneInfo
    # Push rating's rectification cases too (``rectification_v1``), besides the evaluations.
    cases: bool = True

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> PlatformSettings:
        try:
            zone = ZoneInfo(data["timezone"])
        except (ValueError, ZoneInfoNotFoundError):
            raise ConfigError.field(
                "SYNC.platform.timezone", "不是已知的时区，如 Asia/Shanghai"
            ) from None
        return cls(
            url=data["url"],
            profile=data["profile"],
            auth=data["auth"],
            secret=data["secret"],
            batch_size=data["batch_size"],
            connect_timeout=data["connect_timeout"],
            read_timeout=data["read_timeout"],
            interval=data["interval"],
            backoff=Backoff(data["backoff_base"], data["backoff_cap"]),
            zone=zone,
            cases=data["cases"],
        )


@dataclass(frozen=True)
class SyncSettings:
    key: str | None
    children: dict[str, list[str]]
    upward: tuple[FeedRef, ...]
    accept: tuple[FeedRef, ...]
    catalog_service: str
    pull_catalog: bool
    pull_outcomes: bool
    batch_size: int
    max_batch_bytes: int
    max_record_bytes: int
    rpc_timeout: float
    local_timeout: float
    cycle_seconds: float
    push_interval: float
    pull_interval: float
    reconcile_interval: float
    reconcile_days: int
    lease_seconds: float
    retention_interval: float
    parked_retention_days: int
    status_interval: float
    key_check_interval: float
    backoff: Backoff
    mask_keys: tuple[str, ...]
    platform: PlatformSettings | None = None

    @classmethod
    def from_section(
        cls, section: Mapping[str, Any], tier: Tier | None = None, *, site_code: str = ""
    ) -> SyncSettings:
        """Validate the ``SYNC:`` section; ``ConfigError`` naming ``SYNC.<key>``.

        ``pull_catalog`` defaults to the site's place: county and above publish the catalog
        themselves (matters' ``catalog_source``), so only towns and villages pull it; so
        does ``pull_outcomes`` (代办 is handled at a town or county for a site below). With
        ``site_code``, every child must be a proper descendant of this site."""
        raw = dict(section)
        children = raw.get("children")
        if isinstance(children, Mapping):  # YAML reads an unquoted 421302101 as a number
            raw["children"] = {
                str(code): [str(k) for k in keys] if isinstance(keys, list) else keys
                for code, keys in children.items()
            }
        try:
            data = validation.load(SettingsSchema(), raw, SECTION)
        except InvalidInput as exc:
            raise ConfigError(exc.message, exc.fields) from None
        for child in data["children"]:
            if site_code and not is_proper_ancestor(site_code, child):
                raise ConfigError.field(
                    f"SYNC.children.{child}", f"不是本站点 {site_code} 的下级站点"
                )
        upward = tuple(FeedRef(**ref) for ref in data["upward"])
        accept = data["accept"]
        pull = data["pull_catalog"]
        below_county = tier is None or tier.rank > Tier.COUNTY.rank
        outcomes = data["pull_outcomes"]
        return cls(
            key=data["key"],
            children=data["children"],
            upward=upward,
            accept=upward if accept is None else tuple(FeedRef(**ref) for ref in accept),
            catalog_service=data["catalog_service"],
            pull_catalog=pull if pull is not None else below_county,
            pull_outcomes=outcomes if outcomes is not None else below_county,
            batch_size=data["batch_size"],
            max_batch_bytes=data["max_batch_bytes"],
            max_record_bytes=data["max_record_bytes"],
            rpc_timeout=data["rpc_timeout"],
            local_timeout=data["local_timeout"],
            cycle_seconds=data["cycle_seconds"],
            push_interval=data["push_interval"],
            pull_interval=data["pull_interval"],
            reconcile_interval=data["reconcile_interval"],
            reconcile_days=data["reconcile_days"],
            lease_seconds=data["lease_seconds"],
            retention_interval=data["retention_interval"],
            parked_retention_days=data["parked_retention_days"],
            status_interval=data["status_interval"],
            key_check_interval=data["key_check_interval"],
            backoff=Backoff(data["backoff_base"], data["backoff_cap"]),
            mask_keys=tuple(data["mask_keys"]),
            platform=PlatformSettings.from_data(data["platform"]) if data["platform"] else None,
        )
