"""The real matters service under the real sync service, county → town → village: the
seeded county catalog reaches the village (同源发布) with local availability, a village
application's summary reaches the county without personal data, and a retirement at the
county reaches the village."""

from pathlib import Path

import eventlet
import pytest
from nameko.containers import ServiceContainer
from nameko.standalone.rpc import ClusterRpcProxy

from services.matters.domain import resident_id_check
from services.matters.service import MattersService
from services.sync.service import SyncService
from tests.conftest import amqp_uri, site_config

pytestmark = pytest.mark.service

SEED = str(Path(__file__).parents[2] / "services" / "matters" / "seed" / "catalog.yaml")
COUNTY, TOWN, VILLAGE = "421302", "421302101", "421302101201"
TOWN_KEY, VILLAGE_KEY = "t" * 32, "v" * 32
PENSION = "2000021001421302001"  # 即办件; town handles, village proxies
TRANSFER = "0700018002421302001"  # county only
QUIET = {
    "push_interval": 3600,
    "pull_interval": 3600,
    "rpc_timeout": 10,
    "upward": [{"service": "matters", "feed": "application_summaries"}],
}


def resident_id(seventeen: str) -> str:
    return seventeen + resident_id_check(seventeen)


@pytest.fixture
def network(vhost_factory, tmp_path):
    vhosts = {code: vhost_factory(f"ms-{code}") for code in (COUNTY, TOWN, VILLAGE)}
    sites = [
        (COUNTY, "county", None, {"children": {TOWN: [TOWN_KEY]}}),
        (TOWN, "town", COUNTY, {"key": TOWN_KEY, "children": {VILLAGE: [VILLAGE_KEY]}}),
        (VILLAGE, "village", TOWN, {"key": VILLAGE_KEY}),
    ]
    containers = []
    for code, tier, upstream, sync in sites:
        config = site_config(
            vhosts[code], tmp_path, code, tier, upstream, vhosts.get(upstream) if upstream else None
        )
        matters = ServiceContainer(MattersService, {**config, "MATTERS": {"seed_catalog": SEED}})
        sync_container = ServiceContainer(SyncService, {**config, "SYNC": {**QUIET, **sync}})
        for container in (matters, sync_container):
            container.start()
            containers.append(container)
    yield vhosts
    for thread in [eventlet.spawn(c.stop) for c in containers]:
        thread.wait()


def rpc(vhosts, code):
    return ClusterRpcProxy({"AMQP_URI": amqp_uri(vhosts[code])}, timeout=30)


def push(vhosts, *codes):
    for code in codes:
        with rpc(vhosts, code) as site:
            site.sync.push_now()


def test_catalog_down_and_summaries_up_through_real_sync(network):
    push(network, TOWN, VILLAGE)  # pull the catalog: county → town → village
    with rpc(network, VILLAGE) as village:
        assert village.matters.search_matters("")["total"] >= 30
        pension = village.matters.get_matter(PENSION)
        assert (pension["availability"], pension["origin_site"]) == ("proxy_only", COUNTY)
        assert village.matters.get_matter(TRANSFER)["availability"] == "not_offered"
        materials = [{"name": m["name"]} for m in pension["materials"] if m["required"]]
        done = village.matters.submit_application(
            {
                "matter_code": PENSION,
                "channel": "proxy",
                "materials": materials,
                "applicant": {
                    "kind": "person",
                    "name": "王五",
                    "id_number": resident_id("42130219500505123"),
                },
            }
        )
        assert done["state"] == "completed"
    push(network, VILLAGE, TOWN)  # summaries: village → town → county
    with rpc(network, COUNTY) as county:
        summaries = county.matters.feed("application_summaries", 0, 100)["items"]
        [summary] = [s for s in summaries if s["id"] == done["id"]]
        assert (summary["site_code"], summary["state"]) == (VILLAGE, "completed")
        assert (summary["matter_code"], summary["matter_version"]) == (PENSION, 1)
        assert "王" not in repr(summary)
        assert "applicant" not in summary
        county.matters.retire_matter(PENSION, "并入“社保卡一卡通”办理")
    push(network, TOWN, VILLAGE)
    with rpc(network, VILLAGE) as village:
        current = village.matters.get_matter(PENSION)
        assert (current["status"], current["matter_version"]) == ("retired", 2)
        assert village.matters.search_matters("养老保险参保")["total"] == 0
