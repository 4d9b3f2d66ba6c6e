"""The real rating service under the real sync service, village → town → county: the
county's ``rating.stats`` include the village's evaluations, a bad rating's case arrives
with its newest state, and the rater's phone and name never leave the village."""

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from services.rating.service import RatingService
from tests.service.helpers import COUNTY, TOWN, VILLAGE

pytestmark = pytest.mark.service

PHONE, NAME = "13712340987", "欧阳修远"
SYNC = {
    "push_interval": 3600,
    "pull_catalog": False,
    "pull_outcomes": False,
    "upward": [
        {"service": "rating", "feed": "evaluations"},
        {"service": "rating", "feed": "cases"},
    ],
}


@pytest.fixture
def network(three_tiers: Callable[..., Any]) -> Any:
    rating = {"RATING": {"privacy_salt": "sync-rating-test-salt"}}
    return three_tiers("sr", {RatingService: rating}, SYNC)


def test_county_stats_include_the_village_and_the_newest_case_state(network: Any) -> None:
    today = datetime.now(ZoneInfo("Asia/Shanghai")).date().isoformat()
    with network.rpc(VILLAGE) as village:
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
    with network.rpc(TOWN) as town:
        assert town.sync.push_now()["results"]["up:rating.evaluations"]["sent"] >= 4
    with network.rpc(COUNTY) as county:
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
