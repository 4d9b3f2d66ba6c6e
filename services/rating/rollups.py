"""Folding the ``evaluations`` and ``cases`` change feeds into the statistics rollups.

Local writes and replicated records take the same path, and a newer version of a record adds
only the difference from what its previous version contributed (kept as a mark).

Exact with N processes on one store, without multi-document transactions: a fold step is
frozen first, then applied idempotently (docs/api.md, rating, "Rollups").

1. Read the checkpoint document (one per feed, in ``checkpoints``). If it holds a pending
   step, help finish it (3–4). Otherwise read the records after its position and the marks
   of those records, and compute the step: the per-bucket deltas and the new marks, tagged
   with the batch's highest feed position ``to``.
2. Store the step in the checkpoint document by compare-and-set on its version. Of two
   folders that read the same checkpoint only one succeeds; the other starts again at 1,
   so marks are always read after the previous step has been applied in full.
3. Apply the step: a bucket takes it only when its watermark is below ``to`` (and then sets
   it to ``to``), by compare-and-set on the bucket's version; marks are written by versioned
   upsert with version ``to``. Any number of folders may apply the same step, at any time,
   in any order: each bucket and each mark takes it once.
4. Move the checkpoint to ``to`` and clear the step (compare-and-set). Steps are numbered by
   feed position, so a folder that stalls and wakes up with an old step changes nothing.

A crash at any point leaves the step in the checkpoint for the next fold to finish. The
arithmetic is ``domain/rollups.py``.
"""

from __future__ import annotations

import threading
from typing import Any

from services.common.errors import Conflict
from services.common.store import Collection, Doc, Store
from services.rating.domain.rollups import CONTRIBUTIONS, Contribute, add_to, delta, expand

Values = dict[str, dict[str, int]]  # dimension value -> counter -> n
CHUNK = 500


