"""``hallctl backup``: a consistent copy of each SQLite store of a site while its services
keep running (SQLite's online backup API, the same as ``sqlite3 db ".backup file"``).

Every file written is readable by its owner only (mode 600, in a directory of mode 700
when this command creates it): a backup holds the same personal data as the store. Each
copy is a single self-contained file (journal mode DELETE, no ``-wal``/``-shm`` beside it),
checked with ``PRAGMA integrity_check`` before it is reported.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.hallctl.configfile import load_config
from services.hallctl.sitedir import OpsError, SiteDir, chosen_services, data_dir_of

BUSY_TIMEOUT_S = 30.0


def sqlite_file(store_uri: str, service: str) -> Path | None:
    """The SQLite file a service uses with ``store_uri`` (the rule of
    ``services.common.store``: a path ending in ``.db`` is the file, any other path a
    directory of ``<service>.db``), or None for a store that is not SQLite."""
    scheme, sep, rest = str(store_uri).partition("://")
    if not sep or scheme.lower() != "sqlite":
        return None
    path = rest.split("?", 1)[0]
    path = path.removeprefix("/")  # sqlite:///rel, sqlite:////abs
    return Path(path) if path.endswith(".db") else Path(path) / f"{service}.db"


@dataclass(frozen=True)
class Copied:
    service: str
    source: Path | None
    target: Path | None
    size: int = 0
    note: str = ""


def _private_dir(path: Path) -> None:
    if not path.exists():
        path.mkdir(parents=True, mode=0o700)
        path.chmod(0o700)  # whatever the umask


def _create_private(path: Path) -> None:
    """An empty file of mode 600 at ``path``; never overwrites one."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise OpsError(f"{path} 已存在，不覆盖（换一个备份目录）") from None
    os.fchmod(fd, 0o600)
    os.close(fd)


def backup_sqlite(source: Path, target: Path) -> int:
    """Copy one live SQLite database (WAL included) to ``target`` (mode 600); its size."""
    _create_private(target)
    try:
        src = sqlite3.connect(source, timeout=BUSY_TIMEOUT_S)
        try:
            dst = sqlite3.connect(target)
            try:
                src.backup(dst)
                dst.execute("PRAGMA journal_mode = DELETE")  # one file, no -wal/-shm
                verdict = dst.execute("PRAGMA integrity_check").fetchone()[0]
            finally:
                dst.close()
        finally:
            src.close()
    except sqlite3.Error as exc:
        target.unlink(missing_ok=True)
        raise OpsError(f"备份 {source} 失败：{exc}") from None
    if verdict != "ok":
        raise OpsError(f"备份 {target} 未通过完整性检查：{verdict}")
    target.chmod(0o600)
    return target.stat().st_size


def backup_site(
    site: SiteDir, dest: Path, services: list[str] | None = None, with_secrets: bool = False
) -> list[Copied]:
    """Back up the SQLite stores of ``site`` (all its services, or ``services``) into
    ``dest``; with ``with_secrets`` also the secret files of the data directory."""
    chosen = services or site.services()
    if not chosen:
        raise OpsError(f"{site.root} 下没有任何服务配置")
    _private_dir(dest)
    done: list[Copied] = []
    seen: set[Path] = set()
    for service in chosen:
        config = load_config(site.require(service))
        source = sqlite_file(str(config.get("STORE_URI") or ""), service)
        if source is None:
            done.append(Copied(service, None, None, note="不是 SQLite 存储：用 mongodump 备份"))
            continue
        if not source.is_absolute():
            source = (Path.cwd() / source).resolve()
        if source in seen:
            continue  # several services in one file: copied once
        seen.add(source)
        if not source.exists():
            done.append(Copied(service, source, None, note="尚无数据文件"))
            continue
        target = dest / source.name
        done.append(Copied(service, source, target, backup_sqlite(source, target)))
    if with_secrets:
        secrets = site.data_dir / "secrets"
        if secrets.is_dir():
            _private_dir(dest / "secrets")
            for item in sorted(secrets.iterdir()):
                if item.is_file():
                    target = dest / "secrets" / item.name
                    _create_private(target)
                    shutil.copyfile(item, target)
                    target.chmod(0o600)
                    done.append(Copied("secrets", item, target, target.stat().st_size))
    return done


# --- command line ---------------------------------------------------------------------------


def add_parsers(commands: Any) -> None:
    cmd = commands.add_parser(
        "backup", help="在线备份站点的 SQLite 数据（服务照常运行；备份文件权限 600）"
    )
    cmd.add_argument("--site", required=True, help="站点代码")
    cmd.add_argument("--data-dir", type=Path, default=None)
    cmd.add_argument("--to", type=Path, required=True, help="备份目录（新建时权限 700）")
    cmd.add_argument("--with-secrets", action="store_true", help="同时备份 secrets/ 下的密钥文件")
    cmd.add_argument("services", nargs="*", metavar="SERVICE", help="不给时为全部服务")
    cmd.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    site = SiteDir(data_dir_of(args), args.site)
    try:
        chosen = chosen_services(args.services)
        copied = backup_site(site, args.to.resolve(), chosen, args.with_secrets)
    except OpsError as exc:
        print(f"错误：{exc}")
        return 1
    for item in copied:
        if item.target is None:
            print(f"- {item.service:<8} {item.source or ''} {item.note}")
        else:
            print(f"✓ {item.service:<8} {item.target}（600，{item.size} 字节）")
    return 0
