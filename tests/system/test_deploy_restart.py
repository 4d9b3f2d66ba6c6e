"""Redeploying one service alone: ``hallctl restart`` of one service of a running site
(SIGTERM, then the same command and config again) while RPC traffic flows. The other
services never stop answering; calls sent to the restarted service before, during and after
its downtime are all answered (durable queue, persistent messages), a write sent while it
was down is applied, and what it stored before is still there."""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

import services.common.remote  # noqa: F401  (typed remote errors)
from services.hallctl import configfile, lifecycle, sitedir
from services.hallctl import processes as proc
from services.hallctl.commands import demo
from services.hallctl.secretfiles import ACCESS_KEY, secret_path
from services.hallctl.topology import DEMO_SITES, SERVICES, Layout
from tests.conftest import free_block, operator_rpc, rabbitmqctl

pytestmark = pytest.mark.system

ROOT = Path(__file__).resolve().parents[2]
RESTARTED = "queue"
MAX_GAP_S = 2.0  # the longest silence allowed from a service that is not restarted


# The running county site, and the AMQP URI of its own broker user.
County = tuple[sitedir.SiteDir, str]


@pytest.fixture
def county(tmp_path: Path) -> Iterator[County]:
    """The demo county site's four services started one by one through ``lifecycle``."""
    prefix = f"test-restart-{uuid.uuid4().hex[:6]}-"
    base = free_block()
    layout = Layout(data_dir=tmp_path / "sites", base_port=base, vhost_prefix=prefix)
    passwords = demo.prepare(layout)
    site = sitedir.SiteDir(layout.data_dir, "421302")
    try:
        started = [lifecycle.start(site, service, wait=0) for service in SERVICES]
        assert proc.wait_healthy(started, timeout=90) == [], [proc.tail(p.log) for p in started]
        yield site, layout.amqp_uri("421302", "421302", passwords["421302"])
    finally:
        for service in SERVICES:
            lifecycle.stop(site, service, grace=20)
        for s in DEMO_SITES:
            rabbitmqctl("delete_vhost", f"{prefix}{s.code}")
            rabbitmqctl("delete_user", f"{prefix}site-{s.code}")


class Traffic(threading.Thread):
    """Calls ``<service>.site_info()`` in a loop and records every answer and failure."""

    def __init__(self, uri: str, service: str, key: Path) -> None:
        super().__init__(daemon=True)
        self.uri = uri
        self.key = key
        self.service = service
        self.answers: list[float] = []
        self.failures: list[str] = []
        self.halt = threading.Event()

    def run(self) -> None:
        with operator_rpc(self.uri, timeout=10, key=self.key) as cluster:
            target = getattr(cluster, self.service)
            while not self.halt.is_set():
                try:
                    info = target.site_info()
                    assert info["service"] == self.service
                    assert info["site_code"] == "421302"
                    self.answers.append(time.monotonic())
                except Exception as exc:  # noqa: BLE001  (recorded and asserted on below)
                    self.failures.append(f"{time.monotonic():.2f} {exc!r}")
                time.sleep(0.05)

    def longest_gap(self, start: float, end: float) -> float:
        times = [start, *[t for t in self.answers if start <= t <= end], end]
        return max(b - a for a, b in itertools.pairwise(times))


def queue_config(**changes: Any) -> dict[str, Any]:
    """The example configuration shipped with the queue service, without file-only keys."""
    from services.queue.settings import OPERATION_KEYS

    seed = yaml.safe_load((ROOT / "services" / "queue" / "seed" / "hall.yaml").read_text())
    return {**{k: v for k, v in seed.items() if k not in OPERATION_KEYS}, **changes}


def test_restart_one_service_while_traffic_flows_loses_nothing(county: County) -> None:
    site, uri = county
    others = [s for s in SERVICES if s != RESTARTED]
    key = secret_path(site.data_dir, site.code, ACCESS_KEY)  # hallctl wrote the site's own
    traffic = [Traffic(uri, service, key) for service in others]
    for t in traffic:
        t.start()
    with operator_rpc(uri, timeout=90, key=key) as cluster:
        queue = getattr(cluster, RESTARTED)
        before = queue.configure(queue_config(waiting_target_minutes=30), "before-restart")
        version = before["config_version"]
        old_pid = lifecycle.running_pid(site, RESTARTED)
        assert old_pid is not None

        started = time.monotonic()
        in_flight = [queue.configuration.call_async() for _ in range(20)]
        assert lifecycle.stop(site, RESTARTED) == old_pid  # SIGTERM; in-flight work finishes
        assert not proc.alive(old_pid)
        port = configfile.web_port(configfile.load_config(site.config_path(RESTARTED)))
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://127.0.0.1:{port}/health", timeout=2)
        # sent while the service is down: they wait in its durable queue
        while_down = [queue.configuration.call_async() for _ in range(20)]
        write_while_down = queue.configure.call_async(
            queue_config(waiting_target_minutes=25), "during-restart", version
        )
        time.sleep(1.0)
        restarted = lifecycle.start(site, RESTARTED, wait=60)
        assert restarted.pid != old_pid

        answers = [reply.result() for reply in [*in_flight, *while_down]]
        assert all(a["config_version"] >= version for a in answers)
        written = write_while_down.result()
        assert written["config_version"] == version + 1
        current = queue.configuration()
        ended = time.monotonic()

    for t in traffic:
        t.halt.set()
    for t in traffic:
        t.join(timeout=30)

    # the write sent during the downtime was applied once, on top of what was stored before
    assert current["config_version"] == version + 1
    assert current["changed_by"] == "during-restart"
    assert current["config"]["waiting_target_minutes"] == 25
    assert {c["prefix"] for c in current["config"]["categories"]} == {
        c["prefix"] for c in queue_config()["categories"]
    }
    # the others answered all along, without a gap
    for t in traffic:
        assert t.failures == [], (t.service, t.failures[:3])
        assert len(t.answers) > 20, t.service
        assert t.longest_gap(started, ended) < MAX_GAP_S, t.service
    assert (requests.get(restarted.health_url, timeout=5).json())["status"] == "ok"
