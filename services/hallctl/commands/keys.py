"""``hallctl rotate-key``: a child site's sync key replaced without a pause in sync. Step 1
(``begin``): a new key, which the parent accepts beside the old one and which is delivered
to the child; step 2 (``finish``, once the child runs with it): the parent forgets the old."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.hallctl.secretfiles import read_secret, secrets_dir, write_secret
from services.hallctl.sitedir import OpsError, SiteDir, data_dir_of
from services.hallctl.siteinit import child_keys, set_child_keys, set_own_key


@dataclass(frozen=True)
class Rotation:
    child: str
    new_key_file: Path
    parent_sync_config: Path | None
    child_sync_config: Path | None  # the child's config, updated here when it is reachable
    child_key_file: Path | None = None  # the key file written into the child's site
    copy_to: Path | None = None  # where the key file belongs at the child (not reachable)


def rotate_begin(
    data_dir: Path, child: str, parent: str, child_data_dir: Path | None = None
) -> Rotation:
    """Step 1: a new key for ``child``; the parent accepts the old and the new one; the new
    key is delivered to the child when its site directory is reachable from here
    (``child_data_dir``, default ``data_dir``): written to its ``secrets/<child>.sync-key``
    (mode 600) and its ``SYNC.key``. Otherwise ``copy_to`` says where it belongs there."""
    secrets = secrets_dir(data_dir)
    old = read_secret(secrets / f"{child}.sync-key")
    new_path = secrets / f"{child}.sync-key.new"
    new = read_secret(new_path) or write_secret(new_path)
    parent_sync = SiteDir(data_dir, parent).config_path("sync")
    if parent_sync.exists():
        current = child_keys(parent_sync, child) or ([old] if old else [])
        set_child_keys(parent_sync, child, [*[k for k in current if k != new][-1:], new])
    parent_config = parent_sync if parent_sync.exists() else None
    target_dir = child_data_dir or data_dir
    target = secrets_dir(target_dir) / f"{child}.sync-key"
    child_sync = SiteDir(target_dir, child).config_path("sync")
    if not child_sync.exists():
        return Rotation(child, new_path, parent_config, None, copy_to=target)
    write_secret(target, new)
    set_own_key(child_sync, new)
    return Rotation(child, new_path, parent_config, child_sync, child_key_file=target)


def rotate_finish(
    data_dir: Path, child: str, parent: str, child_data_dir: Path | None = None
) -> Rotation:
    """Step 2 (after the child runs with the new key): the parent forgets the old key, and
    the new key becomes ``<child>.sync-key`` (and the child's SYNC.key when it is here)."""
    secrets = secrets_dir(data_dir)
    new_path = secrets / f"{child}.sync-key.new"
    new = read_secret(new_path)
    if new is None:
        raise OpsError(f"没有进行中的密钥轮换：{new_path} 不存在（先执行 begin）")
    parent_sync = SiteDir(data_dir, parent).config_path("sync")
    if parent_sync.exists():
        set_child_keys(parent_sync, child, [new])
    target_dir = child_data_dir or data_dir
    child_sync = SiteDir(target_dir, child).config_path("sync")
    if child_sync.exists():
        set_own_key(child_sync, new)
        write_secret(secrets_dir(target_dir) / f"{child}.sync-key", new)
    write_secret(secrets / f"{child}.sync-key", new)
    new_path.unlink()
    return Rotation(
        child,
        secrets / f"{child}.sync-key",
        parent_sync if parent_sync.exists() else None,
        child_sync if child_sync.exists() else None,
    )


def add_parsers(commands: Any) -> None:
    rotate = commands.add_parser("rotate-key", help="轮换下级站点的同步密钥（begin，然后 finish）")
    rotate.add_argument("step", choices=("begin", "finish"))
    rotate.add_argument("--child", required=True, help="下级站点代码")
    rotate.add_argument("--parent", help="上级站点代码（默认按代码长度推算）")
    rotate.add_argument("--data-dir", type=Path, default=None)
    rotate.add_argument(
        "--child-data-dir",
        type=Path,
        default=None,
        help="下级站点的数据目录：本机可达时把新密钥直接写入，否则打印应复制到该站点的路径"
        "（默认与 --data-dir 相同）",
    )
    rotate.set_defaults(handler=_run_rotate)


def _run_rotate(args: argparse.Namespace) -> int:
    parent = args.parent or (args.child[:9] if len(args.child) == 12 else args.child[:6])
    data_dir = data_dir_of(args)
    child_data = args.child_data_dir.resolve() if args.child_data_dir else data_dir
    try:
        if args.step == "begin":
            r = rotate_begin(data_dir, args.child, parent, child_data)
            _report_begin(r, parent, data_dir, child_data)
        else:
            r = rotate_finish(data_dir, args.child, parent, child_data)
            print(f"完成：上级 {parent} 只接受新密钥（{r.new_key_file}）")
            if r.parent_sync_config:
                print(f"已更新 {r.parent_sync_config}；重启上级 {parent} 的 sync")
            if r.child_sync_config:
                print(f"已确认 {r.child_sync_config} 的 SYNC.key 为新密钥")
    except OpsError as exc:
        print(f"错误：{exc}")
        return 1
    return 0


def _report_begin(r: Rotation, parent: str, data_dir: Path, child_data: Path) -> None:
    child = r.child
    print(f"新密钥：{r.new_key_file}（权限 600）")
    if r.parent_sync_config:
        print(f"已更新 {r.parent_sync_config}：上级 {parent} 现在同时接受 {child} 的新旧密钥")
    else:
        print(f"上级 {parent} 的 sync 配置不在本机：把新密钥加到它的 SYNC.children.{child} 末尾")
    print(f"1. 重启上级 {parent} 的 sync（systemctl restart hall-sync）")
    if r.child_key_file and r.child_sync_config:
        print(
            f"已把新密钥交付给下级站点 {child}：{r.child_key_file}（权限 600）"
            f"和 {r.child_sync_config} 的 SYNC.key"
        )
        print(f"2. 上级重启之后，重启 {child} 的 sync")
    else:
        print(f"下级站点 {child} 的站点目录不在本机（{child_data / child}）。")
        print(
            f"2. 把新密钥复制到 {child} 的机器上，路径为 {r.copy_to}"
            "（权限 600，属主为运行服务的用户）："
        )
        print(f"     scp -p {r.new_key_file} root@<{child} 的主机>:{r.copy_to}")
        print(f"   然后在 {child} 上：")
        print(f"     chown hall:hall {r.copy_to} && chmod 600 {r.copy_to}")
        print(
            f"     hallctl site-init --data-dir {child_data} --code {child}   # 把它写入 SYNC.key"
        )
        print("     systemctl restart hall-sync")
    print(
        f"3. 在 {child} 上 hallctl check --site {child} 的 rpc check_key 正常"
        "且不再提示“仍在用旧密钥”后，执行："
        f"hallctl rotate-key finish --data-dir {data_dir} --child {child}"
    )
