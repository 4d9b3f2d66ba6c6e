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

import math
import uuid
from collections.abc import Iterable, Mapping
from contextlib import suppress
from datetime import timedelta
from typing import Any, TypedDict, cast

from services.common.clock import Clock, iso, utc_now
from services.common.errors import Conflict
from services.common.store import Collection, Index, Store
from services.sync.domain import acknowledge, day_of
from services.sync.domain.records import LedgerEntry, Outcome, ParkedRecord, ReceivedMark


class Position(TypedDict):
    """A checkpoint of an upward feed: the position, the local store's incarnation it counts
    in, and the epoch sent with every batch (new after every restore)."""

    seq: int
    incarnation: str | None
    epoch: str | None


def new_epoch(incarnation: str | None) -> str:
    """The epoch of a new reading of a feed of the store ``incarnation``."""
    return f"{incarnation or '-'}/{uuid.uuid4().hex[:12]}"


class SyncRepository:
    def __init__(self, store: Store, clock: Clock = utc_now) -> None:
        self.clock = clock
        self.checkpoints = store.collection("checkpoints")
        self.received = store.collection("received", (Index(("child",)),))
        self.ledger = store.collection("ledger", (Index(("feed", "site_code", "day")),))
        self.parked = store.collection("parked", (Index(("feed",)), Index(("resolved_at",))))
        self.outcomes = store.collection("outcomes")
        self.leases = store.collection("leases")

    # --- this site's checkpoints -------------------------------------------------------

    def checkpoint(self, key: str) -> int:
        doc = self.checkpoints.get(key)
        return int(doc["seq"]) if doc else 0

    def checkpoint_doc(self, key: str) -> Position:
        """The checkpoint with the incarnation of the feed it counts in and the epoch this
        site reads it under (None before the first reading)."""
        doc = self.checkpoints.get(key) or {}
        return {
            "seq": int(doc.get("seq", 0)),
            "incarnation": doc.get("incarnation"),
            "epoch": doc.get("epoch"),
        }

    def set_checkpoint(self, key: str, seq: int, position: Position | None = None) -> None:
        """Set (not max) the checkpoint: an upstream that lost data may move it back.
        ``position`` gives the incarnation and epoch it counts in."""
        extra = (
            {"incarnation": position["incarnation"], "epoch": position["epoch"]} if position else {}
        )
        _put(self.checkpoints, key, {"seq": seq, **extra})

    # --- the upstream end: what each child has delivered --------------------------------

    def high_water(self, child: str, feed: str) -> int:
        doc = self.received.get(f"{child}:{feed}")
        return int(doc["seq"]) if doc else 0

    def acknowledge(
        self, child: str, feed: str, from_seq: int, to_seq: int, epoch: str | None = None
    ) -> int:
        """Advance the child's high-water mark after a batch is durable; returns the mark.
        A batch of another ``epoch`` (the child's store was restored and it reads its feed
        again from 0) starts the mark again from 0."""
        key = f"{child}:{feed}"
        now = iso(self.clock())
        while True:
            doc = self.received.get(key)
            if doc is None:
                seq = acknowledge(0, from_seq, to_seq)
                try:
                    self.received.insert(
                        {"id": key, "child": child, "feed": feed, "seq": seq, "at": now}
                        | ({"epoch": epoch} if epoch else {})
                    )
                    return seq
                except Conflict:
                    continue
            stored = int(doc["seq"])
            held = doc.get("epoch")
            renewed = bool(epoch) and held is not None and held != epoch
            seq = acknowledge(0 if renewed else stored, from_seq, to_seq)
            changes = {"seq": seq, "at": now} | ({"epoch": epoch} if epoch else {})
            if self.received.update(key, changes, expect={"seq": stored, "epoch": held}):
                return seq

    def received_marks(self) -> list[ReceivedMark]:
        return cast(list[ReceivedMark], self.received.find(sort=[("id", 1)]))

    def record_ledger(self, feed: str, records: Iterable[Mapping[str, Any]], child: str) -> None:
        self.ledger.upsert_versioned_many(
            LedgerEntry(
                id=f"{feed}:{record['id']}",
                version=record["version"],
                feed=feed,
                site_code=record["site_code"],
                day=day_of(record),
                child=child,
            )
            for record in records
        )

    def ledger_count(self, feed: str, origin: str, day: str) -> int:
        return self.ledger.count({"feed": feed, "site_code": origin, "day": day})

    def ledger_versions(self, feed: str, origin: str, day: str) -> list[tuple[str, int]]:
        """(record id, version) of what children delivered for ``origin`` on ``day``."""
        entries = self.ledger.find({"feed": feed, "site_code": origin, "day": day})
        cut = len(feed) + 1
        return [(entry["id"][cut:], int(entry["version"])) for entry in entries]

    # --- parked (poison) records ----------------------------------------------------------

    def park(self, feed: str, record: Mapping[str, Any], reason: str, seq: int | None) -> bool:
        """Keep a poison record with the reason; whatever it holds that a store cannot
        (an integer beyond 2^53) is kept as text, so parking itself never fails. False when
        it was parked before (a replayed page), which keeps the first reason."""
        record = _storable(record)
        record_id = str(record.get("id", f"seq-{seq}"))[:200]
        key = f"{feed}:{record_id}:{record.get('version')}"
        doc = ParkedRecord(
            id=key,
            feed=feed,
            record_id=record_id,
            record_version=record.get("version"),
            seq=seq,
            reason=reason,
            parked_at=iso(self.clock()),
            record=dict(record),
        )
        try:
            self.parked.insert(doc)
        except Conflict:  # parked before (a replayed page): keep the first reason
            return False
        return True

    def parked_count(self, feed: str) -> int:
        return self.parked.count({"feed": feed})

    def parked_versions(self, feed: str) -> set[tuple[str, Any]]:
        """(record id, version) of every record parked for ``feed``."""
        return {(d["record_id"], d["record_version"]) for d in self.parked.find({"feed": feed})}

    def parked_records(
        self, feeds: Iterable[str], limit: int, after: int = 0
    ) -> list[ParkedRecord]:
        """Parked (unresolved) records of ``feeds``, oldest first, after position ``after``."""
        found = self.parked.find(
            {"feed": {"$in": list(feeds)}, "_seq": {"$gt": after}}, sort=[("_seq", 1)], limit=limit
        )
        return cast(list[ParkedRecord], found)

    def unpark(self, key: str) -> None:
        doc = self.parked.get(key)
        if doc is not None:
            # A resolved record is marked (it leaves the feed index) and pruned later.
            resolved = {"feed": f"resolved:{doc['feed']}", "resolved_at": iso(self.clock())}
            self.parked.update(key, resolved)

    # --- retention ------------------------------------------------------------------------

    def prune_ledger(self, first_day: str) -> int:
        """Forget ledger entries of days before ``first_day`` (reconciliation looks no
        further back); how many."""
        return self.ledger.delete_many({"day": {"$lt": first_day}})

    def prune_parked(self, before: str) -> int:
        """Forget parked records resolved before the moment ``before``; how many."""
        return self.parked.delete_many({"resolved_at": {"$lt": before}})

    # --- leases: one active replicator per feed ------------------------------------------

    def lease(self, name: str, holder: str, seconds: float) -> str | None:
        """Take or renew the lease ``name`` for ``holder`` for ``seconds``; None when taken,
        else the holder that keeps it. A lease its holder stopped renewing (it died)
        expires. Compare-and-set on the stored holder and expiry: two processes on one
        store never both hold it."""
        now = self.clock()
        changes = {"holder": holder, "expires_at": iso(now + timedelta(seconds=seconds))}
        while True:
            doc = self.leases.get(name)
            if doc is None:
                try:
                    self.leases.insert({"id": name, **changes})
                    return None
                except Conflict:
                    continue
            current = {"holder": doc.get("holder"), "expires_at": doc.get("expires_at")}
            if current["holder"] != holder and str(current["expires_at"]) > iso(now):
                return str(current["holder"])
            if self.leases.update(name, changes, expect=current) is not None:
                return None

    def release(self, name: str, holder: str) -> None:
        """Give the lease up now (a graceful stop), if ``holder`` still holds it."""
        with suppress(Conflict):
            self.leases.update(name, {"expires_at": ""}, expect={"holder": holder})

    # --- outcomes -------------------------------------------------------------------------

    def outcome(self, key: str) -> Outcome:
        return cast(Outcome, self.outcomes.get(key) or {})

    def succeeded(self, key: str, extra: Mapping[str, Any] | None = None) -> None:
        _put(self.outcomes, key, {"last_success": iso(self.clock()), **(extra or {})})

    def note(self, key: str, changes: Outcome) -> None:
        """Set fields of an outcome that are neither a success nor an error."""
        _put(self.outcomes, key, changes)

    def failed(self, key: str, reason: str, message: str) -> None:
        _put(
            self.outcomes,
            key,
            {
                "last_error": message[:500],
                "last_error_reason": reason,
                "last_error_at": iso(self.clock()),
            },
        )


def _storable(value: Any) -> Any:
    """``value`` with what a store cannot hold as text: integers beyond 2^53, NaN and
    infinities, lone surrogates."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 2**53:
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, Mapping):
        return {str(k): _storable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_storable(item) for item in value]
    return value


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
