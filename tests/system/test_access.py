"""A child site's broker user at its parent (issue "access", item 5), on the real broker.

The parent (town 421302101) runs its real ``matters`` and ``sync`` as ``nameko run``
processes on its own vhost; the parent's user and the child's (village 421302101201) are
provisioned by hallctl's own ``ensure_site``, i.e. with exactly the permissions hallctl
grants (``services/hallctl/broker.py``). Logged in as the child on the parent's vhost:

(a) the attack as found — declare ``rpc.reply-x`` (or a queue, or an exchange, named like
    the child's own reply queues), bind it to ``nameko-rpc`` with ``#``, ``*``, ``sync.*``,
    ``matters.*`` — is refused, and nothing of the parent's traffic reaches the child while
    the parent serves a ``matters.submit_application`` carrying a name, ID number and phone;
(b) the parent's operator RPCs of ``sync`` (``push_now``, ``reconcile_now``,
    ``retry_parked``, ``status``, ``parked``, ``check_key``), its other non-uplink methods
    (``feed``, ``apply_replicated``) and another service (``matters.site_info``) are refused
    at publish, fast, and never reach the parent's services (their ``/metrics`` count no call);
(c) the calls a child's sync makes still work through the real adapter
    (``services/sync/adapters/upstream.py``): ``site_info``, ``verify_key``, ``ingest``,
    ``catalog_changes``.
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import amqp
import kombu.pools
import pytest
import requests
import yaml
from amqp.exceptions import AccessRefused
from nameko.standalone.rpc import ClusterRpcProxy

import services.common.remote  # noqa: F401  (typed remote errors)
from services.common.uplink import reply_key, reply_queue
from services.hallctl.broker import BrokerNames, ensure_site
from services.sync import domain
from services.sync.adapters.upstream import UplinkRpcProxy, UpstreamLink
from tests.conftest import access_key_file, free_port, operator_rpc, rabbitmqctl

pytestmark = pytest.mark.system

ROOT = Path(__file__).resolve().parents[2]
NAMEKO = str(Path(sys.executable).with_name("nameko"))
TOWN, VILLAGE = "421302101", "421302101201"
SERVICES = ("matters", "sync")
SENT_AT = "2026-11-23T02:00:00.000000Z"
NAME, ID_NUMBER, PHONE = "张秘密", "42130219800101123X", "13912345678"


@dataclass
class Parent:
    """The town, with its services running, and the village's login on the town's vhost."""

    root: Path
    names: BrokerNames
    passwords: dict[str, str]
    key: str
    ports: dict[str, int]

    @property
    def vhost(self) -> str:
        return self.names.vhost(TOWN)

    def uri(self, code: str) -> str:
        """``code``'s user on the town's vhost (the town's own, or the village's)."""
        return self.names.amqp_uri(code, self.passwords[code], "127.0.0.1:5672", TOWN)

    def operator(self) -> ClusterRpcProxy:
        return operator_rpc(self.uri(TOWN), timeout=30)

    def child_connection(self) -> amqp.Connection:
        conn = amqp.Connection(
            "127.0.0.1:5672",
            userid=self.names.user(VILLAGE),
            password=self.passwords[VILLAGE],
            virtual_host=self.vhost,
        )
        conn.connect()
        return conn

    def calls(self, service: str, method: str) -> float:
        """How many calls of ``method`` ``service``'s entrypoints have counted."""
        text = requests.get(f"http://127.0.0.1:{self.ports[service]}/metrics", timeout=5).text
        series = "hall_entrypoint_duration_seconds_count"
        pattern = rf'^{series}{{[^}}]*method="{method}"[^}}]*}} (\S+)$'
        return sum(float(m.group(1)) for m in re.finditer(pattern, text, re.MULTILINE))


def _config(parent: Parent, service: str) -> Path:
    config: dict[str, Any] = {
        "AMQP_URI": parent.uri(TOWN),
        "WEB_SERVER_ADDRESS": f"127.0.0.1:{parent.ports[service]}",
        "SITE": {"code": TOWN, "tier": "town", "name": "测试镇", "upstream": ""},
        "UPSTREAM_AMQP_URI": "",
        "STORE_URI": f"sqlite:///{parent.root / 'data'}",
        "ACCESS_KEY_FILE": str(access_key_file()),
    }
    if service == "sync":
        config["SYNC"] = {
            "children": {VILLAGE: [parent.key]},
            "upward": [{"service": "matters", "feed": "application_summaries"}],
            "rpc_timeout": 5,
            "local_timeout": 5,
        }
    path = parent.root / f"{service}.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False))
    return path


