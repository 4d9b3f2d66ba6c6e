"""``hallctl``: the operator's command line."""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path

DEFAULT_DATA_DIR = os.environ.get("HALL_DEMO_DIR", "demo-data")


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="hallctl", description="政务服务大厅网络运维工具")
    commands = root.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="在本机运行县、镇、村三级演示网络")
    demo.add_argument("--data-dir", type=Path, default=Path(DEFAULT_DATA_DIR))
    demo.add_argument("--base-port", type=int, default=8100)
    demo.add_argument("--mongo", metavar="URI", help="使用 MongoDB（每个站点一个库）代替 SQLite")
    demo.add_argument("--vhost-prefix", default="hall-", help="RabbitMQ vhost 与用户名前缀")
    demo.add_argument("--check", action="store_true", help="启动、检查后立即停止（用于测试）")
    status = commands.add_parser("status", help="显示演示网络各进程及其健康状态")
    status.add_argument("--data-dir", type=Path, default=Path(DEFAULT_DATA_DIR))
    # Operator subcommands: start, stop, restart, config, check, site-init, add-town,
    # add-village, rotate-key, backup, definitions (services/hallctl/ops_*.py).
    from services.hallctl import ops_cli

    ops_cli.add_parsers(commands)
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
    if hasattr(args, "handler"):  # an operator subcommand (services/hallctl/ops_*.py)
        return int(args.handler(args))
    # Imported late: nameko and eventlet are heavy, and `status` does not need them.
    if args.command == "demo":
        from services.hallctl import demo
        from services.hallctl.rabbit import BrokerAdminError
        from services.hallctl.topology import Layout

        layout = Layout(
            data_dir=args.data_dir.resolve(),
            base_port=args.base_port,
            vhost_prefix=args.vhost_prefix,
            mongo_uri=args.mongo,
        )
        try:
            return demo.run(layout, check_only=args.check)
        except BrokerAdminError as exc:
            print(f"错误：{exc}", file=sys.stderr)
            return 2
    from services.hallctl.demo import status as show_status

    return show_status(args.data_dir.resolve())


if __name__ == "__main__":
    sys.exit(main())
