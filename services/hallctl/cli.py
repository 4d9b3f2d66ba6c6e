"""``hallctl``: the operator's command line. Each command lives in
``services/hallctl/commands/``; this module only builds the parser and dispatches. Nameko
and eventlet are heavy: a command imports them only when it needs them."""

from __future__ import annotations

import argparse
import os
import sys
import warnings

from services.hallctl.commands import (
    access,
    backup,
    definitions,
    demo,
    keys,
    people,
    process,
    restore,
    rollups,
    sites,
    status,
)

# In the order of `hallctl --help`.
COMMANDS = (
    demo,
    status,
    process,
    sites,
    people,
    keys,
    access,
    backup,
    restore,
    rollups,
    definitions,
)


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="hallctl", description="政务服务大厅网络运维工具")
    commands = root.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_parsers(commands)
    return root


def main(argv: list[str] | None = None) -> int:
    os.umask(0o077)  # data, logs, configs and secrets it writes are the operator's alone
    args = parser().parse_args(argv)
    warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
    return int(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
