"""The platform connector's second source: rating's rectification cases (差评整改), pushed in
``rectification_v1`` (docs/api.md, "sync: the platform connector"). The cases are made by
the real rating app on a real store, walked through call-back, classification,
rectification and feedback; the fake platform (tests/platform_fake.py) validates every
field over real HTTP."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from services.common.clock import ManualClock
from services.common.errors import InvalidInput
from services.common.feeds import read_feed
from services.hallctl.checks import _platform_check
from services.rating.app import RatingApp
from services.rating.settings import RatingSettings
from services.sync.app import SyncApp
from services.sync.usecases.platform import CASES, NAME
from tests.conftest import MakeContext
from tests.platform_fake import FakePlatform, ListedFeeds, connector_app

pytestmark = pytest.mark.unit

COUNTY = "421302"
SECRET = "platform-secret-" + "c" * 16
PHONE, PERSON = "13912345678", "王小明"
CASES_NAME, CASES_SKIPPED = CASES.name, CASES.skipped


class RatingFeeds:
    """This site's rating service as sync sees it, read from the real rating store."""

    def __init__(self, rating: RatingApp) -> None:
        self.rating = rating

    def call(self, service: str, method: str, name: str, since: int, limit: int) -> Any:
        assert (service, method) == ("rating", "feed"), (service, method)
        store = self.rating.context.store
        return read_feed(store, ("evaluations", "cases"), name, since, limit)


@pytest.fixture
def fake() -> Iterator[FakePlatform]:
    platform = FakePlatform(SECRET, "gbt39046", fail_rate=0.0).start()
    yield platform
    platform.stop()


@pytest.fixture
def rating(make_context: MakeContext, tmp_path: Path, clock: ManualClock) -> RatingApp:
    context = make_context(
        "rating", code=COUNTY, tier="county", store_uri=f"sqlite:///{tmp_path / 'rating'}"
    )
    return RatingApp(context, RatingSettings(privacy_salt="test-salt-0123456789"), clock)


def connector(
    make_context: MakeContext, clock: ManualClock, url: str, local: Any, **extra: Any
) -> SyncApp:
    context = make_context("sync", code=COUNTY, tier="county")
    return connector_app(context, clock, url, SECRET, local, batch_size=4, **extra)


def bad_rating(rating: RatingApp, n: int) -> str:
    """A very dissatisfied real-name rating of ticket ``n``: its case id."""
    ref = f"{COUNTY}-t{n}"
    rating.apply_invitations(
        "queue",
        [
            {
                "id": f"ticket:{ref}",
                "schema": 1,
                "version": 1,
                "_seq": n,
                "service_ref": {"kind": "ticket", "id": ref},
                "site_code": COUNTY,
                "window": "3",
                "staff_id": "staff-3",
                "matter_code": "M1",
                "department": "人社局",
                "service_channel": "window",
                "service_ended_at": "2026-11-23T01:30:00Z",
                "created_at": "2026-11-23T01:30:00Z",
            }
        ],
    )
    evaluation = rating.submit(
        {
            "service_ref": {"kind": "ticket", "id": ref},
            "channel": "pad",
            "level": "very_dissatisfied",
            "reasons": {"tags": ["等候过长"]},
            "rater": {"real_name": True, "name": PERSON, "phone": PHONE},
        }
    )
    return str(evaluation["case_id"])


def close_case(rating: RatingApp, case_id: str) -> None:
    """Call-back, 立行立改, rectification (a phone number in the measures), feedback by SMS."""
    rating.assign_case({"case_id": case_id, "handler": "h1", "by": "lead"})
    rating.record_callback({"case_id": case_id, "by": "h1", "contacted": True, "note": "已回访"})
    rating.classify_case(
        {"case_id": case_id, "by": "h1", "classification": "fix_now", "note": "属实"}
    )
    measures = f"已加开窗口，回电 {PHONE} 告知"
    rating.record_rectification({"case_id": case_id, "by": "h1", "measures": measures})
    rating.record_feedback({"case_id": case_id, "by": "h1", "method": "sms", "content": "已告知"})


def cases_at(fake: FakePlatform) -> dict[str, list[dict[str, Any]]]:
    """What the platform accepted of each case: its versions' records, in arrival order."""
    found: dict[str, list[dict[str, Any]]] = {}
    for item in fake.accepted.values():
        if item.get("kind") == "rectification":
            found.setdefault(item["record_id"], []).append(item["data"])
    return found


