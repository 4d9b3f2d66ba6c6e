"""sync between real containers in this process: a county, a town and a village, each on
its own vhost with its own store, the local services being TEST DOUBLES of the feed
contracts (tests/system/test_sync_doubles.py). Pushes are driven with ``push_now``."""

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import eventlet
import pytest
import requests
from nameko.containers import ServiceContainer

from services.common.config import ConfigError
from services.common.errors import Forbidden, InvalidInput
from services.common.store import open_store
from services.sync import domain
from services.sync.provider import SyncProvider
from services.sync.service import SyncService
from tests.conftest import amqp_uri, free_port, operator_rpc, rabbitmqctl, site_config
from tests.service import helpers
from tests.system.linkproxy import LinkProxy
from tests.system.test_sync_doubles import DOUBLES

pytestmark = pytest.mark.service

# helpers.py is shared with other suites (and not annotated there yet)
wait_for = cast(Callable[..., Any], helpers.wait_for)

COUNTY, TOWN, VILLAGE, NEIGHBOUR = "421302", "421302101", "421302101201", "421302101202"
VILLAGE_KEY, VILLAGE_OLD_KEY, TOWN_KEY, NEIGHBOUR_KEY = "v" * 32, "o" * 32, "t" * 32, "n" * 32
QUIET: dict[str, Any] = {
    "push_interval": 3600,
    "pull_interval": 3600,
    "batch_size": 50,
    "rpc_timeout": 10,
}


def stop_all(containers: list[ServiceContainer]) -> None:
    """Stop sync first (it calls the others), then the rest; each group in parallel, since
    each container takes a second or two to wind down its consumers."""
    for group in (
        [c for c in containers if c.service_name == "sync"],
        [c for c in containers if c.service_name != "sync"],
    ):
        for thread in [eventlet.spawn(c.stop) for c in group]:
            thread.wait()


class Network:
    def __init__(self, vhost_factory: Callable[[str], str], data: Path) -> None:
        self.vhosts = {code: vhost_factory(f"sync-{code}") for code in (COUNTY, TOWN, VILLAGE)}
        self.ports = {code: free_port() for code in self.vhosts}
        self.data = data
        self.containers: list[ServiceContainer] = []

    def start(self, cls: type, config: dict[str, Any]) -> ServiceContainer:
        container = ServiceContainer(cls, config)
        container.start()
        self.containers.append(container)
        return container

    def site(
        self, code: str, tier: str, upstream: str | None, sync_section: dict[str, Any]
    ) -> None:
        up_vhost = self.vhosts.get(upstream) if upstream else None
        for cls in DOUBLES:
            self.start(
                cls,
                site_config(
                    self.vhosts[code], self.data, code, tier, upstream, up_vhost, port=free_port()
                ),
            )
        config = site_config(
            self.vhosts[code], self.data, code, tier, upstream, up_vhost, port=self.ports[code]
        )
        self.start(SyncService, {**config, "SYNC": {**QUIET, **sync_section}})

    @contextmanager
    def rpc(self, code: str) -> Iterator[Any]:
        with operator_rpc(amqp_uri(self.vhosts[code]), timeout=30) as proxy:
            yield proxy

    def metrics(self, code: str) -> str:
        return requests.get(f"http://127.0.0.1:{self.ports[code]}/metrics", timeout=5).text

    def stop(self) -> None:
        stop_all(self.containers)


@pytest.fixture(scope="module")
def net(
    vhost_factory: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Network]:
    network = Network(vhost_factory, tmp_path_factory.mktemp("sync"))
    network.site(COUNTY, "county", None, {"children": {TOWN: [TOWN_KEY]}})
    network.site(
        TOWN,
        "town",
        COUNTY,
        {
            "key": TOWN_KEY,
            "children": {VILLAGE: [VILLAGE_OLD_KEY, VILLAGE_KEY], NEIGHBOUR: [NEIGHBOUR_KEY]},
        },
    )
    network.site(VILLAGE, "village", TOWN, {"key": VILLAGE_KEY, "cycle_seconds": 1})
    yield network
    network.stop()


