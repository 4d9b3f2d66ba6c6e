"""The broker definitions ``hallctl site-init`` / ``add-village`` write are accepted by the real
RabbitMQ (``rabbitmqctl import_definitions``) and mean what they say: each site's user logs
in to its own vhost, a village's user on the town's vhost may publish only the five uplink
calls of ``sync`` on ``nameko-rpc`` and cannot declare that exchange (it declares it
passively; tests/system/test_access.py for the rest of its rights), a county vhost
declares quorum queues, and a user without a password cannot log in."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import amqp
import pytest
from amqp.exceptions import AccessRefused

from services.hallctl.broker import BrokerNames, SiteBroker, render, site_definitions
from services.hallctl.siteinit import add_village, init_site
from services.hallctl.siteplan import SitePlan
from tests.conftest import rabbitmqctl

pytestmark = pytest.mark.system

CODES = ("421302", "421302101", "421302101202")


def ctl(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    path = shutil.which("rabbitmqctl")
    assert path
    return subprocess.run(
        [path, "-q", *args], capture_output=True, text=True, timeout=60, input=stdin
    )


def import_definitions(path: Path) -> None:
    # Exactly the command of docs/operations.md, through a shell: stdin, because Debian's
    # rabbitmqctl runs as the rabbitmq user, who cannot read a mode-600 file of root's.
    rabbitmq = shutil.which("rabbitmqctl")
    assert rabbitmq
    done = subprocess.run(
        ["sh", "-c", f'{rabbitmq} import_definitions --format json < "$1"', "sh", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


def test_rabbitmq_reads_definitions_from_stdin_only_for_a_private_file(tmp_path: Path) -> None:
    """Why the docs say ``< file`` (RabbitMQ 3.10): the path form cannot read a mode-600
    file (rabbitmqctl runs as the rabbitmq user), and ``-`` is taken for a file name."""
    names = BrokerNames(f"test-defs-{uuid.uuid4().hex[:6]}-")
    path = tmp_path / "definitions.json"
    path.write_text(render(site_definitions(SiteBroker("421302101204"), names)))
    path.chmod(0o600)
    try:
        assert ctl("import_definitions", str(path)).returncode != 0
        assert ctl("import_definitions", "-", "--format", "json", stdin="").returncode != 0
        import_definitions(path)
        assert names.vhost("421302101204") in ctl("list_vhosts").stdout
    finally:
        ctl("delete_vhost", names.vhost("421302101204"))
        ctl("delete_user", names.user("421302101204"))


# The sites' data directory (secrets/ holds their passwords), and the broker names they use.
Sites = tuple[Path, BrokerNames]


@pytest.fixture
def sites(tmp_path: Path) -> Iterator[Sites]:
    prefix = f"test-defs-{uuid.uuid4().hex[:6]}-"
    names = BrokerNames(prefix)

    def plan(code: str, name: str, upstream: str | None = None) -> SitePlan:
        return SitePlan(code, name, upstream, upstream_broker="127.0.0.1:5672", prefix=prefix)

    init_site(tmp_path, plan("421302101", "镇中心", "421302"))
    init_site(tmp_path, plan("421302", "县中心"), children=("421302101",))
    # --local: the village's own site directory (its definitions.json) is written here too
    added = add_village(tmp_path, plan("421302101202", "二村", "421302101"), local=True)
    try:
        for code in CODES:
            import_definitions(tmp_path / code / "rabbitmq" / "definitions.json")
        import_definitions(added.parent_definitions)
        yield tmp_path, names
    finally:
        for code in CODES:
            ctl("delete_vhost", names.vhost(code))
            ctl("delete_user", names.user(code))


def secret(data: Path, name: str) -> str:
    return (data / "secrets" / name).read_text().strip()


def connect(names: BrokerNames, user_code: str, vhost_code: str, password: str) -> amqp.Connection:
    conn = amqp.Connection(
        host="127.0.0.1:5672",
        userid=names.user(user_code),
        password=password,
        virtual_host=names.vhost(vhost_code),
        connect_timeout=5,
    )
    conn.connect()
    return conn


def publish(conn: amqp.Connection, routing_key: str, passive: bool = False) -> None:
    channel = conn.channel()
    channel.exchange_declare(
        "nameko-rpc", "topic", durable=True, auto_delete=False, passive=passive
    )
    channel.basic_publish(amqp.Message("{}"), exchange="nameko-rpc", routing_key=routing_key)
    # publish is asynchronous: a synchronous round trip surfaces a refusal (channel closed)
    channel.basic_qos(0, 1, False)
    channel.close()


def test_generated_definitions_import_and_enforce_the_sync_only_rule(sites: Sites) -> None:
    data, names = sites
    for code in CODES:
        conn = connect(names, code, code, secret(data, f"{code}.broker-password"))
        publish(conn, "rating.site_info")  # its own vhost: everything
        conn.close()
    village_up = secret(data, "421302101202.broker-password")
    conn = connect(names, "421302101202", "421302101", village_up)
    try:
        publish(conn, "sync.ingest", passive=True)
        with pytest.raises(AccessRefused, match=r"rating\.site_info"):
            publish(conn, "rating.site_info", passive=True)
        with pytest.raises(AccessRefused, match=r"sync\.push_now"):
            publish(conn, "sync.push_now", passive=True)
        with pytest.raises(AccessRefused, match="exchange 'nameko-rpc'"):
            publish(conn, "sync.ingest")  # an active declare needs configure on the exchange
    finally:
        conn.close()
    # the town's own upstream user on the county broker: the same rule
    conn = connect(names, "421302101", "421302", secret(data, "421302101.broker-password"))
    try:
        with pytest.raises(AccessRefused):
            publish(conn, "matters.site_info", passive=True)
    finally:
        conn.close()
    vhosts = ctl("list_vhosts", "name", "default_queue_type").stdout
    types = dict(line.split("\t") for line in vhosts.splitlines()[1:] if "\t" in line)
    assert types[names.vhost("421302")] == "quorum"
    assert types[names.vhost("421302101202")] in {"classic", "undefined"}
    policies = ctl("list_policies", "-p", names.vhost("421302")).stdout
    assert "hall-quorum-delivery-limit" in policies
    assert "guest" not in ctl("list_permissions", "-p", names.vhost("421302")).stdout


def test_a_user_defined_without_password_cannot_log_in(tmp_path: Path) -> None:
    names = BrokerNames(f"test-defs-{uuid.uuid4().hex[:6]}-")
    path = tmp_path / "definitions.json"
    path.write_text(render(site_definitions(SiteBroker("421302101203"), names)))
    try:
        import_definitions(path)
        assert "421302101203" in ctl("list_users").stdout
        assert ctl("authenticate_user", names.user("421302101203"), "").returncode != 0
        assert ctl("authenticate_user", names.user("421302101203"), "guess").returncode != 0
    finally:
        rabbitmqctl("delete_vhost", names.vhost("421302101203"))
        rabbitmqctl("delete_user", names.user("421302101203"))