class RollupFolder:
    """Folds one feed (``evaluations`` or ``cases``) into the rollup buckets."""

    def __init__(
        self, store: Store, rollups: Collection, marks: Collection, feed: str, lock: threading.RLock
    ) -> None:
        self.feed = feed
        self.source = store.collection(feed)
        self.rollups = rollups
        self.marks = marks
        self.checkpoints = store.collection("checkpoints")
        self.key = f"rating-rollups.{feed}"  # the id the earlier FeedFollower used
        self.contribution: Contribute = CONTRIBUTIONS[feed]
        self.watermark = f"w_{feed}"
        self.lock = lock  # shared by both folders: one folder at a time per container

    def fold(self, limit: int = 2000) -> int:
        """Fold everything written since the checkpoint; returns how many records."""
        folded = 0
        with self.lock:
            while True:
                n, more = self._step(limit)
                folded += n
                if not more:
                    return folded

    def checkpoint(self) -> int:
        doc = self.checkpoints.get(self.key)
        return int(doc["seq"]) if doc else 0

    def pending(self) -> bool:
        return self.source.last_seq() > self.checkpoint()

    def _checkpoint_doc(self) -> Doc:
        doc = self.checkpoints.get(self.key)
        if doc is not None:
            return doc
        try:
            return self.checkpoints.insert({"id": self.key, "seq": 0, "pending": None})
        except Conflict:  # another folder created it first
            return self.checkpoints.get(self.key) or {}

    def _step(self, limit: int) -> tuple[int, bool]:
        """One step; (records folded by this call, whether to look again)."""
        current = self._checkpoint_doc()
        step = current.get("pending")
        if step is not None:  # a step frozen by us or another folder, maybe interrupted
            self._apply(step)
            self._finish(current, step)
            return 0, True
        docs = self.source.changes_since(int(current.get("seq") or 0), limit)
        if not docs:
            return 0, False
        step = self._freeze(docs)
        claimed = self.checkpoints.update(
            self.key, {"pending": step}, expect={"version": current["version"]}
        )
        if claimed is None:  # another folder froze or finished a step first: read again
            return 0, True
        self._apply(step)
        self._finish(claimed, step)
        return len(docs), len(docs) == limit

    def _freeze(self, docs: list[Doc]) -> dict[str, Any]:
        """The step for ``docs``: per-bucket deltas from the marks, and the new marks."""
        ids = [self._mark_id(doc["id"]) for doc in docs]
        known: dict[str, Doc] = {}
        for start in range(0, len(ids), CHUNK):
            chunk = ids[start : start + CHUNK]
            known.update((m["id"], m) for m in self.marks.find({"id": {"$in": chunk}}))
        buckets: dict[str, Values] = {}
        marks = []
        for doc, mark_id in zip(docs, ids, strict=True):
            new = self.contribution(doc)
            cells = expand(new)
            old_mark = known.get(mark_id)
            if old_mark is not None:  # a record seen before: only the difference
                cells = delta(cells, expand(old_mark["c"]))
            for (bucket, value), diff in cells.items():
                add_to(buckets.setdefault(bucket, {}), value, diff)
            marks.append({"id": mark_id, "c": new})
        return {
            "to": max(int(doc["_seq"]) for doc in docs),
            "buckets": [[bucket, values] for bucket, values in buckets.items() if values],
            "marks": marks,
        }

    def _mark_id(self, doc_id: str) -> str:
        return f"{self.feed}:{doc_id}"

    def _apply(self, step: dict[str, Any]) -> None:
        """Apply a frozen step; idempotent, whoever runs it and however often."""
        top = int(step["to"])
        changes: dict[str, Values] = dict(step["buckets"])
        ids = list(changes)
        existing: dict[str, Doc] = {}
        for start in range(0, len(ids), CHUNK):
            chunk = ids[start : start + CHUNK]
            existing.update((d["id"], d) for d in self.rollups.find({"id": {"$in": chunk}}))
        retry = []
        new_docs = [
            d
            for b in ids
            if b not in existing
            and (d := self._folded(_new_bucket(b, self.watermark), changes[b], top)) is not None
        ]
        if new_docs:
            try:
                self.rollups.insert_many(new_docs)
            except Conflict:
                retry += [d["id"] for d in new_docs]
        updated = []
        for bucket, current in existing.items():
            folded = self._folded(current, changes[bucket], top)
            if folded is not None:
                updated.append({**folded, "version": current["version"] + 1})
        if updated and self.rollups.upsert_versioned_many(updated) != len(updated):
            retry += [d["id"] for d in updated]
        for bucket in retry:
            self._bump(bucket, changes[bucket], top)
        marks = [{**mark, "version": top} for mark in step["marks"]]
        for start in range(0, len(marks), CHUNK):
            self.marks.upsert_versioned_many(marks[start : start + CHUNK])

    def _finish(self, current: Doc, step: dict[str, Any]) -> None:
        self.checkpoints.update(
            self.key,
            {"seq": int(step["to"]), "pending": None},
            expect={"version": current["version"]},
        )

    def _folded(self, current: Doc, values: Values, top: int) -> Doc | None:
        """The bucket with the step added; None when it already has it."""
        if int(current.get(self.watermark) or 0) >= top:
            return None
        merged = {k: dict(v) for k, v in (current.get("values") or {}).items()}
        for value, diff in values.items():
            add_to(merged, value, diff)
        return {**current, "values": merged, self.watermark: top}

    def _bump(self, bucket: str, values: Values, top: int) -> None:
        while True:
            current = self.rollups.get(bucket)
            if current is None:
                try:
                    current = self.rollups.insert(_new_bucket(bucket, self.watermark))
                except Conflict:
                    continue
            folded = self._folded(current, values, top)
            if folded is None:
                return
            changes = {"values": folded["values"], self.watermark: top}
            if self.rollups.update(bucket, changes, expect={"version": current["version"]}):
                return


def _new_bucket(bucket: str, watermark: str) -> Doc:
    period, site, dim = bucket.split("|", 2)
    grain = "day" if len(period) == 10 else "month"
    return {
        "id": bucket,
        "grain": grain,
        "period": period,
        "site_code": site,
        "dim": dim,
        "values": {},
        watermark: 0,
    }
