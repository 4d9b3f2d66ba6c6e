"""The ``sync`` repository over the storage port: checkpoints on both ends, the ledger an
upstream keeps of what each child sent (for reconciliation), parked records, and the
last outcome of each direction.

Collections (in sync's own store, namespace ``sync``):
- ``checkpoints``: ``up:<service>.<feed>`` (this site's feed position its upstream
  acknowledged) and ``down:<service>.catalog`` (the upstream catalog position applied here);
- ``received``: ``<child>:<service>.<feed>``, the high-water mark held for each child;
- ``ledger``: ``<service>.<feed>:<record id>`` → origin site, day, version, for the counts
  per origin per day a child's reconciliation compares against;
- ``parked``: poison records left out of replication, with the reason (问题记录);
- ``outcomes``: last success and last error of each direction and feed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from contextlib import suppress
from typing import Any

from services.common.errors import Conflict
from services.common.store import Collection, Index, Store
from services.sync.domain import acknowledge, day_of, utc_now_iso


class SyncRepository:
    def __init__(self, store: Store) -> None:
        self.checkpoints = store.collection("checkpoints")
        self.received = store.collection("received", (Index(("child",)),))
        self.ledger = store.collection("ledger", (Index(("feed", "site_code", "day")),))
        self.parked = store.collection("parked", (Index(("feed",)),))
        self.outcomes = store.collection("outcomes")

    # --- this site's checkpoints -------------------------------------------------------

    def checkpoint(self, key: str) -> int:
        doc = self.checkpoints.get(key)
        return int(doc["seq"]) if doc else 0

    def set_checkpoint(self, key: str, seq: int) -> None:
        """Set (not max) the checkpoint: an upstream that lost data may move it back."""
        _put(self.checkpoints, key, {"seq": seq})

    # --- the upstream end: what each child has delivered --------------------------------

    def high_water(self, child: str, feed: str) -> int:
        doc = self.received.get(f"{child}:{feed}")
        return int(doc["seq"]) if doc else 0

    def acknowledge(self, child: str, feed: str, from_seq: int, to_seq: int) -> int:
        """Advance the child's high-water mark after a batch is durable; returns the mark."""
        key = f"{child}:{feed}"
        now = utc_now_iso()
        while True:
            doc = self.received.get(key)
            if doc is None:
                seq = acknowledge(0, from_seq, to_seq)
                try:
                    self.received.insert(
                        {"id": key, "child": child, "feed": feed, "seq": seq, "at": now}
                    )
                    return seq
                except Conflict:
                    continue
            stored = int(doc["seq"])
            seq = acknowledge(stored, from_seq, to_seq)
            if self.received.update(key, {"seq": seq, "at": now}, expect={"seq": stored}):
                return seq

    def received_marks(self) -> list[dict[str, Any]]:
        return self.received.find(sort=[("id", 1)])

    def record_ledger(self, feed: str, records: Iterable[Mapping[str, Any]], child: str) -> None:
        self.ledger.upsert_versioned_many(
            {
                "id": f"{feed}:{record['id']}",
                "version": record["version"],
                "feed": feed,
                "site_code": record["site_code"],
                "day": day_of(record),
                "child": child,
            }
            for record in records
        )

    def ledger_count(self, feed: str, origin: str, day: str) -> int:
        return self.ledger.count({"feed": feed, "site_code": origin, "day": day})

    # --- parked (poison) records ----------------------------------------------------------

    def park(self, feed: str, record: Mapping[str, Any], reason: str, seq: int | None) -> None:
        record_id = str(record.get("id", f"seq-{seq}"))[:200]
        key = f"{feed}:{record_id}:{record.get('version')}"
        doc = {
            "id": key,
            "feed": feed,
            "record_id": record_id,
            "record_version": record.get("version"),
            "seq": seq,
            "reason": reason,
            "parked_at": utc_now_iso(),
            "record": dict(record),
        }
        with suppress(Conflict):  # parked before (a replayed page): keep the first reason
            self.parked.insert(doc)

    def parked_count(self, feed: str) -> int:
        return self.parked.count({"feed": feed})

    def parked_versions(self, feed: str) -> set[tuple[str, Any]]:
        """(record id, version) of every record parked for ``feed``."""
        return {(d["record_id"], d["record_version"]) for d in self.parked.find({"feed": feed})}

    def parked_records(
        self, feeds: Iterable[str], limit: int, after: int = 0
    ) -> list[dict[str, Any]]:
        """Parked (unresolved) records of ``feeds``, oldest first, after position ``after``."""
        return self.parked.find(
            {"feed": {"$in": list(feeds)}, "_seq": {"$gt": after}}, sort=[("_seq", 1)], limit=limit
        )

    def unpark(self, key: str) -> None:
        doc = self.parked.get(key)
        if doc is not None:
            # No delete in the port: a resolved record is marked and leaves the feed index.
            self.parked.update(key, {"feed": f"resolved:{doc['feed']}"})

    # --- outcomes -------------------------------------------------------------------------

    def outcome(self, key: str) -> dict[str, Any]:
        return self.outcomes.get(key) or {}

    def succeeded(self, key: str, extra: Mapping[str, Any] | None = None) -> None:
        _put(self.outcomes, key, {"last_success": utc_now_iso(), **(extra or {})})

    def note(self, key: str, changes: Mapping[str, Any]) -> None:
        """Set fields of an outcome that are neither a success nor an error."""
        _put(self.outcomes, key, changes)

    def failed(self, key: str, reason: str, message: str) -> None:
        _put(
            self.outcomes,
            key,
            {
                "last_error": message[:500],
                "last_error_reason": reason,
                "last_error_at": utc_now_iso(),
            },
        )


def _put(collection: Collection, key: str, changes: Mapping[str, Any]) -> None:
    """Insert or update top-level fields of one document."""
    while True:
        if collection.get(key) is None:
            try:
                collection.insert({"id": key, **changes})
                return
            except Conflict:
                continue
        if collection.update(key, dict(changes)) is not None:
            return
