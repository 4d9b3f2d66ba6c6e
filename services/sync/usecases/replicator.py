"""The push side (the child's end): read the local feeds after the checkpoint, mask and
check each record, send signed batches to the upstream's ``sync.ingest``, and move the
checkpoint only to the high-water mark the upstream replies with. Poison records are
parked, reported, and sent again on request (docs/architecture.md, "Replication")."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from services.common.errors import UpstreamUnavailable
from services.common.feeds import rolled_back
from services.common.site import within_subtree
from services.sync import domain
from services.sync.domain import FeedRef, Span
from services.sync.ports import Pending, UpstreamSession
from services.sync.store import Position, new_epoch
from services.sync.usecases.base import (
    OUTCOMES_FEED,
    PLATFORM_CASES,
    PLATFORM_CASES_SKIPPED,
    PLATFORM_PARKED,
    PLATFORM_SKIPPED,
    SESSION_SURVIVES,
    UP,
    SyncBase,
    classify,
    log,
)

# items read, batches, last position of the page, the page itself (incarnation, high water)
Page = tuple[int, list[Span], int, dict[str, Any]]
PLATFORM_FEEDS = (PLATFORM_PARKED, PLATFORM_SKIPPED, PLATFORM_CASES, PLATFORM_CASES_SKIPPED)


class Replicator(SyncBase):
    def _prepare(self, ref: FeedRef, item: Mapping[str, Any], park: bool) -> dict[str, Any] | None:
        """The masked record to send, or None (parked as poison when ``park``)."""
        record = domain.mask_record(item, self.settings.mask_keys)
        problem = domain.record_problem(record, self.settings.max_record_bytes)
        if problem is None:
            for site in {record["site_code"], domain.owner_of(record)}:
                if not within_subtree(site, self.code):
                    problem = f"记录的来源站点 {site} 不在本站点 {self.code} 的辖区内"
        if problem is None:
            return record
        if park:
            self.repo.park(ref.key, record, problem, item.get("_seq"))
            log.warning(
                "sync parked a record of %s at seq %s: %s", ref.key, item.get("_seq"), problem
            )
        return None

    def _prefetch(self, ref: FeedRef, since: int) -> Pending:
        """``_read`` started by ``spawn``; its failure comes back as a value (so the runner
        does not print it as an unhandled error) and is raised by ``_page``."""

        def read() -> Page | BaseException:
            try:
                return self._read(ref, since)
            except Exception as exc:  # noqa: BLE001  (handed to the reader, which raises it)
                return exc

        return self.spawn(read)

    @staticmethod
    def _page(pending: Pending) -> Page:
        result = pending.wait()
        if isinstance(result, BaseException):
            raise result
        page: Page = result
        return page

    def _read(self, ref: FeedRef, since: int) -> Page:
        """One page of a local feed after ``since``, masked, checked and cut into batches."""
        size = self.settings.batch_size
        page = self.local.call(ref.service, "feed", ref.feed, since, size)
        items = page["items"]
        meta = {"incarnation": page.get("incarnation"), "high_water": page.get("high_water")}
        if not items:
            return 0, [], since, meta
        last = int(page["last_seq"])
        parts = domain.spans(
            items,
            since,
            last,
            lambda item: self._prepare(ref, item, park=True),
            size,
            self.settings.max_batch_bytes,
        )
        return len(items), parts, last, meta

    def push_feed(self, up: UpstreamSession, ref: FeedRef) -> dict[str, Any]:
        """Send everything after the checkpoint, batch by batch, moving the checkpoint only
        to the high-water mark the upstream replies with. The next page is read and
        prepared while the upstream works on the current batch (batches still go one at a
        time, in order, so the upstream's mark moves contiguously)."""
        key = self._key()
        checkpoint = f"{UP}:{ref.key}"
        sent = 0
        more = False
        deadline = self.monotonic() + self.settings.cycle_seconds
        position = self.repo.checkpoint_doc(checkpoint)
        pending: Pending | None = self._prefetch(ref, position["seq"])
        first = True
        try:
            while pending is not None:
                if self.monotonic() > deadline or self.state.stopping or not self._renew(ref):
                    # Leave the rest to the next tick: the other exchanges get their turn and
                    # a graceful stop never waits for a whole large backlog.
                    more = True
                    break
                count, parts, last, meta = self._page(pending)
                pending = None
                if first:
                    first = False
                    read_from = position["seq"]
                    position = self._incarnation(ref, checkpoint, position, meta)
                    if read_from and position["seq"] == 0:
                        pending = self._prefetch(ref, 0)  # restored: read it all again
                        continue
                if count == 0:
                    break
                if count >= self.settings.batch_size:
                    pending = self._prefetch(ref, last)
                mark = last
                for part in parts:
                    reply = self._send(
                        up, key, ref, part.from_seq, part.to_seq, part.records, position["epoch"]
                    )
                    mark = int(reply["high_water"])
                    self.repo.set_checkpoint(checkpoint, mark, position)
                    sent += len(part.records)
                    self.metrics.records.labels(
                        **self.metrics.site, direction=UP, feed=ref.key
                    ).inc(len(part.records))
                    if mark != part.to_seq:
                        break
                if mark != last:
                    # The upstream holds less (it lost data) or more (we lost our checkpoint)
                    # than we thought: carry on from its mark, not from our page.
                    log.warning("sync %s: upstream holds up to %s; continuing there", ref.key, mark)
                    if pending is not None:
                        pending.kill()
                    pending = self._prefetch(ref, mark)
        finally:
            if pending is not None:
                pending.kill()
        self._gauge_backlog(ref)
        return {"sent": sent, "checkpoint": self.repo.checkpoint(checkpoint), "more": more}

    def _renew(self, ref: FeedRef) -> bool:
        """Renew this process's lease on the feed before each page (a long push must not
        outlive it); False when another process holds it now."""
        name = f"{UP}:{ref.key}"
        if name not in self.state.leases:
            return True  # not run under a lease (a direct call)
        return self.repo.lease(name, self.state.holder, self.settings.lease_seconds) is None

    def _incarnation(
        self, ref: FeedRef, name: str, position: Position, page: Mapping[str, Any]
    ) -> Position:
        """The checkpoint to go on from, after the first page read from it. A local store
        restored since (another incarnation, or a high-water mark below the checkpoint) is
        read again from 0 under a new epoch, which tells the upstream to drop the mark it
        holds for this feed (upserts by version make the second reading harmless)."""
        incarnation = page.get("incarnation")
        seen = position.get("incarnation")
        if position.get("epoch") is None or seen is None:  # first reading, or an older site
            position = {**position, "incarnation": incarnation, "epoch": new_epoch(incarnation)}
        elif rolled_back(dict(page), position["seq"], seen):
            log.warning(
                "sync %s: the local store was restored (incarnation %s, high water %s, "
                "checkpoint %s): sending it again from 0",
                ref.key,
                incarnation,
                page.get("high_water"),
                position["seq"],
            )
            position = {"seq": 0, "incarnation": incarnation, "epoch": new_epoch(incarnation)}
        else:
            return position
        self.repo.set_checkpoint(name, position["seq"], position)
        return position

    def _send(
        self,
        up: UpstreamSession,
        key: str,
        ref: FeedRef,
        from_seq: int,
        to_seq: int,
        records: list[dict[str, Any]],
        epoch: str | None = None,
        resend: bool = False,
    ) -> dict[str, Any]:
        batch = domain.sign(
            {
                "schema": domain.SCHEMA,
                "child": self.code,
                "service": ref.service,
                "feed": ref.feed,
                "from_seq": from_seq,
                "to_seq": to_seq,
                "resend": resend,
                "sent_at": self._now_iso(),
                "records": records,
                **({"incarnation": epoch} if epoch is not None else {}),
            },
            key,
        )
        reply = up.ingest(batch)
        rejected = reply.get("rejected") or []
        if rejected:
            by_id = {(r["id"], r["version"]): r for r in records}
            for item in rejected:
                record = by_id.get((item.get("id"), item.get("version")))
                if record is not None:
                    self.repo.park(ref.key, record, f"上级拒收：{item.get('reason')}", None)
        return reply

    def retry_parked(self, feed: str | None = None) -> dict[str, Any]:
        """Resend parked records that pass this site's own checks now; unpark the ones the
        upstream accepts. Parked catalog records are applied locally again."""
        self._check_feed(feed)
        upward = [ref for ref in self.settings.upward if feed in (None, ref.key)]
        key = self._key() if upward else ""
        summary: dict[str, Any] = {}
        with self.state.lock:
            if self.settings.pull_catalog and feed in (None, self.catalog_feed):
                summary[self.catalog_feed] = self._retry_catalog()
            if self.settings.pull_outcomes and feed in (None, OUTCOMES_FEED):
                summary[OUTCOMES_FEED] = self._retry_outcomes()
            if self.settings.platform is not None and feed in (None, *PLATFORM_FEEDS):
                summary.update(self._retry_platform(feed))
            if not upward:
                return {"site_code": self.code, "results": summary}
            try:
                up = self._session()
                for ref in upward:
                    summary[ref.key] = self._retry_feed(up, key, ref)
            except Exception as exc:  # noqa: BLE001  (classified, answered as unavailable)
                reason, message = classify(exc)
                if reason not in SESSION_SURVIVES:
                    self.state.close_session()
                raise UpstreamUnavailable(message) from None
        return {"site_code": self.code, "results": summary}

    def _retry_feed(self, up: UpstreamSession, key: str, ref: FeedRef) -> dict[str, int]:
        resolved = still = after = 0
        while docs := self.repo.parked_records([ref.key], self.settings.batch_size, after):
            after = docs[-1]["_seq"]
            sendable = {}
            for doc in docs:
                record = self._prepare(ref, {**doc["record"], "_seq": 0}, park=False)
                if record is None:
                    still += 1
                else:
                    sendable[doc["id"]] = record
            if sendable:
                reply = self._send(up, key, ref, 0, 0, list(sendable.values()), resend=True)
                refused = {(r.get("id"), r.get("version")) for r in reply.get("rejected") or []}
                for parked_id, record in sendable.items():
                    if (record["id"], record["version"]) in refused:
                        still += 1
                    else:
                        self.repo.unpark(parked_id)
                        resolved += 1
        count = self.repo.parked_count(ref.key)
        self.metrics.parked.labels(**self.metrics.site, feed=ref.key).set(count)
        return {"resolved": resolved, "still_parked": still}
