"""``SyncApp`` without a framework: a real site context and store, the site's services and
the upstream replaced by in-memory fakes of the ports. What leaves the site is masked."""

from __future__ import annotations

from typing import Any

import pytest

from services.common.clock import ManualClock, iso
from services.sync import domain
from services.sync.app import SyncApp
from services.sync.settings import SyncSettings
from tests.conftest import MakeContext
from tests.unit.sync_fakes import UpstreamDouble

pytestmark = pytest.mark.unit

VILLAGE, TOWN, KEY = "421302101201", "421302101", "v" * 32


class FakeLocal:
    """The village's rating service: one feed of evaluations."""

    def __init__(self, items: list[dict[str, Any]]) -> None:
        self.items = items

    def call(self, service: str, method: str, *args: Any) -> Any:
        assert (service, method) == ("rating", "feed"), (service, method)
        _, since, limit = args
        page = [i for i in self.items if i["_seq"] > since][:limit]
        last = page[-1]["_seq"] if page else since
        return {"items": page, "last_seq": last, "high_water": len(self.items)}


class FakeTown(UpstreamDouble):
    """The town's sync: keeps every batch, acknowledges it whole."""

    def __init__(self) -> None:
        self.batches: list[dict[str, Any]] = []

    def ingest(self, batch: dict[str, Any]) -> dict[str, Any]:
        assert domain.verify(batch, [KEY])
        self.batches.append(batch)
        return {"high_water": batch["to_seq"], "rejected": []}

    def verify_key(self, probe: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "key": "current", "site_code": TOWN}


@pytest.fixture
def village(make_context: MakeContext, clock: ManualClock, store_uri: str) -> SyncApp:
    section = {
        "key": KEY,
        "upward": [{"service": "rating", "feed": "evaluations"}],
        "pull_catalog": False,
    }
    context = make_context("sync", code=VILLAGE, tier="village", upstream=TOWN, store_uri=store_uri)
    settings = SyncSettings.from_section(section, context.identity.tier)
    return SyncApp(context, settings, clock, upstream=FakeTown())


def evaluation(seq: int, comment: str) -> dict[str, Any]:
    return {
        "_seq": seq,
        "id": f"{VILLAGE}-e{seq}",
        "schema": 1,
        "version": 1,
        "site_code": VILLAGE,
        "level": "不满意",
        "comment": comment,
        "rater_name": "欧阳修远",
        "created_at": "2026-11-23T01:00:00.000000Z",
    }


def test_a_phone_typed_with_spaces_leaves_the_site_masked(
    village: SyncApp, clock: ManualClock
) -> None:
    comments = ["请回电 138 1234 5678", "电话 +86-139-0000-1111", "全角 １３７１２３４５６７８"]
    local = FakeLocal([evaluation(i + 1, text) for i, text in enumerate(comments)])
    town = village.upstream
    assert isinstance(town, FakeTown)
    result = village.for_worker(local).push_now()
    assert result["results"]["up:rating.evaluations"]["sent"] == 3
    sent = [record for batch in town.batches for record in batch["records"]]
    assert [r["comment"] for r in sent] == [
        "请回电 138****5678",
        "电话 139****1111",
        "全角 137****5678",
    ]
    assert all("rater_name" not in r and "_seq" not in r for r in sent)
    assert town.batches[0]["sent_at"] == iso(clock())  # the injected clock
    status = result["status"]["up"]["rating.evaluations"]
    assert (status["checkpoint"], status["backlog"]) == (3, 0)
    assert status["last_success"] == iso(clock())


def test_a_version_beyond_2_53_is_parked_before_it_is_sent(village: SyncApp) -> None:
    items = [
        evaluation(1, "好"),
        {**evaluation(2, "好"), "version": 2**63},
        {**evaluation(3, "好"), "score": float("nan"), "note": "\udc80"},
        evaluation(4, "好"),
    ]
    town = village.upstream
    assert isinstance(town, FakeTown)
    app = village.for_worker(FakeLocal(items))
    result = app.push_now()["results"]["up:rating.evaluations"]
    assert (result["sent"], result["checkpoint"]) == (2, 4)  # the feed goes on past them
    sent = [record["id"] for batch in town.batches for record in batch["records"]]
    assert sent == [f"{VILLAGE}-e1", f"{VILLAGE}-e4"]
    big, odd = app.parked("rating.evaluations")
    assert big["record_id"] == f"{VILLAGE}-e2"
    assert "2^53" in big["reason"]
    assert odd["record_id"] == f"{VILLAGE}-e3"
    assert "JSON" in odd["reason"]
    assert app.push_now()["results"]["up:rating.evaluations"]["sent"] == 0  # never retried