def push(net: Network, *codes: str) -> dict[str, Any]:
    results = {}
    for code in codes:
        with net.rpc(code) as rpc:
            results[code] = rpc.sync.push_now()
    return results


def evaluation(i: int, **extra: Any) -> dict[str, Any]:
    return {"id": f"{VILLAGE}-svc-{i}", "level": "满意", **extra}


def test_evaluations_travel_up_two_tiers_masked_and_once(net: Network) -> None:
    docs = [evaluation(i) for i in range(120)]
    docs[0] = evaluation(0, phone="13812345678", phone_masked="138****5678", real_name=True)
    with net.rpc(VILLAGE) as village:
        village.rating.put("evaluations", docs)
    result = push(net, VILLAGE, TOWN)
    sent = result[VILLAGE]["results"]["up:rating.evaluations"]
    assert sent["ok"]
    assert sent["sent"] == 120
    assert result[TOWN]["results"]["up:rating.evaluations"]["sent"] >= 120
    with net.rpc(COUNTY) as county:
        versions = county.rating.versions("evaluations")
        first = county.rating.get("evaluations", f"{VILLAGE}-svc-0")
    assert {k: v for k, v in versions.items() if "-svc-" in k} == {d["id"]: 1 for d in docs}
    assert "phone" not in first
    assert first["phone_masked"] == "138****5678"
    assert first["real_name"]
    assert first["site_code"] == VILLAGE

    # A second push finds nothing new; the checkpoints on both ends agree.
    again = push(net, VILLAGE)[VILLAGE]
    assert again["results"]["up:rating.evaluations"]["sent"] == 0
    with net.rpc(TOWN) as town:
        held = town.sync.status()["children"][VILLAGE]["rating.evaluations"]["high_water"]
    assert again["status"]["up"]["rating.evaluations"]["checkpoint"] == held
    assert again["status"]["up"]["rating.evaluations"]["backlog"] == 0


class HurriedClock:
    """A monotonic clock for the app that runs 0.3 s ahead at every reading, so a 1 s
    cycle ends after a few pages however fast this machine sends them."""

    def __init__(self) -> None:
        self.ahead = 0.0

    def monotonic(self) -> float:
        self.ahead += 0.3
        return time.monotonic() + self.ahead


def test_a_large_backlog_is_drained_in_slices_of_cycle_seconds(
    net: Network, monkeypatch: pytest.MonkeyPatch
) -> None:
    [village_sync] = [
        d
        for c in net.containers
        if c.service_name == "sync" and c.config["SITE"]["code"] == VILLAGE
        for d in c.dependencies
        if isinstance(d, SyncProvider)
    ]
    monkeypatch.setattr(village_sync.app, "monotonic", HurriedClock().monotonic)
    with net.rpc(VILLAGE) as village:
        village.rating.seed("evaluations", 6000, f"{VILLAGE}-slice")
        first = village.sync.push_now()["results"]["up:rating.evaluations"]
        # the rest goes on the next ticks or pushes (the timer is hurried after a slice)
        while village.sync.push_now()["results"]["up:rating.evaluations"]["more"]:
            pass
    assert first["more"] is True
    assert 0 < first["sent"] < 6000
    with net.rpc(TOWN) as town:
        held = town.rating.versions("evaluations")
    assert sum(k.startswith(f"{VILLAGE}-slice-") for k in held) == 6000


