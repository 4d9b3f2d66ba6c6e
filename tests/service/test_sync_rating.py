"""The real rating service under the real sync service, village → town → county: the
county's ``rating.stats`` include the village's evaluations, a bad rating's case arrives
with its newest state, and the rater's phone and name never leave the village."""

import json
from datetime import datetime
from zoneinfo import ZoneInfo

import eventlet
import pytest
from nameko.containers import ServiceContainer
from nameko.standalone.rpc import ClusterRpcProxy

from services.rating.service import RatingService
from services.sync.service import SyncService
from tests.conftest import amqp_uri, free_port, site_config

pytestmark = pytest.mark.service

COUNTY, TOWN, VILLAGE = "421302", "421302101", "421302101201"
TOWN_KEY, VILLAGE_KEY = "t" * 32, "v" * 32
PHONE, NAME = "13712340987", "欧阳修远"
SYNC = {
    "push_interval": 3600,
    "pull_catalog": False,
    "upward": [
        {"service": "rating", "feed": "evaluations"},
        {"service": "rating", "feed": "cases"},
    ],
}


@pytest.fixture
def network(vhost_factory, tmp_path):
    vhosts = {code: vhost_factory(f"sr-{code}") for code in (COUNTY, TOWN, VILLAGE)}
    sites = [
        (COUNTY, "county", None, {"children": {TOWN: [TOWN_KEY]}}),
        (TOWN, "town", COUNTY, {"key": TOWN_KEY, "children": {VILLAGE: [VILLAGE_KEY]}}),
        (VILLAGE, "village", TOWN, {"key": VILLAGE_KEY}),
    ]
    containers = []
    for code, tier, upstream, sync in sites:
        up = vhosts.get(upstream) if upstream else None
        rating = site_config(
            vhosts[code], tmp_path, code, tier, upstream, up, port=free_port(),
            RATING={"privacy_salt": "sync-rating-test-salt"},
        )  # fmt: skip
        own = site_config(vhosts[code], tmp_path, code, tier, upstream, up, port=free_port())
        for container in (
            ServiceContainer(RatingService, rating),
            ServiceContainer(SyncService, {**own, "SYNC": {**SYNC, **sync}}),
        ):
            container.start()
            containers.append(container)
    try:
        yield {code: amqp_uri(vhost) for code, vhost in vhosts.items()}
    finally:
        for thread in [eventlet.spawn(c.stop) for c in containers]:
            thread.wait()


def rpc(uri):
    return ClusterRpcProxy({"AMQP_URI": uri}, timeout=30)


def test_county_stats_include_the_village_and_the_newest_case_state(network):
    today = datetime.now(ZoneInfo("Asia/Shanghai")).date().isoformat()
    with rpc(network[VILLAGE]) as village:
        for _ in range(3):
            village.rating.submit_evaluation(
                {"service_ref": {"kind": "hotline"}, "channel": "phone", "level": "satisfied"}
            )
        bad = village.rating.submit_evaluation(
            {
                "service_ref": {"kind": "hotline"},
                "channel": "phone",
                "level": "very_dissatisfied",
                "reasons": {"tags": ["态度差"], "text": f"打 {PHONE}"},
                "comment": f"我是{NAME}，电话{PHONE}",
                "rater": {"real_name": True, "name": NAME, "phone": PHONE},
            }
        )
        case_id = bad["case_id"]
        village.sync.push_now()
        # the case progresses at the village after the first push
        village.rating.assign_case({"case_id": case_id, "handler": "h1", "by": "lead"})
        newest = village.rating.feed("cases", 0, 100)["items"][-1]
        assert village.sync.push_now()["results"]["up:rating.cases"]["ok"]
    with rpc(network[TOWN]) as town:
        assert town.sync.push_now()["results"]["up:rating.evaluations"]["sent"] >= 4
    with rpc(network[COUNTY]) as county:
        stats = county.rating.stats({"site_code": VILLAGE, "date_from": today, "date_to": today})
        whole = county.rating.stats({"date_from": today, "date_to": today})
        cases = county.rating.feed("cases", 0, 100)["items"]
        evaluations = county.rating.feed("evaluations", 0, 100)["items"]
    assert stats["total"]["total"] == 4
    assert stats["total"]["bad"] == 1
    assert whole["total"]["total"] == 4  # the county's figures include its subtree
    [case] = [c for c in cases if c["id"] == case_id]
    assert case["version"] == newest["version"]
    assert case["state"] == newest["state"]
    assert case["site_code"] == VILLAGE
    shipped = json.dumps([*cases, *evaluations], ensure_ascii=False)
    for protected in (PHONE, NAME, PHONE[-8:]):
        assert protected not in shipped
