"""The 好差评 platform connector (docs/api.md, "sync: the platform connector"): this site's
``rating.evaluations`` feed — what its subtree recorded, since replicated records enter it
too — pushed to an external platform in its coding, and (``SYNC.platform.cases``) its
``rating.cases`` feed, the rectification of every bad rating, in ``rectification_v1``;
each source with its own task, checkpoint, backoff and parked records.

Each record version has one idempotency key. A checkpoint moves only past records the
platform settled (accepted, a duplicate of an earlier send, or refused and parked here)
and records the coding cannot express (skipped, with the reason): a lost reply means a
resend of what was not acknowledged, which the platform recognises by its key. Timeouts,
5xx, dropped connections and authentication refusals fail the batch; the task backs off
with jitter and tries again, for ever."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from services.common.evaluation_coding import EXPORT_PROFILES, RECTIFICATION_V1
from services.common.feeds import rolled_back
from services.sync import domain
from services.sync.domain import FeedRef
from services.sync.domain.platform import Acks, coded, coded_case, read_acks, settled_prefix
from services.sync.ports import LinkFailure, Platform, PlatformRefusal, UpstreamSession
from services.sync.settings import PlatformSettings
from services.sync.usecases.base import (
    PLATFORM,
    PLATFORM_CASES,
    PLATFORM_CASES_SKIPPED,
    PLATFORM_PARKED,
    PLATFORM_SKIPPED,
    SyncBase,
    classify,
    log,
    outcome,
)

Payload = tuple[dict[str, Any] | None, str | None]


@dataclass(frozen=True)
class Source:
    """One feed the connector pushes: ``name`` is its task, checkpoint, outcome and parked
    feed; ``skipped`` keeps the records its coding cannot express."""

    ref: FeedRef
    name: str
    skipped: str

    def coding(self, p: PlatformSettings) -> str:
        return RECTIFICATION_V1 if self is CASES else p.profile

    def code(self, record: dict[str, Any], p: PlatformSettings) -> Payload:
        if self is CASES:
            return coded_case(record, p.zone)
        return coded(record, EXPORT_PROFILES[p.profile], p.zone)


EVALUATIONS = Source(FeedRef("rating", "evaluations"), PLATFORM_PARKED, PLATFORM_SKIPPED)
CASES = Source(FeedRef("rating", "cases"), PLATFORM_CASES, PLATFORM_CASES_SKIPPED)
SOURCES = (EVALUATIONS, CASES)
NAME = PLATFORM_PARKED  # the evaluations' task (kept name: its checkpoint is stored under it)
SKIPPED = PLATFORM_SKIPPED


def sources(p: PlatformSettings | None) -> tuple[Source, ...]:
    """What a site's ``SYNC.platform`` pushes."""
    if p is None:
        return ()
    return SOURCES if p.cases else (EVALUATIONS,)


def source_of(feed: str) -> Source | None:
    """The source whose parked or skipped records ``feed`` names."""
    return next((s for s in SOURCES if feed in (s.name, s.skipped)), None)


