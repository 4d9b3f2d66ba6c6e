"""``hallctl rebuild-rollups``: a store whose rollups lack the pair buckets (folded by an
older version) or lost them altogether answers ``stats`` exactly again after the rebuild,
which leaves nothing for the service's next fold; a rerun after a crash midway fixes it; a
running rating service is refused."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from services.common.clock import ManualClock
from services.common.store import open_store
from services.hallctl import cli
from services.hallctl.commands import restore, rollups
from services.hallctl.sitedir import SiteDir
from services.rating.app import RatingApp
from services.rating.rollups import RollupFolder
from services.rating.settings import RatingSettings
from tests.conftest import MakeContext

pytestmark = pytest.mark.unit

VILLAGE, TOWN = "421302101201", "421302101"
DAY = {"date_from": "2024-09-13", "date_to": "2024-09-13"}
# (window, department, level) of tickets 1..6: two windows, two departments, two levels.
RATED = {
    1: ("1", "人社局", "satisfied"),
    2: ("1", "民政局", "satisfied"),
    3: ("2", "民政局", "dissatisfied"),
    4: ("2", "民政局", "satisfied"),
    5: ("2", "人社局", "dissatisfied"),
    6: ("1", "民政局", "dissatisfied"),
}


def hallctl(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = cli.main(list(argv))
    return code, capsys.readouterr().out


def site_init(capsys: pytest.CaptureFixture[str], data: Path) -> None:
    code, out = hallctl(
        capsys,
        *("site-init", "--data-dir", str(data), "--code", VILLAGE, "--name", "一村"),
        *("--upstream", TOWN, "--upstream-broker", "t:5672"),
    )
    assert code == 0, out


def invitation(n: int, window: str, department: str) -> dict[str, Any]:
    return {
        "id": f"ticket:{VILLAGE}-t{n}",
        "schema": 1,
        "version": 1,
        "_seq": n,
        "service_ref": {"kind": "ticket", "id": f"{VILLAGE}-t{n}"},
        "site_code": VILLAGE,
        "window": window,
        "staff_id": f"staff-{window}",
        "matter_code": "M1",
        "department": department,
        "service_channel": "window",
        "service_ended_at": "2024-09-13T01:30:00Z",
        "created_at": "2024-09-13T01:30:00Z",
    }


def rated_village(make_context: MakeContext, clock: ManualClock, uri: str) -> RatingApp:
    """The village's rating app on the store of its site directory, with ``RATED``."""
    clock.set(datetime(2024, 9, 13, 10, tzinfo=ZoneInfo("Asia/Shanghai")).astimezone(UTC))
    context = make_context("rating", code=VILLAGE, tier="village", store_uri=uri)
    rating = RatingApp(context, RatingSettings(privacy_salt="test-salt-0123456789"), clock)
    rating.apply_invitations("queue", [invitation(n, w, d) for n, (w, d, _) in RATED.items()])
    for n, (_, _, level) in RATED.items():
        payload: dict[str, Any] = {
            "service_ref": {"kind": "ticket", "id": f"{VILLAGE}-t{n}"},
            "channel": "pad",
            "level": level,
        }
        if level == "dissatisfied":
            payload["reasons"] = {"tags": ["等候过长"]}
        rating.submit(payload)
    return rating


def figures(rating: RatingApp) -> list[dict[str, Any]]:
    """Answers over no, one and two dimensions (the last two read pair buckets)."""
    return [
        rating.stats(DAY),
        rating.stats(DAY, "window"),
        rating.stats({**DAY, "window": "2"}, "department"),
        rating.stats({**DAY, "department": "民政局", "channel": "pad"}),
    ]


