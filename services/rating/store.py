"""The rating repository over the storage port: collections, indexes, and the rollups.

Collections (namespace ``rating``):

- ``evaluations`` (feed, replicated): one document per evaluation; no phone, no name.
- ``cases`` (feed, replicated): bad-rating rectification cases with their steps.
- ``invitations``: evaluation invitations pulled from queue and matters.
- ``rollups``: counters, one document per period (a day and its month) × site ×
  dimension, with ``values: {dimension value: {counter: n}}``.
- ``rollup_marks``: what each evaluation/case currently contributes to the rollups.
- ``rater_contacts``: the clear phone and name of real-name raters (never published).
- ``reveal_audit``: every reveal of a phone number.
- ``settings``: per-site generated values (the privacy salt when config gives none).
- ``checkpoints``: FeedFollower checkpoints (invitations, and the rollup folders).

Rollups are folded from the ``evaluations`` and ``cases`` change feeds, so local writes and
replicated records take the same path, and a newer version of a record adds only the
difference from what its previous version contributed (kept as a mark). Exactly once
without transactions: each bucket keeps a watermark per feed (the highest feed position
folded into it) and a replayed batch skips what a bucket has already seen; marks are
written after the buckets and the checkpoint last, so a crash at any point replays to the
same counts.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from services.common.errors import Conflict
from services.common.feeds import FeedFollower
from services.common.store import Collection, Doc, Index, Store
from services.rating import domain

EVALUATIONS = "evaluations"
CASES = "cases"
INVITATIONS = "invitations"
ROLLUPS = "rollups"

INDEXES: dict[str, tuple[Index, ...]] = {
    EVALUATIONS: (
        Index(("day", "site_code")),
        Index(("case_pending",)),
        Index(("held", "recorded_at_site")),
    ),
    CASES: (
        Index(("recorded_at_site", "state")),
        Index(("unit", "state")),
        Index(("site_code",)),
        Index(("pending_exclusion",)),
    ),
    INVITATIONS: (
        Index(("site_code", "window", "state", "service_ended_at")),
        Index(("state", "service_ended_at")),
    ),
    ROLLUPS: (Index(("dim", "grain", "period", "site_code")),),
    "rollup_marks": (),
    "rater_contacts": (),
    "reveal_audit": (Index(("case_id",)),),
    "settings": (),
}


def subtree_range(root: str, prefix: str) -> dict[str, str] | None:
    """A ``site_code`` range filter for every code starting with ``prefix`` (``root``'s)."""
    del root
    if not prefix:
        return None
    return {"$gte": prefix, "$lt": prefix + ":"}  # ':' sorts right after '9'


class RatingRepository:
    """Per-container handles on the rating collections."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.c: dict[str, Collection] = {
            name: store.collection(name, indexes) for name, indexes in INDEXES.items()
        }
        self.evaluations = self.c[EVALUATIONS]
        self.cases = self.c[CASES]
        self.invitations = self.c[INVITATIONS]
        self.rollups = self.c[ROLLUPS]
        self.contacts = self.c["rater_contacts"]
        self.audit = self.c["reveal_audit"]
        lock = threading.RLock()
        marks = self.c["rollup_marks"]
        self.folders = {
            EVALUATIONS: RollupFolder(store, self.rollups, marks, EVALUATIONS, lock),
            CASES: RollupFolder(store, self.rollups, marks, CASES, lock),
        }

    # --- settings ---
    def privacy_salt(self, configured: str | None) -> str:
        """The configured salt, else one generated once for this site and kept in the store."""
        if configured:
            return configured
        settings = self.c["settings"]
        doc = settings.get("privacy_salt")
        if doc is None:
            try:
                doc = settings.insert({"id": "privacy_salt", "value": secrets.token_hex(32)})
            except Conflict:
                doc = settings.get("privacy_salt")
        assert doc is not None
        return str(doc["value"])

    # --- invitations ---
    def add_invitations(self, items: Iterable[Mapping[str, Any]], source: str, now: str) -> int:
        """Insert invitations not seen before; replays and resends change nothing."""
        added = 0
        for item in items:
            if self.invitations.get(item["id"]) is not None:
                continue
            doc = {k: v for k, v in item.items() if k not in ("_seq", "version")}
            doc.update(source=source, state="open", received_at=now)
            try:
                self.invitations.insert(doc)
                added += 1
            except Conflict:
                pass
        return added

    # --- rollups ---
    def fold(self, feed: str | None = None, limit: int = 2000) -> int:
        folded = 0
        for name, folder in self.folders.items():
            if feed in (None, name):
                folded += folder.fold(limit)
        return folded

    def buckets(self, filter: Mapping[str, Any]) -> list[Doc]:
        return self.rollups.find(filter)


class RollupFolder:
    """Folds one feed (``evaluations`` or ``cases``) into the rollup buckets."""

    def __init__(
        self, store: Store, rollups: Collection, marks: Collection, feed: str, lock: threading.RLock
    ) -> None:
        self.feed = feed
        self.source = store.collection(feed)
        self.rollups = rollups
        self.marks = marks
        self.contribution: Callable[[Mapping[str, Any] | None], dict[str, Any] | None] = (
            domain.CONTRIBUTIONS[feed]
        )
        self.follower = FeedFollower(store, "rating-rollups", feed)
        self.watermark = f"w_{feed}"
        self.lock = lock  # shared by both folders: one writer of buckets per container

    def fold(self, limit: int = 2000) -> int:
        """Fold everything written since the checkpoint; returns how many records."""
        with self.lock:
            return self.follower.pull(
                lambda since, lim: {
                    "items": (items := self.source.changes_since(since, lim)),
                    "last_seq": items[-1]["_seq"] if items else since,
                },
                self._apply,
                limit,
            )

    def pending(self) -> bool:
        return self.source.last_seq() > self.follower.checkpoint()

    def _apply(self, docs: list[Doc]) -> None:
        top = max(doc["_seq"] for doc in docs)
        # bucket id -> [(feed position, value, field deltas)] in feed order
        changes: dict[str, list[tuple[int, str, dict[str, int]]]] = {}
        ids = [self._mark_id(doc["id"]) for doc in docs]
        known: dict[str, Doc] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            known.update((m["id"], m) for m in self.marks.find({"id": {"$in": chunk}}))
        marks = []
        contribution, expand, delta = self.contribution, domain.expand, domain.delta
        for doc, mark_id in zip(docs, ids, strict=True):
            seq = doc["_seq"]
            new = contribution(doc)
            cells = expand(new)
            old_mark = known.get(mark_id)
            if old_mark is not None:  # a record seen before: only the difference
                cells = delta(cells, expand(old_mark["c"]))
            for (bucket, value), diff in cells.items():
                entries = changes.get(bucket)
                if entries is None:
                    changes[bucket] = [(seq, value, diff)]
                else:
                    entries.append((seq, value, diff))
            marks.append({"id": mark_id, "version": seq, "c": new})
        self._write(changes, top)
        self.marks.upsert_versioned_many(marks)

    def _mark_id(self, doc_id: str) -> str:
        return f"{self.feed}:{doc_id}"

    def _folded(
        self, current: Doc, entries: list[tuple[int, str, dict[str, int]]], top: int
    ) -> Doc | None:
        """The bucket with the entries it has not seen yet; None when it has seen them all."""
        mark = int(current.get(self.watermark) or 0)
        if mark >= top:
            return None
        values = {k: dict(v) for k, v in (current.get("values") or {}).items()}
        for seq, value, diff in entries:
            if seq > mark:
                domain.add_to(values, value, diff)
        return {**current, "values": values, self.watermark: top}

    def _write(self, changes: dict[str, list[tuple[int, str, dict[str, int]]]], top: int) -> None:
        """New buckets in one insert, changed ones in one versioned write; whatever another
        writer touched meanwhile goes through the per-bucket compare-and-set."""
        existing: dict[str, Doc] = {}
        ids = list(changes)
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            existing.update((d["id"], d) for d in self.rollups.find({"id": {"$in": chunk}}))
        new = [
            self._folded(_new_bucket(b, self.watermark), changes[b], top)
            for b in ids
            if b not in existing
        ]
        retry = []
        if new:
            try:
                self.rollups.insert_many([d for d in new if d is not None])
            except Conflict:
                retry += [d["id"] for d in new if d is not None]
        updated = []
        for bucket, current in existing.items():
            folded = self._folded(current, changes[bucket], top)
            if folded is not None:
                updated.append({**folded, "version": current["version"] + 1})
        if updated and self.rollups.upsert_versioned_many(updated) != len(updated):
            retry += [d["id"] for d in updated]
        for bucket in retry:
            self._bump(bucket, changes[bucket], top)

    def _bump(self, bucket: str, entries: list[tuple[int, str, dict[str, int]]], top: int) -> None:
        while True:
            current = self.rollups.get(bucket)
            if current is None:
                try:
                    current = self.rollups.insert(_new_bucket(bucket, self.watermark))
                except Conflict:
                    continue
            folded = self._folded(current, entries, top)
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
