"""RabbitMQ definitions (``definitions.json``) for one site's broker.

The same rules as :mod:`services.hallctl.rabbit` applies with ``rabbitmqctl``, written as a
file RabbitMQ loads at boot (``load_definitions``) or imports (``rabbitmqctl
import_definitions``):

- the site's vhost, and the site's own user with full rights on it (its four services);
- for every child site (a town under a county, a village under a town), the child's user
  with only the RPC plumbing on this vhost and a topic permission on the ``nameko-rpc``
  exchange that lets it publish ``sync.*`` routing keys only — it can call this site's
  ``sync`` and nothing else;
- at county tier and above (brokers that may run as a cluster), quorum queues by default
  for the vhost, and a policy that dead-letters a message redelivered too often to a
  quorum queue ``hall-dead-letters`` instead of letting it crash a service forever;
- never the ``guest`` account.

Passwords are stored as RabbitMQ SHA-256 hashes; without a password the user gets an empty
hash (it exists, with its permissions, but cannot log in until ``rabbitmqctl
change_password`` or a definitions file with a password).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from services.common.site import Tier, tier_of
from services.hallctl.rabbit import RPC_PLUMBING

RPC_EXCHANGE = "nameko-rpc"
SYNC_ROUTING_KEYS = r"^sync\..*"
HASHING = "rabbit_password_hashing_sha256"
DEAD_LETTER_EXCHANGE = "hall-dlx"
DEAD_LETTER_QUEUE = "hall-dead-letters"
# Nameko's durable service queues: ``rpc-<service>`` and ``evt-<source>-<event>--<handler>``;
# reply queues (``rpc.reply-…``) expire by themselves and are left alone.
SERVICE_QUEUES = r"^(rpc|evt)-"
DELIVERY_LIMIT = 20
QUORUM_TIERS = (Tier.NATIONAL, Tier.PROVINCE, Tier.CITY, Tier.COUNTY)


@dataclass(frozen=True)
class BrokerNames:
    """How vhosts and users are named (``hallctl demo`` uses the same scheme)."""

    prefix: str = "hall-"

    def vhost(self, code: str) -> str:
        return f"{self.prefix}{code}"

    def user(self, code: str) -> str:
        return f"{self.prefix}site-{code}"


@dataclass(frozen=True)
class SiteBroker:
    """What one site's broker must hold: the site, its password, its children's passwords."""

    code: str
    password: str | None = None
    children: Mapping[str, str | None] = field(default_factory=dict)
    quorum: bool | None = None  # None: by tier (county and above)

    @property
    def uses_quorum(self) -> bool:
        if self.quorum is not None:
            return self.quorum
        return tier_of(self.code) in QUORUM_TIERS


def password_hash(password: str, salt: bytes | None = None) -> str:
    """RabbitMQ's ``rabbit_password_hashing_sha256``: base64(salt + sha256(salt + password))."""
    salt = secrets.token_bytes(4) if salt is None else salt
    digest = hashlib.sha256(salt + password.encode("utf-8")).digest()
    return base64.b64encode(salt + digest).decode("ascii")


def check_password(password: str, stored: str) -> bool:
    raw = base64.b64decode(stored)
    return password_hash(password, raw[:4]) == stored


def _user(name: str, password: str | None) -> dict[str, Any]:
    return {
        "name": name,
        "password_hash": password_hash(password) if password else "",
        "hashing_algorithm": HASHING,
        "tags": "",
    }


