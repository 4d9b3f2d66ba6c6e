"""``hallctl staff …`` and ``hallctl device …``: the site's accounts and enrolled devices,
managed by the operator on the site's machine through the site's gateway (docs/security.md,
"Gateway"). A password is read from a file (``--password-file``, for scripts) or asked
twice at the terminal; it never appears on the command line or in a log."""

from __future__ import annotations

import argparse
import getpass
from pathlib import Path
from typing import Any

from services.hallctl.configfile import load_config
from services.hallctl.sitedir import OpsError, site_args, site_of


def add_parsers(commands: Any) -> None:
    staff = commands.add_parser("staff", help="工作人员账号：add、disable、reset-password、list")
    actions = staff.add_subparsers(dest="action", required=True)
    add = actions.add_parser("add", help="新增账号")
    add.add_argument("--id", required=True, help="账号（如 s-1001）")
    add.add_argument("--name", required=True, help="姓名（只在本站点保存）")
    add.add_argument("--roles", required=True, help="逗号分隔：clerk,manager,supervisor,…")
    add.add_argument("--windows", default="", help="可签到的窗口，逗号分隔（默认不限）")
    add.add_argument("--password-file", type=Path, help="从文件读取初始密码")
    for name, text in (("disable", "停用账号并注销其会话"), ("reset-password", "重设密码")):
        one = actions.add_parser(name, help=text)
        one.add_argument("--id", required=True)
        if name == "reset-password":
            one.add_argument("--password-file", type=Path)
    actions.add_parser("list", help="列出账号")
    device = commands.add_parser("device", help="终端设备：pair、revoke、list")
    device_actions = device.add_subparsers(dest="action", required=True)
    pair = device_actions.add_parser("pair", help="生成一次性配对码")
    pair.add_argument("--role", required=True, choices=("kiosk", "board", "pad"))
    pair.add_argument("--window", help="评价器绑定的窗口")
    revoke = device_actions.add_parser("revoke", help="撤销设备")
    revoke.add_argument("--id", required=True)
    device_actions.add_parser("list", help="列出设备")
    for parser in (*actions.choices.values(), *device_actions.choices.values()):
        site_args(parser)
    staff.set_defaults(handler=_run_staff)
    device.set_defaults(handler=_run_device)


def _gateway(args: argparse.Namespace) -> Any:
    from services.common.callers import operator_proxy

    path = site_of(args).config_path("gateway")
    if not path.exists():
        raise OpsError(f"没有 {path}：先 hallctl site-init")
    return operator_proxy(load_config(path), timeout=30)


def _password(args: argparse.Namespace) -> str:
    if args.password_file:
        return Path(args.password_file).read_text(encoding="utf-8").strip()
    first = getpass.getpass("密码：")
    if first != getpass.getpass("再输入一次：") or not first:
        raise OpsError("两次输入的密码不一致")
    return first


def _run_staff(args: argparse.Namespace) -> int:
    from services.common.errors import HallError

    try:
        with _gateway(args) as cluster:
            gateway = cluster.gateway
            if args.action == "add":
                account = {
                    "id": args.id,
                    "name": args.name,
                    "roles": [r.strip() for r in args.roles.split(",") if r.strip()],
                    "windows": [w.strip() for w in args.windows.split(",") if w.strip()],
                    "password": _password(args),
                }
                shown = gateway.add_staff(account)
                print(f"已新增账号 {shown['id']}（{'、'.join(shown['roles'])}）")
            elif args.action == "disable":
                shown = gateway.disable_staff(args.id)
                print(f"已停用 {shown['id']}，注销会话 {shown['sessions_revoked']} 个")
            elif args.action == "reset-password":
                shown = gateway.reset_password(args.id, _password(args))
                print(f"已重设 {shown['id']} 的密码，注销会话 {shown['sessions_revoked']} 个")
            else:
                for row in gateway.list_staff():
                    state = "停用" if row["disabled"] else "在用"
                    windows = ",".join(row["windows"]) or "不限"
                    print(f"{row['id']:<16} {state}  {','.join(row['roles']):<24} 窗口 {windows}")
    except (HallError, OpsError) as exc:
        print(f"错误：{exc}")
        return 1
    return 0


def _run_device(args: argparse.Namespace) -> int:
    from services.common.errors import HallError

    try:
        with _gateway(args) as cluster:
            gateway = cluster.gateway
            if args.action == "pair":
                code = gateway.create_pairing(args.role, args.window)
                print(f"配对码 {code['code']}（{code['role']}，{code['expires_at']} 前有效）")
                print("在设备上打开网关的配对页，输入此码；配对码只能使用一次。")
            elif args.action == "revoke":
                print(f"已撤销 {gateway.revoke_device(args.id)['id']}")
            else:
                for row in gateway.list_devices():
                    state = "已撤销" if row["revoked"] else "在用"
                    print(
                        f"{row['id']:<18} {row['role']:<6} 窗口 {row['window'] or '-':<4} {state}"
                    )
    except (HallError, OpsError) as exc:
        print(f"错误：{exc}")
        return 1
    return 0
