"""What a child site may do on its parent's broker, named once for both ends: the child's
``sync`` (``services/sync/adapters/upstream.py``) calls with these names, the parent's
broker permissions (``services/hallctl/broker.py``) allow exactly these names.

A child reaches its parent's vhost for two things only:

- to call the parent's ``sync`` methods of ``UPLINK_METHODS``: it publishes to the
  ``nameko-rpc`` topic exchange with routing key ``sync.<method>``;
- to receive the replies to its own calls: a reply queue ``rpc.reply-uplink-<code>-<uuid>``,
  bound to ``nameko-rpc`` with the key ``uplink-<code>-<uuid>`` (the ``reply_to`` of its
  calls). Nameko's own clients name their reply queue ``rpc.reply-<service>-<uuid>`` and
  bind it with the bare uuid; the child's client puts its site code in both, so the
  parent's broker can tell one child's replies from another's and from its own services'.

Topic authorisation checks a binding's key against the child's topic *read* pattern
(RabbitMQ 3.10 ``queue.bind``), so a child cannot bind ``#``, ``*``, ``sync.*`` or any key but
one of its own reply keys: it cannot see requests or replies that are not its own.
"""

from __future__ import annotations

import re
import uuid

RPC_EXCHANGE = "nameko-rpc"
# The parent's ``sync`` methods a child calls (``services.sync.ports.UpstreamSession``); the
# operator RPCs (push_now, reconcile_now, retry_parked, status, parked, check_key) are not.
UPLINK_METHODS = (
    "ingest",
    "verify_key",
    "reconcile_counts",
    "proxy_outcomes",
    "catalog_changes",
    "site_info",
)
REPLY_QUEUE_PREFIX = "rpc.reply-"
_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def reply_key(code: str, token: uuid.UUID | None = None) -> str:
    """A fresh reply routing key of the child ``code``: ``uplink-<code>-<uuid>``."""
    return f"uplink-{code}-{token or uuid.uuid4()}"


def reply_queue(key: str) -> str:
    """The reply queue bound with ``key``."""
    return f"{REPLY_QUEUE_PREFIX}{key}"


def reply_key_pattern(code: str) -> str:
    """The regex (unanchored) of every reply key of the child ``code``."""
    return rf"uplink-{re.escape(code)}-{_UUID}"


def reply_queue_pattern(code: str) -> str:
    """The regex (unanchored) of every reply queue of the child ``code``."""
    return r"rpc\.reply-" + reply_key_pattern(code)


def call_keys_pattern() -> str:
    """The anchored regex of the routing keys a child may publish: ``sync.<UPLINK_METHODS>``."""
    return rf"^sync\.({'|'.join(UPLINK_METHODS)})$"
