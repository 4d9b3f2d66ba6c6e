"""代办 across tiers in the matters use cases, over real SQLite stores (no broker): a
village forwards, the county (or the town) handles with the time limit from the village's
day, every change comes back, the application counts and is rated once, at the village.
The records are carried between the sites the way sync carries them: requests masked by
sync's own ``mask_record`` on the way up, outcomes filtered to the child's subtree on the
way down (tests/service and tests/system run the real sync)."""

from typing import Any

import pytest

from services.common.clock import ManualClock
from services.common.errors import Conflict, InvalidInput
from services.common.site import within_subtree
from services.matters.app import MattersApp
from services.sync.domain import mask_record, personal_keys
from tests.unit.test_matters_app import PENSION, PERSON_ID, SEED, Make, at, got, make, submit

pytestmark = pytest.mark.unit
__all__ = ["make"]  # the fixture, shared with test_matters_app

CHRONIC = "0700022003421302001"  # 门诊慢特病待遇认定: 承诺件, 10 days, county; 代办 below
COUNTY, TOWN, VILLAGE = "421302", "421302101", "421302101201"


@pytest.fixture
def net(make: Make) -> dict[str, MattersApp]:
    county = make(COUNTY, "county", seed_catalog=SEED)
    town = make(TOWN, "town")
    village = make(VILLAGE, "village")
    town.apply_catalog(county.catalog_changes(0, 500)["items"])
    village.apply_catalog(town.catalog_changes(0, 500)["items"])
    return {COUNTY: county, TOWN: town, VILLAGE: village}


def up(child: MattersApp, parent: MattersApp) -> int:
    """sync's push of ``proxy_requests``: masked, then stored upstream."""
    docs = [mask_record(doc) for doc in child.repo.requests.changes_since(0, 500)]
    assert all(not personal_keys(doc) for doc in docs)  # the parent would refuse them
    return parent.receive_requests(docs)


def down(parent: MattersApp, child: MattersApp) -> tuple[int, list[str]]:
    """sync's pull of ``proxy_outcomes``: only what concerns the child's subtree."""
    docs = [
        {k: v for k, v in doc.items() if k != "_seq"}
        for doc in parent.repo.outcomes.changes_since(0, 500)
        if within_subtree(doc["proxy_site"], child.identity.code)
    ]
    return child.apply_outcomes(docs)


def all_up(net: dict[str, MattersApp]) -> None:
    up(net[VILLAGE], net[TOWN])
    up(net[TOWN], net[COUNTY])


def all_down(net: dict[str, MattersApp]) -> list[str]:
    down(net[COUNTY], net[TOWN])
    return down(net[TOWN], net[VILLAGE])[1]


def proxied(village: MattersApp, code: str, missing: int = 0) -> dict[str, Any]:
    current = got(village.repo.current(code))
    required = [{"name": m["name"]} for m in current["materials"] if m["required"]]
    view, invited = submit(village, code, required[missing:], channel="proxy", window="1")
    assert invited == []
    return view


