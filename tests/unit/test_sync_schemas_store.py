"""The SYNC: section (defaults, Chinese errors naming the key), the batch schema, and the
sync repository over a real SQLite store (checkpoints, high-water marks, ledger, parking)."""

from collections.abc import Iterator
from typing import Any

import pytest

from services.common import validation
from services.common.clock import ManualClock, iso
from services.common.errors import InvalidInput
from services.common.store import open_store
from services.sync.domain import DEFAULT_MASK_KEYS, FeedRef
from services.sync.schemas import BatchSchema, CatalogPage, ReconcileSchema
from services.sync.settings import SyncSettings
from services.sync.store import SyncRepository

pytestmark = pytest.mark.unit

KEY = "k" * 32
load_settings = SyncSettings.from_section


def load_batch(raw: Any) -> dict[str, Any]:
    return validation.load(BatchSchema(), raw, "batch")


def load_reconcile(raw: Any) -> dict[str, Any]:
    return validation.load(ReconcileSchema(), raw, "request")


def load_page(since: Any, limit: Any) -> tuple[int, int]:
    page = validation.load(CatalogPage(), {"since": since, "limit": limit})
    return page["since"], page["limit"]


def test_settings_defaults() -> None:
    s = load_settings({})
    assert s.key is None
    assert s.children == {}
    assert [r.key for r in s.upward] == [
        "rating.evaluations",
        "rating.cases",
        "matters.application_summaries",
        "queue.daily_figures",
        "matters.proxy_requests",
    ]
    assert s.accept == s.upward
    assert s.catalog_service == "matters"
    assert s.pull_catalog
    assert (s.batch_size, s.rpc_timeout, s.push_interval, s.pull_interval) == (500, 30, 2, 10)
    assert (s.reconcile_interval, s.reconcile_days) == (3600, 31)
    assert (s.local_timeout, s.cycle_seconds, s.status_interval) == (10, 20, 5)
    assert (s.backoff.base, s.backoff.cap) == (1.0, 300.0)
    assert s.mask_keys == DEFAULT_MASK_KEYS


def test_settings_children_from_yaml_numbers_and_custom_feeds() -> None:
    s = load_settings(
        {
            "key": KEY,
            "children": {421302101201: [KEY, "n" * 20]},
            "upward": [{"service": "rating", "feed": "evaluations"}],
            "accept": [{"service": "rating", "feed": "evaluations"}, {"service": "q", "feed": "f"}],
            "batch_size": 1000,
        }
    )
    assert s.children == {"421302101201": [KEY, "n" * 20]}
    assert s.upward == (FeedRef("rating", "evaluations"),)
    assert FeedRef("q", "f") in s.accept
    assert s.batch_size == 1000


