"""``hallctl check``: a site end to end, its services' ``/health`` and RPC over its broker
(``site_info``; at a site with a parent, ``sync.ping_upstream`` and ``sync.check_key``;
where ``SYNC.platform`` is set, the 好差评 platform connector's part of ``sync.status``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import requests

from services.hallctl.configfile import load_config, web_port
from services.hallctl.lifecycle import running_pid
from services.hallctl.sitedir import OpsError, SiteDir


@dataclass(frozen=True)
class Check:
    service: str
    what: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{'✓' if self.ok else '✗'} {self.service:<8} {self.what:<16} {self.detail}"


def _health_check(service: str, config: Mapping[str, Any], timeout: float) -> Check:
    url = f"http://127.0.0.1:{web_port(config)}/health"
    try:
        answer = requests.get(url, timeout=timeout)
        body = answer.json()
    except (requests.RequestException, ValueError) as exc:
        return Check(service, "/health", False, f"{url} 无应答（{type(exc).__name__}）")
    ok = answer.status_code == 200 and body.get("status") == "ok"
    return Check(service, "/health", ok, f"{answer.status_code} {body.get('checks')}")


def _rpc_checks(
    site: SiteDir, service: str, config: Mapping[str, Any], timeout: float
) -> list[Check]:
    import services.common.remote  # noqa: F401  (typed remote errors)
    from services.common.callers import operator_proxy

    checks: list[Check] = []
    upstream = str((config.get("SITE") or {}).get("upstream") or "")
    try:
        with operator_proxy(config, timeout=timeout) as cluster:
            checks.append(_guarded(service, "rpc site_info", _site_info, site, service, cluster))
            if service == "sync" and upstream:
                checks.append(_guarded(service, "rpc ping_upstream", _ping_upstream, cluster))
                key = _guarded(service, "rpc check_key", _key_check, site, upstream, cluster)
                checks.append(key)
            if service == "sync" and (config.get("SYNC") or {}).get("platform"):
                checks.append(_guarded(service, "platform", _platform_check, cluster))
    except Exception as exc:  # noqa: BLE001  (e.g. AccessRefused: reported, checks go on)
        checks.append(Check(service, "rpc", False, f"{type(exc).__name__}: {exc}"[:200]))
    return checks


def _guarded(service: str, what: str, check: Any, *args: Any) -> Check:
    """One RPC check; a failure (remote error, timeout) is reported as a failed check."""
    try:
        result: Check = check(*args)
    except Exception as exc:  # noqa: BLE001  (a remote error or a timeout: a failed check)
        return Check(service, what, False, f"{type(exc).__name__}: {exc}"[:300])
    return result


def _site_info(site: SiteDir, service: str, cluster: Any) -> Check:
    info = getattr(cluster, service).site_info()
    same = info.get("site_code") == site.code and info.get("service") == service
    detail = f"{info.get('site_code')} {info.get('name')} store={info.get('store')}"
    return Check(service, "rpc site_info", same, detail)


def _ping_upstream(cluster: Any) -> Check:
    answer = cluster.sync.ping_upstream()
    up = answer["upstream"]
    detail = f"→ {up['site_code']} {up['name']}（{answer['round_trip_ms']} ms）"
    return Check("sync", "rpc ping_upstream", True, detail)


# What to do after a failed key check, by the reason ``sync.check_key`` reports.
KEY_REMEDY = {
    "forbidden": "处理：在上级站点核对 SYNC.children.{code} 与本站点 SYNC.key"
    "（{code}.sync-key）是否一致，上级改动后重启其 sync（见 docs/operations.md 第 3、7 节）",
    "conflict": "处理：在本站点 sync.yaml 中设置 SYNC.key，或改正 UPSTREAM_AMQP_URI",
    "unreachable": "处理：检查网络、上级 RabbitMQ、UPSTREAM_AMQP_URI，以及上级是否已导入"
    " child-{code}.json",
    "timeout": "处理：上级站点应答过慢，检查链路与上级负载",
    "unknown_service": "处理：上级站点的 sync 服务未运行",
}


# A record waiting longer than this for the platform fails the check (the alert
# HallPlatformOldestUnsent fires at the same age).
PLATFORM_OLDEST_S = 6 * 3600


def _platform_check(cluster: Any) -> Check:
    """The 好差评 platform connector (``sync.status()["platform"]``): failing when the last
    attempt of a source (evaluations, and rectification cases when pushed) failed, or a
    record has waited over six hours; never shows the secret."""
    found = cluster.sync.status().get("platform") or {}
    sources = [("评价", found)]
    if found.get("cases"):
        sources.append(("整改案件", found["cases"]))
    ok, details = True, []
    for what, part in sources:
        oldest = part.get("oldest_unsent_age_seconds") or 0
        failing = str(part.get("last_error_at") or "") > str(part.get("last_success") or "")
        coding = part.get("coding") or found.get("profile")
        detail = (
            f"{what}（{coding}）待推送 {part.get('backlog')} 条，最早 {oldest:.0f} 秒前，"
            f"搁置 {part.get('parked')} 条，无法编码 {part.get('skipped')} 条"
        )
        if failing:
            detail += f"；最近一次失败（{part.get('last_error_reason')}）：{part.get('last_error')}"
        elif part.get("last_success"):
            detail += f"；最近成功 {part.get('last_success')}"
        ok = ok and not failing and oldest <= PLATFORM_OLDEST_S
        details.append(detail)
    return Check("sync", "platform", ok, "；".join(details))


def _key_check(site: SiteDir, upstream: str, cluster: Any) -> Check:
    """``sync.check_key()``: does the parent accept this site's ``SYNC.key``?"""
    answer = cluster.sync.check_key()
    what = "rpc check_key"
    if answer.get("ok") and answer.get("verified") is False:
        return Check("sync", what, True, f"未核验：{answer.get('note')}")
    if answer.get("ok"):
        previous = answer.get("key") == "previous"
        rotating = "（上级正在轮换密钥，本站点仍在用旧密钥）" if previous else ""
        detail = f"上级站点 {upstream} 接受站点 {site.code} 的同步密钥{rotating}"
        return Check("sync", what, True, detail)
    reason = str(answer.get("reason") or "error")
    remedy = KEY_REMEDY.get(reason, "").format(code=site.code)
    detail = (
        f"站点 {site.code} 的同步密钥未通过上级站点 {upstream} 的核验（{reason}）："
        f"{answer.get('error')}" + (f"。{remedy}" if remedy else "")
    )
    return Check("sync", what, False, detail)


def check_site(site: SiteDir, timeout: float = 10.0) -> list[Check]:
    """/health of every service, then ``site_info`` over the site's broker (and the upstream
    link through ``sync.ping_upstream`` when the site has one)."""
    services = site.services()
    if not services:
        raise OpsError(f"{site.root} 下没有任何服务配置")
    checks: list[Check] = []
    for service in services:
        config = load_config(site.config_path(service))
        health = _health_check(service, config, timeout=min(timeout, 5.0))
        # Under systemd, Docker or Kubernetes there is no pid file: /health speaks for it.
        pid = running_pid(site, service)
        where = f"pid {pid}" if pid else "无 pid 文件"
        checks.append(Check(service, health.what, health.ok, f"{where}  {health.detail}"))
        checks.extend(_rpc_checks(site, service, config, timeout))
    return checks