def test_reconciliation_resends_a_day_whose_versions_differ(
    village: SyncApp, clock: ManualClock
) -> None:
    """Same count upstream, but an older version of one record (a missed update): the
    digest of (id, version) differs and the day is sent again."""
    items = [{**evaluation(1, "好"), "created_at": iso(clock())}, evaluation(2, "好")]
    items[1]["created_at"] = iso(clock())
    app = village.for_worker(FakeLocal(items))
    town = village.upstream
    assert isinstance(town, FakeTown)
    app.push_now()
    town.batches.clear()
    day = iso(clock())[:10]
    held = [(f"{VILLAGE}-e1", 1), (f"{VILLAGE}-e2", 1)]

    def answer(request: dict[str, Any]) -> dict[str, Any]:
        return {
            "counts": {VILLAGE: {day: len(held)}},
            "digests": {VILLAGE: {day: domain.digest(held)}},
            "high_water": 2,
        }

    town.reconcile_counts = answer  # type: ignore[method-assign]
    assert app.reconcile_now()["results"]["reconcile"]["rating.evaluations"]["resent"] == 0
    items[1]["version"] = 2  # updated here; the upstream still holds version 1
    assert app.reconcile_now()["results"]["reconcile"]["rating.evaluations"]["resent"] == 2
    assert {r["version"] for b in town.batches for r in b["records"]} == {1, 2}


def test_two_sync_processes_on_one_store_push_a_feed_from_one_only(
    make_context: MakeContext, clock: ManualClock, store_uri: str
) -> None:
    section = {
        "key": KEY,
        "upward": [{"service": "rating", "feed": "evaluations"}],
        "pull_catalog": False,
        "lease_seconds": 30,
    }
    apps, towns = [], []
    for _ in range(2):
        context = make_context(
            "sync", code=VILLAGE, tier="village", upstream=TOWN, store_uri=store_uri
        )
        towns.append(FakeTown())
        settings = SyncSettings.from_section(section, context.identity.tier)
        apps.append(SyncApp(context, settings, clock, upstream=towns[-1]))
    items = [evaluation(1, "好")]
    one, two = (app.for_worker(FakeLocal(items)) for app in apps)
    assert one.push_now()["results"]["up:rating.evaluations"]["sent"] == 1
    standby = two.push_now()["results"]["up:rating.evaluations"]
    assert standby["standby"] is True
    assert towns[1].batches == []  # the second process waits
    items.append(evaluation(2, "好"))
    clock.advance(seconds=20)
    assert one.push_now()["results"]["up:rating.evaluations"]["sent"] == 1  # renewed
    clock.advance(seconds=20)
    assert two.push_now()["results"]["up:rating.evaluations"].get("standby") is True
    clock.advance(seconds=31)  # the first stopped renewing (it died): the lease expires
    items.append(evaluation(3, "好"))
    taken = two.push_now()["results"]["up:rating.evaluations"]
    assert (taken["sent"], taken["checkpoint"]) == (1, 3)  # from the shared checkpoint
    assert one.push_now()["results"]["up:rating.evaluations"]["standby"] is True
    apps[1].close()  # a graceful stop gives the lease up at once
    assert one.push_now()["results"]["up:rating.evaluations"]["sent"] == 0


def test_retention_prunes_the_old_ledger_and_resolved_parked_records(
    village: SyncApp, clock: ManualClock
) -> None:
    repo = village.repo
    old = {**evaluation(1, "好"), "created_at": "2020-01-01T00:00:00Z"}
    repo.record_ledger(
        "rating.evaluations", [old, evaluation(2, "好") | {"created_at": iso(clock())}], VILLAGE
    )
    repo.park("rating.evaluations", evaluation(3, "好"), "坏记录", 3)
    repo.park("rating.evaluations", evaluation(4, "好"), "坏记录", 4)
    repo.unpark(f"rating.evaluations:{VILLAGE}-e3:1")
    assert village.prune() == {"ledger": 1, "parked": 0}  # resolved just now: kept
    clock.advance(days=91)
    assert village.prune() == {"ledger": 1, "parked": 1}  # today's entry is now old too
    assert [p["record_id"] for p in village.parked()] == [f"{VILLAGE}-e4"]  # unresolved kept
    exposition = village.context.metrics.exposition().decode()
    assert "hall_sync_ledger_pruned_total" in exposition
    assert "hall_sync_parked_pruned_total" in exposition
