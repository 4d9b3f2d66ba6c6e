"""Idempotent RabbitMQ provisioning for demo sites, through ``rabbitmqctl``.

Each site gets a vhost and a user with full rights on it. On its upstream's vhost the
same user may only use RPC plumbing, and may publish only to ``sync.*`` routing keys
(topic permission), so a child can reach nothing upstream but the ``sync`` service.
"""

from __future__ import annotations

import shutil
import subprocess

RPC_PLUMBING = r"^(nameko-rpc|rpc\.reply-.*)$"


class BrokerAdminError(RuntimeError):
    pass


def _ctl(*args: str) -> str:
    ctl = shutil.which("rabbitmqctl")
    if ctl is None:
        raise BrokerAdminError(
            "未找到 rabbitmqctl：请先安装 rabbitmq-server（apt-get install rabbitmq-server）"
        )
    done = subprocess.run([ctl, "-q", *args], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        shown = " ".join(arg for arg in args[:3] if arg != "--")
        raise BrokerAdminError(f"rabbitmqctl {shown} 失败：{done.stderr.strip()}")
    return done.stdout


def _names(listing: str) -> set[str]:
    return {line.split("\t")[0].strip() for line in listing.splitlines() if line.strip()}


def ensure_site(vhost: str, user: str, password: str, upstream_vhost: str | None) -> None:
    if vhost not in _names(_ctl("list_vhosts", "name")):
        _ctl("add_vhost", vhost)
    # "--" ends the options: a random password may start with "-" (token_urlsafe).
    if user in _names(_ctl("list_users")):
        _ctl("change_password", "--", user, password)
    else:
        _ctl("add_user", "--", user, password)
    _ctl("set_permissions", "-p", vhost, user, ".*", ".*", ".*")
    if upstream_vhost is not None:
        _ctl(
            "set_permissions", "-p", upstream_vhost, user, RPC_PLUMBING, RPC_PLUMBING, RPC_PLUMBING
        )
        _ctl("set_topic_permissions", "-p", upstream_vhost, user, "nameko-rpc", r"^sync\..*", ".*")
