"""``hallctl demo``: a county, a town and a village on one machine, each service its own
``nameko run`` process, until Ctrl-C. Nameko is imported only when the demo runs."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from functools import partial
from pathlib import Path
from typing import Any

from services.common.identity import ensure_key
from services.hallctl import lifecycle
from services.hallctl import processes as proc
from services.hallctl.broker import BrokerAdminError, ensure_site
from services.hallctl.secretfiles import site_secret
from services.hallctl.sitedir import demo_data_dir
from services.hallctl.topology import DEMO_SITES, SERVICES, DemoSite, Layout, service_config


def add_parsers(commands: Any) -> None:
    demo = commands.add_parser("demo", help="在本机运行县、镇、村三级演示网络")
    demo.add_argument("--data-dir", type=Path, default=demo_data_dir())
    demo.add_argument("--base-port", type=int, default=8100)
    demo.add_argument("--mongo", metavar="URI", help="使用 MongoDB（每个站点一个库）代替 SQLite")
    demo.add_argument("--vhost-prefix", default="hall-", help="RabbitMQ vhost 与用户名前缀")
    demo.add_argument("--check", action="store_true", help="启动、检查后立即停止（用于测试）")
    demo.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    import services.common.remote  # noqa: F401  (registers typed remote errors)

    layout = Layout(
        data_dir=args.data_dir.resolve(),
        base_port=args.base_port,
        vhost_prefix=args.vhost_prefix,
        mongo_uri=args.mongo,
    )
    try:
        return run(layout, check_only=args.check)
    except BrokerAdminError as exc:
        print(f"错误：{exc}", file=sys.stderr)
        return 2


def prepare(layout: Layout) -> dict[str, str]:
    """Provision the broker and write every config; returns the passwords by site."""
    secret = partial(site_secret, layout.data_dir)
    passwords = {site.code: secret(site.code, "broker-password") for site in DEMO_SITES}
    sync_keys = {site.code: secret(site.code, "sync-key") for site in DEMO_SITES}
    for site in DEMO_SITES:
        ensure_key(layout.access_key_file(site))
        upstream_vhost = layout.vhost(site.upstream) if site.upstream else None
        ensure_site(
            layout.vhost(site.code),
            layout.user(site.code),
            passwords[site.code],
            upstream_vhost,
            site.code,
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
            stop_with_parent=True,
        )
        for site in DEMO_SITES
        for service in SERVICES
    ]


def ping_upstream(layout: Layout, site: DemoSite, password: str) -> dict[str, Any]:
    from services.hallctl.showcase import rpc  # imports nameko

    with rpc(layout, site, password) as cluster:
        answer: dict[str, Any] = cluster.sync.ping_upstream()
    return answer


def run(layout: Layout, check_only: bool) -> int:
    """Bring the network up; with ``check_only`` verify and stop, else stay until a signal."""
    layout.data_dir.mkdir(parents=True, exist_ok=True)
    passwords = prepare(layout)
    processes = start(layout)
    proc.save_state(layout.data_dir / lifecycle.STATE_FILE, processes)
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
    from services.hallctl.showcase import show_flow  # imports nameko

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
    from services.hallctl import demoaccounts
    from services.hallctl.showcase import rpc

    demoaccounts.create(layout, lambda site: rpc(layout, site, passwords[site.code]))
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