def test_the_same_batch_twice_changes_nothing_and_newest_version_wins(net: Network) -> None:
    with net.rpc(VILLAGE) as village:
        village.rating.put("cases", [{"id": f"{VILLAGE}-case-1", "state": "open"}])
    push(net, VILLAGE)
    with net.rpc(VILLAGE) as village:
        assert village.rating.put(
            "cases", [{"id": f"{VILLAGE}-case-1", "state": "rectifying"}]
        ) == [2]
        v2 = village.rating.get("cases", f"{VILLAGE}-case-1")
    push(net, VILLAGE, TOWN)
    with net.rpc(COUNTY) as county:
        assert county.rating.get("cases", f"{VILLAGE}-case-1")["state"] == "rectifying"

    record = domain.mask_record(v2)
    older = {**record, "version": 1, "state": "open"}
    batch = {
        "schema": 1,
        "child": VILLAGE,
        "service": "rating",
        "feed": "cases",
        "from_seq": 0,
        "to_seq": 0,
        "records": [record, older],
    }
    with net.rpc(TOWN) as town:
        before = town.rating.feed("cases", 0, 500)["high_water"]
        first = town.sync.ingest(domain.sign(batch, VILLAGE_KEY))
        second = town.sync.ingest(domain.sign(batch, VILLAGE_KEY))
        assert first["applied"] == second["applied"] == 0
        assert town.rating.feed("cases", 0, 500)["high_water"] == before
        assert town.rating.get("cases", f"{VILLAGE}-case-1")["state"] == "rectifying"
        # the old rotation key is still accepted; a resend never moves the high-water mark
        mark = town.sync.status()["children"][VILLAGE]["rating.cases"]["high_water"]
        third = town.sync.ingest(domain.sign({**batch, "resend": True}, VILLAGE_OLD_KEY))
        assert third["high_water"] == mark


def forged(
    records: list[Any], key: str = VILLAGE_KEY, child: str = VILLAGE, **extra: Any
) -> dict[str, Any]:
    batch = {
        **extra,
        "schema": 1,
        "child": child,
        "service": "rating",
        "feed": "evaluations",
        "from_seq": 0,
        "to_seq": 10**9,
        "records": records,
    }
    return domain.sign(batch, key)


def test_forged_batches_are_refused_counted_and_store_nothing(net: Network) -> None:
    good = domain.mask_record({**evaluation(9000), "version": 1, "site_code": VILLAGE})
    neighbour = {**good, "id": f"{NEIGHBOUR}-x", "site_code": NEIGHBOUR}
    with net.rpc(TOWN) as town:
        before = town.rating.count("evaluations")
        mark = town.sync.status()["children"][VILLAGE]["rating.evaluations"]["high_water"]
        cases = [
            (forged([good], key="w" * 32), "签名无效"),
            (forged([good, neighbour]), NEIGHBOUR),
            (forged([good], key="w" * 32, child="421302101203"), "不是本站点登记的下级站点"),
            ({**forged([good]), "to_seq": 10**9 + 1}, "签名无效"),  # tampered after signing
        ]
        for batch, text in cases:
            with pytest.raises(Forbidden) as caught:
                town.sync.ingest(batch)
            assert text in caught.value.message
        with pytest.raises(InvalidInput):
            town.sync.ingest({"child": VILLAGE})
        # a record still carrying personal data is rejected on its own (not stored)
        leaky = {**good, "id": f"{VILLAGE}-leaky", "phone": "13812345678"}
        reply = town.sync.ingest(forged([leaky], resend=True))
        assert reply["rejected"] == [
            {"id": leaky["id"], "version": 1, "reason": "含有个人信息字段 phone"}
        ]
        assert town.rating.get("evaluations", leaky["id"]) is None
        assert town.rating.count("evaluations") == before
        assert town.rating.get("evaluations", good["id"]) is None
        status = town.sync.status()["children"][VILLAGE]["rating.evaluations"]
        assert status["high_water"] == mark
        # a reconciliation query about another village is refused too
        request = domain.sign(
            {"schema": 1, "child": VILLAGE, "service": "rating", "feed": "evaluations",
             "counts": {NEIGHBOUR: {"2026-11-20": 1}}},
            VILLAGE_KEY,
        )  # fmt: skip
        with pytest.raises(Forbidden):
            town.sync.reconcile_counts(request)
    metrics = net.metrics(TOWN)
    assert (
        'hall_sync_refused_total{reason="bad_signature",service="sync",site="421302101"} 2.0'
        in (metrics)
    )
    assert 'reason="foreign_origin",service="sync",site="421302101"} 2.0' in metrics
    assert 'reason="unknown_child"' in metrics
    assert 'reason="malformed"' in metrics


