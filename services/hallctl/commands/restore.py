"""``hallctl restore``: put back what ``hallctl backup`` wrote, then give each restored store
a new incarnation, so every follower of its feeds (sync, the feed followers) reads them
again from 0 instead of waiting for positions the restore rolled back
(docs/operations.md, "备份与恢复"). ``--reincarnate-only`` does the second half alone, after a
restore made with another tool (``mongorestore``, a file copy).

The services restored must be stopped (the command refuses a running one). The file
replaced is kept beside it as ``<name>.before-restore-<time>``.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.common.store import open_store
from services.hallctl.commands.backup import backup_sqlite, sqlite_file
from services.hallctl.configfile import load_config
from services.hallctl.lifecycle import running_pid
from services.hallctl.sitedir import OpsError, SiteDir, chosen_services, data_dir_of


@dataclass(frozen=True)
class Restored:
    service: str
    target: str
    incarnation: str
    kept: Path | None = None


def store_uri_of(site: SiteDir, service: str) -> str:
    """The ``STORE_URI`` of ``service``'s config at ``site`` ("" when it sets none; ``OpsError``
    when there is no config)."""
    return str(load_config(site.require(service)).get("STORE_URI") or "")


def require_stopped(site: SiteDir, services: list[str], then: str) -> None:
    """``OpsError`` naming the ``services`` of ``site`` that still run (an offline command
    such as restore or rebuild-rollups must not write under a running service)."""
    if running := [s for s in services if running_pid(site, s) is not None]:
        raise OpsError(f"请先停止服务 {'、'.join(running)}（hallctl stop）再{then}")


def reincarnate(store_uri: str, service: str) -> str:
    """A new incarnation for ``service``'s store; returns it."""
    store = open_store(store_uri, service)
    try:
        return store.reincarnate()
    finally:
        store.close()


def restore_sqlite(backup: Path, target: Path) -> Path | None:
    """Replace ``target`` (and its ``-wal``/``-shm``) by a copy of ``backup``; the path the
    replaced file was kept at, or None when there was none."""
    if not backup.is_file():
        raise OpsError(f"备份文件 {backup} 不存在")
    kept = None
    if target.exists():
        kept = target.with_name(f"{target.name}.before-restore-{time.strftime('%Y%m%d%H%M%S')}")
        target.rename(kept)
    for suffix in ("-wal", "-shm"):
        target.with_name(target.name + suffix).unlink(missing_ok=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    backup_sqlite(backup, target)
    return kept


def restore_site(
    site: SiteDir, source: Path | None, services: list[str] | None = None
) -> list[Restored]:
    """Restore ``services`` of ``site`` (all of them by default) from the backup directory
    ``source`` (None: only give their stores a new incarnation)."""
    chosen = services or site.services()
    if not chosen:
        raise OpsError(f"{site.root} 下没有任何服务配置")
    require_stopped(site, chosen, "恢复")
    done = []
    for service in chosen:
        uri = store_uri_of(site, service)
        kept = None
        if source is not None:
            target = sqlite_file(uri, service)
            if target is None:
                raise OpsError(
                    f"{service} 不是 SQLite 存储：先用 mongorestore 恢复，再运行 "
                    "hallctl restore --reincarnate-only"
                )
            if not target.is_absolute():
                target = (Path.cwd() / target).resolve()
            kept = restore_sqlite(source / target.name, target)
        done.append(Restored(service, uri.split("?", 1)[0], reincarnate(uri, service), kept))
    return done


# --- command line ---------------------------------------------------------------------------


def add_parsers(commands: Any) -> None:
    cmd = commands.add_parser(
        "restore",
        help="从 hallctl backup 的备份恢复站点数据，并更新存储代次（服务须先停止）",
    )
    cmd.add_argument("--site", required=True, help="站点代码")
    cmd.add_argument("--data-dir", type=Path, default=None)
    source = cmd.add_mutually_exclusive_group(required=True)
    source.add_argument("--from", dest="source", type=Path, help="hallctl backup 写的备份目录")
    source.add_argument(
        "--reincarnate-only",
        action="store_true",
        help="只更新存储代次（已用 mongorestore 等其他方式恢复之后）",
    )
    cmd.add_argument("services", nargs="*", metavar="SERVICE", help="不给时为全部服务")
    cmd.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    site = SiteDir(data_dir_of(args), args.site)
    source = None if args.reincarnate_only else args.source.resolve()
    try:
        restored = restore_site(site, source, chosen_services(args.services))
    except OpsError as exc:
        print(f"错误：{exc}")
        return 1
    for item in restored:
        kept = f"；原文件保留为 {item.kept}" if item.kept else ""
        print(f"✓ {item.service:<8} 新代次 {item.incarnation}{kept}")
    return 0
