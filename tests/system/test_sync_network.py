"""The six scenarios of issue 6 with real ``nameko run`` processes and real RabbitMQ.

Four sites (national 000000 ← county 421302 ← town 421302101 ← village 421302101201),
provisioned like the demo (a vhost and a user per site; on its upstream's vhost a child's
user may publish only to ``sync.*``). Each site runs ``sync`` and TEST DOUBLES of the
``rating`` and ``matters`` feed contracts (tests/system/test_sync_doubles.py). The
village reaches the town's broker through a TCP proxy the tests cut and restore.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests
from nameko.standalone.rpc import ClusterRpcProxy

from services.common.errors import Forbidden
from services.common.store import open_store
from services.hallctl.rabbit import ensure_site
from services.sync import domain
from tests.conftest import free_port, rabbitmqctl
from tests.system.test_sync_doubles import LinkProxy

pytestmark = pytest.mark.system

ROOT = Path(__file__).resolve().parents[2]
NAMEKO = str(Path(sys.executable).with_name("nameko"))
NATIONAL, COUNTY, TOWN, VILLAGE = "000000", "421302", "421302101", "421302101201"
SITES = (
    (NATIONAL, "national", None),
    (COUNTY, "county", NATIONAL),
    (TOWN, "town", COUNTY),
    (VILLAGE, "village", TOWN),
)
DOUBLES = {
    "rating": "tests.system.test_sync_doubles:RatingDouble",
    "matters": "tests.system.test_sync_doubles:MattersDouble",
}
SYNC = "services.sync.service"
UPWARD = [
    {"service": "rating", "feed": "evaluations"},
    {"service": "rating", "feed": "cases"},
    {"service": "matters", "feed": "application_summaries"},
]


class Site:
    def __init__(self, net: Network, code: str, tier: str, upstream: str | None) -> None:
        self.net, self.code, self.tier, self.upstream = net, code, tier, upstream
        self.vhost = f"{net.prefix}{code}"
        self.user = f"{net.prefix}site-{code}"
        self.password = secrets.token_urlsafe(12)
        self.key = secrets.token_hex(16)
        self.dir = net.root / code
        self.ports = {service: free_port() for service in ("sync", *DOUBLES)}
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def uri(self, vhost: str, port: int = 5672) -> str:
        return f"pyamqp://{quote(self.user, safe='')}:{self.password}@127.0.0.1:{port}/{vhost}"

    def config(self, service: str) -> Path:
        upstream = self.net.sites[self.upstream] if self.upstream else None
        upstream_uri = ""
        if upstream is not None:
            port = self.net.link.port if self.code == VILLAGE else 5672
            upstream_uri = self.uri(upstream.vhost, port)
        children = {
            s.code: [s.key] for s in self.net.sites.values() if s.upstream == self.code
        }  # fmt: skip
        sync = {
            "key": self.key,
            "children": children,
            "upward": UPWARD,
            "batch_size": 200,
            "rpc_timeout": 5,
            "local_timeout": 5,
            "push_interval": 0.5,
            "pull_interval": 1,
            "backoff_base": 0.2,
            "backoff_cap": 2,
            "reconcile_interval": 3600,
        }
        text = "\n".join(
            [
                f"AMQP_URI: '{self.uri(self.vhost)}'",
                f"WEB_SERVER_ADDRESS: 127.0.0.1:{self.ports[service]}",
                f"SITE: {{code: '{self.code}', tier: {self.tier}, name: 测试{self.code}, "
                f"upstream: '{self.upstream or ''}'}}",
                f"UPSTREAM_AMQP_URI: '{upstream_uri}'",
                f"STORE_URI: 'sqlite:///{self.dir / 'data'}'",
                f"SYNC: {domain.canonical_json(sync).decode()}",
                "LOGGING:",
                "  version: 1",
                "  formatters: {plain: {format: '%(asctime)s %(levelname)s %(name)s %(message)s'}}",
                "  handlers: {console: {class: logging.StreamHandler, formatter: plain}}",
                "  root: {level: INFO, handlers: [console]}",
                "",
            ]
        )
        path = self.dir / f"{service}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    def start(self, service: str) -> None:
        target = SYNC if service == "sync" else DOUBLES[service]
        config = self.config(service)
        env = {**os.environ, "PYTHONWARNINGS": "ignore"}
        with (self.dir / f"{service}.log").open("ab") as log:
            self.processes[service] = subprocess.Popen(
                [NAMEKO, "run", "--config", str(config), target],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def healthy(self, service: str) -> bool:
        try:
            url = f"http://127.0.0.1:{self.ports[service]}/health"
            return requests.get(url, timeout=2).json().get("status") == "ok"
        except (requests.RequestException, ValueError):
            return False

    @contextmanager
    def rpc(self) -> Iterator[Any]:
        with ClusterRpcProxy({"AMQP_URI": self.uri(self.vhost)}, timeout=30) as proxy:
            yield proxy

    def metrics(self) -> str:
        return requests.get(f"http://127.0.0.1:{self.ports['sync']}/metrics", timeout=5).text

    def log_tail(self, service: str, lines: int = 15) -> str:
        path = self.dir / f"{service}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


class Network:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.prefix = f"test-sync-{uuid.uuid4().hex[:6]}-"
        self.link = LinkProxy(5672)
        self.sites = {code: Site(self, code, tier, up) for code, tier, up in SITES}

    def __getitem__(self, code: str) -> Site:
        return self.sites[code]

    def provision(self) -> None:
        def one(site: Site) -> None:
            upstream = self.sites[site.upstream].vhost if site.upstream else None
            ensure_site(site.vhost, site.user, site.password, upstream)

        # rabbitmqctl takes about a second a call: provision the sites side by side
        with ThreadPoolExecutor(len(self.sites)) as pool:
            list(pool.map(one, self.sites.values()))

    def start(self) -> None:
        self.link.restore()
        for site in self.sites.values():
            for service in (*DOUBLES, "sync"):
                site.start(service)
        wait_for(
            lambda: all(s.healthy(x) for s in self.sites.values() for x in s.processes),
            90,
            "every process healthy",
            self.tails,
        )

    def tails(self) -> str:
        return "\n".join(
            f"--- {s.code} {x}\n{s.log_tail(x)}" for s in self.sites.values() for x in s.processes
        )

    def stop(self) -> None:
        processes = [p for s in self.sites.values() for p in s.processes.values()]
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 20
        for process in processes:
            try:
                process.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.link.cut()

    def cleanup(self) -> None:
        def one(site: Site) -> None:
            rabbitmqctl("delete_vhost", site.vhost)
            rabbitmqctl("delete_user", site.user)

        with ThreadPoolExecutor(len(self.sites)) as pool:
            list(pool.map(one, self.sites.values()))


def wait_for(
    check: Callable[[], Any], timeout: float, what: str, detail: Callable[[], str] = str
) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}\n{detail()}")


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    network = Network(tmp_path_factory.mktemp("sync-network"))
    network.provision()
    try:
        network.start()
        yield network
    finally:
        network.stop()
        network.cleanup()


def held(site: Site, feed: str, prefix: str) -> dict[str, int]:
    with site.rpc() as rpc:
        return {k: v for k, v in rpc.rating.versions(feed).items() if k.startswith(prefix)}


def catalog(site: Site, matter_id: str) -> dict[str, Any] | None:
    with site.rpc() as rpc:
        found: dict[str, Any] | None = rpc.matters.get("catalog", matter_id)
    return found


def status(site: Site) -> dict[str, Any]:
    with site.rpc() as rpc:
        answer: dict[str, Any] = rpc.sync.status()
    return answer


def test_1_evaluations_made_while_the_link_is_cut_reach_national_once(net):
    prefix = f"{VILLAGE}-cut"
    net.link.cut()
    with net[VILLAGE].rpc() as village:
        village.rating.seed("evaluations", 1000, prefix)
    up = wait_for(
        lambda: (
            (s := status(net[VILLAGE])["up"]["rating.evaluations"])["last_error_reason"]
            == "unreachable"
            and s["backlog"] >= 1000
            and s
        ),
        20,
        "the village to report the cut link",
    )
    assert up["oldest_unsent_age_seconds"] >= 0
    assert held(net[TOWN], "evaluations", prefix) == {}

    net.link.restore()
    arrived = wait_for(
        lambda: len(h := held(net[NATIONAL], "evaluations", prefix)) == 1000 and h,
        60,
        "1,000 evaluations at national",
        net.tails,
    )
    assert set(arrived.values()) == {1}  # each once, unchanged (versions() refuses duplicates)
    for code in (TOWN, COUNTY):
        assert len(held(net[code], "evaluations", prefix)) == 1000
    after = status(net[VILLAGE])["up"]["rating.evaluations"]
    assert after["backlog"] == 0
    assert after["last_success"] > after["last_error_at"]
    assert 'hall_sync_errors_total{direction="up",reason="unreachable"' in net[VILLAGE].metrics()


def unacknowledged(vhost: str, queue: str = "rpc-sync") -> int:
    """Messages RabbitMQ has delivered to the queue's consumer and not yet had acked."""
    listing = subprocess.run(
        ["rabbitmqctl", "-q", "list_queues", "-p", vhost, "name", "messages_unacknowledged"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    counts = dict(line.split("\t") for line in listing.splitlines() if "\t" in line)
    return int(counts.get(queue, 0))


def test_2_kill_9_of_the_town_sync_mid_batch_loses_and_doubles_nothing(net):
    total = 20000
    prefix = f"{VILLAGE}-kill"
    town = net[TOWN]
    sync = town.processes["sync"]
    with net[VILLAGE].rpc() as village:
        village.rating.seed("evaluations", total, prefix)
    wait_for(lambda: len(held(town, "evaluations", prefix)) > 0, 30, "the drain to start")
    # Freeze the town's sync and look: Nameko acks an RPC only after the worker finished, so
    # an unacknowledged ingest means a batch is in the middle of being applied. Then kill -9.
    for _ in range(20):
        os.kill(sync.pid, signal.SIGSTOP)
        if unacknowledged(town.vhost) > 0:
            break
        os.kill(sync.pid, signal.SIGCONT)
        time.sleep(0.03)
    else:
        pytest.fail("never caught the town's sync in the middle of a batch")
    sync.send_signal(signal.SIGKILL)
    sync.wait()
    assert len(held(town, "evaluations", prefix)) < total
    town.start("sync")
    arrived = wait_for(
        lambda: len(h := held(net[NATIONAL], "evaluations", prefix)) == total and h,
        90,
        f"{total:,} evaluations at national after the restart",
        net.tails,
    )
    assert set(arrived.values()) == {1}  # once each (versions() refuses an id seen twice)
    assert len(held(town, "evaluations", prefix)) == total
    wait_for(lambda: status(net[VILLAGE])["up"]["rating.evaluations"]["backlog"] == 0, 20, "drain")


def test_3_the_same_batch_delivered_twice_changes_nothing_upstream(net):
    prefix = f"{VILLAGE}-twice"
    village, town = net[VILLAGE], net[TOWN]
    with village.rpc() as rpc:
        rpc.rating.seed("evaluations", 50, prefix)
        rpc.sync.push_now()
        doc = rpc.rating.get("evaluations", f"{prefix}-0")
    with town.rpc() as rpc:
        top = rpc.rating.feed("evaluations", 0, 1)["high_water"]
        batch = domain.sign(
            {
                "schema": 1,
                "child": VILLAGE,
                "service": "rating",
                "feed": "evaluations",
                "from_seq": 0,
                "to_seq": doc["_seq"],
                "records": [domain.mask_record(doc)],
            },
            village.key,
        )
        replies = [rpc.sync.ingest(batch), rpc.sync.ingest(batch)]
        assert [r["applied"] for r in replies] == [0, 0]
        assert rpc.rating.feed("evaluations", 0, 1)["high_water"] == top
    # A lost checkpoint at the village: everything is sent again, and nothing changes.
    store = open_store(f"sqlite:///{village.dir / 'data'}", "sync")
    store.collection("checkpoints").update("up:rating.evaluations", {"seq": 0})
    store.close()
    with village.rpc() as rpc:
        result = rpc.sync.push_now()["results"]["up:rating.evaluations"]
    assert result["ok"]
    with town.rpc() as rpc:
        assert rpc.rating.feed("evaluations", 0, 1)["high_water"] == top
    assert result["checkpoint"] >= doc["_seq"]


def test_4_forged_batches_are_refused_counted_and_store_nothing(net):
    village, town = net[VILLAGE], net[TOWN]
    record = {
        "id": f"{VILLAGE}-forged",
        "schema": 1,
        "version": 1,
        "site_code": VILLAGE,
        "level": "非常满意",
        "created_at": "2026-11-22T08:00:00Z",
    }
    other = {**record, "id": "421302101202-forged", "site_code": "421302101202"}
    base = {"schema": 1, "child": VILLAGE, "service": "rating", "feed": "evaluations"}
    with town.rpc() as rpc:
        top = rpc.rating.feed("evaluations", 0, 1)["high_water"]
        mark = rpc.sync.status()["children"][VILLAGE]["rating.evaluations"]["high_water"]
        span = {"from_seq": mark, "to_seq": mark + 10**6}
        wrong_key = domain.sign({**base, **span, "records": [record]}, secrets.token_hex(16))
        other_village = domain.sign({**base, **span, "records": [record, other]}, village.key)
        for batch in (wrong_key, other_village):
            with pytest.raises(Forbidden):
                rpc.sync.ingest(batch)
        assert rpc.rating.get("evaluations", record["id"]) is None
        assert rpc.rating.get("evaluations", other["id"]) is None
        assert rpc.rating.feed("evaluations", 0, 1)["high_water"] == top
        after = rpc.sync.status()["children"][VILLAGE]["rating.evaluations"]["high_water"]
        assert after == mark
    metrics = town.metrics()
    assert (
        'hall_sync_refused_total{reason="bad_signature",service="sync",site="421302101"} 1.0'
        in (metrics)
    )
    assert (
        'hall_sync_refused_total{reason="foreign_origin",service="sync",site="421302101"} 1.0'
        in (metrics)
    )
    # On the town's broker the village's user reaches sync only.
    config = {"AMQP_URI": village.uri(town.vhost)}
    with ClusterRpcProxy(config, timeout=10) as rpc:
        assert rpc.sync.site_info()["site_code"] == TOWN
        with pytest.raises(Exception, match=r"ACCESS_REFUSED|access to topic"):
            rpc.rating.count("evaluations")


def test_5_a_matter_published_while_the_village_is_offline_arrives_with_its_version(net):
    matter = {
        "id": "1100000100-v",
        "matter_code": "1100000100",
        "title": "城乡居民养老保险参保登记",
    }
    net.link.cut()
    try:
        with net[COUNTY].rpc() as county:
            county.matters.put("catalog", [{**matter, "state": "published"}])
            county.matters.put("catalog", [{"id": matter["id"], "title": "城乡居民养老保险参保"}])
        wait_for(
            lambda: (m := catalog(net[TOWN], matter["id"])) and m["version"] == 2,
            20,
            "the town to have version 2",
        )
        time.sleep(1.5)
        assert catalog(net[VILLAGE], matter["id"]) is None
    finally:
        net.link.restore()
    copy = wait_for(
        lambda: (m := catalog(net[VILLAGE], matter["id"])) and m["version"] == 2 and m,
        30,
        "the matter at the village",
    )
    assert copy["title"] == "城乡居民养老保险参保"
    assert copy["state"] == "published"
    down = status(net[VILLAGE])["down"]["matters.catalog"]
    assert down["backlog"] == 0


def test_6_a_rectification_progressing_at_the_village_ends_newest_upstream(net):
    case_id = f"{VILLAGE}-case-{uuid.uuid4().hex[:6]}"
    today = date.today()
    with net[VILLAGE].rpc() as village:
        village.rating.put("cases", [{"id": case_id, "state": "open", "level": "不满意"}])

    def national_case() -> dict[str, Any] | None:
        with net[NATIONAL].rpc() as national:
            found: dict[str, Any] | None = national.rating.get("cases", case_id)
        return found

    first = wait_for(national_case, 30, "the case at national")
    assert first["state"] == "open"
    assert first["version"] == 1
    due = (today + timedelta(days=7)).isoformat()
    with net[VILLAGE].rpc() as village:
        village.rating.put("cases", [{"id": case_id, "state": "rectifying", "due": due}])
        village.rating.put("cases", [{"id": case_id, "state": "rectified"}])
    final = wait_for(
        lambda: (c := national_case()) and c["version"] == 3 and c, 30, "version 3 at national"
    )
    assert final["state"] == "rectified"
    assert final["due"] == due
    # every tier reports its exchanges in sync.status()
    for code in (VILLAGE, TOWN, COUNTY):
        up = status(net[code])["up"]["rating.cases"]
        assert up["last_success"] is not None
    assert VILLAGE in status(net[TOWN])["children"]
    assert COUNTY in status(net[NATIONAL])["children"]
