"""Every service at a site: site_info over RPC, /health and /metrics over HTTP, typed
errors, one store per container, several sites in one process, and ping_upstream."""

from pathlib import Path

import pytest
import requests
from eventlet.event import Event
from nameko.containers import ServiceContainer
from nameko.messaging import QueueConsumer
from nameko.standalone.rpc import ServiceRpcProxy

from services.common import service as base
from services.common.config import ConfigError
from services.common.errors import InvalidInput, NotFound, UpstreamUnavailable
from services.matters.service import MattersService
from services.queue.service import QueueService
from services.rating.service import RatingService
from services.sync.service import SyncService
from tests.conftest import VhostFactory, amqp_uri, free_port, operator_context, site_config
from tests.service.helpers import Start

pytestmark = pytest.mark.service

ALL = (MattersService, QueueService, RatingService, SyncService)


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.name)
def test_site_info_health_and_metrics(
    cls: type[base.SiteService], start: Start, vhost_factory: VhostFactory, tmp_path: Path
) -> None:
    vhost = vhost_factory(cls.name)
    port = free_port()
    start(cls, site_config(vhost, tmp_path, "421302", "county", port=port))

    with ServiceRpcProxy(
        cls.name, {"AMQP_URI": amqp_uri(vhost)}, timeout=10, context_data=operator_context()
    ) as proxy:
        info = proxy.site_info()
    assert info == {
        "site_code": "421302",
        "tier": "county",
        "name": "测试站点421302",
        "upstream": None,
        "service": cls.name,
        "store": "sqlite",
    }
    health = requests.get(f"http://127.0.0.1:{port}/health", timeout=5)
    assert health.status_code == 200
    assert health.json()["checks"] == {"store": "ok", "broker": "ok", "consumers": "ok"}

    metrics = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    assert (
        f'hall_service_info{{service="{cls.name}",site="421302",store="sqlite",tier="county"}} 1.0'
        in metrics
    )
    # the site_info RPC above was timed
    assert (
        f'hall_entrypoint_duration_seconds_count{{kind="Rpc",method="site_info",'
        f'service="{cls.name}",site="421302"}} 1.0'
    ) in metrics
    # one SQLite file per service per site
    assert (tmp_path / "421302" / f"{cls.name}.db").stat().st_mode & 0o077 == 0  # owner only


def test_health_is_unavailable_until_the_container_consumes_its_queues(
    start: Start, vhost_factory: VhostFactory, tmp_path: Path
) -> None:
    """The web server answers before the RPC queue is consumed; a test or a load balancer
    that trusted that /health would send calls the broker refuses (UnknownService)."""
    port = free_port()
    container = start(
        QueueService, site_config(vhost_factory("q"), tmp_path, "421302", "county", port=port)
    )
    consumer = next(e for e in container.subextensions if isinstance(e, QueueConsumer))
    ready = consumer._consumers_ready
    consumer._consumers_ready = Event()  # as between the web server's start and the consume
    try:
        health = requests.get(f"http://127.0.0.1:{port}/health", timeout=5)
        assert health.status_code == 503
        assert health.json()["checks"]["consumers"] == "尚未开始接收消息"
    finally:
        consumer._consumers_ready = ready
    assert requests.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 200


def test_two_sites_in_one_process_and_ping_upstream(
    start: Start, vhost_factory: VhostFactory, tmp_path: Path
) -> None:
    county, town = vhost_factory("county"), vhost_factory("town")
    county_port, town_port = free_port(), free_port()
    start(SyncService, site_config(county, tmp_path, "421302", "county", port=county_port))
    start(
        SyncService,
        site_config(town, tmp_path, "421302101", "town", "421302", county, port=town_port),
    )
    with ServiceRpcProxy(
        "sync", {"AMQP_URI": amqp_uri(town)}, timeout=20, context_data=operator_context()
    ) as sync:
        answer = sync.ping_upstream()
    assert answer["site_code"] == "421302101"
    assert answer["upstream"]["site_code"] == "421302"
    assert answer["upstream"]["tier"] == "county"
    assert answer["round_trip_ms"] > 0
    # each container kept its own registry: the town's metrics say nothing of the county
    town_metrics = requests.get(f"http://127.0.0.1:{town_port}/metrics", timeout=5).text
    assert 'site="421302101"' in town_metrics
    assert 'site="421302"' not in town_metrics


def test_ping_upstream_with_upstream_down_is_typed_error(
    start: Start, vhost_factory: VhostFactory, tmp_path: Path
) -> None:
    town, missing = vhost_factory("town"), vhost_factory("nobody-home")
    start(SyncService, site_config(town, tmp_path, "421302101", "town", "421302", missing))
    with (
        ServiceRpcProxy(
            "sync", {"AMQP_URI": amqp_uri(town)}, timeout=30, context_data=operator_context()
        ) as sync,
        pytest.raises(UpstreamUnavailable) as caught,
    ):
        sync.ping_upstream()
    assert "上级站点" in caught.value.message


def test_bad_config_refuses_before_touching_disk(
    vhost_factory: VhostFactory, tmp_path: Path
) -> None:
    vhost = vhost_factory("bad")
    config = site_config(vhost, tmp_path, "421302", "town")
    with pytest.raises(ConfigError) as caught:
        ServiceContainer(RatingService, config)
    assert "SITE.code" in caught.value.fields
    assert not (tmp_path / "421302").exists()


class Relay(base.SiteService):
    """A minimal service publishing and accepting one feed, to test the base contract."""

    name = "relay"
    feeds = ("outbox",)
    replicated_feeds = ("outbox",)


def test_feed_and_apply_replicated_over_rpc(
    start: Start, vhost_factory: VhostFactory, tmp_path: Path
) -> None:
    vhost = vhost_factory("relay")
    start(Relay, site_config(vhost, tmp_path, "421302", "county"))
    docs = [{"id": f"e{i}", "version": 2, "site_code": "421302101201", "n": i} for i in range(3)]
    with ServiceRpcProxy(
        "relay", {"AMQP_URI": amqp_uri(vhost)}, timeout=10, context_data=operator_context()
    ) as relay:
        assert relay.apply_replicated("outbox", docs) == {"applied": 3}
        assert relay.apply_replicated("outbox", docs) == {"applied": 0}  # resend: no change
        older = [{**docs[0], "version": 1, "n": -1}]
        assert relay.apply_replicated("outbox", older) == {"applied": 0}
        page = relay.feed("outbox", 0, 10)
        assert [(d["id"], d["n"]) for d in page["items"]] == [("e0", 0), ("e1", 1), ("e2", 2)]
        assert page["high_water"] == page["last_seq"]
        with pytest.raises(NotFound):
            relay.apply_replicated("evaluations", docs)
        with pytest.raises(NotFound):
            relay.feed("inbox", 0, 10)
        with pytest.raises(InvalidInput) as caught:
            relay.feed("outbox", 0, 100000)
        assert "limit" in caught.value.fields
