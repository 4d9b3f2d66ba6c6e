"""The demo's accounts (docs/security.md, "Gateway"): one per role at the site where the
role works — clerk and manager at every hall, supervisor at the town and the county, the
catalog editor and the admin at the county. Passwords are generated once and kept in
``<data>/secrets/<code>.demo-accounts`` (mode 600); a rerun keeps them."""

from __future__ import annotations

import contextlib
import json
import secrets
from typing import Any

from services.common.errors import Conflict
from services.hallctl.secretfiles import read_secret, secret_path, write_secret
from services.hallctl.topology import DEMO_SITES, DemoSite, Layout

ROLES_AT = {
    "county": ("clerk", "manager", "supervisor", "catalog_editor", "admin"),
    "town": ("clerk", "manager", "supervisor"),
    "village": ("clerk", "manager"),
}
# Every screen a site's gateway serves (docs/screens.md): the devices pair with a one-time
# code that a manager makes on 大厅管理 (or ``hallctl`` through gateway.create_pairing).
SCREENS = (
    ("工作人员登录", "/login"),
    ("窗口叫号", "/window"),
    ("大厅管理", "/manage"),
    ("取号机", "/kiosk"),
    ("叫号屏", "/board"),
    ("评价器", "/pad"),
)
NAMES = {
    "clerk": "演示窗口人员",
    "manager": "演示大厅负责人",
    "supervisor": "演示督查人员",
    "catalog_editor": "演示事项编辑",
    "admin": "演示管理员",
}


def accounts_of(layout: Layout, site: DemoSite) -> dict[str, str]:
    """Account id → password for ``site``, created in the file on first use."""
    path = secret_path(layout.data_dir, site.code, "demo-accounts")
    kept = read_secret(path)
    accounts: dict[str, str] = json.loads(kept) if kept else {}
    for role in ROLES_AT[site.tier]:
        accounts.setdefault(f"{role}-{site.code}", f"Demo-{secrets.token_urlsafe(9)}")
    write_secret(path, json.dumps(accounts, ensure_ascii=False))
    return accounts


def create(layout: Layout, cluster_of: Any) -> None:
    """Create the accounts through each site's gateway and print how to sign in."""
    for site in DEMO_SITES:
        port = layout.port(site, "gateway")
        with cluster_of(site) as cluster:
            for account, password in accounts_of(layout, site).items():
                role = account.rsplit("-", 1)[0]
                # Conflict: created by an earlier run, with the same password.
                with contextlib.suppress(Conflict):
                    cluster.gateway.add_staff(
                        {
                            "id": account,
                            "name": NAMES[role],
                            "roles": [role],
                            "windows": ["1", "2", "3"] if role in ("clerk", "manager") else [],
                            "password": password,
                        }
                    )
        path = secret_path(layout.data_dir, site.code, "demo-accounts")
        print(
            f"✓ {site.code} 网关 http://127.0.0.1:{port}：演示账号 "
            f"{'、'.join(f'{r}-{site.code}' for r in ROLES_AT[site.tier])}（密码见 {path}）",
            flush=True,
        )
        for title, route in SCREENS:
            print(f"    {title}  http://127.0.0.1:{port}{route}", flush=True)
