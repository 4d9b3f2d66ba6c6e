"""The real matters service under the real sync service, county → town → village: the
seeded county catalog reaches the village (同源发布) with local availability, a village
application's summary reaches the county without personal data, and a retirement at the
county reaches the village."""

import pytest

from services.matters.service import MattersService
from tests.service.helpers import COUNTY, SEED, TOWN, VILLAGE, resident_id

pytestmark = pytest.mark.service

PENSION = "2000021001421302001"  # 即办件; town handles, village proxies
TRANSFER = "0700018002421302001"  # county only
QUIET = {
    "push_interval": 3600,
    "pull_interval": 3600,
    "rpc_timeout": 10,
    "upward": [{"service": "matters", "feed": "application_summaries"}],
}


@pytest.fixture
def network(three_tiers):
    return three_tiers("ms", {MattersService: {"MATTERS": {"seed_catalog": SEED}}}, QUIET)


def test_catalog_down_and_summaries_up_through_real_sync(network):
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
        assert done["state"] == "completed"
    network.push(VILLAGE, TOWN)  # summaries: village → town → county
    with network.rpc(COUNTY) as county:
        summaries = county.matters.feed("application_summaries", 0, 100)["items"]
        [summary] = [s for s in summaries if s["id"] == done["id"]]
        assert (summary["site_code"], summary["state"]) == (VILLAGE, "completed")
        assert (summary["matter_code"], summary["matter_version"]) == (PENSION, 1)
        assert "王" not in repr(summary)
        assert "applicant" not in summary
        county.matters.retire_matter(PENSION, "并入“社保卡一卡通”办理")
    network.push(TOWN, VILLAGE)
    with network.rpc(VILLAGE) as village:
        current = village.matters.get_matter(PENSION)
        assert (current["status"], current["matter_version"]) == ("retired", 2)
        assert village.matters.search_matters("养老保险参保")["total"] == 0
