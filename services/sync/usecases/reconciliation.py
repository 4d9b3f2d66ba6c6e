"""Reconciliation, the child's end: compare the count and a digest of (id, version) per
origin per day with the upstream's ledger and send those days again when they differ (a
silent gap or a missed update, e.g. an upstream or a local store restored from backup)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from services.sync import domain
from services.sync.domain import FeedRef
from services.sync.ports import UpstreamSession
from services.sync.schemas import MAX_PAGE
from services.sync.usecases.base import UP, log
from services.sync.usecases.replicator import Replicator


class Reconciliation(Replicator):
    def _acknowledged(self, ref: FeedRef) -> Iterator[dict[str, Any]]:
        """Records of a local feed up to the acknowledged checkpoint, masked and sendable."""
        limit = self.repo.checkpoint(f"{UP}:{ref.key}")
        parked = self.repo.parked_versions(ref.key)
        since = 0
        while since < limit:
            page = self.local.call(ref.service, "feed", ref.feed, since, MAX_PAGE)
            for item in page["items"]:
                if int(item["_seq"]) > limit:
                    return
                record = self._prepare(ref, item, park=False)
                if record is not None and (record["id"], record["version"]) not in parked:
                    yield record
            if len(page["items"]) < MAX_PAGE:
                return
            since = int(page["last_seq"])

    def reconcile(self, up: UpstreamSession) -> dict[str, Any]:
        """Compare counts per origin per day with the upstream; send again what it lacks."""
        key = self._key()
        first = domain.first_day(self.clock().date(), self.settings.reconcile_days)
        summary: dict[str, Any] = {}
        for ref in self.settings.upward:
            records = list(self._acknowledged(ref))
            mine = domain.tally(records, first)
            digests = domain.tally_digests(records, first)
            request = domain.sign(
                {
                    "schema": domain.SCHEMA,
                    "child": self.code,
                    "service": ref.service,
                    "feed": ref.feed,
                    "counts": mine,
                    "digests": digests,
                },
                key,
            )
            answer = up.reconcile_counts(request)
            gaps = domain.shortfalls(mine, answer["counts"])
            if answer.get("digests") is not None:  # an older upstream compares counts only
                gaps |= domain.differences(digests, answer["digests"])
            resent = self._resend(up, key, ref, gaps) if gaps else 0
            summary[ref.key] = {"gaps": len(gaps), "resent": resent}
        return summary

    def _resend(
        self, up: UpstreamSession, key: str, ref: FeedRef, gaps: set[tuple[str, str]]
    ) -> int:
        resent = 0
        batch: list[dict[str, Any]] = []
        for record in self._acknowledged(ref):
            if (record["site_code"], domain.day_of(record)) in gaps:
                batch.append(record)
                if len(batch) >= self.settings.batch_size:
                    self._send(up, key, ref, 0, 0, batch, resend=True)
                    resent += len(batch)
                    batch = []
        if batch:
            self._send(up, key, ref, 0, 0, batch, resend=True)
            resent += len(batch)
        self.metrics.resent.labels(**self.metrics.site, feed=ref.key).inc(resent)
        log.warning("sync reconcile %s: %d gaps, %d records sent again", ref.key, len(gaps), resent)
        return resent