def test_village_to_county_notice_supplement_decision_completion_and_rating(
    net: dict[str, MattersApp], clock: ManualClock
) -> None:
    county, town, village = net[COUNTY], net[TOWN], net[VILLAGE]
    at(clock, "2025-09-01T09:00")  # Monday
    view = proxied(village, CHRONIC, missing=1)
    app_id = view["id"]
    assert (view["state"], view["handled_by"], view["state_name"]) == (
        "forwarded",
        COUNTY,
        "已转报，待办理站点受理",
    )
    # what travels up: no name, no ID number, no phone, no hash
    [request] = village.repo.requests.changes_since(0, 10)
    text = str(mask_record(request))
    stored = got(village.repo.application(app_id))
    for secret in ("三丰", PERSON_ID, "13812345678", "12345678", stored["applicant_hash"]):
        assert secret not in text
    assert request["applicant_name_masked"] == "张**"
    # the town passes it on (not its matter to handle), the county takes it in
    assert up(village, town) == 1
    assert town.repo.application(app_id) is None
    assert up(village, town) == 0  # a resend changes nothing
    up(town, county)
    copy = county.get_application(app_id)
    assert copy["state"] == "supplement_required"
    assert copy["proxy"]["site_code"] == VILLAGE
    notice = copy["supplement_notice"]
    assert [p["name"] for p in notice["items"]] == ["参保人居民身份证"]
    # the citizen's progress page at the village says it was forwarded
    progress = village.application_progress(view["number"], PERSON_ID[-6:])
    assert [n["title"] for n in progress["notices"]] == ["代办"]
    # the notice comes back to the village
    assert all_down(net) == []
    progress = village.application_progress(view["number"], PERSON_ID[-6:])
    assert [n["title"] for n in progress["notices"]] == ["一次性告知单", "代办"]
    back = village.get_application(app_id)
    assert back["state"] == "supplement_required"
    assert back["supplement_notice"]["text"] == notice["text"]
    # the citizen brings the ID card to the village on Wednesday; the county sees it Friday
    at(clock, "2025-09-03T10:00")
    again, _ = village.supplement(app_id, [{"name": "参保人居民身份证"}])
    assert (again["state"], again["request_version"]) == ("forwarded", 2)
    at(clock, "2025-09-05T16:00")
    all_up(net)
    copy = county.get_application(app_id)
    assert copy["state"] == "accepted"
    # the time limit counts from the village's day: 10 working days after 09-03
    assert (copy["accepted_on"], copy["due_date"]) == ("2025-09-03", "2025-09-17")
    # each end keeps to its own actions
    with pytest.raises(Conflict, match="已转报站点 421302"):
        village.start_review(app_id)
    with pytest.raises(Conflict, match="代办站点 421302101201"):
        county.supplement(app_id, [{"name": "参保人居民身份证"}])
    county.start_review(app_id)
    county.decide(app_id, "approve")
    done, invited = county.complete(app_id, result="准予认定，待遇自次月起享受")
    assert done["state"] == "completed"
    assert invited == []  # rated at the village, not here
    assert county.repo.summaries.get(app_id) is None  # counted at the village, once
    with pytest.raises(Conflict, match="送达申请人"):
        county.deliver(app_id, "window_pickup")
    invited = all_down(net)
    assert invited == [f"application:{app_id}"]
    back = village.get_application(app_id)
    assert (back["state"], back["due_date"], back["result"]) == (
        "completed",
        "2025-09-17",
        "准予认定，待遇自次月起享受",
    )
    assert back["receipt"]["accepted_on"] == "2025-09-03"
    assert all_down(net) == []  # resent outcomes change nothing, no second invitation
    summary = got(village.repo.summaries.get(app_id))
    assert (summary["state"], summary["handled_by"], summary["site_code"]) == (
        "completed",
        COUNTY,
        VILLAGE,
    )
    delivered, _ = village.deliver(app_id, "window_pickup")
    assert delivered["state"] == "delivered"
    # metrics count each step where it happened
    samples = {
        (app.identity.code, step): app.context.metrics.registry.get_sample_value(
            "hall_applications_proxy_total",
            {"service": "matters", "site": app.identity.code, "step": step},
        )
        for app in (county, village)
        for step in ("forwarded", "received", "outcome_applied")
    }
    assert samples[(VILLAGE, "forwarded")] == 1
    assert samples[(COUNTY, "received")] == 1
    # the notice, then the completion: the feed keeps each application's newest outcome,
    # whose history names every step taken at the county
    assert samples[(VILLAGE, "outcome_applied")] == 2
    steps = [(h["action"], h["state"]) for h in village.get_application(app_id)["handling_history"]]
    assert steps == [
        ("received", "supplement_required"),
        ("take_materials", "accepted"),
        ("start_review", "in_review"),
        ("decide", "approved"),
        ("complete", "completed"),
    ]


def test_an_immediate_matter_is_completed_by_the_town_and_rated_at_the_village(
    net: dict[str, MattersApp],
) -> None:
    town, village = net[TOWN], net[VILLAGE]
    view = proxied(village, PENSION)
    assert view["handled_by"] == TOWN  # the nearest tier that handles it
    up(village, town)
    assert town.get_application(view["id"])["state"] == "completed"
    assert net[COUNTY].repo.requests.changes_since(0, 10) == []
    assert town.repo.requests.changes_since(0, 10) == []  # handled here: not passed on
    applied, invited = down(town, village)
    assert (applied, invited) == (1, [f"application:{view['id']}"])


