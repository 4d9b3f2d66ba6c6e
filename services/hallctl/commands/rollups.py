"""``hallctl rebuild-rollups``: fold rating's statistics rollups again from every evaluation
and case of a site's store, with the site's rating service stopped (docs/operations.md,
"重建统计汇总"; docs/api.md, rating, "Rollups").

Why: a store carried over from a version before the pair buckets (two dimensions at once)
holds records folded without them; ``stats`` with two dimensions counts those only once they
change. Rebuilding folds them all again, so every bucket is complete.

How: a marker ``rating-rollups.rebuild`` is put in ``checkpoints``; rating's rollup state is
dropped — the two fold checkpoints (``rating-rollups.evaluations``, ``…cases``, with any
step frozen in them), the ``rollups`` buckets and the ``rollup_marks`` — then both feeds are
folded from 0 by the service's own ``RollupFolder``s, and the marker is removed. The fold
leaves its checkpoints at the feeds' ends, so the service's next start has nothing to fold.

A crash at any point is fixed by running the command again: it always starts by dropping
everything (and says that the last rebuild had not finished). Until then the rollups may
be incomplete, so do not start rating in between.
"""

from __future__ import annotations

import argparse
import contextlib
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from services.common.errors import Conflict, StoreUnavailable
from services.common.store import Store, open_store
from services.hallctl.commands.restore import require_stopped, store_uri_of
from services.hallctl.sitedir import OpsError, SiteDir, site_args, site_of
from services.rating.store import CASES, EVALUATIONS, RatingRepository

SERVICE = "rating"
MARKER = "rating-rollups.rebuild"
EVERY = {"version": {"$gte": 1}}  # every document (versions start at 1): delete_many's filter


@dataclass(frozen=True)
class Rebuilt:
    evaluations: int  # records folded from each feed
    cases: int
    buckets: int  # rollup documents written
    seconds: float
    resumed: bool  # an earlier rebuild had not finished


def rebuild(store: Store) -> Rebuilt:
    """Drop rating's rollup state in ``store`` (namespace ``rating``) and fold every
    evaluation and case again. Nothing else may write to the store meanwhile."""
    started = time.monotonic()
    repo = RatingRepository(store)
    checkpoints = store.collection("checkpoints")
    resumed = checkpoints.get(MARKER) is not None
    if not resumed:
        with contextlib.suppress(Conflict):
            checkpoints.insert({"id": MARKER, "started_at": datetime.now(UTC).isoformat()})
    # The checkpoints first: with only those gone, a fold would find every record's mark and
    # add nothing, so the rollups stay right; then the buckets and the marks.
    for folder in repo.folders.values():
        checkpoints.delete(folder.key)
    repo.rollups.delete_many(EVERY)
    repo.folders[EVALUATIONS].marks.delete_many(EVERY)
    evaluations = repo.folders[EVALUATIONS].fold()
    cases = repo.folders[CASES].fold()
    buckets = repo.rollups.count()
    checkpoints.delete(MARKER)
    return Rebuilt(evaluations, cases, buckets, time.monotonic() - started, resumed)


def rebuild_site(site: SiteDir) -> Rebuilt:
    """``rebuild`` on the store of ``site``'s rating service, which must be stopped."""
    uri = store_uri_of(site, SERVICE)
    if not uri:
        raise OpsError(f"{site.config_path(SERVICE)} 没有 STORE_URI")
    require_stopped(site, [SERVICE], "重建统计汇总")
    try:
        store = open_store(uri, namespace=SERVICE)
        try:
            return rebuild(store)
        finally:
            store.close()
    except StoreUnavailable as exc:  # nothing lost: run the command again
        raise OpsError(f"rating 的存储不可用：{exc}（恢复后重新运行）") from None


# --- command line ---------------------------------------------------------------------------


def add_parsers(commands: Any) -> None:
    cmd = commands.add_parser(
        "rebuild-rollups",
        help="从全部评价和差评整改重建好差评统计汇总（rating 须先停止）",
    )
    site_args(cmd)
    cmd.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    try:
        done = rebuild_site(site_of(args))
    except OpsError as exc:
        print(f"错误：{exc}")
        return 1
    if done.resumed:
        print("上次重建未完成，已从头重建")
    print(
        f"✓ rating   统计汇总已重建：评价 {done.evaluations} 条、差评整改 {done.cases} 件，"
        f"汇总文档 {done.buckets} 个，用时 {done.seconds:.1f} 秒"
    )
    return 0
