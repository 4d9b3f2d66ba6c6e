"""The six scenarios of issue 6 on the real services, in real ``nameko run`` processes, over
real RabbitMQ.

Four sites (national 000000 ← county 421302 ← town 421302101 ← village 421302101201),
provisioned like the demo (``services.hallctl.broker.ensure_site``: a vhost and a user per
site; on its upstream's vhost a child's user may publish only to ``sync.*``). Every site runs
the real ``services.rating.service``, ``services.matters.service`` and
``services.sync.service``, each configured the way services/hallctl/topology.py configures
the demo (its own YAML with SITE, STORE_URI, UPSTREAM_AMQP_URI and the SYNC section; the
county is the catalog source). The sites are provisioned side by side, each starting its
services as soon as its own vhost and user exist. The queue service is not started (no
scenario needs it), so sync pushes only rating's and matters' feeds.

Records are made only through the services' public RPCs (``rating.submit_evaluation``, the
case RPCs ``assign_case`` … ``record_feedback``, ``matters.save_matter_draft`` /
``approve_matter_change`` / ``publish_matter`` at the county, ``matters.submit_application``
at the village) and checked upstream through public RPCs: ``rating.feed`` (each id once,
with its version), ``rating.stats`` (the rollups count every record once),
``rating.get_evaluation`` / ``get_case``, ``matters.get_matter``, ``matters.feed``,
``sync.status`` / ``sync.ingest`` and ``/metrics``. The village reaches the town's broker
through a real TCP proxy (tests/system/linkproxy.py) the tests cut and restore.
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
from contextlib import contextmanager, suppress
from datetime import datetime, timedelta
from importlib.resources import files
from pathlib import Path
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import kombu.pools
import pytest
import requests
import yaml

import services.common.remote  # noqa: F401  (typed remote errors, whatever ran before)
from services.common.calendar import load_calendar
from services.common.errors import Forbidden, NotFound
from services.common.store import open_store
from services.hallctl.broker import ensure_site
from services.hallctl.showcase import demo_id_number
from services.sync import domain
from services.sync.adapters.upstream import UplinkRpcProxy
from tests.conftest import access_key_file, free_port, operator_rpc, rabbitmqctl, wait_for
from tests.system.linkproxy import LinkProxy

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
SERVICES = ("rating", "matters", "sync")
UPWARD = [
    {"service": "rating", "feed": "evaluations"},
    {"service": "rating", "feed": "cases"},
    {"service": "matters", "feed": "application_summaries"},
    {"service": "matters", "feed": "proxy_requests"},
]
ZONE = ZoneInfo("Asia/Shanghai")  # rating's default timezone: the day an evaluation counts on


class Site:
    def __init__(self, net: Network, code: str, tier: str, upstream: str | None) -> None:
        self.net, self.code, self.tier, self.upstream = net, code, tier, upstream
        self.vhost = f"{net.prefix}{code}"
        self.user = f"{net.prefix}site-{code}"
        self.password = secrets.token_urlsafe(12)
        self.key = secrets.token_hex(16)
        self.dir = net.root / code
        self.ports = {service: free_port() for service in SERVICES}
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def uri(self, vhost: str, port: int = 5672) -> str:
        return f"pyamqp://{quote(self.user, safe='')}:{self.password}@127.0.0.1:{port}/{vhost}"

    def section(self, service: str) -> dict[str, Any]:
        """The service's own section, as topology.service_section builds it for the demo,
        with sync paced for a test (short intervals and backoff)."""
        if service != "sync":
            return {}
        children = [s for s in self.net.sites.values() if s.upstream == self.code]
        sync: dict[str, Any] = {
            "children": {child.code: [child.key] for child in children},
            "upward": UPWARD,
            "batch_size": 100,
            "rpc_timeout": 5,
            "local_timeout": 5,
            "push_interval": 0.5,
            "pull_interval": 1,
            "backoff_base": 0.2,
            "backoff_cap": 2,
            "reconcile_interval": 3600,
        }
        if self.upstream:
            sync["key"] = self.key
        return {"SYNC": sync}

    def config(self, service: str) -> Path:
        upstream = self.net.sites[self.upstream] if self.upstream else None
        upstream_uri = ""
        if upstream is not None:
            port = self.net.link.port if self.code == VILLAGE else 5672
            upstream_uri = self.uri(upstream.vhost, port)
        config = {
            "AMQP_URI": self.uri(self.vhost),
            "WEB_SERVER_ADDRESS": f"127.0.0.1:{self.ports[service]}",
            "SITE": {
                "code": self.code,
                "tier": self.tier,
                "name": f"测试{self.code}",
                "upstream": self.upstream or "",
            },
            "UPSTREAM_AMQP_URI": upstream_uri,
            "STORE_URI": f"sqlite:///{self.dir / 'data'}",
            "ACCESS_KEY_FILE": str(access_key_file()),
            **self.section(service),
            "LOGGING": {
                "version": 1,
                "formatters": {
                    "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}
                },
                "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
                "root": {"level": "INFO", "handlers": ["console"]},
            },
        }
        path = self.dir / f"{service}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        if self.net.calendar_override:
            config["CALENDAR_OVERRIDE"] = self.net.calendar_override
        path.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False))
        return path

    def start(self, service: str) -> None:
        config = self.config(service)
        env = {**os.environ, "PYTHONWARNINGS": "ignore"}
        with (self.dir / f"{service}.log").open("ab") as log:
            self.processes[service] = subprocess.Popen(
                [NAMEKO, "run", "--config", str(config), f"services.{service}.service"],
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
            answer: dict[str, Any] = requests.get(url, timeout=2).json()
            return answer.get("status") == "ok"
        except (requests.RequestException, ValueError):
            return False

    @contextmanager
    def rpc(self) -> Iterator[Any]:
        with operator_rpc(self.uri(self.vhost), timeout=30) as proxy:
            yield proxy

    def metrics(self, service: str = "sync") -> str:
        url = f"http://127.0.0.1:{self.ports[service]}/metrics"
        return requests.get(url, timeout=5).text

    def log_tail(self, service: str, lines: int = 15) -> str:
        path = self.dir / f"{service}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


class Network:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.prefix = f"test-sync-{uuid.uuid4().hex[:6]}-"
        self.link = LinkProxy(5672)
        self.calendar_override = calendar_override(root)
        self.sites = {code: Site(self, code, tier, up) for code, tier, up in SITES}

    def __getitem__(self, code: str) -> Site:
        return self.sites[code]

    def start(self) -> None:
        """Provision the sites side by side (rabbitmqctl calls are slow) and start each
        site's services as soon as its own vhost and user exist; then wait until every
        process of every site is healthy."""
        self.link.restore()

        def one(site: Site) -> None:
            upstream = self.sites[site.upstream].vhost if site.upstream else None
            ensure_site(site.vhost, site.user, site.password, upstream, site.code)
            for service in SERVICES:
                site.start(service)

        with ThreadPoolExecutor(len(self.sites)) as pool:
            list(pool.map(one, self.sites.values()))
        wait_for(
            lambda: all(s.healthy(x) for s in self.sites.values() for x in s.processes),
            120,
            "every process healthy",
            self.tails,
        )

    def tails(self) -> str:
        return "\n".join(
            f"--- {s.code} {x}\n{s.log_tail(x)}" for s in self.sites.values() for x in s.processes
        )

    def stop(self) -> None:
        """A graceful stop of every process, killed after a grace period: a sync in the
        middle of a call to a service that already stopped (its parent's sync, its own
        rating) would otherwise wait out the call's timeout, and this network is thrown
        away."""
        processes = [p for s in self.sites.values() for p in s.processes.values()]
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 4
        for process in processes:
            try:
                process.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.link.close()

    def cleanup(self) -> None:
        def one(site: Site) -> None:
            for args in (("delete_vhost", site.vhost), ("delete_user", site.user)):
                with suppress(subprocess.CalledProcessError):  # never provisioned
                    rabbitmqctl(*args)

        with ThreadPoolExecutor(len(self.sites)) as pool:
            list(pool.map(one, self.sites.values()))


def calendar_override(root: Path) -> str:
    """CALENDAR_OVERRIDE for the services: the operator's (environment), else, when the
    holiday data lacks next year (late December: case deadlines run into it), a TEST
    schedule for next year with weekends only, so rating can open cases; else none."""
    configured = os.environ.get("CALENDAR_OVERRIDE", "")
    next_year = datetime.now(ZONE).year + 1
    if configured or load_calendar(None).covers(next_year):
        return configured
    path = root / "calendar-test.yaml"
    path.write_text(yaml.safe_dump({next_year: {"holidays": [], "workdays": []}}))
    return str(path)


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    network = Network(tmp_path_factory.mktemp("sync-network"))
    try:
        network.start()
        yield network
    finally:
        network.stop()
        network.cleanup()
        # Close this process's pooled publisher connections to the deleted vhosts (Nameko's
        # standalone proxies publish through kombu's global pools).
        kombu.pools.reset()


# --- making records through the real services' RPCs ---------------------------------------


def evaluation(tag: str, n: int | str, level: str = "satisfied", **extra: Any) -> dict[str, Any]:
    """A pad rating of a service without invitation (``other``), at window ``tag``."""
    return {
        "service_ref": {"kind": "other", "id": f"{tag}-{n}"},
        "window": tag,
        "channel": "pad",
        "level": level,
        **extra,
    }


def evaluation_id(tag: str, n: int | str) -> str:
    return f"ev:{VILLAGE}:other:{tag}-{n}:1"  # recorded at the village


def submit(site: Site, evaluations: list[dict[str, Any]], in_flight: int = 40) -> list[Any]:
    """``rating.submit_evaluation`` for each, ``in_flight`` calls at a time; the stored ones."""
    stored: list[Any] = []
    with site.rpc() as rpc:
        for start in range(0, len(evaluations), in_flight):
            chunk = evaluations[start : start + in_flight]
            replies = [rpc.rating.submit_evaluation.call_async(e) for e in chunk]
            stored += [reply.result() for reply in replies]
    return stored


# --- looking upstream through the real services' RPCs -------------------------------------


def high_water(site: Site, service: str = "rating", feed: str = "evaluations") -> int:
    with site.rpc() as rpc:
        return int(getattr(rpc, service).feed(feed, 0, 1)["high_water"])


def records(
    site: Site,
    keep: Callable[[dict[str, Any]], bool],
    service: str = "rating",
    feed: str = "evaluations",
    since: int = 0,
) -> dict[str, dict[str, Any]]:
    """The records of a site's published feed that ``keep`` selects, by id, read page by page
    with ``<service>.feed``; fails if an id is in the feed twice."""
    found: dict[str, dict[str, Any]] = {}
    with site.rpc() as rpc:
        while items := getattr(rpc, service).feed(feed, since, 5000)["items"]:
            for doc in items:
                if keep(doc):
                    assert doc["id"] not in found, f"{doc['id']} twice in {site.code}'s {feed}"
                    found[doc["id"]] = doc
            since = items[-1]["_seq"]
    return found


def held(site: Site, tag: str, since: int = 0) -> dict[str, int]:
    """Version by id of the evaluations at window ``tag`` this site holds."""
    found = records(site, lambda doc: doc.get("window") == tag, since=since)
    return {doc_id: doc["version"] for doc_id, doc in found.items()}


def counted(site: Site, tag: str) -> dict[str, Any]:
    """``rating.stats`` at ``site`` of the village's window ``tag`` (from the rollups)."""
    today = datetime.now(ZONE).date()
    span = {"date_from": (today - timedelta(days=1)).isoformat(), "date_to": today.isoformat()}
    with site.rpc() as rpc:
        total: dict[str, Any] = rpc.rating.stats({"site_code": VILLAGE, "window": tag, **span})[
            "total"
        ]
    return total