class PlatformPush(SyncBase):
    def _platform_settings(self) -> PlatformSettings:
        assert self.settings.platform is not None, "only scheduled when configured"
        return self.settings.platform

    def _platform_run(self, due: Callable[[str], bool]) -> dict[str, Any]:
        """Run each source whose task is ``due`` (under the store's lease), when configured."""
        results: dict[str, Any] = {}
        for source in sources(self.settings.platform):
            if due(source.name):

                def job(_up: UpstreamSession | None = None, s: Source = source) -> dict[str, Any]:
                    return self.push_platform(s)

                leased = self._leased(source.name, job)
                results[source.name] = self._attempt(
                    source.name, leased, cast(UpstreamSession, None)
                )
        return results

    def push_platform(self, source: Source = EVALUATIONS) -> dict[str, Any]:
        """Push ``source`` after its checkpoint, page by page, until the feed is drained or
        ``cycle_seconds`` are up (the rest on the next tick)."""
        p = self._platform_settings()
        position = self.repo.checkpoint_doc(source.name)
        since, incarnation = position["seq"], position["incarnation"]
        deadline = self.monotonic() + self.settings.cycle_seconds
        totals: Counter[str] = Counter()
        more = False
        while True:
            if self.monotonic() > deadline or self.state.stopping:
                more = True
                break
            ref = source.ref
            page = self.local.call(ref.service, "feed", ref.feed, since, p.batch_size)
            if since and rolled_back(page, since, incarnation):
                log.warning("sync %s: rating's store was restored; pushing it again from 0", ref)
                since, incarnation = 0, page.get("incarnation")
                self._platform_checkpoint(source, 0, incarnation)
                continue
            incarnation = page.get("incarnation") or incarnation
            items = page["items"]
            unsettled = 0
            if items:
                since, unsettled = self._platform_page(p, source, items, since, totals)
            self._platform_checkpoint(source, since, incarnation)
            if unsettled:
                raise LinkFailure(
                    "incomplete_ack", f"好差评平台未确认 {unsettled} 条记录，稍后重发"
                )
            if len(items) < p.batch_size:
                break
        self._gauge_backlog(source.ref, PLATFORM)
        return {**totals, "checkpoint": since, "more": more}

    def _acked(self, source: Source) -> dict[str, int]:
        return self.state.platform_acked.setdefault(source.name, {})

    def _platform_checkpoint(self, source: Source, seq: int, incarnation: str | None) -> None:
        self.repo.set_checkpoint(
            source.name, seq, {"seq": seq, "incarnation": incarnation, "epoch": None}
        )
        acked = self._acked(source)
        for key in [k for k, at in acked.items() if at <= seq]:
            del acked[key]  # behind the checkpoint now: never read again

    def _platform_page(
        self,
        p: PlatformSettings,
        source: Source,
        items: list[dict[str, Any]],
        since: int,
        totals: Counter[str],
    ) -> tuple[int, int]:
        """Code, send and settle one page; (the position it settles up to, how many of its
        records are still unacknowledged)."""
        acked = self._acked(source)
        order: list[tuple[int, str | None]] = []  # (seq, idempotency key; None: skipped)
        sendable: list[tuple[int, dict[str, Any], dict[str, Any]]] = []
        for item in items:
            seq = int(item["_seq"])
            record = domain.mask_record(item, self.settings.mask_keys)
            payload, reason = source.code(record, p)
            if payload is None:
                if self.repo.park(source.skipped, record, str(reason), seq):  # once, not per retry
                    labels = {**self.metrics.site, "feed": source.ref.key}
                    self.metrics.platform_skipped.labels(**labels).inc()
                totals["skipped"] += 1
                order.append((seq, None))
                continue
            key = payload["idempotency_key"]
            order.append((seq, key))
            if key not in acked:  # acknowledged in an earlier try of this page: not again
                sendable.append((seq, payload, record))
        if sendable:
            acks = self._post(source.coding(p), [payload for _, payload, _ in sendable])
            self._settle(source, acks, sendable, totals)
        count = settled_prefix([key for _, key in order], acked)
        position = order[count - 1][0] if count else since
        return position, len(order) - count

    def _settle(
        self,
        source: Source,
        acks: Acks,
        sent: list[tuple[int, dict[str, Any], dict[str, Any]]],
        totals: Counter[str],
    ) -> None:
        acked = self._acked(source)
        accepted = set(acks.accepted)
        counts: Counter[str] = Counter()
        for seq, payload, record in sent:
            key = payload["idempotency_key"]
            if key in acks.rejected:
                self.repo.park(source.name, record, f"平台拒收：{acks.rejected[key]}", seq)
                log.warning(
                    "sync %s: the platform refused %s: %s", source.name, key, acks.rejected[key]
                )
                acked[key] = seq
                counts["parked"] += 1
            elif key in accepted:
                acked[key] = seq
                counts["accepted"] += 1
        totals.update(counts)
        labels = {**self.metrics.site, "direction": PLATFORM, "feed": source.ref.key}
        self.metrics.records.labels(**labels).inc(counts["accepted"])

    def _post(self, coding: str, records: list[dict[str, Any]]) -> Acks:
        """POST ``records`` (all in ``coding``); a 4xx refusing the whole batch without
        per-record results is narrowed down by halves, so one bad record never parks the
        others."""
        keys = [r["idempotency_key"] for r in records]
        payload = {
            "site_code": self.code,
            "profile": coding,
            "sent_at": self._now_iso(),
            "records": records,
        }
        try:
            return read_acks(keys, self._platform().post(payload))
        except PlatformRefusal as refusal:
            acks = read_acks(keys, refusal.reply)
            if acks.accepted or acks.rejected:
                return acks
            if len(records) == 1:
                return Acks(rejected={keys[0]: f"HTTP {refusal.status} {refusal.reason}"[:300]})
            half = len(records) // 2
            first, rest = self._post(coding, records[:half]), self._post(coding, records[half:])
            return Acks(
                accepted=first.accepted + rest.accepted,
                rejected={**first.rejected, **rest.rejected},
                missing=first.missing + rest.missing,
            )

    def _platform(self) -> Platform:
        assert self.platform is not None, "the provider builds it when SYNC.platform is set"
        return self.platform

    def _retry_platform(self, feed: str | None = None) -> dict[str, Any]:
        """Parked and skipped records of every source, or of the one ``feed`` names, coded
        and sent again (after the platform or the coding was fixed); those accepted leave
        the list. One summary per source; a platform that does not answer is that source's
        outcome (the other sources and the upward feeds are retried all the same)."""
        summary: dict[str, Any] = {}
        for source in sources(self.settings.platform):
            if feed is None or source_of(feed) is source:
                feeds = [feed] if feed else [source.name, source.skipped]
                try:
                    summary[source.name] = self._retry_source(source, feeds)
                except Exception as exc:  # noqa: BLE001  (classified and reported, not raised)
                    reason, message = classify(exc)
                    summary[source.name] = {"ok": False, "reason": reason, "error": message}
        return summary

    def _retry_source(self, source: Source, feeds: list[str]) -> dict[str, int]:
        p = self._platform_settings()
        resolved = still = after = 0
        while docs := self.repo.parked_records(feeds, p.batch_size, after):
            after = docs[-1]["_seq"]
            sendable: dict[str, dict[str, Any]] = {}
            for doc in docs:
                payload, _ = source.code(doc["record"], p)
                if payload is None:
                    still += 1
                else:
                    sendable[doc["id"]] = payload
            if sendable:
                acks = self._post(source.coding(p), list(sendable.values()))
                accepted = set(acks.accepted)
                for parked_id, payload in sendable.items():
                    if payload["idempotency_key"] in accepted:
                        self.repo.unpark(parked_id)
                        resolved += 1
                    else:
                        still += 1
        self._gauge_platform_parked(source)
        return {"resolved": resolved, "still_parked": still}

    def _gauge_platform_parked(self, source: Source) -> int:
        count = self.repo.parked_count(source.name)
        self.metrics.parked.labels(**self.metrics.site, feed=source.name).set(count)
        return count

    def _source_status(self, source: Source, p: PlatformSettings) -> dict[str, Any]:
        return {
            "coding": source.coding(p),
            "checkpoint": self.repo.checkpoint(source.name),
            **self._gauge_backlog(source.ref, PLATFORM),
            **outcome(self.repo.outcome(source.name)),
            "parked": self._gauge_platform_parked(source),
            "skipped": self.repo.parked_count(source.skipped),
        }

    def platform_status(self) -> dict[str, Any]:
        """The connector's part of ``sync.status()`` (empty when not configured): the
        evaluations' figures at the top, the cases' under ``cases`` (when pushed); never
        the secret, nor the address's query."""
        p = self.settings.platform
        if p is None:
            return {}
        status = {
            "url": p.url.split("?")[0],
            "profile": p.profile,
            "auth": p.auth,
            **self._source_status(EVALUATIONS, p),
        }
        if p.cases:
            status["cases"] = self._source_status(CASES, p)
        return status
