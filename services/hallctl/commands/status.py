"""``hallctl status``: every service of every site of a data directory, running or not and
how healthy, however it was started (``hallctl demo`` or ``hallctl start``)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import yaml

from services.hallctl import processes as proc
from services.hallctl.configfile import load_config, web_port
from services.hallctl.lifecycle import running_pid
from services.hallctl.sitedir import OpsError, SiteDir, demo_data_dir, sites_of


def add_parsers(commands: Any) -> None:
    status = commands.add_parser("status", help="显示数据目录中各站点各服务的进程及其健康状态")
    status.add_argument("--data-dir", type=Path, default=demo_data_dir())
    status.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    data_dir = args.data_dir.resolve()
    sites = sites_of(data_dir)
    if not sites:
        print(f"{data_dir} 中没有站点（先运行 hallctl demo 或 hallctl site-init）")
        return 1
    healthy = True
    for site in sites:
        for service in site.services():
            ok, line = service_status(site, service)
            healthy &= ok
            print(line)
    return 0 if healthy else 1


def service_status(site: SiteDir, service: str) -> tuple[bool, str]:
    """Whether the service runs and its /health is ok, and a line saying so."""
    try:
        port = web_port(load_config(site.config_path(service)))
    except (OpsError, OSError, ValueError, IndexError, yaml.YAMLError) as exc:
        return False, f"✗ {site.code:<13} {service:<8} 配置无法读取：{exc}"
    pid = running_pid(site, service)
    if pid is None:
        return False, f"✗ {site.code:<13} {service:<8} 未运行      :{port}"
    process = proc.ServiceProcess(site.code, service, pid, port, str(site.log_path(service)))
    body = proc.health(process)
    ok = body is not None and body.get("status") == "ok"
    detail = body.get("checks") if body else "无应答"
    return ok, f"{'✓' if ok else '✗'} {site.code:<13} {service:<8} pid {pid:<7} :{port}  {detail}"