def status(site: Site) -> dict[str, Any]:
    with site.rpc() as rpc:
        answer: dict[str, Any] = rpc.sync.status()
    return answer


def metric(text: str, prefix: str) -> float | None:
    """The value of the first series whose line starts with ``prefix``."""
    for line in text.splitlines():
        if line.startswith(prefix):
            return float(line.rsplit(" ", 1)[1])
    return None


def matter_or_none(site: Site, code: str, version: int | None = None) -> dict[str, Any] | None:
    with site.rpc() as rpc:
        try:
            found: dict[str, Any] = rpc.matters.get_matter(code, version)
        except NotFound:
            return None
    return found


def case_or_none(site: Site, case_id: str) -> dict[str, Any] | None:
    with site.rpc() as rpc:
        try:
            found: dict[str, Any] = rpc.rating.get_case(case_id)
        except NotFound:
            return None
    return found


# --- the scenarios ------------------------------------------------------------------------


def test_1_evaluations_made_while_the_link_is_cut_reach_national_once(net: Network) -> None:
    tag, total = "cut", 1000
    mark = high_water(net[NATIONAL])
    net.link.cut()
    stored = submit(net[VILLAGE], [evaluation(tag, n) for n in range(total)])
    assert len({doc["id"] for doc in stored}) == total
    up = wait_for(
        lambda: (
            (s := status(net[VILLAGE])["up"]["rating.evaluations"])["last_error_reason"]
            == "unreachable"
            and s["backlog"] >= total
            and s
        ),
        20,
        "the village to report the cut link",
    )
    assert up["oldest_unsent_age_seconds"] > 0
    assert counted(net[TOWN], tag)["total"] == 0

    net.link.restore()
    wait_for(
        lambda: counted(net[NATIONAL], tag)["total"] >= total,
        60,
        "1,000 evaluations counted at national",
        net.tails,
    )
    arrived = held(net[NATIONAL], tag, since=mark)
    assert set(arrived) == {doc["id"] for doc in stored}
    assert set(arrived.values()) == {1}  # each once (records() refuses an id seen twice)
    figures = counted(net[NATIONAL], tag)
    assert figures["total"] == total  # the rollups counted each one once
    assert figures["counts"]["satisfied"] == total
    for code in (TOWN, COUNTY):
        assert counted(net[code], tag)["total"] == total
        assert len(held(net[code], tag)) == total
    after = status(net[VILLAGE])["up"]["rating.evaluations"]
    assert after["backlog"] == 0
    assert after["last_success"] > after["last_error_at"]
    errors = metric(
        net[VILLAGE].metrics(), 'hall_sync_errors_total{direction="up",reason="unreachable"'
    )
    assert errors is not None
    assert errors >= 1


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


