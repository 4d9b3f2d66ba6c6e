"""The key check between a child's sync and its parent's (``sync.verify_key`` at the parent,
``sync.check_key`` and the periodic check at the child): a wrong or unregistered key shows in
``check_key``, ``push_now``, ``status``, the metrics and ``hallctl check`` even when the child
has nothing to send. Real containers in this process, one vhost per site; the parent is a
county, the children towns (the same code at every tier)."""

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import eventlet
import pytest
import requests
import yaml
from nameko.containers import ServiceContainer
from nameko.rpc import rpc

from services.common import service as base
from services.common.access import BASE_ACCESS, OPERATOR, rule
from services.hallctl import cli, sitedir
from services.sync.service import SyncService
from tests.conftest import amqp_uri, free_port, operator_rpc, site_config
from tests.system.test_sync_doubles import DOUBLES

pytestmark = pytest.mark.service

COUNTY = "421302"
GOOD, WRONG, UNKNOWN, ROTATING = "421302101", "421302102", "421302103", "421302104"
KEYS = {GOOD: "g" * 32, WRONG: "w" * 32, ROTATING: "r" * 32}
NEW_KEY = "n" * 32
# Nothing to push or pull: these children only check their key.
FORBIDDEN = 'hall_sync_errors_total{direction="key",reason="forbidden"'
KEY_ONLY = {
    "upward": [],
    "pull_catalog": False,
    "pull_outcomes": False,
    "push_interval": 3600,
    "key_check_interval": 3600,
}


ACCESS = {**BASE_ACCESS, "ping": rule(OPERATOR)}


class OldSync(base.SiteService):
    """A parent's sync from before ``verify_key`` existed (a rolling upgrade)."""

    name = "sync"
    access = ACCESS

    @rpc
    def ping(self) -> str:
        return "pong"


def stop_all(containers: list[ServiceContainer]) -> None:
    """Sync first (it calls the others), each group in parallel."""
    for group in (
        [c for c in containers if c.service_name == "sync"],
        [c for c in containers if c.service_name != "sync"],
    ):
        for thread in [eventlet.spawn(c.stop) for c in group]:
            thread.wait()
    containers.clear()


@pytest.fixture(scope="module")
def vhosts(vhost_factory: Callable[[str], str]) -> dict[str, str]:
    """The county's vhost and two more, used in turn by the children of each test (a
    vhost costs seconds of rabbitmqctl)."""
    return {"county": vhost_factory("key-county"), "a": vhost_factory("key-a"),
            "b": vhost_factory("key-b")}  # fmt: skip


