"""The real matters service under the real sync service, county → town → village: the
seeded county catalog reaches the village (同源发布) with local availability, a village's
代办 application goes up to the town that handles it and its outcome comes back, its
summary reaches the county once and without personal data, and a retirement at the county
reaches the village."""

from typing import Any

import pytest

from services.common.errors import NotFound
from services.common.store import open_store
from services.matters.service import MattersService
from tests.service.helpers import COUNTY, SEED, TOWN, VILLAGE, resident_id

pytestmark = pytest.mark.service

PENSION = "2000021001421302001"  # 即办件; town handles, village proxies
TRANSFER = "0700018002421302001"  # county only
POISON, AFTER = "2000021008421302001", "2000021009421302001"  # copies of PENSION
QUIET = {
    "push_interval": 3600,
    "pull_interval": 3600,
    "rpc_timeout": 10,
    "upward": [
        {"service": "matters", "feed": "application_summaries"},
        {"service": "matters", "feed": "proxy_requests"},
    ],
}


@pytest.fixture
def network(three_tiers: Any) -> Any:
    return three_tiers("ms", {MattersService: {"MATTERS": {"seed_catalog": SEED}}}, QUIET)


def test_catalog_down_and_summaries_up_through_real_sync(network: Any) -> None:
    network.push(TOWN, VILLAGE)  # pull the catalog: county → town → village
    with network.rpc(VILLAGE) as village:
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
        assert (done["state"], done["handled_by"]) == ("forwarded", TOWN)
    # one push of the village: the request goes up, the town (a 即办件) completes it at
    # once, and the same push pulls the outcome down
    network.push(VILLAGE)
    with network.rpc(TOWN) as town:
        copy = town.matters.get_application(done["id"])
        assert (copy["state"], copy["proxy"]["site_code"]) == ("completed", VILLAGE)
        assert copy["applicant"]["name"] == "王*"
    with network.rpc(VILLAGE) as village:
        back = village.matters.get_application(done["id"])
        assert (back["state"], back["handled_by"]) == ("completed", TOWN)
        assert village.sync.status()["down"]["matters.proxy_outcomes"]["last_success"]
    network.push(VILLAGE, TOWN)  # summaries: village → town → county
    with network.rpc(COUNTY) as county:
        summaries = county.matters.feed("application_summaries", 0, 100)["items"]
        [summary] = [s for s in summaries if s["id"] == done["id"]]
        assert (summary["site_code"], summary["state"]) == (VILLAGE, "completed")
        assert summary["handled_by"] == TOWN
        assert done["id"] not in {s["id"] for s in summaries if s["site_code"] == TOWN}
        assert (summary["matter_code"], summary["matter_version"]) == (PENSION, 1)
        assert "王" not in repr(summary)
        assert "applicant" not in summary
        county.matters.retire_matter(PENSION, "并入“社保卡一卡通”办理")
    network.push(TOWN, VILLAGE)
    with network.rpc(VILLAGE) as village:
        current = village.matters.get_matter(PENSION)
        assert (current["status"], current["matter_version"]) == ("retired", 2)
        assert village.matters.search_matters("养老保险参保")["total"] == 0


def test_a_catalog_record_the_town_refuses_is_parked_and_the_rest_flows_down(
    network: Any,
) -> None:
    """A poison catalog version at the county (written past its checks, as an older or
    newer matters might): the town parks it with the reason, applies the rest of the page,
    moves its checkpoint past it, and passes the good records on to the village."""
    with network.rpc(COUNTY) as county:
        [pension] = [
            r for r in county.matters.catalog_changes(0, 500)["items"] if r["code"] == PENSION
        ]
    store = open_store(f"sqlite:///{network.data / COUNTY}", "matters")
    catalog = store.collection("catalog")

    def copy(code: str, **matter: Any) -> dict[str, Any]:
        record = {k: v for k, v in pension.items() if k != "_seq"}
        return {
            **record,
            "id": f"{code}@1",
            "code": code,
            "matter": {**record["matter"], **matter, "code": code},
        }

    catalog.insert(copy(POISON, legal_limit_days="三十"))
    catalog.insert(copy(AFTER))
    with network.rpc(COUNTY) as county:
        high_water = county.matters.catalog_changes(0, 500)["high_water"]
    network.push(TOWN)
    with network.rpc(TOWN) as town:
        assert town.matters.get_matter(AFTER)["code"] == AFTER  # after the poison: arrived
        with pytest.raises(NotFound):
            town.matters.get_matter(POISON)
        [parked] = town.sync.parked("matters.catalog")
        assert (parked["record_id"], parked["feed"]) == (f"{POISON}@1", "matters.catalog")
        assert parked["reason"] == "本站 matters 拒收：matter.legal_limit_days：应为整数", parked
        down = town.sync.status()["down"]["matters.catalog"]
        assert (down["checkpoint"], down["backlog"], down["parked"]) == (high_water, 0, 1)
    network.push(VILLAGE)
    with network.rpc(VILLAGE) as village:
        assert village.matters.get_matter(AFTER)["code"] == AFTER
        assert village.sync.parked() == []