def _healthy(port: int) -> bool:
    try:
        answer = requests.get(f"http://127.0.0.1:{port}/health", timeout=2).json()
    except (requests.RequestException, ValueError):
        return False
    return bool(answer.get("status") == "ok")


@pytest.fixture(scope="module")
def parent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Parent]:
    root = tmp_path_factory.mktemp("access")
    names = BrokerNames(f"test-acl-{uuid.uuid4().hex[:6]}-")
    site = Parent(
        root,
        names,
        {code: secrets.token_urlsafe(12) for code in (TOWN, VILLAGE)},
        secrets.token_hex(16),
        {service: free_port() for service in SERVICES},
    )
    processes: list[subprocess.Popen[bytes]] = []
    try:
        ensure_site(names.vhost(TOWN), names.user(TOWN), site.passwords[TOWN], None)
        ensure_site(
            names.vhost(VILLAGE),
            names.user(VILLAGE),
            site.passwords[VILLAGE],
            names.vhost(TOWN),
            VILLAGE,
        )
        for service in SERVICES:
            config = _config(site, service)
            with (root / f"{service}.log").open("ab") as log:
                processes.append(
                    subprocess.Popen(
                        [NAMEKO, "run", "--config", str(config), f"services.{service}.service"],
                        cwd=ROOT,
                        env={**os.environ, "PYTHONWARNINGS": "ignore"},
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        stdin=subprocess.DEVNULL,
                        start_new_session=True,
                    )
                )
        deadline = time.monotonic() + 90
        while not all(_healthy(port) for port in site.ports.values()):
            if time.monotonic() > deadline:
                logs = "\n".join((root / f"{s}.log").read_text()[-2000:] for s in SERVICES)
                raise AssertionError(f"the parent's services never became healthy\n{logs}")
            time.sleep(0.3)
        yield site
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for code in (TOWN, VILLAGE):
            with suppress(subprocess.CalledProcessError):
                rabbitmqctl("delete_vhost", names.vhost(code))
            with suppress(subprocess.CalledProcessError):
                rabbitmqctl("delete_user", names.user(code))
        kombu.pools.reset()


def _serve_personal_traffic(parent: Parent) -> None:
    """The parent at work: an application with a name, ID number and phone, and a sync call."""
    application = {
        "matter_code": "000000-acl-test",
        "applicant": {"kind": "person", "name": NAME, "id_number": ID_NUMBER, "phone": PHONE},
        "channel": "window",
        "materials": [],
        "window": "1",
        "staff_id": "clerk",
    }
    with parent.operator() as rpc:
        with suppress(Exception):  # no such matter here: refused, but the request travelled
            rpc.matters.submit_application(application)
        rpc.sync.status()


# --- (a) no binding that sees other traffic ----------------------------------------------------


@pytest.mark.parametrize("key", ["#", "*", "sync.*", "matters.*"])
@pytest.mark.parametrize("how", ["rpc.reply-x", "own reply queue", "own exchange"])
def test_a_child_cannot_bind_a_queue_that_sees_the_parents_traffic(
    parent: Parent, how: str, key: str
) -> None:
    conn = parent.child_connection()
    channel = conn.channel()
    queue = "rpc.reply-x" if how == "rpc.reply-x" else reply_queue(reply_key(VILLAGE))
    refused: str | None = None
    try:
        channel.queue_declare(queue, auto_delete=True)
        if how == "own exchange":
            # An exchange named like the child's reply queues, bound to nameko-rpc with the
            # wide key, and the queue bound to that exchange.
            exchange = reply_queue(reply_key(VILLAGE))
            channel.exchange_declare(exchange, "fanout", auto_delete=True)
            channel.exchange_bind(destination=exchange, source="nameko-rpc", routing_key=key)
            channel.queue_bind(queue, exchange, "")
        else:
            channel.queue_bind(queue, "nameko-rpc", key)
    except AccessRefused as exc:
        refused = str(exc)
    received: list[str] = []
    try:
        _serve_personal_traffic(parent)
        if refused is None:
            time.sleep(1)
            while (message := channel.basic_get(queue, no_ack=True)) is not None:
                body = message.body
                received.append(body.decode() if isinstance(body, bytes) else str(body))
    finally:
        with suppress(Exception):
            conn.close()
    leaked = [body for body in received if any(s in body for s in (NAME, ID_NUMBER, PHONE))]
    assert received == [], (
        f"the child bound {how} with {key!r} and received {len(received)} messages of the "
        f"parent's traffic, {len(leaked)} with a name, ID number or phone"
    )
    assert refused is not None, f"the child may bind {how} with {key!r} (it saw nothing yet)"
    assert "ACCESS_REFUSED" in refused