def test_2_kill_9_of_the_town_sync_mid_batch_loses_and_doubles_nothing(net: Network) -> None:
    tag, total = "kill", 1500
    village, town = net[VILLAGE], net[TOWN]
    mark = high_water(net[NATIONAL])
    # A backlog made while the link is cut, so the town receives it as a run of batches.
    net.link.cut()
    stored = submit(village, [evaluation(tag, n) for n in range(total)])
    net.link.restore()
    wait_for(lambda: counted(town, tag)["total"] > 0, 30, "the drain to start", net.tails)
    # Freeze the town's sync and look: Nameko acks an RPC only after the worker finished, so
    # an unacknowledged ingest means a batch is in the middle of being applied. Then kill -9.
    sync = town.processes["sync"]
    deadline = time.monotonic() + 10
    while True:
        os.kill(sync.pid, signal.SIGSTOP)
        if unacknowledged(town.vhost) > 0:
            break
        os.kill(sync.pid, signal.SIGCONT)
        if time.monotonic() > deadline:
            pytest.fail("never caught the town's sync in the middle of a batch")
        time.sleep(0.03)
    sync.send_signal(signal.SIGKILL)
    sync.wait()
    assert counted(town, tag)["total"] < total
    town.start("sync")
    wait_for(
        lambda: counted(net[NATIONAL], tag)["total"] >= total,
        90,
        f"{total:,} evaluations counted at national after the restart",
        net.tails,
    )
    arrived = held(net[NATIONAL], tag, since=mark)
    assert set(arrived) == {doc["id"] for doc in stored}
    assert set(arrived.values()) == {1}  # once each (records() refuses an id seen twice)
    assert counted(net[NATIONAL], tag)["total"] == total  # counted once each, too
    assert counted(town, tag)["total"] == total
    assert len(held(town, tag)) == total
    wait_for(lambda: status(village)["up"]["rating.evaluations"]["backlog"] == 0, 20, "drain")