def test_rebuild_restores_the_pair_buckets_and_then_all_rollups(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    make_context: MakeContext,
    clock: ManualClock,
) -> None:
    data = tmp_path / "hall"
    site_init(capsys, data)
    uri = f"sqlite:///{data / VILLAGE / 'data'}"
    rating = rated_village(make_context, clock, uri)
    before = figures(rating)
    by_department = {g["key"]: g["total"] for g in before[2]["groups"]}
    assert by_department == {"人社局": 1, "民政局": 2}  # window 2: tickets 3, 4, 5
    assert before[2]["total"]["counts"]["dissatisfied"] == 2
    assert before[3]["total"]["total"] == 4  # tickets 2, 3, 4, 6
    assert before[0]["total"]["cases"] == 3  # the cases feed is folded too

    # A store carried over from the version before the pair buckets: none of them.
    buckets = rating.repo.rollups
    pairs = [b["id"] for b in buckets.find() if "+" in b["dim"]]
    assert pairs
    for bucket in pairs:
        assert buckets.delete(bucket)
    old = figures(rating)
    assert old[:2] == before[:2]  # one dimension: still right
    assert old[2]["groups"] == []
    assert old[3]["total"]["total"] == 0

    code, out = hallctl(capsys, "rebuild-rollups", "--data-dir", str(data), "--site", VILLAGE)
    assert code == 0, out
    assert "评价 6 条、差评整改 3 件" in out
    assert "用时" in out
    assert "上次重建未完成" not in out
    assert figures(rating) == before
    assert not any(folder.pending() for folder in rating.repo.folders.values())
    assert rating.repo.fold() == 0  # the service's next start has nothing to fold

    # Every rollup gone (and the marks kept): the rebuild drops the marks too.
    assert buckets.delete_many({"version": {"$gte": 1}}) > 0
    assert figures(rating)[0]["total"]["total"] == 0
    code, out = hallctl(capsys, "rebuild-rollups", "--data-dir", str(data), "--site", VILLAGE)
    assert code == 0, out
    assert figures(rating) == before


def test_rebuild_is_exact_on_both_adapters(
    make_context: MakeContext, clock: ManualClock, store_uri: str
) -> None:
    """``rebuild`` itself over SQLite and MongoDB (mongomock), every bucket but `all` gone."""
    rating = rated_village(make_context, clock, store_uri)
    before = figures(rating)
    rating.repo.rollups.delete_many({"dim": {"$ne": "all"}})
    assert figures(rating) != before
    done = rollups.rebuild(rating.repo.store)
    assert (done.evaluations, done.cases, done.resumed) == (6, 3, False)
    assert done.buckets == rating.repo.rollups.count() > 0
    assert figures(rating) == before


def test_a_rebuild_interrupted_midway_is_finished_by_a_rerun(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    make_context: MakeContext,
    clock: ManualClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = tmp_path / "hall"
    site_init(capsys, data)
    uri = f"sqlite:///{data / VILLAGE / 'data'}"
    rating = rated_village(make_context, clock, uri)
    before = figures(rating)

    def crash(self: RollupFolder, limit: int = 2000) -> int:
        raise KeyboardInterrupt  # killed right after the drop, before any fold

    with monkeypatch.context() as patch:
        patch.setattr(RollupFolder, "fold", crash)
        with pytest.raises(KeyboardInterrupt):
            rollups.rebuild_site(SiteDir(data.resolve(), VILLAGE))
    store = open_store(uri, "rating")
    assert store.collection("checkpoints").get(rollups.MARKER) is not None
    assert store.collection("rollups").count() == 0
    store.close()

    code, out = hallctl(capsys, "rebuild-rollups", "--data-dir", str(data), "--site", VILLAGE)
    assert code == 0, out
    assert "上次重建未完成" in out
    assert "评价 6 条、差评整改 3 件" in out
    assert figures(rating) == before
    store = open_store(uri, "rating")
    assert store.collection("checkpoints").get(rollups.MARKER) is None
    store.close()


def test_rebuild_refuses_while_rating_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "hall"
    site_init(capsys, data)
    monkeypatch.setattr(restore, "running_pid", lambda site, service: 4242)
    code, out = hallctl(capsys, "rebuild-rollups", "--data-dir", str(data), "--site", VILLAGE)
    assert code == 1
    assert "请先停止服务 rating（hallctl stop）再重建统计汇总" in out
