"""``hallctl definitions``: print or write a site's RabbitMQ definitions (:mod:`broker`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from services.hallctl.broker import BrokerNames, SiteBroker, render, site_definitions
from services.hallctl.secretfiles import broker_password_path, read_secret, write_secret


def add_parsers(commands: Any) -> None:
    cmd = commands.add_parser("definitions", help="生成站点 RabbitMQ 的 definitions.json")
    cmd.add_argument("--site", required=True, help="站点代码，如 421302")
    cmd.add_argument("--child", action="append", default=[], help="下级站点代码（可重复）")
    cmd.add_argument(
        "--secrets-dir",
        type=Path,
        help="读取 <代码>.broker-password；不给时用户无密码（须另行 change_password）",
    )
    cmd.add_argument("--prefix", default="hall-", help="vhost 与用户名前缀")
    quorum = cmd.add_mutually_exclusive_group()
    quorum.add_argument("--quorum", dest="quorum", action="store_true", default=None)
    quorum.add_argument("--no-quorum", dest="quorum", action="store_false")
    cmd.add_argument("--out", type=Path, help="写入文件（权限 600）；不给时打印")
    cmd.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    def password(code: str) -> str | None:
        if args.secrets_dir is None:
            return None
        return read_secret(broker_password_path(args.secrets_dir, code))

    site = SiteBroker(
        args.site,
        password(args.site),
        {child: password(child) for child in args.child},
        args.quorum,
    )
    text = render(site_definitions(site, BrokerNames(args.prefix)))
    if args.out is None:
        print(text, end="")
    else:
        write_secret(args.out, text.rstrip("\n"))
        print(f"已写入 {args.out}")
    return 0
