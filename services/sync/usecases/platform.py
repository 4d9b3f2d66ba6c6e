"""The 好差评 platform connector (docs/api.md, "sync: the platform connector"): this site's
``rating.evaluations`` feed — what its subtree recorded, since replicated records enter it
too — pushed to an external platform in its coding, with its own checkpoint.

Each record version has one idempotency key. The checkpoint moves only past records the
platform settled (accepted, a duplicate of an earlier send, or refused and parked here)
and records the coding cannot express (skipped, with the reason): a lost reply means a
resend of what was not acknowledged, which the platform recognises by its key. Timeouts,
5xx, dropped connections and authentication refusals fail the batch; the task backs off
with jitter and tries again, for ever."""

from __future__ import annotations

from collections import Counter
from typing import Any, cast

from services.common.evaluation_coding import EXPORT_PROFILES
from services.common.feeds import rolled_back
from services.sync import domain
from services.sync.domain import FeedRef
from services.sync.domain.platform import Acks, coded, read_acks, settled_prefix
from services.sync.ports import LinkFailure, Platform, PlatformRefusal, UpstreamSession
from services.sync.settings import PlatformSettings
from services.sync.usecases.base import (
    PLATFORM,
    PLATFORM_PARKED,
    PLATFORM_SKIPPED,
    SyncBase,
    log,
    outcome,
)

SOURCE = FeedRef("rating", "evaluations")
NAME = PLATFORM_PARKED  # the task, its checkpoint, its outcome, its parked feed
SKIPPED = PLATFORM_SKIPPED  # records the coding cannot express