def test_3_the_same_batch_delivered_twice_changes_nothing_upstream(net: Network) -> None:
    tag, total = "twice", 50
    village, town = net[VILLAGE], net[TOWN]
    submit(village, [evaluation(tag, n) for n in range(total)])
    with village.rpc() as rpc:
        rpc.sync.push_now()  # returns once the town has made the pushed batches durable
    doc = records(village, lambda d: d["id"] == evaluation_id(tag, 0))[evaluation_id(tag, 0)]
    assert counted(town, tag)["total"] == total
    top = high_water(town)
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
    with town.rpc() as rpc:
        replies = [rpc.sync.ingest(batch), rpc.sync.ingest(batch)]
    assert [(r["stored"], r["applied"], r["rejected"]) for r in replies] == [(1, 0, [])] * 2
    assert high_water(town) == top
    assert counted(town, tag)["total"] == total
    # A lost checkpoint at the village: everything is sent again, and nothing changes.
    store = open_store(f"sqlite:///{village.dir / 'data'}", "sync")
    store.collection("checkpoints").update("up:rating.evaluations", {"seq": 0})
    store.close()
    with village.rpc() as rpc:
        result = rpc.sync.push_now()["results"]["up:rating.evaluations"]
    assert result["ok"]
    assert result["checkpoint"] >= doc["_seq"]
    assert high_water(town) == top
    assert counted(town, tag)["total"] == total


