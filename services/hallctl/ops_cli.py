"""The operator subcommands of ``hallctl`` (``start``, ``stop``, ``restart``, ``config``,
``check``, ``site-init``, ``add-town``, ``add-village``, ``rotate-key``, ``backup``,
``definitions``), registered by ``cli.py`` through :func:`add_parsers`; also runnable alone
as ``python -m services.hallctl.ops_cli``."""

from __future__ import annotations

import argparse
import sys
import warnings
from typing import Any

from services.hallctl import ops_backup, ops_definitions, ops_site, ops_village


def add_parsers(commands: Any) -> None:
    ops_site.add_parsers(commands)
    ops_village.add_parsers(commands)
    ops_backup.add_parser(commands)
    ops_definitions.add_parser(commands)


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="hallctl", description="政务服务大厅网络运维工具")
    add_parsers(root.add_subparsers(dest="command", required=True))
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
    return int(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
