"""The catalog pull of ``SyncApp`` without a framework: a record the local matters refuses
is parked with the reason and the rest of the page flows; a stopped matters is retried."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from services.common import validation
from services.common.clock import ManualClock
from services.common.errors import Conflict, UpstreamUnavailable
from services.sync.app import SyncApp
from services.sync.ports import LocalUnavailable
from services.sync.settings import SyncSettings
from tests.conftest import MakeContext
from tests.unit.sync_fakes import UpstreamDouble

pytestmark = pytest.mark.unit

VILLAGE, TOWN = "421302101201", "421302101"
FEED = "matters.catalog"


def record(seq: int, **changes: Any) -> dict[str, Any]:
    code = f"{seq:019d}"
    return {
        "_seq": seq,
        "id": f"{code}@1",
        "code": code,
        "matter_version": 1,
        "version": 1,
        "status": "published",
        "site_code": "421302",
        **changes,
    }


class FakeMatters:
    """The village's matters: ``apply_catalog`` refuses like the real one (``InvalidInput``
    naming ``docs[i]…``); ``strict`` off is matters after an upgrade, ``down`` a stopped one."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.stored: dict[str, dict[str, Any]] = {}
        self.strict = True
        self.down = False
        self.conflicts: set[str] = set()

    def call(self, service: str, method: str, *args: Any) -> Any:
        assert (service, method) == ("matters", "apply_catalog"), (service, method)
        if self.down:
            raise LocalUnavailable("本站点的 matters 服务未运行")
        (docs,) = args
        self.calls.append([doc["id"] for doc in docs])
        bad = {
            f"docs[{i}].version": ["应为整数"]
            for i, doc in enumerate(docs)
            if self.strict and not isinstance(doc["version"], int)
        }
        if bad:
            raise validation.invalid(bad)
        if any(doc["id"] in self.conflicts for doc in docs):
            raise Conflict("catalog：记录已存在或唯一字段重复")  # names no record
        for doc in docs:
            assert "_seq" not in doc
            self.stored[doc["id"]] = doc
        return {"applied": len(docs)}


class FakeTown(UpstreamDouble):
    """The town's sync: serves its catalog feed."""

    def __init__(self, items: list[dict[str, Any]]) -> None:
        self.items = items

    def catalog_changes(self, since: int, limit: int) -> dict[str, Any]:
        page = [i for i in self.items if i["_seq"] > since][:limit]
        last = page[-1]["_seq"] if page else since
        return {"items": page, "last_seq": last, "high_water": len(self.items)}


@pytest.fixture
def items() -> list[dict[str, Any]]:
    return [record(1), record(2), record(3, version="二"), record(4)]


@pytest.fixture
def matters() -> FakeMatters:
    return FakeMatters()


@pytest.fixture
def village(
    make_context: MakeContext,
    clock: ManualClock,
    store_uri: str,
    items: list[dict[str, Any]],
    matters: FakeMatters,
) -> SyncApp:
    section = {"upward": [], "pull_catalog": True, "pull_outcomes": False, "batch_size": 10}
    context = make_context("sync", code=VILLAGE, tier="village", upstream=TOWN, store_uri=store_uri)
    settings = SyncSettings.from_section(section, context.identity.tier)
    app = SyncApp(context, settings, clock, upstream=FakeTown(items))
    return app.for_worker(matters)


def parked_gauge(app: SyncApp) -> float:
    exposition = app.context.metrics.exposition().decode()
    [family] = [
        f for f in text_string_to_metric_families(exposition) if f.name == "hall_sync_parked"
    ]
    [value] = [s.value for s in family.samples if s.labels["feed"] == FEED]
    return value


def ids(*seqs: int) -> list[str]:
    return [record(seq)["id"] for seq in seqs]


def test_a_refused_catalog_record_is_parked_and_the_rest_of_the_page_arrives(
    village: SyncApp, matters: FakeMatters
) -> None:
    result = village.push_now()
    down = result["results"]["down"]
    assert down["ok"] is True, down
    assert (down["applied"], down["parked"], down["checkpoint"]) == (3, 1, 4)
    assert sorted(matters.stored) == ids(1, 2, 4)
    assert matters.calls == [ids(1, 2, 3, 4), ids(1, 2, 4)]  # the page, then without it
    [parked] = village.parked()
    assert (parked["feed"], parked["record_id"], parked["seq"]) == (FEED, ids(3)[0], 3)
    assert parked["reason"] == "本站 matters 拒收：version：应为整数"
    assert village.parked(FEED) == [parked]
    status = result["status"]["down"][FEED]
    assert (status["checkpoint"], status["backlog"], status["parked"]) == (4, 0, 1)
    assert parked_gauge(village) == 1
    matters.calls.clear()
    assert village.push_now()["results"]["down"]["applied"] == 0  # past it: not tried again
    assert matters.calls == []


def test_a_healthy_page_costs_one_call(
    village: SyncApp, matters: FakeMatters, items: list[dict[str, Any]]
) -> None:
    items[2] = record(3)
    assert village.push_now()["results"]["down"]["applied"] == 4
    assert matters.calls == [ids(1, 2, 3, 4)]
    assert village.parked() == []


def test_a_stopped_matters_is_retried_not_parked(village: SyncApp, matters: FakeMatters) -> None:
    matters.down = True
    down = village.push_now()["results"]["down"]
    assert (down["ok"], down["reason"]) == (False, "local")
    assert village.parked() == []
    assert village.status()["down"][FEED]["checkpoint"] == 0  # the page comes again
    matters.down = False
    village.state.tasks["down"].succeeded(village.monotonic())  # no backoff: an operator
    assert village.push_now()["results"]["down"]["checkpoint"] == 4


def test_a_refusal_naming_no_record_is_settled_record_by_record(
    village: SyncApp, matters: FakeMatters
) -> None:
    matters.strict = False
    matters.conflicts = {ids(2)[0]}
    down = village.push_now()["results"]["down"]
    assert (down["applied"], down["parked"], down["checkpoint"]) == (3, 1, 4)
    assert sorted(matters.stored) == ids(1, 3, 4)
    [parked] = village.parked(FEED)
    assert parked["record_id"] == ids(2)[0]
    assert "唯一字段重复" in parked["reason"]


def test_retry_parked_applies_a_parked_catalog_record_after_an_upgrade(
    village: SyncApp, matters: FakeMatters
) -> None:
    village.push_now()
    assert village.retry_parked(FEED)["results"] == {FEED: {"resolved": 0, "still_parked": 1}}
    matters.down = True
    with pytest.raises(UpstreamUnavailable, match="matters 服务未运行"):
        village.retry_parked(FEED)
    assert len(village.parked()) == 1  # kept for the next try
    matters.down = False
    matters.strict = False  # matters upgraded: it takes the record now
    assert village.retry_parked()["results"] == {FEED: {"resolved": 1, "still_parked": 0}}
    assert matters.stored[ids(3)[0]]["version"] == "二"
    assert village.parked() == []
    assert village.status()["down"][FEED]["parked"] == 0
    assert parked_gauge(village) == 0