def village_mark(town_rpc: Any) -> int:
    """The high-water mark the town holds for the village's evaluations (0 before any)."""
    children = town_rpc.sync.status()["children"]
    return int(children.get(VILLAGE, {}).get("rating.evaluations", {}).get("high_water", 0))


def test_4_forged_batches_are_refused_and_a_poison_record_is_rejected_alone(net: Network) -> None:
    tag = "forged"
    village, town = net[VILLAGE], net[TOWN]
    net.link.cut()  # the real record stays at the village until the link is restored below
    try:
        [stored] = submit(village, [evaluation(tag, 0)])
        real = domain.mask_record(records(village, lambda d: d["id"] == stored["id"])[stored["id"]])
        other = {**real, "id": evaluation_id(tag, "other"), "site_code": "421302101202"}
        base = {"schema": 1, "child": VILLAGE, "service": "rating", "feed": "evaluations"}
        top = high_water(town)
        with town.rpc() as rpc:
            mark = village_mark(rpc)
            span = {"from_seq": mark, "to_seq": mark + 10**6}
            wrong_key = domain.sign({**base, **span, "records": [real]}, secrets.token_hex(16))
            other_village = domain.sign({**base, **span, "records": [real, other]}, village.key)
            for batch in (wrong_key, other_village):
                with pytest.raises(Forbidden):
                    rpc.sync.ingest(batch)
            for doc_id in (real["id"], other["id"]):
                with pytest.raises(NotFound):
                    rpc.rating.get_evaluation(doc_id)
            assert rpc.rating.feed("evaluations", 0, 1)["high_water"] == top
            assert village_mark(rpc) == mark

            # Poison: in a batch signed with the village's key, a record the town's rating
            # cannot count (a level it does not know, as from a newer village version) is
            # rejected alone; the real record beside it is stored.
            poison = {**real, "id": evaluation_id(tag, "newer"), "level": "extremely_satisfied"}
            resend = {**base, "from_seq": 0, "to_seq": 0, "resend": True}
            reply = rpc.sync.ingest(domain.sign({**resend, "records": [real, poison]}, village.key))
            assert (reply["stored"], reply["applied"]) == (1, 1)
            assert [(r["id"], r["version"]) for r in reply["rejected"]] == [(poison["id"], 1)]
            assert "无法计入统计" in reply["rejected"][0]["reason"]
            assert rpc.rating.get_evaluation(real["id"])["level"] == "satisfied"
            with pytest.raises(NotFound):
                rpc.rating.get_evaluation(poison["id"])
            assert village_mark(rpc) == mark  # a resend moves no mark
    finally:
        net.link.restore()
    # The town's rating keeps counting (the poison record never reached its rollups).
    assert counted(town, tag)["total"] == 1
    assert town.processes["rating"].poll() is None
    assert town.healthy("rating")
    metrics = town.metrics()
    for reason in ("bad_signature", "foreign_origin"):
        line = f'hall_sync_refused_total{{reason="{reason}",service="sync",site="{TOWN}"}}'
        assert metric(metrics, line) == 1.0
    rejected = 'hall_sync_rejected_records_total{feed="rating.evaluations",service="sync"'
    assert metric(metrics, rejected) == 1.0
    # The village's own push of the real record, once the link is back, is a no-op at the
    # town and the record travels on to national once.
    wait_for(lambda: counted(net[NATIONAL], tag)["total"] == 1, 30, "the real record at national")
    assert held(net[NATIONAL], tag) == {real["id"]: 1}
    assert counted(town, tag)["total"] == 1
    # On the town's broker the village's user reaches sync's uplink calls only, through its
    # own client (its reply queue carries its code; tests/system/test_access.py for more).
    with UplinkRpcProxy(village.uri(town.vhost), VILLAGE, timeout=10) as rpc:
        assert rpc.sync.site_info()["site_code"] == TOWN
        with pytest.raises(Exception, match=r"ACCESS_REFUSED|access to topic"):
            rpc.rating.stats()


