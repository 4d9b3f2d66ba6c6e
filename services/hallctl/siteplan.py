"""What a site is to be: its plan (code, name, parent, brokers, ports, store, prefix), and the
options ``hallctl site-init`` remembers per site in ``<data>/<code>/site.json``, so a
re-run with fewer options never rewrites the configs with defaults."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.common.config import mask_uri
from services.common.site import Tier, parse_site_identity, tier_of
from services.hallctl.secretfiles import write_secret
from services.hallctl.sitedir import OpsError, SiteDir
from services.hallctl.topology import SERVICES


@dataclass(frozen=True)
class SitePlan:
    """Everything needed to write one site's configuration."""

    code: str
    name: str
    upstream: str | None
    broker: str = "127.0.0.1:5672"  # this site's own RabbitMQ
    upstream_broker: str | None = None  # the parent's RabbitMQ, host:port
    base_port: int = 8100  # matters, queue, rating, sync on base+0…3
    bind: str = "127.0.0.1"
    store_uri: str | None = None  # default: SQLite files in <site>/data
    prefix: str = "hall-"

    @property
    def tier(self) -> Tier:
        return parse_site_identity(self.code, tier_name(self.code), self.name, self.upstream).tier

    def port(self, service: str) -> int:
        return self.base_port + SERVICES.index(service)


def tier_name(code: str) -> str:
    return tier_of(code).value


# --- options remembered per site (site.json) --------------------------------------------------

SITE_FILE = "site.json"
# What ``site-init`` is given, with the value used when neither the command line nor the
# site's ``site.json`` has it.
OPTION_DEFAULTS: dict[str, Any] = {
    "name": None,
    "upstream": None,
    "broker": "127.0.0.1:5672",
    "upstream_broker": None,
    "base_port": 8100,
    "bind": "127.0.0.1",
    "store_uri": None,
    "prefix": "hall-",
}
OPTION_FLAGS = {
    "name": "--name",
    "upstream": "--upstream",
    "broker": "--broker",
    "upstream_broker": "--upstream-broker",
    "base_port": "--base-port",
    "bind": "--bind",
    "store_uri": "--store",
    "prefix": "--prefix",
}


def site_file(site: SiteDir) -> Path:
    return site.root / SITE_FILE


def load_site_options(site: SiteDir) -> dict[str, Any] | None:
    """The options ``site-init`` last wrote for this site, or None (never initialised here)."""
    path = site_file(site)
    if not path.exists():
        return None
    try:
        doc = json.loads(path.read_text())
    except ValueError as exc:
        raise OpsError(f"{path} 不是有效的 JSON（{exc}）；改正或删除它后再运行") from None
    if not isinstance(doc, dict) or str(doc.get("code")) != site.code:
        raise OpsError(f"{path} 不是站点 {site.code} 的选项文件")
    return doc


def save_site_options(site: SiteDir, doc: Mapping[str, Any]) -> None:
    # mode 600: a STORE_URI may carry a database password
    write_secret(site_file(site), json.dumps(doc, ensure_ascii=False, indent=2))


def options_doc(plan: SitePlan, children: Iterable[str]) -> dict[str, Any]:
    return {
        "code": plan.code,
        **{key: getattr(plan, key) for key in OPTION_DEFAULTS},
        "children": sorted(set(children)),
        "written_by": "hallctl site-init: 再次运行时沿用这些选项；命令行给出的值覆盖它们",
    }


@dataclass(frozen=True)
class ResolvedPlan:
    """A site's plan from the command line over its ``site.json`` over the defaults."""

    plan: SitePlan
    first: bool  # no site.json yet
    kept: dict[str, Any]  # omitted now, taken from site.json (where not the default)
    changed: dict[str, tuple[Any, Any]]  # given now and different from site.json: old, new

    def report(self) -> list[str]:
        lines = []
        if self.kept:
            shown = "，".join(f"{OPTION_FLAGS[k]} {_shown(v)}" for k, v in self.kept.items())
            lines.append(f"沿用上次的选项（{SITE_FILE}）：{shown}")
        for key, (old, new) in self.changed.items():
            lines.append(f"按本次参数更改 {OPTION_FLAGS[key]}：{_shown(old)} → {_shown(new)}")
        return lines


def _shown(value: Any) -> str:
    if value is None or value == "":
        return "（默认）"
    return mask_uri(value) if isinstance(value, str) and "://" in value else str(value)


def resolve_plan(
    site: SiteDir, given: Mapping[str, Any], defaults: Mapping[str, Any] | None = None
) -> ResolvedPlan:
    """``given`` holds the options of this run (None: omitted; ``store_uri`` "": back to the
    default SQLite files). Omitted options come from the site's ``site.json``, so a re-run
    with fewer options never rewrites the configs with defaults; then from ``defaults``
    (e.g. a child takes its parent's prefix), then from ``OPTION_DEFAULTS``."""
    saved = load_site_options(site)
    fallback = {**OPTION_DEFAULTS, **{k: v for k, v in (defaults or {}).items() if v is not None}}
    values: dict[str, Any] = {}
    kept: dict[str, Any] = {}
    changed: dict[str, tuple[Any, Any]] = {}
    for key, default in fallback.items():
        value = given.get(key)
        if value is not None:
            if key in ("store_uri", "upstream_broker", "upstream") and value == "":
                value = None
            if saved is not None and saved.get(key) != value:
                changed[key] = (saved.get(key), value)
        elif saved is not None and key in saved:
            value = saved[key]
            if value != default and key != "name":
                kept[key] = value
        else:
            value = default
        values[key] = value
    if not values["name"]:
        raise OpsError(
            f"站点 {site.code} 第一次初始化（{site_file(site)} 不存在）时必须给出 --name"
        )
    plan = SitePlan(code=site.code, **values)
    return ResolvedPlan(plan, saved is None, kept, changed)


def add_children_to_options(site: SiteDir, children: Iterable[str]) -> None:
    saved = load_site_options(site)
    if saved is not None:
        known = {str(c) for c in saved.get("children") or []}
        if not set(children) <= known:
            save_site_options(site, {**saved, "children": sorted(known | set(children))})