@pytest.mark.parametrize(
    ("section", "field"),
    [
        ({"key": "short"}, "SYNC.key"),
        ({"children": {"4213": [KEY]}}, "SYNC.children.4213.key"),
        ({"children": {"421302101201": [KEY, KEY, KEY]}}, "SYNC.children.421302101201.value"),
        ({"children": {"421302101201": []}}, "SYNC.children.421302101201.value"),
        ({"batch_size": 0}, "SYNC.batch_size"),
        ({"batch_size": 10001}, "SYNC.batch_size"),
        ({"rpc_timeout": 0}, "SYNC.rpc_timeout"),
        ({"upward": [{"service": "rating"}]}, "SYNC.upward[0].feed"),
        ({"backoff_base": 10, "backoff_cap": 1}, "SYNC.backoff_cap"),
    ],
)
def test_settings_errors_name_the_key_in_chinese(section: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        load_settings(section)
    assert field in caught.value.fields, caught.value.fields
    assert any("\u4e00" <= ch <= "\u9fff" for ch in str(caught.value))


def batch(**change: Any) -> dict[str, Any]:
    return {
        "schema": 1,
        "child": "421302101201",
        "service": "rating",
        "feed": "evaluations",
        "from_seq": 0,
        "to_seq": 10,
        "records": [],
        "signature": "ab",
        "extra": "ignored",
        **change,
    }


def test_batch_schema() -> None:
    loaded = load_batch(batch())
    assert loaded["resend"] is False
    assert "extra" not in loaded
    cases: list[tuple[dict[str, Any], str]] = [
        ({"to_seq": -1}, "batch.to_seq"),
        ({"from_seq": 11}, "batch.to_seq"),
        ({"child": "abc"}, "batch.child"),
        ({"records": "x"}, "batch.records"),
        ({"signature": None}, "batch.signature"),
        ({"from_seq": "0"}, "batch.from_seq"),
    ]
    for change, field in cases:
        with pytest.raises(InvalidInput) as caught:
            load_batch(batch(**change))
        assert field in caught.value.fields, (change, caught.value.fields)
    with pytest.raises(InvalidInput):
        load_batch(["not", "an", "object"])


def test_reconcile_and_page_schemas() -> None:
    request = {k: v for k, v in batch().items() if k not in ("records", "from_seq", "to_seq")}
    loaded = load_reconcile({**request, "counts": {"421302101201": {"2026-11-20": 3}}})
    assert loaded["counts"] == {"421302101201": {"2026-11-20": 3}}
    with pytest.raises(InvalidInput):
        load_reconcile({**request, "counts": {"421302101201": {"2026-11-20": -1}}})
    assert load_page(0, 500) == (0, 500)
    for since, limit in [(-1, 10), (0, 0), (0, 5001), ("0", 10), (True, 10)]:
        with pytest.raises(InvalidInput):
            load_page(since, limit)


@pytest.fixture
def repo(store_uri: str, clock: ManualClock) -> Iterator[SyncRepository]:
    store = open_store(store_uri, "sync")
    yield SyncRepository(store, clock)
    store.close()


def test_checkpoints_can_move_back_when_the_upstream_says_so(repo: SyncRepository) -> None:
    assert repo.checkpoint("up:rating.evaluations") == 0
    repo.set_checkpoint("up:rating.evaluations", 500)
    repo.set_checkpoint("up:rating.evaluations", 300)
    assert repo.checkpoint("up:rating.evaluations") == 300


def test_high_water_marks_per_child_and_feed(repo: SyncRepository) -> None:
    child, feed = "421302101201", "rating.evaluations"
    assert repo.acknowledge(child, feed, 0, 100) == 100
    assert repo.acknowledge(child, feed, 100, 250) == 250
    assert repo.acknowledge(child, feed, 0, 100) == 250  # resend: no change
    assert repo.acknowledge(child, feed, 400, 500) == 250  # a gap: stays
    assert repo.acknowledge("421302101202", feed, 0, 7) == 7
    assert repo.high_water(child, feed) == 250
    assert repo.high_water(child, "rating.cases") == 0
    marks = {(m["child"], m["feed"]): m["seq"] for m in repo.received_marks()}
    assert marks == {(child, feed): 250, ("421302101202", feed): 7}


def test_ledger_counts_distinct_records_per_origin_and_day(repo: SyncRepository) -> None:
    records = [
        {"id": f"e{i}", "version": 1, "site_code": "421302101201", "created_at": "2026-11-20T1"}
        for i in range(3)
    ]
    repo.record_ledger("rating.evaluations", records, "421302101201")
    repo.record_ledger("rating.evaluations", records, "421302101201")  # resend
    newer = [{**records[0], "version": 2}]
    repo.record_ledger("rating.evaluations", newer, "421302101201")
    assert repo.ledger_count("rating.evaluations", "421302101201", "2026-11-20") == 3
    assert repo.ledger_count("rating.cases", "421302101201", "2026-11-20") == 0


def test_parking_is_idempotent_and_resolvable(repo: SyncRepository) -> None:
    bad = {"id": "e1", "version": 1, "site_code": "x"}
    repo.park("rating.evaluations", bad, "site_code 不对", 5)
    repo.park("rating.evaluations", bad, "another reason", 5)
    assert repo.parked_count("rating.evaluations") == 1
    [doc] = repo.parked_records(["rating.evaluations", "rating.cases"], 10)
    assert repo.parked_records(["rating.evaluations"], 10, after=doc["_seq"]) == []
    assert doc["reason"] == "site_code 不对"
    assert doc["record"] == bad
    assert doc["seq"] == 5
    repo.unpark(doc["id"])
    assert repo.parked_count("rating.evaluations") == 0
    assert repo.parked_records(["rating.evaluations"], 10) == []
    assert repo.parked_versions("rating.evaluations") == set()


def test_outcomes(repo: SyncRepository, clock: ManualClock) -> None:
    assert repo.outcome("up:rating.evaluations") == {}
    repo.failed("up:rating.evaluations", "timeout", "上级站点在规定时间内没有应答")
    failed_at = iso(clock())
    clock.advance(seconds=1)
    repo.succeeded("up:rating.evaluations")
    outcome = repo.outcome("up:rating.evaluations")
    assert outcome["last_error_reason"] == "timeout"
    assert outcome["last_error_at"] == failed_at  # stored with the injected clock
    assert outcome["last_success"] == iso(clock()) > outcome["last_error_at"]


def test_only_towns_and_villages_pull_the_catalog_and_proxy_outcomes_by_default() -> None:
    from services.common.site import Tier

    pulls = {tier: load_settings({}, tier).pull_catalog for tier in Tier}
    assert pulls == {tier: tier in (Tier.TOWN, Tier.VILLAGE) for tier in Tier}
    outcomes = {tier: load_settings({}, tier).pull_outcomes for tier in Tier}
    assert outcomes == pulls
    assert load_settings({"pull_outcomes": False}, Tier.VILLAGE).pull_outcomes is False
    assert load_settings({"pull_catalog": True}, Tier.COUNTY).pull_catalog is True
    assert load_settings({"pull_catalog": False}, Tier.VILLAGE).pull_catalog is False
