"""The one module for broker names and permissions: how a site's vhost and user are named,
what a site's user and its children's users may do, as a RabbitMQ definitions document
(``hallctl definitions``, ``site-init``) and through ``rabbitmqctl`` (``hallctl demo``).

A definitions document is a file RabbitMQ loads at boot (``load_definitions``) or imports
(``rabbitmqctl import_definitions``). It holds:

- the site's vhost, and the site's own user with full rights on it (its four services);
- for every child site (a town under a county, a village under a town), the child's user
  with, on this vhost, only what its own ``sync`` calls need (``services/common/uplink.py``):
  publish to the ``nameko-rpc`` exchange with the routing keys of the six ``sync`` methods a
  child calls (topic write), declare, bind and consume its own reply queues
  ``rpc.reply-uplink-<child>-<uuid>`` with the binding key ``uplink-<child>-<uuid>`` only
  (topic read, checked at ``queue.bind``), and nothing else: no configure right on
  ``nameko-rpc`` (it can neither delete nor redeclare it; the child declares it passively), no
  binding that sees other traffic, no operator RPC of ``sync``, no other service;
- at county tier and above (brokers that may run as a cluster), quorum queues by default
  for the vhost, and a policy that dead-letters a message redelivered too often to a
  quorum queue ``hall-dead-letters`` instead of letting it crash a service forever;
- never the ``guest`` account.

Passwords are stored as RabbitMQ SHA-256 hashes; without a password the user gets an empty
hash (it exists, with its permissions, but cannot log in until ``rabbitmqctl
change_password`` or a definitions file with a password).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from services.common import uplink
from services.common.site import Tier, tier_of
from services.common.uplink import RPC_EXCHANGE

FULL = ".*"
# What a child may publish on its parent's RPC exchange: the routing keys of the ``sync``
# methods of ``uplink.UPLINK_METHODS``, never ``sync.push_now``, ``sync.status``, … nor another
# service.
SYNC_ROUTING_KEYS = uplink.call_keys_pattern()
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
    """How vhosts and users are named, the same in the demo and on every real site."""

    prefix: str = "hall-"

    def vhost(self, code: str) -> str:
        return f"{self.prefix}{code}"

    def user(self, code: str) -> str:
        return f"{self.prefix}site-{code}"

    def amqp_uri(self, user_code: str, password: str, broker: str, vhost_code: str) -> str:
        """The URI with which ``user_code``'s user reaches ``vhost_code`` on ``broker``
        (host:port): its own vhost, or (a child) its parent's."""
        auth = f"{quote(self.user(user_code), safe='')}:{quote(password, safe='')}"
        return f"pyamqp://{auth}@{broker}/{quote(self.vhost(vhost_code), safe='')}"


# --- permissions ------------------------------------------------------------------------------


def own_permission(user: str, vhost: str) -> dict[str, str]:
    """A site's own user on its vhost: everything."""
    return {"user": user, "vhost": vhost, "configure": FULL, "write": FULL, "read": FULL}


def child_permission(user: str, vhost: str, child: str) -> dict[str, str]:
    """The user of the child site ``child`` on its parent's vhost: configure its own reply
    queues only; write (publish, bind to) the RPC exchange and its own reply queues; read
    (bind from, consume) the same. No configure right on the exchange: the child declares it
    passively."""
    queues = uplink.reply_queue_pattern(child)
    return {
        "user": user,
        "vhost": vhost,
        "configure": f"^{queues}$",
        "write": f"^({RPC_EXCHANGE}|{queues})$",
        "read": f"^({RPC_EXCHANGE}|{queues})$",
    }


def child_topic_permission(user: str, vhost: str, child: str) -> dict[str, str]:
    """… and of the RPC exchange's routing keys: publish the six ``sync`` calls of a child
    only; bind its own reply keys only (a ``#``, ``*`` or ``sync.*`` binding is refused)."""
    return {
        "user": user,
        "vhost": vhost,
        "exchange": RPC_EXCHANGE,
        "write": SYNC_ROUTING_KEYS,
        "read": f"^{uplink.reply_key_pattern(child)}$",
    }


# --- definitions documents --------------------------------------------------------------------


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
        "permissions": [own_permission(own, vhost)],
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
        doc["permissions"].append(child_permission(user, vhost, child))
        doc["topic_permissions"].append(child_topic_permission(user, vhost, child))
    if site.uses_quorum:
        _add_dead_lettering(doc, vhost)
    return doc


def _add_dead_lettering(doc: dict[str, Any], vhost: str) -> None:
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


def child_part(parent: str, child: str, password: str, names: BrokerNames) -> dict[str, Any]:
    """The part of ``parent``'s definitions that registers ``child`` there (its user,
    limited to ``sync``), with no vhost and no user of the parent's own."""
    doc = site_definitions(SiteBroker(parent, None, {child: password}), names)
    user = names.user(child)
    return {
        "users": [u for u in doc["users"] if u["name"] == user],
        "permissions": [p for p in doc["permissions"] if p["user"] == user],
        "topic_permissions": doc["topic_permissions"],
    }


def render(doc: Mapping[str, Any]) -> str:
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


# --- provisioning a running broker through rabbitmqctl (the demo) -----------------------------


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


def ensure_site(
    vhost: str, user: str, password: str, upstream_vhost: str | None, code: str = ""
) -> None:
    """Idempotently: the site's vhost, its user with ``password`` and full rights there, and
    on ``upstream_vhost`` the same rights as a child's (the site ``code``) in a definitions
    document."""
    if upstream_vhost is not None and not code:
        raise ValueError("ensure_site: a site with an upstream vhost needs its code")
    if vhost not in _names(_ctl("list_vhosts", "name")):
        _ctl("add_vhost", vhost)
    # "--" ends the options: a random password may start with "-" (token_urlsafe).
    if user in _names(_ctl("list_users")):
        _ctl("change_password", "--", user, password)
    else:
        _ctl("add_user", "--", user, password)
    _set_permissions(own_permission(user, vhost))
    if upstream_vhost is not None:
        _set_permissions(child_permission(user, upstream_vhost, code))
        topic = child_topic_permission(user, upstream_vhost, code)
        _ctl("set_topic_permissions", "-p", upstream_vhost, user,
             topic["exchange"], topic["write"], topic["read"])  # fmt: skip


def _set_permissions(p: Mapping[str, str]) -> None:
    _ctl("set_permissions", "-p", p["vhost"], p["user"], p["configure"], p["write"], p["read"])
