"""``hallctl start|stop|restart``: one service (or all) of a site run by ``hallctl`` itself,
with no Docker and no systemd (the processes of :mod:`services.hallctl.lifecycle`)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from functools import partial
from typing import Any

from services.hallctl import lifecycle
from services.hallctl.sitedir import OpsError, site_args, site_of


def add_parsers(commands: Any) -> None:
    for action, help_text in (
        ("start", "启动站点的一个（或全部）服务"),
        ("stop", "停止站点的一个（或全部）服务（SIGTERM，等待在办请求完成）"),
        ("restart", "重启站点的一个（或全部）服务，其他服务不受影响"),
    ):
        cmd = commands.add_parser(action, help=help_text)
        site_args(cmd)
        cmd.add_argument("services", nargs="*", metavar="SERVICE", help="不给时为全部服务")
        if action != "stop":  # stop waits for in-flight workers (30 s), then SIGKILL
            cmd.add_argument("--wait", type=float, default=60.0, help="等待 /health 正常的秒数")
        cmd.set_defaults(handler=partial(_run, action))


def _run(action: str, args: argparse.Namespace) -> int:
    site = site_of(args)
    services: Sequence[str] = args.services or site.services()
    try:
        for service in services:
            if action == "stop":
                pid = lifecycle.stop(site, service)
                print(f"{site.code} {service} " + (f"已停止（pid {pid}）" if pid else "未在运行"))
                continue
            process = (
                lifecycle.restart(site, service, args.wait)
                if action == "restart"
                else lifecycle.start(site, service, args.wait)
            )
            print(f"{site.code} {service} 已启动（pid {process.pid}，端口 {process.port}）")
    except OpsError as exc:
        print(f"错误：{exc}")
        return 1
    return 0