def test_an_older_outcome_after_a_newer_one_changes_nothing(net: dict[str, MattersApp]) -> None:
    county, village = net[COUNTY], net[VILLAGE]
    view = proxied(village, CHRONIC)
    all_up(net)
    first = [
        {k: v for k, v in d.items() if k != "_seq"}
        for d in county.repo.outcomes.changes_since(0, 10)
    ]
    county.start_review(view["id"])
    all_down(net)
    assert village.get_application(view["id"])["state"] == "in_review"
    assert village.apply_outcomes(first) == (0, [])
    assert village.get_application(view["id"])["state"] == "in_review"


def test_outcomes_and_requests_that_do_not_belong_are_refused_by_position(
    net: dict[str, MattersApp],
) -> None:
    county, town, village = net[COUNTY], net[TOWN], net[VILLAGE]
    view = proxied(village, CHRONIC)
    all_up(net)
    [outcome] = [
        {k: v for k, v in d.items() if k != "_seq"}
        for d in county.repo.outcomes.changes_since(0, 10)
    ]
    cases = [
        ({**outcome, "id": f"{VILLAGE}-nope"}, "本站没有办件"),
        ({**outcome, "site_code": TOWN}, "不是 421302101"),
        ({**outcome, "version": "9"}, "version 应为整数"),
    ]
    for bad, reason in cases:
        with pytest.raises(InvalidInput) as caught:
            village.apply_outcomes([outcome, bad])
        assert list(caught.value.fields) == ["docs[1]"]
        assert reason in caught.value.fields["docs[1]"][0]
    assert village.get_application(view["id"])["state"] == "forwarded"  # nothing applied
    with pytest.raises(InvalidInput) as caught:
        town.apply_outcomes([{**outcome, "proxy_site": "421302102201"}])
    assert "不在本站点 421302101 的辖区内" in caught.value.fields["docs[0]"][0]
    [request] = [mask_record(d) for d in village.repo.requests.changes_since(0, 10)]
    with pytest.raises(InvalidInput) as caught:
        county.receive_requests([{**request, "handling_site": TOWN}])
    assert list(caught.value.fields) == ["docs[0].handling_site"]


def test_a_request_stored_but_not_handled_is_handled_by_the_next_tick(
    net: dict[str, MattersApp],
) -> None:
    county, village = net[COUNTY], net[VILLAGE]
    view = proxied(village, CHRONIC)
    [request] = [mask_record(d) for d in village.repo.requests.changes_since(0, 10)]
    county.repo.intake.upsert_versioned(request)  # as if the process died right after
    assert county.repo.application(view["id"]) is None
    county.tick(force=True)
    assert county.get_application(view["id"])["state"] == "accepted"


def test_a_matter_the_handling_site_no_longer_offers_comes_back_not_accepted(
    net: dict[str, MattersApp],
) -> None:
    county, village = net[COUNTY], net[VILLAGE]
    view = proxied(village, CHRONIC)
    county.set_local_availability(CHRONIC, "not_offered")
    all_up(net)
    all_down(net)
    back = village.get_application(view["id"])
    assert back["state"] == "not_accepted"
    assert "本站不办理事项" in back["refusal"]["reason"]


def test_proxy_desk_refusals_are_typed(net: dict[str, MattersApp]) -> None:
    village = net[VILLAGE]
    with pytest.raises(InvalidInput) as caught:
        submit(
            village,
            CHRONIC,
            [],
            channel="proxy",
            refusal={"reason": "材料不全", "basis": "《行政许可法》第三十二条"},
        )
    assert list(caught.value.fields) == ["refusal"]
    assert village.repo.applications.count() == 0


def test_a_suspension_at_the_county_shows_at_the_village_and_leaves_its_gauges(
    net: dict[str, MattersApp],
) -> None:
    county, village = net[COUNTY], net[VILLAGE]
    view = proxied(village, CHRONIC)
    all_up(net)
    county.suspend(view["id"], "expert_review", "请专家评审，联系电话 13812345678")
    all_down(net)
    back = village.get_application(view["id"])
    assert (back["clock"], back["due_state"]) == ("elsewhere", "suspended")
    assert "13812345678" not in str(back["suspensions"])  # scrubbed on the way down
    progress = village.application_progress(view["number"], PERSON_ID[-6:])
    assert "办理时限中止" in [n["title"] for n in progress["notices"]]
    village.refresh_gauges()
    county.refresh_gauges()
    sample = "hall_applications_suspended"
    for app, expected in ((village, 0), (county, 1)):
        labels = {"service": "matters", "site": app.identity.code}
        assert app.context.metrics.registry.get_sample_value(sample, labels) == expected
