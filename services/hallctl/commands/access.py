"""``hallctl rotate-access-key``: the site's access key (docs/security.md, "Keys") replaced
without a pause. ``begin`` puts a new signing key in front of the old one: running services
re-read the file within seconds and accept both; ``finish``, a minute later (tokens live 60
s), drops the old key, after which anything signed with it is refused."""

from __future__ import annotations

import argparse
from typing import Any

from services.common.identity import KeyFileError, keep_only_signing_key, write_key
from services.hallctl.secretfiles import ACCESS_KEY, secret_path
from services.hallctl.sitedir import data_dir_of, site_args


def add_parsers(commands: Any) -> None:
    rotate = commands.add_parser(
        "rotate-access-key", help="轮换本站点的访问密钥（begin，一分钟后 finish）"
    )
    rotate.add_argument("step", choices=("begin", "finish"))
    site_args(rotate)
    rotate.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    path = secret_path(data_dir_of(args), args.site, ACCESS_KEY)
    try:
        if args.step == "begin":
            kid = write_key(path, rotate=True)
            print(f"新访问密钥 {kid} 已写入 {path}（权限 600），旧密钥仍然有效；")
            print("各服务在 5 秒内读取新密钥。一分钟后执行：")
            data = path.parents[1]
            print(f"  hallctl rotate-access-key finish --site {args.site} --data-dir {data}")
        else:
            kid = keep_only_signing_key(path)
            print(f"已删除旧访问密钥，只保留 {kid}；用旧密钥签名的请求从现在起被拒绝")
    except KeyFileError as exc:
        print(f"错误：{exc}")
        return 1
    return 0