def test_poison_records_are_parked_reported_and_do_not_block(net: Network) -> None:
    with net.rpc(VILLAGE) as village:
        village.rating.put(
            "evaluations",
            [
                evaluation(500),
                evaluation(501, site_code="bad"),  # fails validation at the village
                evaluation(502, poison=True),  # refused by the town's rating at ingest
                evaluation(503, site_code=NEIGHBOUR),  # not this village's to send
                evaluation(504),
            ],
        )
        outcome = village.sync.push_now()
        parked = village.sync.parked("rating.evaluations", 10)
        metrics_text = net.metrics(VILLAGE)
    assert outcome["results"]["up:rating.evaluations"]["ok"]
    assert outcome["status"]["up"]["rating.evaluations"]["parked"] == 3
    reasons = {p["record_id"]: p["reason"] for p in parked}
    assert "site_code" in reasons[f"{VILLAGE}-svc-501"]
    assert reasons[f"{VILLAGE}-svc-502"].startswith("上级拒收")
    assert NEIGHBOUR in reasons[f"{VILLAGE}-svc-503"]
    assert (
        'hall_sync_parked{feed="rating.evaluations",service="sync",site="421302101201"} 3.0'
        in metrics_text
    )
    with net.rpc(TOWN) as town:
        assert town.rating.get("evaluations", f"{VILLAGE}-svc-500") is not None
        assert town.rating.get("evaluations", f"{VILLAGE}-svc-504") is not None
        for bad in (501, 502, 503):
            assert town.rating.get("evaluations", f"{VILLAGE}-svc-{bad}") is None
        town.rating.accept_poison()  # the town's rating was upgraded: 502 is acceptable now
    with net.rpc(VILLAGE) as village:
        retried = village.sync.retry_parked("rating.evaluations")["results"]
        left = {p["record_id"] for p in village.sync.parked()}
        with pytest.raises(InvalidInput):
            village.sync.parked("rating.nothing")
    assert retried == {"rating.evaluations": {"resolved": 1, "still_parked": 2}}
    assert left == {f"{VILLAGE}-svc-501", f"{VILLAGE}-svc-503"}
    with net.rpc(TOWN) as town:
        assert town.rating.get("evaluations", f"{VILLAGE}-svc-502")["poison"] is True


def test_catalog_flows_down_with_its_versions(net: Network) -> None:
    matter = {
        "id": "11000001-v1",
        "matter_code": "1100000100",
        "title": "参保登记",
        "state": "published",
    }
    with net.rpc(COUNTY) as county:
        county.matters.put("catalog", [matter])
    push(net, TOWN, VILLAGE)
    with net.rpc(VILLAGE) as village:
        copy = village.matters.get("catalog", matter["id"])
    assert copy["title"] == "参保登记"
    assert copy["version"] == 1
    with net.rpc(COUNTY) as county:
        county.matters.put("catalog", [{"id": matter["id"], "state": "retired"}])
    push(net, TOWN, VILLAGE)
    with net.rpc(VILLAGE) as village:
        copy = village.matters.get("catalog", matter["id"])
        status = village.sync.status()["down"]["matters.catalog"]
    assert copy["state"] == "retired"
    assert copy["version"] == 2
    assert status["backlog"] == 0
    assert status["last_success"]