def site_definitions(site: SiteBroker, names: BrokerNames | None = None) -> dict[str, Any]:
    """The definitions document for ``site``'s broker."""
    names = names or BrokerNames()
    vhost = names.vhost(site.code)
    own = names.user(site.code)
    metadata: dict[str, Any] = {"description": f"hall site {site.code}", "tags": []}
    if site.uses_quorum:
        metadata["default_queue_type"] = "quorum"
    doc: dict[str, Any] = {
        "users": [_user(own, site.password)],
        "vhosts": [{"name": vhost, "metadata": metadata}],
        "permissions": [
            {"user": own, "vhost": vhost, "configure": ".*", "write": ".*", "read": ".*"}
        ],
        "topic_permissions": [],
        "parameters": [],
        "global_parameters": [],
        "policies": [],
        "queues": [],
        "exchanges": [],
        "bindings": [],
    }
    for child, password in sorted(site.children.items()):
        user = names.user(child)
        doc["users"].append(_user(user, password))
        doc["permissions"].append(
            {
                "user": user,
                "vhost": vhost,
                "configure": RPC_PLUMBING,
                "write": RPC_PLUMBING,
                "read": RPC_PLUMBING,
            }
        )
        doc["topic_permissions"].append(
            {
                "user": user,
                "vhost": vhost,
                "exchange": RPC_EXCHANGE,
                "write": SYNC_ROUTING_KEYS,
                "read": ".*",
            }
        )
    if site.uses_quorum:
        doc["policies"].append(
            {
                "vhost": vhost,
                "name": "hall-quorum-delivery-limit",
                "pattern": SERVICE_QUEUES,
                "apply-to": "queues",
                "priority": 0,
                "definition": {
                    "delivery-limit": DELIVERY_LIMIT,
                    "dead-letter-exchange": DEAD_LETTER_EXCHANGE,
                },
            }
        )
        doc["exchanges"].append(
            {
                "name": DEAD_LETTER_EXCHANGE,
                "vhost": vhost,
                "type": "fanout",
                "durable": True,
                "auto_delete": False,
                "internal": False,
                "arguments": {},
            }
        )
        doc["queues"].append(
            {
                "name": DEAD_LETTER_QUEUE,
                "vhost": vhost,
                "durable": True,
                "auto_delete": False,
                "arguments": {"x-queue-type": "quorum"},
            }
        )
        doc["bindings"].append(
            {
                "source": DEAD_LETTER_EXCHANGE,
                "vhost": vhost,
                "destination": DEAD_LETTER_QUEUE,
                "destination_type": "queue",
                "routing_key": "",
                "arguments": {},
            }
        )
    return doc


def render(doc: Mapping[str, Any]) -> str:
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def read_secret(path: Path) -> str | None:
    return path.read_text().strip() if path.exists() else None


def write_secret(path: Path, value: str | None = None) -> str:
    """Write ``value`` (or a new random one) to ``path``, readable by its owner only."""
    value = value or secrets.token_urlsafe(24)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # an existing file keeps its mode through O_CREAT: set it
    with os.fdopen(fd, "w") as out:
        out.write(value + "\n")
    return value


def broker_password_path(secrets_dir: Path, code: str) -> Path:
    """Same file name as ``hallctl demo`` uses: ``<secrets>/<code>.broker-password``."""
    return secrets_dir / f"{code}.broker-password"


# --- command line -------------------------------------------------------------------------


def add_parser(commands: Any) -> argparse.ArgumentParser:
    """``hallctl definitions``: print or write a site's RabbitMQ definitions."""
    cmd: argparse.ArgumentParser = commands.add_parser(
        "definitions", help="生成站点 RabbitMQ 的 definitions.json"
    )
    cmd.add_argument("--site", required=True, help="站点代码，如 421302")
    cmd.add_argument("--child", action="append", default=[], help="下级站点代码（可重复）")
    cmd.add_argument(
        "--secrets-dir",
        type=Path,
        help="读取 <代码>.broker-password；不给时用户无密码（须另行 change_password）",
    )
    cmd.add_argument("--prefix", default="hall-", help="vhost 与用户名前缀")
    quorum = cmd.add_mutually_exclusive_group()
    quorum.add_argument("--quorum", dest="quorum", action="store_true", default=None)
    quorum.add_argument("--no-quorum", dest="quorum", action="store_false")
    cmd.add_argument("--out", type=Path, help="写入文件（权限 600）；不给时打印")
    cmd.set_defaults(handler=run)
    return cmd


def run(args: argparse.Namespace) -> int:
    def password(code: str) -> str | None:
        if args.secrets_dir is None:
            return None
        return read_secret(broker_password_path(args.secrets_dir, code))

    site = SiteBroker(
        args.site,
        password(args.site),
        {child: password(child) for child in args.child},
        args.quorum,
    )
    text = render(site_definitions(site, BrokerNames(args.prefix)))
    if args.out is None:
        print(text, end="")
    else:
        write_secret(args.out, text.rstrip("\n"))
        print(f"已写入 {args.out}")
    return 0
