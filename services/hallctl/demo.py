"""``hallctl demo``: a county, a town and a village on one machine, each service its own
``nameko run`` process, until Ctrl-C."""

from __future__ import annotations

import os
import secrets
import signal
import threading
from pathlib import Path
from typing import Any

from nameko.standalone.rpc import ClusterRpcProxy

import services.common.errors  # noqa: F401  (registers typed remote errors)
from services.hallctl import processes as proc
from services.hallctl.rabbit import ensure_site
from services.hallctl.showcase import show_flow
from services.hallctl.topology import DEMO_SITES, SERVICES, DemoSite, Layout, service_config

STATE_FILE = "demo-state.json"


def site_secret(layout: Layout, code: str, kind: str) -> str:
    """A secret per site (broker password, sync key), generated once, kept for restarts."""
    path = layout.data_dir / "secrets" / f"{code}.{kind}"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        path.write_text(secrets.token_urlsafe(18))
        path.chmod(0o600)
    return path.read_text().strip()


def prepare(layout: Layout) -> dict[str, str]:
    """Provision the broker and write every config; returns the passwords by site."""
    passwords = {
        site.code: site_secret(layout, site.code, "broker-password") for site in DEMO_SITES
    }
    sync_keys = {site.code: site_secret(layout, site.code, "sync-key") for site in DEMO_SITES}
    for site in DEMO_SITES:
        upstream_vhost = layout.vhost(site.upstream) if site.upstream else None
        ensure_site(
            layout.vhost(site.code), layout.user(site.code), passwords[site.code], upstream_vhost
        )
        for service in SERVICES:
            path = layout.config_path(site, service)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(service_config(layout, site, service, passwords, sync_keys))
            path.chmod(0o600)  # it holds the broker password
    return passwords


def start(layout: Layout) -> list[proc.ServiceProcess]:
    return [
        proc.spawn(
            site.code,
            service,
            layout.config_path(site, service),
            layout.log_path(site, service),
            layout.port(site, service),
        )
        for site in DEMO_SITES
        for service in SERVICES
    ]


def ping_upstream(layout: Layout, site: DemoSite, password: str) -> dict[str, Any]:
    config = {"AMQP_URI": layout.amqp_uri(site.code, site.code, password)}
    with ClusterRpcProxy(config, timeout=30) as cluster:
        answer: dict[str, Any] = cluster.sync.ping_upstream()
    return answer


def run(layout: Layout, check_only: bool) -> int:
    """Bring the network up; with ``check_only`` verify and stop, else stay until a signal."""
    layout.data_dir.mkdir(parents=True, exist_ok=True)
    passwords = prepare(layout)
    processes = start(layout)
    proc.save_state(layout.data_dir / STATE_FILE, processes)
    try:
        return _supervise(layout, processes, passwords, check_only)
    finally:
        print("正在停止全部服务…", flush=True)
        proc.stop_all(processes)
        print("已停止。数据保留在", layout.data_dir, flush=True)


def _supervise(
    layout: Layout,
    processes: list[proc.ServiceProcess],
    passwords: dict[str, str],
    check_only: bool,
) -> int:
    _print_table(layout)
    failed = proc.wait_healthy(processes, timeout=90)
    if failed:
        for p in failed:
            print(f"✗ {p.site} {p.service} 未就绪，日志 {p.log}：\n{proc.tail(p.log)}", flush=True)
        return 1
    print("✓ 三个站点的全部服务 /health 正常", flush=True)
    for site in DEMO_SITES:
        if site.upstream:
            answer = ping_upstream(layout, site, passwords[site.code])
            up = answer["upstream"]
            print(
                f"✓ {site.code} sync.ping_upstream() → {up['site_code']} {up['name']}"
                f"（{answer['round_trip_ms']} ms）",
                flush=True,
            )
    if not show_flow(layout, passwords):
        return 1
    if check_only:
        return 0
    print("演示网络运行中，按 Ctrl-C 停止。", flush=True)
    return _wait_for_signal(processes)


def _wait_for_signal(processes: list[proc.ServiceProcess]) -> int:
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    while not stop.wait(2.0):
        dead = [p for p in processes if not proc.alive(p.pid)]
        for p in dead:
            print(f"✗ {p.site} {p.service} 已退出，日志 {p.log}：\n{proc.tail(p.log)}", flush=True)
        if dead:
            return 1
    return 0


def _print_table(layout: Layout) -> None:
    print(f"数据目录 {layout.data_dir}（PID {os.getpid()}）", flush=True)
    for site in DEMO_SITES:
        ports = "  ".join(f"{s}:{layout.port(site, s)}" for s in SERVICES)
        print(f"  {site.code:<13} {site.tier:<8} {site.name}  {ports}", flush=True)


def status(data_dir: Path) -> int:
    state = data_dir / STATE_FILE
    if not state.exists():
        print(f"没有演示网络的记录：{state} 不存在（先运行 hallctl demo）")
        return 1
    healthy = True
    for p in proc.load_state(state):
        body = proc.health(p) if proc.alive(p.pid) else None
        ok = body is not None and body.get("status") == "ok"
        healthy &= ok
        detail = body.get("checks") if body else "无应答"
        mark = "✓" if ok else "✗"
        print(f"{mark} {p.site:<13} {p.service:<8} pid {p.pid:<7} :{p.port}  {detail}")
    return 0 if healthy else 1