def test_reconciliation_finds_a_silent_gap_and_resends_it(net: Network) -> None:
    today = datetime.now(UTC).date()
    days = [(today - timedelta(days=n)).isoformat() for n in (2, 1)]
    with net.rpc(VILLAGE) as village:
        village.queue.put(
            "daily_figures", [{"id": f"{VILLAGE}:{days[0]}:A", "date": days[0], "issued": 3}]
        )
        village.sync.push_now()
        village.queue.put(
            "daily_figures",
            [{"id": f"{VILLAGE}:{days[1]}:{c}", "date": days[1], "issued": 1} for c in "ABC"],
        )
        top = village.queue.feed("daily_figures", 0, 1)["high_water"]
    # A silent gap: the checkpoint says the last three were delivered, but they never were.
    store = open_store(f"sqlite:///{net.data / VILLAGE}", "sync")
    store.collection("checkpoints").update("up:queue.daily_figures", {"seq": top})
    store.close()
    with net.rpc(VILLAGE) as village:
        assert village.sync.push_now()["results"]["up:queue.daily_figures"]["sent"] == 0
        result = village.sync.reconcile_now()["results"]["reconcile"]
    assert result["ok"]
    assert result["queue.daily_figures"]["resent"] == 3
    with net.rpc(TOWN) as town:
        held = town.queue.versions("daily_figures")
    assert {f"{VILLAGE}:{days[1]}:{c}" for c in "ABC"} <= set(held)
    with net.rpc(VILLAGE) as village:
        again = village.sync.reconcile_now()["results"]["reconcile"]
    assert again["queue.daily_figures"] == {"gaps": 0, "resent": 0}
    assert again["rating.evaluations"] == {"gaps": 0, "resent": 0}  # parked ones not counted


def test_status_and_metrics_agree(net: Network) -> None:
    with net.rpc(VILLAGE) as village:
        status = village.sync.status()
    assert status["site_code"] == VILLAGE
    assert status["upstream"] == TOWN
    assert set(status["up"]) == {
        "rating.evaluations",
        "rating.cases",
        "matters.application_summaries",
        "queue.daily_figures",
        "matters.proxy_requests",
    }
    assert set(status["down"]) == {"matters.catalog", "matters.proxy_outcomes"}
    for feed in status["up"].values():
        assert set(feed) >= {"backlog", "oldest_unsent_age_seconds", "last_success", "last_error",
                             "parked", "checkpoint"}  # fmt: skip
    text = net.metrics(VILLAGE)
    for name in (
        "hall_sync_backlog",
        "hall_sync_oldest_unsent_age_seconds",
        "hall_sync_last_success_timestamp",
        "hall_sync_records_total",
    ):
        assert f'{name}{{direction="up",feed="rating.evaluations",service="sync"' in text


