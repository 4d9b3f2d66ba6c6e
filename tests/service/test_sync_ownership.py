"""Ownership of replicated records on real services (issue 13, item 1): the real queue
and sync services of a county, a town and a village. A village forges daily figures of its
sibling and of the town (its own ``site_code``, version 10^9): the town refuses them, the
village parks them with the reason, the town's copies stay, and the real owners' later
versions still apply and travel on to the county."""

from pathlib import Path
from typing import Any

import pytest

from services.common.errors import InvalidInput
from services.common.store import open_store
from services.queue.service import QueueService
from tests.service.helpers import COUNTY, TOWN, VILLAGE

pytestmark = pytest.mark.service

SIBLING = "421302101202"
DAY = "2026-11-23"
FEED = "queue.daily_figures"
SYNC = {
    "push_interval": 3600,
    "pull_interval": 3600,
    "rpc_timeout": 10,
    "pull_catalog": False,
    "pull_outcomes": False,
    "upward": [{"service": "queue", "feed": "daily_figures"}],
}


def figure(site: str, doc_id: str, version: int, served: int) -> dict[str, Any]:
    return {"id": doc_id, "version": version, "site_code": site, "date": DAY, "served": served}


def daily_figures(data: Path, code: str) -> Any:
    """A site's queue store, opened beside its running service (as another process would)."""
    return open_store(f"sqlite:///{data / code}", "queue").collection("daily_figures")


def test_a_village_cannot_overwrite_its_sibling_s_or_the_town_s_records(
    three_tiers: Any, tmp_path: Path
) -> None:
    network = three_tiers("own", {QueueService: {}}, SYNC)
    town, village = daily_figures(tmp_path, TOWN), daily_figures(tmp_path, VILLAGE)
    sibling_id, town_id = f"{SIBLING}:{DAY}:A", f"{TOWN}:{DAY}:A"
    # What the town holds: its own figure, and one its other village sent earlier.
    town.insert(figure(TOWN, town_id, 1, 5))
    town.upsert_versioned(figure(SIBLING, sibling_id, 1, 7))
    # A copy the sibling owns whose id also names this village: only the stored copy's
    # owner tells (the check atomic with the upsert).
    both_id = f"{SIBLING}:{DAY}:{VILLAGE}"
    town.upsert_versioned(figure(SIBLING, both_id, 1, 9))
    # The village's feed: one honest figure and three forgeries, version 10^9.
    own_id = f"{VILLAGE}:{DAY}:A"
    village.upsert_versioned_many(
        [
            figure(VILLAGE, own_id, 1, 3),
            figure(VILLAGE, sibling_id, 10**9, 666),
            figure(VILLAGE, town_id, 10**9, 666),
            figure(VILLAGE, both_id, 10**9, 666),
        ]
    )
    network.push(VILLAGE)

    with network.rpc(VILLAGE) as rpc:
        parked = {p["record_id"]: p["reason"] for p in rpc.sync.parked(FEED)}
        status = rpc.sync.status()["up"][FEED]
    assert set(parked) == {sibling_id, town_id, both_id}
    assert all(reason.startswith("上级拒收") for reason in parked.values())
    assert "不含其所属站点" in parked[sibling_id]
    assert "不含其所属站点" in parked[town_id]
    assert SIBLING in parked[both_id]
    assert "不能由站点" in parked[both_id]
    assert (status["parked"], status["backlog"]) == (3, 0)  # parked, never retried for ever
    assert town.get(own_id)["served"] == 3
    for doc_id, owner, served in (
        (sibling_id, SIBLING, 7),
        (town_id, TOWN, 5),
        (both_id, SIBLING, 9),
    ):
        stored = town.get(doc_id)
        assert (stored["site_code"], stored["version"], stored["served"]) == (owner, 1, served)

    # The real owners' later versions still apply: the sibling's through the town's
    # replication path, the town's own update locally; both reach the county.
    with network.rpc(TOWN) as rpc:
        applied = rpc.queue.apply_replicated("daily_figures", [figure(SIBLING, sibling_id, 2, 8)])
        assert applied == {"applied": 1}
    town.update(town_id, {"served": 6})
    network.push(TOWN)
    county = daily_figures(tmp_path, COUNTY)
    assert (county.get(sibling_id)["version"], county.get(sibling_id)["served"]) == (2, 8)
    assert (county.get(town_id)["version"], county.get(town_id)["served"]) == (2, 6)
    assert county.get(own_id)["site_code"] == VILLAGE


def test_unsignable_batches_are_typed_refusals(three_tiers: Any) -> None:
    network = three_tiers("nan", {}, SYNC)
    good = figure(VILLAGE, f"{VILLAGE}:{DAY}:A", 1, 1)
    for bad in ({**good, "served": float("nan")}, {**good, "id": f"{VILLAGE}:\ud800"}):
        batch = {
            "schema": 1,
            "child": VILLAGE,
            "service": "queue",
            "feed": "daily_figures",
            "from_seq": 0,
            "to_seq": 1,
            "records": [bad],
        }
        # Signed as the village would; the signature cannot be checked over such a value.
        batch["signature"] = "0" * 64
        with network.rpc(TOWN) as rpc, pytest.raises(InvalidInput):
            rpc.sync.ingest(batch)