def seed_matter(code: str) -> dict[str, Any]:
    """A matter of the shipped demo catalog (services/matters/seed/catalog.yaml)."""
    text = files("services.matters").joinpath("seed/catalog.yaml").read_text("utf-8")
    matter: dict[str, Any] = next(m for m in yaml.safe_load(text)["matters"] if m["code"] == code)
    return matter


def test_5_a_matter_published_while_the_village_is_offline_arrives_with_its_version(
    net: Network,
) -> None:
    # 城乡居民基本养老保险参保登记: a 即办件 handled at county and town, proxy-handled (代办) at
    # villages.
    matter = seed_matter("2000021001421302001")
    code, renamed = matter["code"], "城乡居民养老保险参保登记"
    village, town = net[VILLAGE], net[TOWN]
    net.link.cut()
    try:
        with net[COUNTY].rpc() as county:
            for name in (matter["name"], renamed):
                county.matters.save_matter_draft({**matter, "name": name})
                county.matters.approve_matter_change(code, "county-catalog-chief")
                published = county.matters.publish_matter(code)
        assert (published["matter_version"], published["name"]) == (2, renamed)
        wait_for(
            lambda: (m := matter_or_none(town, code)) and m["matter_version"] == 2,
            20,
            "the town to have version 2",
        )
        time.sleep(1.5)  # several catalog pulls of the village fail meanwhile
        assert matter_or_none(village, code) is None
    finally:
        net.link.restore()
    copy = wait_for(
        lambda: (m := matter_or_none(village, code)) and m["matter_version"] == 2 and m,
        30,
        "the matter at the village",
    )
    assert (copy["name"], copy["status"]) == (renamed, "published")
    assert copy["availability"] == "proxy_only"
    first = matter_or_none(village, code, 1)
    assert first is not None
    assert (first["matter_version"], first["name"]) == (1, matter["name"])
    assert status(village)["down"]["matters.catalog"]["backlog"] == 0
    # The village forwards an application under the version it received (代办: the town
    # handles this matter); its summary (no name, no ID number) goes up to national with
    # that version, once the town's outcome came back.
    with village.rpc() as rpc:
        application = rpc.matters.submit_application(
            {
                "matter_code": code,
                "applicant": {"kind": "person", "name": "测试群众", "id_number": demo_id_number()},
                "channel": "proxy",
                "materials": [{"name": m["name"]} for m in copy["materials"] if m["required"]],
                "window": "1",
                "staff_id": "village-clerk",
            }
        )
    assert (application["state"], application["matter_version"]) == ("forwarded", 2)
    summary = wait_for(
        lambda: (
            (s := summary_at(net[NATIONAL], application["id"])) and s["state"] == "completed" and s
        ),
        30,
        "the application summary at national",
        net.tails,
    )
    assert (summary["site_code"], summary["matter_code"]) == (VILLAGE, code)
    assert (summary["matter_version"], summary["matter_name"]) == (2, renamed)
    assert summary["state"] == "completed"
    assert not {"applicant", "id_number", "name", "phone"} & set(summary)
    assert summary["handled_by"] == TOWN


def summary_at(site: Site, app_id: str) -> dict[str, Any] | None:
    found = records(
        site, lambda doc: doc["id"] == app_id, service="matters", feed="application_summaries"
    )
    return found.get(app_id)


