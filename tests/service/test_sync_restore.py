"""A restore mid-life on real services (issue 13, item 2): the village's queue store is
backed up, written and updated, restored with ``hallctl restore``'s steps (the file put back,
a new incarnation), then written and updated again. Everything written after the restore
reaches the county, although the restore rolled the feed's positions back below sync's
checkpoint."""

from pathlib import Path
from typing import Any

import pytest
from nameko.containers import ServiceContainer

from services.common.store import open_store
from services.hallctl.commands.backup import backup_sqlite
from services.hallctl.commands.restore import reincarnate, restore_sqlite
from services.queue.service import QueueService
from tests.service.helpers import COUNTY, TOWN, VILLAGE

pytestmark = pytest.mark.service

DAY = "2026-11-23"
SYNC = {
    "push_interval": 3600,
    "pull_interval": 3600,
    "reconcile_interval": 3600,
    "rpc_timeout": 10,
    "pull_catalog": False,
    "pull_outcomes": False,
    "upward": [{"service": "queue", "feed": "daily_figures"}],
}


def figure(prefix: str, served: int) -> dict[str, Any]:
    return {"id": f"{VILLAGE}:{DAY}:{prefix}", "site_code": VILLAGE, "date": DAY, "served": served}


def figures(data: Path, code: str) -> Any:
    return open_store(f"sqlite:///{data / code}", "queue").collection("daily_figures")


def test_writes_after_a_restore_reach_the_county(three_tiers: Any, tmp_path: Path) -> None:
    network = three_tiers("rst", {QueueService: {}}, SYNC)
    village = figures(tmp_path, VILLAGE)
    village.insert(figure("A", 1))
    network.push(VILLAGE, TOWN)
    backup = tmp_path / "backup"
    backup.mkdir()
    store_file = tmp_path / VILLAGE / "queue.db"
    backup_sqlite(store_file, backup / "queue.db")  # hallctl backup
    village.insert(figure("B", 1))
    village.update(figure("A", 0)["id"], {"served": 2})
    network.push(VILLAGE, TOWN)
    assert figures(tmp_path, COUNTY).get(figure("A", 0)["id"])["served"] == 2

    # hallctl restore: the village's queue stopped, its file put back, a new incarnation.
    [queue] = [
        c
        for c in network.containers
        if c.service_name == "queue" and c.config["SITE"]["code"] == VILLAGE
    ]
    queue.stop()
    restore_sqlite(backup / "queue.db", store_file)
    reincarnate(queue.config["STORE_URI"], "queue")
    restarted = ServiceContainer(QueueService, queue.config)
    restarted.start()
    network.containers.append(restarted)

    village = figures(tmp_path, VILLAGE)
    assert village.get(figure("B", 0)["id"]) is None  # rolled back
    village.insert(figure("C", 1))
    village.update(figure("C", 0)["id"], {"served": 2})
    village.insert(figure("D", 1))
    village.update(figure("A", 0)["id"], {"served": 3})
    village.update(figure("A", 0)["id"], {"served": 4})
    network.push(VILLAGE, TOWN)

    county = figures(tmp_path, COUNTY)
    held = {p: county.get(figure(p, 0)["id"]) for p in "ABCD"}
    assert (held["C"]["version"], held["C"]["served"]) == (2, 2)
    assert held["D"]["served"] == 1
    assert (held["A"]["version"], held["A"]["served"]) == (3, 4)
    assert held["B"]["served"] == 1  # written before the restore, already upstream
    with network.rpc(VILLAGE) as rpc:
        status = rpc.sync.status()["up"]["queue.daily_figures"]
    assert status["backlog"] == 0
    assert status["checkpoint"] == village.last_seq()