def test_case_outcomes_arrive_once_per_version_coded_and_without_personal_data(
    make_context: MakeContext, clock: ManualClock, fake: FakePlatform, rating: RatingApp
) -> None:
    closed, still_open = bad_rating(rating, 1), bad_rating(rating, 2)
    close_case(rating, closed)
    app = connector(make_context, clock, fake.url, RatingFeeds(rating))
    results = app.push_now()["results"]
    assert (results[CASES_NAME]["ok"], results[CASES_NAME]["accepted"]) == (True, 2)
    assert results[NAME]["accepted"] == 2  # the two evaluations, in their own coding
    at = cases_at(fake)
    [done], [waiting] = at[closed], at[still_open]
    assert (done["办理状态"], done["定性"], done["反馈方式"], done["是否按期"]) == (
        "已办结",
        "立行立改",
        "短信",
        "是",
    )
    assert done["办件编号"] == f"{COUNTY}-t1"
    assert done["整改措施"].startswith("已加开窗口")
    assert "139****5678" in done["整改措施"]
    assert done["回访时间"]
    assert done["整改完成时间"]
    assert done["反馈时间"]
    assert done["办结时间"]
    assert (waiting["办理状态代码"], waiting["定性"], waiting["办结时间"]) == ("1", "", "")
    sent = json.dumps(list(fake.accepted.values()), ensure_ascii=False)
    assert PHONE not in sent
    assert PERSON not in sent
    assert '"h1"' not in sent
    # the open case moves on: its new version goes once, nothing else again
    close_case(rating, still_open)
    again = app.push_now()["results"]
    assert (again[CASES_NAME]["accepted"], again[NAME].get("accepted", 0)) == (1, 0)
    assert [v["办理状态"] for v in cases_at(fake)[still_open]] == ["待回访核实", "已办结"]
    assert fake.resent_after_ack == []
    status = app.status()["platform"]["cases"]
    assert (status["coding"], status["backlog"], status["parked"]) == ("rectification_v1", 0, 0)
    assert status["checkpoint"] == rating.context.store.collection("cases").last_seq()


def test_an_uncodable_case_is_skipped_a_refused_one_parked_and_retried(
    make_context: MakeContext, clock: ManualClock, fake: FakePlatform, rating: RatingApp
) -> None:
    first, second = bad_rating(rating, 1), bad_rating(rating, 2)
    real = read_feed(rating.context.store, ("cases",), "cases", 0, 10)["items"]
    odd = {**real[0], "id": "case:odd", "state": "archived", "_seq": 3}
    feed = ListedFeeds([], [*real, odd])
    app = connector(make_context, clock, fake.url, feed)
    fake.refuse.add(second)
    result = app.push_now()["results"][CASES_NAME]
    assert (result["accepted"], result["parked"], result["skipped"]) == (1, 1, 1)
    assert result["checkpoint"] == 3  # settled: accepted, parked and skipped alike
    [skipped] = app.parked(CASES_SKIPPED)
    assert "archived" in skipped["reason"]
    [parked] = app.parked(CASES_NAME)
    assert (parked["record_id"], "办件不存在" in parked["reason"]) == (second, True)
    assert list(cases_at(fake)) == [first]
    fake.refuse.clear()  # the platform fixed its side
    retried = app.retry_parked(CASES_NAME)["results"]
    assert retried == {CASES_NAME: {"resolved": 1, "still_parked": 0}}
    everything = app.retry_parked()["results"]
    assert everything[CASES_NAME] == {"resolved": 0, "still_parked": 1}  # still uncodable
    assert sorted(cases_at(fake)) == sorted([first, second])
    exposition = app.context.metrics.exposition().decode()
    assert 'hall_sync_platform_skipped_total{feed="rating.cases"' in exposition


def test_a_failing_case_push_holds_up_neither_the_evaluations_nor_goes_unseen(
    make_context: MakeContext, clock: ManualClock, fake: FakePlatform, rating: RatingApp
) -> None:
    bad_rating(rating, 1)
    app = connector(make_context, clock, fake.url, RatingFeeds(rating))

    class Cluster:  # hallctl's RPC proxy, answering with this app's status
        sync = app

    fake.refuse_profiles = {"rectification_v1"}  # its case interface is down (HTTP 503)
    results = app.push_now()["results"]
    assert results[NAME]["accepted"] == 1
    assert (results[CASES_NAME]["ok"], results[CASES_NAME]["reason"]) == (False, "http_5xx")
    check = _platform_check(Cluster())
    assert not check.ok
    assert "整改案件（rectification_v1）待推送 1 条" in check.detail
    assert SECRET not in check.detail
    fake.refuse_profiles = set()
    assert app.push_now()["results"][CASES_NAME]["accepted"] == 1
    assert _platform_check(Cluster()).ok


def test_with_cases_off_only_the_evaluations_are_read_and_reported(
    make_context: MakeContext, clock: ManualClock, fake: FakePlatform
) -> None:
    feed = ListedFeeds([], [])
    app = connector(make_context, clock, fake.url, feed, cases=False)
    assert CASES_NAME not in app.push_now()["results"]
    assert feed.reads["cases"] == 0
    assert feed.reads["evaluations"] >= 1
    assert "cases" not in app.status()["platform"]
    with pytest.raises(InvalidInput) as refused:
        app.retry_parked(CASES_NAME)
    assert NAME in str(refused.value.fields["feed"])
    assert CASES_NAME not in str(refused.value.fields["feed"])