def application_or_none(site: Site, app_id: str) -> dict[str, Any] | None:
    with site.rpc() as rpc:
        try:
            found: dict[str, Any] = rpc.matters.get_application(app_id)
        except NotFound:
            return None
    return found


def state_at(site: Site, app_id: str) -> str | None:
    found = application_or_none(site, app_id)
    return None if found is None else str(found["state"])


def test_6_a_rectification_progressing_at_the_village_ends_newest_upstream(net: Network) -> None:
    tag = "case"
    village, national = net[VILLAGE], net[NATIONAL]
    bad = evaluation(
        tag,
        0,
        level="dissatisfied",
        reasons={"tags": ["等候时间长"], "text": "排队一个多小时"},
        rater={"real_name": True, "phone": "13800001234"},
    )
    [rated] = submit(village, [bad])
    case_id = rated["case_id"]
    assert case_id is not None

    first = wait_for(lambda: case_or_none(national, case_id), 30, "the case at national")
    assert first["state"] == "callback_pending"
    assert first["recorded_at_site"] == VILLAGE
    handler = "village-clerk"
    with village.rpc() as rpc:
        steps = (
            ("assign_case", {"handler": handler, "by": "village-chief"}),
            ("record_callback", {"by": handler, "contacted": True, "note": "已回访，情况属实"}),
            ("classify_case", {"by": handler, "classification": "fix_now", "note": "立行立改"}),
            ("record_rectification", {"by": handler, "measures": "高峰时段增开代办窗口"}),
            ("record_feedback", {"by": handler, "method": "phone", "content": "已告知整改结果"}),
        )
        for method, payload in steps:
            final = getattr(rpc.rating, method)({"case_id": case_id, **payload})
    assert final["state"] == "closed"
    assert final["version"] > first["version"]
    arrived = wait_for(
        lambda: (
            (c := case_or_none(national, case_id))
            and c["version"] == final["version"]
            and c["evaluation"] is not None  # the evaluation travels in its own feed
            and c
        ),
        30,
        f"version {final['version']} at national",
        net.tails,
    )
    assert arrived["state"] == "closed"
    assert (arrived["handler"], arrived["on_time"]) == (handler, True)
    assert [s["step"] for s in arrived["steps"]] == [s["step"] for s in final["steps"]]
    # The rollups at national hold the newest state once: one case, closed; one bad rating.
    figures = counted(national, tag)
    assert (figures["cases"], figures["cases_closed"], figures["bad"]) == (1, 1, 1)
    assert (figures["real_name_bad"], figures["rectification_rate"]) == (1, 1.0)
    # Only the masked phone left the village.
    upstream = arrived["evaluation"]
    assert upstream["rater"] == {
        "real_name": True,
        "phone_masked": "138****1234",
        "name_masked": None,
    }
    assert "13800001234" not in str(upstream)
    # every tier reports its exchanges in sync.status()
    for code in (VILLAGE, TOWN, COUNTY):
        up = status(net[code])["up"]["rating.cases"]
        assert up["last_success"] is not None
    assert VILLAGE in status(net[TOWN])["children"]
    assert COUNTY in status(national)["children"]


CHRONIC = "0700022003421302001"  # 门诊慢特病待遇认定: 承诺件, county only; 代办 below