class PlatformPush(SyncBase):
    def _platform_settings(self) -> PlatformSettings:
        assert self.settings.platform is not None, "only scheduled when configured"
        return self.settings.platform

    def _platform_job(self, _up: UpstreamSession | None = None) -> dict[str, Any]:
        return self.push_platform()

    def _platform_run(self, due: bool) -> dict[str, Any]:
        """Run the connector (under the store's lease) when configured and ``due``."""
        if self.settings.platform is None or not due:
            return {}
        job = self._leased(NAME, self._platform_job)
        return {NAME: self._attempt(NAME, job, cast(UpstreamSession, None))}

    def push_platform(self) -> dict[str, Any]:
        """Push everything after the checkpoint, page by page, until the feed is drained or
        ``cycle_seconds`` are up (the rest on the next tick)."""
        p = self._platform_settings()
        position = self.repo.checkpoint_doc(NAME)
        since, incarnation = position["seq"], position["incarnation"]
        deadline = self.monotonic() + self.settings.cycle_seconds
        totals: Counter[str] = Counter()
        more = False
        while True:
            if self.monotonic() > deadline or self.state.stopping:
                more = True
                break
            page = self.local.call(SOURCE.service, "feed", SOURCE.feed, since, p.batch_size)
            if since and rolled_back(page, since, incarnation):
                log.warning("sync %s: rating's store was restored; pushing it again from 0", NAME)
                since, incarnation = 0, page.get("incarnation")
                self._platform_checkpoint(0, incarnation)
                continue
            incarnation = page.get("incarnation") or incarnation
            items = page["items"]
            unsettled = 0
            if items:
                since, unsettled = self._platform_page(p, items, since, totals)
            self._platform_checkpoint(since, incarnation)
            if unsettled:
                raise LinkFailure(
                    "incomplete_ack", f"好差评平台未确认 {unsettled} 条记录，稍后重发"
                )
            if len(items) < p.batch_size:
                break
        self._gauge_backlog(SOURCE, PLATFORM)
        return {**totals, "checkpoint": since, "more": more}

    def _platform_checkpoint(self, seq: int, incarnation: str | None) -> None:
        self.repo.set_checkpoint(NAME, seq, {"seq": seq, "incarnation": incarnation, "epoch": None})
        acked = self.state.platform_acked
        for key in [k for k, at in acked.items() if at <= seq]:
            del acked[key]  # behind the checkpoint now: never read again

    def _platform_page(
        self, p: PlatformSettings, items: list[dict[str, Any]], since: int, totals: Counter[str]
    ) -> tuple[int, int]:
        """Code, send and settle one page; (the position it settles up to, how many of its
        records are still unacknowledged)."""
        profile = EXPORT_PROFILES[p.profile]
        acked = self.state.platform_acked
        order: list[tuple[int, str | None]] = []  # (seq, idempotency key; None: skipped)
        sendable: list[tuple[int, dict[str, Any], dict[str, Any]]] = []
        for item in items:
            seq = int(item["_seq"])
            record = domain.mask_record(item, self.settings.mask_keys)
            payload, reason = coded(record, profile, p.zone)
            if payload is None:
                if self.repo.park(SKIPPED, record, str(reason), seq):  # once, not per retry
                    self.metrics.platform_skipped.labels(**self.metrics.site, feed=SOURCE.key).inc()
                totals["skipped"] += 1
                order.append((seq, None))
                continue
            key = payload["idempotency_key"]
            order.append((seq, key))
            if key not in acked:  # acknowledged in an earlier try of this page: not again
                sendable.append((seq, payload, record))
        if sendable:
            acks = self._post(p, [payload for _, payload, _ in sendable])
            self._settle(acks, sendable, totals)
        count = settled_prefix([key for _, key in order], acked)
        position = order[count - 1][0] if count else since
        return position, len(order) - count

    def _settle(
        self,
        acks: Acks,
        sent: list[tuple[int, dict[str, Any], dict[str, Any]]],
        totals: Counter[str],
    ) -> None:
        acked = self.state.platform_acked
        accepted = set(acks.accepted)
        counts: Counter[str] = Counter()
        for seq, payload, record in sent:
            key = payload["idempotency_key"]
            if key in acks.rejected:
                self.repo.park(NAME, record, f"平台拒收：{acks.rejected[key]}", seq)
                log.warning("sync %s: the platform refused %s: %s", NAME, key, acks.rejected[key])
                acked[key] = seq
                counts["parked"] += 1
            elif key in accepted:
                acked[key] = seq
                counts["accepted"] += 1
        totals.update(counts)
        labels = {**self.metrics.site, "direction": PLATFORM, "feed": SOURCE.key}
        self.metrics.records.labels(**labels).inc(counts["accepted"])

    def _post(self, p: PlatformSettings, records: list[dict[str, Any]]) -> Acks:
        """POST ``records``; a 4xx refusing the whole batch without per-record results is
        narrowed down by halves, so one bad record never parks the others."""
        keys = [r["idempotency_key"] for r in records]
        payload = {
            "site_code": self.code,
            "profile": p.profile,
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
            first, rest = self._post(p, records[:half]), self._post(p, records[half:])
            return Acks(
                accepted=first.accepted + rest.accepted,
                rejected={**first.rejected, **rest.rejected},
                missing=first.missing + rest.missing,
            )

    def _platform(self) -> Platform:
        assert self.platform is not None, "the provider builds it when SYNC.platform is set"
        return self.platform

    def _retry_platform(self, feed: str | None = None) -> dict[str, int]:
        """Parked (``feed`` NAME) and skipped (SKIPPED) records, or both, coded and sent
        again (after the platform or the coding was fixed); those accepted leave the list."""
        p = self._platform_settings()
        profile = EXPORT_PROFILES[p.profile]
        resolved = still = after = 0
        feeds = [feed] if feed else [NAME, SKIPPED]
        while docs := self.repo.parked_records(feeds, p.batch_size, after):
            after = docs[-1]["_seq"]
            sendable: dict[str, dict[str, Any]] = {}
            for doc in docs:
                payload, _ = coded(doc["record"], profile, p.zone)
                if payload is None:
                    still += 1
                else:
                    sendable[doc["id"]] = payload
            if sendable:
                acks = self._post(p, list(sendable.values()))
                accepted = set(acks.accepted)
                for parked_id, payload in sendable.items():
                    if payload["idempotency_key"] in accepted:
                        self.repo.unpark(parked_id)
                        resolved += 1
                    else:
                        still += 1
        self._gauge_platform_parked()
        return {"resolved": resolved, "still_parked": still}

    def _gauge_platform_parked(self) -> int:
        count = self.repo.parked_count(NAME)
        self.metrics.parked.labels(**self.metrics.site, feed=NAME).set(count)
        return count

    def platform_status(self) -> dict[str, Any]:
        """The connector's part of ``sync.status()`` (empty when not configured): never the
        secret, nor the address's query."""
        p = self.settings.platform
        if p is None:
            return {}
        return {
            "url": p.url.split("?")[0],
            "profile": p.profile,
            "auth": p.auth,
            "checkpoint": self.repo.checkpoint(NAME),
            **self._gauge_backlog(SOURCE, PLATFORM),
            **outcome(self.repo.outcome(NAME)),
            "parked": self._gauge_platform_parked(),
            "skipped": self.repo.parked_count(SKIPPED),
        }
