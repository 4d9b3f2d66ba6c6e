"""The commands that write a site's files or look at them: ``site-init``, ``add-village``,
``add-town`` (:mod:`services.hallctl.siteinit`), ``config`` and ``check``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from services.common.errors import HallError
from services.common.site import Tier
from services.hallctl.checks import check_site
from services.hallctl.configfile import show_config
from services.hallctl.secretfiles import secrets_dir
from services.hallctl.sitedir import OpsError, SiteDir, data_dir_of, site_args, site_of
from services.hallctl.siteinit import CHILD_SECRETS, ChildAdded, add_child, add_village, init_site
from services.hallctl.siteplan import (
    OPTION_DEFAULTS,
    OPTION_FLAGS,
    SITE_FILE,
    SitePlan,
    load_site_options,
    resolve_plan,
)
from services.hallctl.topology import SERVICES


def add_parsers(commands: Any) -> None:
    show = commands.add_parser("config", help="显示服务将使用的配置（密码等已遮盖）")
    site_args(show)
    show.add_argument("service", choices=SERVICES)
    show.set_defaults(handler=_run_show)
    check = commands.add_parser("check", help="端到端检查站点：/health、经消息代理的 RPC")
    site_args(check)
    check.add_argument("--timeout", type=float, default=10.0)
    check.set_defaults(handler=_run_check)
    init = commands.add_parser(
        "site-init",
        help="生成一个站点的配置、密钥与 RabbitMQ definitions"
        "（选项记入 site.json，再次运行时沿用）",
    )
    _plan_args(init)
    init.add_argument("--upstream", help="上级站点代码")
    init.add_argument("--child", action="append", default=[], help="已登记的下级站点代码")
    init.add_argument(
        "--remove-child", action="append", default=[], help="不再是下级站点的代码（撤销登记）"
    )
    init.set_defaults(handler=_run_init)
    village = commands.add_parser(
        "add-village", help="为镇（街道）登记一个村（社区）便民服务站（在其上级站点上运行）"
    )
    _plan_args(village, child=True)
    village.add_argument("--town", help="所属镇（街道）代码（默认取村代码前 9 位）")
    _local_arg(village)
    village.set_defaults(handler=_run_add_village)
    town = commands.add_parser(
        "add-town", help="为县（区）登记一个镇（街道）便民服务中心（在其上级站点上运行）"
    )
    _plan_args(town, child=True)
    town.add_argument("--county", help="所属县（区）代码（默认取镇代码前 6 位）")
    _local_arg(town)
    town.set_defaults(handler=_run_add_town)


def _local_arg(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument(
        "--local",
        action="store_true",
        help="该下级站点也运行在本机：同时在数据目录中生成它的站点目录（默认不生成，"
        "它在自己的机器上由 install.sh / site-init 生成）",
    )


def _plan_args(cmd: argparse.ArgumentParser, child: bool = False) -> None:
    # No defaults here: an omitted option is taken from the site's site.json (then the
    # default in OPTION_DEFAULTS), so a re-run never rewrites what an earlier run set.
    only = "（仅与 --local 一起使用）" if child else ""
    cmd.add_argument("--code", required=True, help="站点代码")
    cmd.add_argument("--name", help="站点名称（第一次必须给出，之后沿用）")
    cmd.add_argument("--broker", help=f"本站点 RabbitMQ 主机:端口（默认 127.0.0.1:5672）{only}")
    cmd.add_argument("--upstream-broker", help=f"上级站点 RabbitMQ 主机:端口{only}")
    cmd.add_argument("--base-port", type=int, help=f"四个服务的 HTTP 端口起点（默认 8100）{only}")
    cmd.add_argument(
        "--bind", help=f"HTTP 监听地址（默认 127.0.0.1；Prometheus 在别处时 0.0.0.0）{only}"
    )
    cmd.add_argument(
        "--store", help=f"STORE_URI（默认站点目录下的 SQLite 文件；'' 恢复默认）{only}"
    )
    cmd.add_argument("--prefix", help="vhost 与用户名前缀（默认 hall-）")
    cmd.add_argument("--data-dir", type=Path, default=None)


def _given(args: argparse.Namespace, upstream: str | None) -> dict[str, Any]:
    return {
        "name": args.name,
        "upstream": upstream,
        "broker": args.broker,
        "upstream_broker": args.upstream_broker,
        "base_port": args.base_port,
        "bind": args.bind,
        "store_uri": args.store,
        "prefix": args.prefix,
    }


def _run_init(args: argparse.Namespace) -> int:
    site = SiteDir(data_dir_of(args), args.code)
    try:
        resolved = resolve_plan(site, _given(args, args.upstream))
        before = set((load_site_options(site) or {}).get("children") or [])
        init_site(site.data_dir, resolved.plan, tuple(args.child), tuple(args.remove_child))
        after = set((load_site_options(site) or {}).get("children") or [])
    except (OpsError, HallError) as exc:
        print(f"错误：{exc}")
        return 1
    for line in resolved.report():
        print(line)
    if after - before:
        print(f"登记下级站点：{'、'.join(sorted(after - before))}")
    if before - after:
        print(f"撤销下级站点：{'、'.join(sorted(before - after))}")
    if after:
        print(f"已登记的下级站点（写入 definitions.json）：{'、'.join(sorted(after))}")
    print(f"已生成 {site.root}（配置、密钥、rabbitmq/definitions.json；选项记入 {SITE_FILE}）")
    return 0


def _child_plan(args: argparse.Namespace, upstream: str) -> tuple[SitePlan, list[str]]:
    """The plan of a child being registered, and notes for the operator."""
    data_dir = data_dir_of(args)
    # The whole network shares one prefix: the child's user is the same on both brokers.
    parent = load_site_options(SiteDir(data_dir, upstream)) or {}
    if args.local:
        given = _given(args, upstream)
        inherited = {"prefix": parent.get("prefix")}
        resolved = resolve_plan(SiteDir(data_dir, args.code), given, inherited)
        return resolved.plan, resolved.report()
    prefix = args.prefix or parent.get("prefix") or OPTION_DEFAULTS["prefix"]
    ignored = [
        OPTION_FLAGS[key]
        for key, value in _given(args, upstream).items()
        if value is not None and key not in ("name", "upstream", "prefix")
    ]
    notes = []
    if ignored:
        notes.append(
            f"未给 --local，已忽略 {'、'.join(ignored)}：这些是下级站点自己的选项，"
            "在它的机器上运行 install.sh 或 hallctl site-init 时给出"
        )
    return SitePlan(args.code, args.name or "", upstream, prefix=prefix), notes


def _run_add_village(args: argparse.Namespace) -> int:
    upstream = args.town or args.code[:9]
    return _report_child(
        args, upstream, lambda plan: add_village(data_dir_of(args), plan, args.local)
    )


def _run_add_town(args: argparse.Namespace) -> int:
    upstream = args.county or args.code[:6]
    return _report_child(
        args, upstream, lambda plan: add_child(data_dir_of(args), plan, Tier.TOWN, args.local)
    )


def _report_child(args: argparse.Namespace, upstream: str, add: Any) -> int:
    try:
        plan, notes = _child_plan(args, upstream)
        added: ChildAdded = add(plan)
    except (OpsError, HallError) as exc:
        print(f"错误：{exc}")
        return 1
    for note in notes:
        print(note)
    secrets = secrets_dir(data_dir_of(args))
    print(f"已在上级站点 {upstream} 登记下级站点 {args.code}")
    print(
        f"密钥文件：{secrets}/{args.code}.{{{','.join(CHILD_SECRETS)}}}；"
        "复制到该站点的机器，安装时 install.sh --secrets <目录>"
    )
    print(
        "在上级站点的消息代理上导入：rabbitmqctl import_definitions --format json"
        f" < {added.parent_definitions}"
    )
    if added.parent_sync_config:
        print(
            f"已在 {added.parent_sync_config} 的 SYNC.children 中登记 {args.code}；重启上级的 sync"
        )
    else:
        print("在上级站点 sync 配置中加入（然后重启上级的 sync）：")
        print(added.children_snippet, end="")
    if added.child is not None:
        print(f"已在本机生成该站点的站点目录 {added.child.root}（--local）")
    else:
        print(
            f"本机未生成 {args.code} 的站点目录：它在自己的机器上由 install.sh 或 site-init 生成"
            "（两个站点运行在同一台机器上时加 --local）"
        )
    return 0


def _run_show(args: argparse.Namespace) -> int:
    try:
        print(show_config(site_of(args), args.service), end="")
    except OpsError as exc:
        print(f"错误：{exc}")
        return 1
    return 0


def _run_check(args: argparse.Namespace) -> int:
    try:
        checks = check_site(site_of(args), args.timeout)
    except OpsError as exc:
        print(f"错误：{exc}")
        return 1
    for check in checks:
        print(check.line())
    failed = [c for c in checks if not c.ok]
    print(f"{len(checks) - len(failed)}/{len(checks)} 项正常")
    return 0 if not failed else 1