def test_7_a_proxy_application_village_to_county_survives_the_link_cut_both_ways(
    net: Network,
) -> None:
    village, town, county = net[VILLAGE], net[TOWN], net[COUNTY]
    tag = "proxy7"
    with county.rpc() as rpc:  # published at the county, the catalog source
        rpc.matters.save_matter_draft(seed_matter(CHRONIC))
        rpc.matters.approve_matter_change(CHRONIC, "county-catalog-chief")
        rpc.matters.publish_matter(CHRONIC)
    matter = wait_for(lambda: matter_or_none(village, CHRONIC), 30, "the matter at the village")
    required = [m["name"] for m in matter["materials"] if m["required"]]
    # Up: accepted at the village while its link is cut; nothing leaves until it is back.
    net.link.cut()
    try:
        with village.rpc() as rpc:
            forwarded = rpc.matters.submit_application(
                {
                    "matter_code": CHRONIC,
                    "applicant": {
                        "kind": "person",
                        "name": "测试群众",
                        "id_number": demo_id_number(),
                    },
                    "channel": "proxy",
                    "materials": [{"name": name} for name in required[1:]],
                    "window": tag,
                    "staff_id": "village-clerk",
                }
            )
        app_id = forwarded["id"]
        assert (forwarded["state"], forwarded["handled_by"]) == ("forwarded", COUNTY)
        time.sleep(2)  # several pushes of the village fail meanwhile
        assert application_or_none(county, app_id) is None
    finally:
        net.link.restore()
    wait_for(lambda: state_at(county, app_id) == "supplement_required", 30, "the county copy")
    wait_for(lambda: state_at(village, app_id) == "supplement_required", 30, "the notice back")
    notice = got_application(village, app_id)["supplement_notice"]
    assert [item["name"] for item in notice["items"]] == required[:1]
    with village.rpc() as rpc:
        rpc.matters.supplement_application(app_id, [{"name": required[0]}])
    wait_for(lambda: state_at(county, app_id) == "accepted", 30, "accepted at the county")
    copy = got_application(county, app_id)
    assert copy["accepted_on"] == got_application(village, app_id)["received_on"]
    # Down: completed at the county while the village's link is cut; the outcome waits at
    # the town, and reaches the village once the link is back.
    with county.rpc() as rpc:
        rpc.matters.start_review(app_id)
        rpc.matters.decide_application(app_id, "approve")
    net.link.cut()
    try:
        with county.rpc() as rpc:
            rpc.matters.complete_application(app_id, None, "准予认定")

        def at_town() -> bool:
            found = records(town, lambda d: d["id"] == app_id, "matters", "proxy_outcomes")
            return bool(found) and found[app_id]["state"] == "completed"

        wait_for(at_town, 30, "the outcome at the town")
        time.sleep(2)  # several pulls of the village fail meanwhile
        assert state_at(village, app_id) != "completed"
    finally:
        net.link.restore()
    wait_for(lambda: state_at(village, app_id) == "completed", 30, "completed at the village")
    back = got_application(village, app_id)
    assert (back["result"], back["due_date"]) == ("准予认定", copy["due_date"])
    steps = [h["state"] for h in back["handling_history"]]
    assert steps == ["supplement_required", "accepted", "in_review", "approved", "completed"]
    # Rated at the village (一事一评), handed over there; counted once everywhere.
    with village.rpc() as rpc:
        wait_for(lambda: rpc.rating.pending_for_window(tag), 30, "the invitation at the village")
        rpc.rating.submit_evaluation(
            {
                "service_ref": {"kind": "application", "id": app_id},
                "window": tag,
                "channel": "pad",
                "level": "very_satisfied",
            }
        )
        rpc.matters.deliver_application(app_id, "window_pickup")
    final = wait_for(
        lambda: (s := summary_at(net[NATIONAL], app_id)) and s["state"] == "delivered" and s,
        30,
        "the delivered summary at national",
        net.tails,
    )
    assert (final["site_code"], final["handled_by"]) == (VILLAGE, COUNTY)
    wait_for(lambda: counted(net[NATIONAL], tag)["total"] == 1, 30, "the rating at national")
    for site in (town, county, net[NATIONAL]):
        found = records(site, lambda d: d["id"] == app_id, "matters", "application_summaries")
        assert list(found) == [app_id]  # one summary, the village's (records() fails on two)
        assert counted(site, tag)["total"] == 1
    with county.rpc() as rpc:
        assert not [
            i
            for i in rpc.matters.feed("evaluation_invitations", 0, 5000)["items"]
            if i["service_ref"]["id"] == app_id
        ]
    # What went up carried no name, no ID number, no phone.
    request = records(county, lambda d: d["id"] == app_id, "matters", "proxy_requests")
    assert request == {}  # kept at the county to handle, not passed on to national
    assert "测试群众" not in str(copy)
    assert demo_id_number() not in str(copy)


def got_application(site: Site, app_id: str) -> dict[str, Any]:
    found = application_or_none(site, app_id)
    assert found is not None, f"{app_id} at {site.code}"
    return found