@pytest.fixture(scope="module")
def county(vhosts: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data = tmp_path_factory.mktemp("key-county")
    children = {GOOD: [KEYS[GOOD]], WRONG: ["x" * 32], ROTATING: [KEYS[ROTATING], NEW_KEY]}
    config = site_config(vhosts["county"], data, COUNTY, "county", port=free_port())
    container = ServiceContainer(SyncService, {**config, "SYNC": {"children": children}})
    container.start()
    yield vhosts["county"]
    container.stop()


class Sites:
    def __init__(self, vhosts: dict[str, str], data: Path) -> None:
        self.vhosts = vhosts
        self.data = data
        self.containers: list[ServiceContainer] = []

    def start(self, cls: type, config: dict[str, Any]) -> None:
        container = ServiceContainer(cls, config)
        self.containers.append(container)
        container.start()

    def child(
        self,
        code: str,
        key: str | None,
        upstream_vhost: str,
        vhost: str = "a",
        doubles: bool = False,
        **section: Any,
    ) -> dict[str, Any]:
        """A town's sync (and, with ``doubles``, its local services) under ``upstream``."""
        own = self.vhosts[vhost]
        port = free_port()
        config = site_config(own, self.data, code, "town", COUNTY, upstream_vhost, port=port)
        if doubles:
            for cls in DOUBLES:
                self.start(cls, {**config, "WEB_SERVER_ADDRESS": f"127.0.0.1:{free_port()}"})
        quiet = {"push_interval": 3600, "pull_catalog": False, "pull_outcomes": False}
        sync = {**KEY_ONLY, **section} if not doubles else {**quiet, **section}
        self.start(SyncService, {**config, "SYNC": {"key": key, **sync}})
        return config

    def stop(self) -> None:
        stop_all(self.containers)


@pytest.fixture
def sites(vhosts: dict[str, str], tmp_path: Path) -> Iterator[Sites]:
    running = Sites(vhosts, tmp_path)
    yield running
    running.stop()


def call(config: dict[str, Any], method: str, *args: Any) -> Any:
    with operator_rpc(config["AMQP_URI"], timeout=30) as rpc:
        return getattr(rpc.sync, method)(*args)


def metrics(config: dict[str, Any]) -> str:
    url = f"http://{config['WEB_SERVER_ADDRESS']}/metrics"
    return requests.get(url, timeout=5).text


def sample(text: str, prefix: str) -> float | None:
    """The value of the first series starting with ``prefix``, or None."""
    for line in text.splitlines():
        if line.startswith(prefix):
            return float(line.split()[-1])
    return None


def test_an_accepted_key_is_reported_ok_everywhere(county: str, sites: Sites) -> None:
    config = sites.child(GOOD, KEYS[GOOD], county)
    answer = call(config, "check_key")
    assert answer["ok"] is True
    assert answer["verified"] is True
    assert answer["key"] == "current"
    assert answer["upstream"] == COUNTY
    status = call(config, "status")["key"]
    assert status["ok"] is True
    assert status["key_in_use"] == "current"
    assert status["last_success"]
    text = metrics(config)
    last_success = sample(text, 'hall_sync_last_success_timestamp{direction="key",feed="key"')
    assert last_success is not None
    assert last_success > 0
    assert 'hall_sync_errors_total{direction="key"' not in text


def test_a_wrong_key_fails_on_a_quiet_site_in_check_push_status_and_metrics(
    county: str, sites: Sites, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = sites.child(WRONG, KEYS[WRONG], county, doubles=True)
    # nothing to send: every push "succeeds", but the key check does not
    pushed = call(config, "push_now")["results"]
    assert pushed["up:rating.evaluations"]["ok"] is True
    assert pushed["up:rating.evaluations"]["sent"] == 0
    assert pushed["key"]["ok"] is False
    assert pushed["key"]["reason"] == "forbidden"
    answer = call(config, "check_key")
    assert answer["ok"] is False
    assert answer["reason"] == "forbidden"
    assert f"上级站点 {COUNTY} 拒绝了本站点 {WRONG} 的同步密钥" in answer["error"]
    assert f"SYNC.children.{WRONG}" in answer["error"]
    status = call(config, "status")
    assert status["key"]["ok"] is False
    assert status["key"]["last_error_reason"] == "forbidden"
    assert status["key"]["last_success"] is None
    text = metrics(config)
    forbidden = sample(text, FORBIDDEN)
    assert forbidden is not None
    assert forbidden >= 2
    assert 'hall_sync_last_success_timestamp{direction="key"' not in text

    # hallctl check on this site (only its sync has a config here) fails, naming the cause
    site = sitedir.SiteDir(tmp_path / "sites", WRONG)
    path = site.config_path("sync")
    path.parent.mkdir(parents=True)
    path.write_text(yaml.safe_dump(config, allow_unicode=True))
    assert cli.main(["check", "--data-dir", str(site.data_dir), "--site", WRONG]) == 1
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if "check_key" in ln)
    assert line.startswith("✗ sync")
    assert f"站点 {WRONG} 的同步密钥未通过上级站点 {COUNTY} 的核验（forbidden）" in line
    assert f"核对 SYNC.children.{WRONG}" in line
    assert "✓ sync     rpc ping_upstream" in out  # the link itself is fine


def test_the_key_is_checked_periodically_without_anyone_asking(county: str, sites: Sites) -> None:
    config = sites.child(
        WRONG, KEYS[WRONG], county, key_check_interval=1, backoff_base=0.2, backoff_cap=0.5
    )
    deadline = time.monotonic() + 10
    errors = None
    while time.monotonic() < deadline:
        errors = sample(metrics(config), FORBIDDEN)
        if errors and errors >= 3:
            break
        time.sleep(0.3)
    assert errors is not None
    assert errors >= 3


def test_an_unregistered_child_and_a_missing_key_are_named(county: str, sites: Sites) -> None:
    config = sites.child(UNKNOWN, "u" * 32, county)
    answer = call(config, "check_key")
    assert answer["reason"] == "forbidden"
    assert f"站点 {UNKNOWN} 未在上级站点 {COUNTY} 登记" in answer["error"]
    config = sites.child(GOOD, None, county, vhost="b")
    answer = call(config, "check_key")
    assert answer["ok"] is False
    assert answer["reason"] == "conflict"
    assert "未配置本站点的同步密钥" in answer["error"]


def test_during_a_rotation_the_parent_says_which_key_the_child_uses(
    county: str, sites: Sites
) -> None:
    assert call(sites.child(ROTATING, KEYS[ROTATING], county), "check_key")["key"] == "previous"
    config = sites.child(ROTATING, NEW_KEY, county, vhost="b")
    assert call(config, "check_key")["key"] == "current"


def test_a_parent_too_old_to_check_keys_is_neither_success_nor_error(
    sites: Sites, vhosts: dict[str, str], tmp_path: Path
) -> None:
    old = vhosts["b"]  # the old parent's broker
    sites.start(OldSync, site_config(old, tmp_path, COUNTY, "county", port=free_port()))
    config = sites.child(GOOD, KEYS[GOOD], old)
    answer = call(config, "check_key")
    assert answer["ok"] is True
    assert answer["verified"] is False
    assert "版本较旧" in answer["note"]
    assert call(config, "status")["key"]["ok"] is None
    text = metrics(config)
    assert 'hall_sync_errors_total{direction="key"' not in text
    assert 'hall_sync_last_success_timestamp{direction="key"' not in text


def test_verify_key_refuses_a_malformed_or_misaddressed_probe(county: str) -> None:
    from services.common.errors import Conflict, InvalidInput
    from services.sync import domain

    with operator_rpc(amqp_uri(county), timeout=30) as rpc:
        with pytest.raises(InvalidInput):
            rpc.sync.verify_key({"child": GOOD})
        probe = domain.sign(
            {"schema": 1, "child": GOOD, "upstream": "421303", "sent_at": None}, KEYS[GOOD]
        )
        with pytest.raises(Conflict, match="应答的却是站点 421302"):
            rpc.sync.verify_key(probe)
        probe = domain.sign({"schema": 1, "child": GOOD, "upstream": COUNTY}, KEYS[GOOD])
        assert rpc.sync.verify_key(probe)["key"] == "current"