def test_outage_backs_off_reports_and_recovers(net: Network, tmp_path: Path) -> None:
    """A village whose link to the town is cut keeps its backlog, reports the error, backs
    off without giving up, and delivers everything once the link is back."""
    link = LinkProxy(5672)
    code = NEIGHBOUR
    own = net.vhosts[VILLAGE]  # the neighbour's services share the village's broker, not its data
    config = site_config(own, tmp_path, code, "village", TOWN, net.vhosts[TOWN], port=free_port())
    config["UPSTREAM_AMQP_URI"] = f"pyamqp://guest:guest@127.0.0.1:{link.port}/{net.vhosts[TOWN]}"
    own = f"{own}-n"
    rabbitmqctl("add_vhost", own)
    rabbitmqctl("set_permissions", "-p", own, "guest", ".*", ".*", ".*")
    config["AMQP_URI"] = amqp_uri(own)
    containers = [
        ServiceContainer(cls, {**config, "WEB_SERVER_ADDRESS": f"127.0.0.1:{free_port()}"})
        for cls in DOUBLES
    ]
    section = {"key": NEIGHBOUR_KEY, "push_interval": 0.2, "backoff_base": 0.2, "backoff_cap": 1}
    containers.append(ServiceContainer(SyncService, {**config, "SYNC": section}))
    for container in containers:
        container.start()
    try:
        with operator_rpc(amqp_uri(own), timeout=30) as rpc:
            docs = [{"id": f"{code}-out-{i}", "level": "满意"} for i in range(5)]
            rpc.rating.put("evaluations", docs)
            eventlet.sleep(3)
            status = rpc.sync.status()["up"]["rating.evaluations"]
            text = requests.get(f"http://{config['WEB_SERVER_ADDRESS']}/metrics", timeout=5).text
            assert status["backlog"] == 5
            assert status["checkpoint"] == 0
            assert status["last_success"] is None
            assert status["last_error_reason"] == "unreachable"
            assert status["oldest_unsent_age_seconds"] >= 2
            line = next(
                ln
                for ln in text.splitlines()
                if ln.startswith('hall_sync_errors_total{direction="up",reason="unreachable"')
            )
            # every feed failed at least once (and is retried with backoff, never dropped)
            assert float(line.split()[-1]) >= 4, line

            link.restore()
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                status = rpc.sync.status()["up"]["rating.evaluations"]
                if status["backlog"] == 0:
                    break
                eventlet.sleep(0.2)
            assert status["backlog"] == 0
            assert status["last_success"] is not None
        with net.rpc(TOWN) as town:
            held = town.rating.versions("evaluations")
        assert all(held.get(doc["id"]) == 1 for doc in docs)
    finally:
        link.cut()
        stop_all(containers)
        rabbitmqctl("delete_vhost", own)


@pytest.mark.parametrize(
    ("section", "field"),
    [
        ({"children": {"421302102201": ["k" * 32]}}, "SYNC.children.421302102201"),
        ({"batch_size": 0}, "SYNC.batch_size"),
        ({"key": "short"}, "SYNC.key"),
    ],
)
def test_a_bad_sync_section_refuses_the_start(
    net: Network, tmp_path: Path, section: dict[str, Any], field: str
) -> None:
    config = site_config(net.vhosts[TOWN], tmp_path, TOWN, "town", COUNTY, "unused")
    with pytest.raises(ConfigError) as caught:
        ServiceContainer(SyncService, {**config, "SYNC": section})
    assert field in caught.value.fields
    assert not (tmp_path / TOWN).exists()  # refused before anything was created on disk


def test_a_stop_ends_a_running_push_at_the_next_batch(
    vhost_factory: Callable[[str], str], tmp_path: Path
) -> None:
    """Stopping sync mid-push does not wait for the whole backlog: the push ends at the next
    batch, and what was sent is exactly what the checkpoint says."""
    network = Network(vhost_factory, tmp_path)
    try:
        network.site(TOWN, "town", COUNTY, {"key": TOWN_KEY, "children": {VILLAGE: [VILLAGE_KEY]}})
        network.site(VILLAGE, "village", TOWN, {"key": VILLAGE_KEY, "cycle_seconds": 20})
        village_sync = network.containers[-1]
        assert village_sync.service_name == "sync"
        total = 30_000  # 600 batches of 50: seconds of pushing, far more than the stop takes
        with network.rpc(VILLAGE) as village:
            village.rating.seed("evaluations", total, f"{VILLAGE}-stop")
        pushing = eventlet.spawn(push, network, VILLAGE)

        def arrived() -> int:
            with network.rpc(TOWN) as town:
                count: int = town.rating.count("evaluations")
                return count

        wait_for(arrived, timeout=30)
        village_sync.stop()
        outcome = pushing.wait()[VILLAGE]["results"]["up:rating.evaluations"]
        assert outcome["more"] is True
        held = arrived()
        assert 0 < held < total
        assert outcome["sent"] == held
        assert outcome["checkpoint"] == held  # fresh store: the seq of the last record sent
    finally:
        network.stop()