def test_a_childs_own_reply_binding_is_allowed_and_sees_only_its_own_key(parent: Parent) -> None:
    """What the narrowing leaves: one reply queue bound with one of the child's own keys."""
    conn = parent.child_connection()
    try:
        channel = conn.channel()
        key = reply_key(VILLAGE)
        channel.queue_declare(reply_queue(key), auto_delete=True)
        channel.queue_bind(reply_queue(key), "nameko-rpc", key)
        _serve_personal_traffic(parent)
        time.sleep(0.5)
        assert channel.basic_get(reply_queue(key), no_ack=True) is None
        with pytest.raises(AccessRefused):  # a bare uuid: the key of a reply that is not its own
            channel.queue_bind(reply_queue(key), "nameko-rpc", str(uuid.uuid4()))
    finally:
        with suppress(Exception):
            conn.close()


# --- (b) no operator RPC, no other service ----------------------------------------------------

REFUSED_CALLS: list[tuple[str, str, tuple[Any, ...]]] = [
    ("sync", "push_now", ()),
    ("sync", "reconcile_now", ()),
    ("sync", "retry_parked", ()),
    ("sync", "status", ()),
    ("sync", "parked", ()),
    ("sync", "check_key", ()),
    ("sync", "feed", ("ledger",)),
    ("sync", "apply_replicated", ("ledger", [])),
    ("matters", "site_info", ()),
]


@pytest.mark.parametrize(
    ("service", "method", "args"), REFUSED_CALLS, ids=[f"{s}.{m}" for s, m, _ in REFUSED_CALLS]
)
def test_b_a_child_cannot_call_the_parents_operator_rpcs_nor_another_service(
    parent: Parent, service: str, method: str, args: tuple[Any, ...]
) -> None:
    before = parent.calls(service, method)
    # The child's own RPC client (the one its sync uses), logged in as the child.
    cluster = UplinkRpcProxy(parent.uri(VILLAGE), VILLAGE, timeout=10)
    call = getattr(cluster.start()[service], method)
    started = time.monotonic()
    try:
        with pytest.raises(AccessRefused, match="ACCESS_REFUSED"):
            call(*args)
    finally:
        with suppress(Exception):
            cluster.stop()
    assert time.monotonic() - started < 5  # refused at publish, not a timeout
    time.sleep(0.5)
    assert parent.calls(service, method) == before, f"{service}.{method} reached the parent"


# --- (c) what a child's sync needs still works ----------------------------------------------


def test_c_the_childs_sync_calls_still_work_through_the_real_adapter(parent: Parent) -> None:
    before = parent.calls("sync", "ingest")
    link = UpstreamLink(parent.uri(VILLAGE), VILLAGE)
    with link.session(10) as up:
        assert up.site_info()["site_code"] == TOWN
        probe = {"schema": domain.SCHEMA, "child": VILLAGE, "upstream": TOWN, "sent_at": SENT_AT}
        answer = up.verify_key(domain.sign(probe, parent.key))
        assert (answer["ok"], answer["child"], answer["key"]) == (True, VILLAGE, "current")
        batch = {
            "schema": domain.SCHEMA,
            "child": VILLAGE,
            "service": "matters",
            "feed": "application_summaries",
            "from_seq": 0,
            "to_seq": 3,
            "records": [],
        }
        reply = up.ingest(domain.sign(batch, parent.key))
        assert (reply["stored"], reply["rejected"]) == (0, [])
        changes = up.catalog_changes(0, 10)
        assert isinstance(changes, dict)
    assert parent.calls("sync", "ingest") == before + 1
