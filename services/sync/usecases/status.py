"""What an operator reads: per direction and feed the backlog, the age of the oldest
unsent record, the last success and error, parked records; the marks held for children;
the link to the upstream (docs/architecture.md, "Observability")."""

from __future__ import annotations

from typing import Any

from services.common import validation
from services.common.errors import Conflict, UpstreamUnavailable
from services.sync import domain
from services.sync.domain import FeedRef
from services.sync.ports import LinkFailure
from services.sync.schemas import ParkedArguments
from services.sync.usecases.base import (
    DOWN,
    OUTCOMES_FEED,
    PROXY_DOWN,
    RECONCILE,
    UP,
    SyncBase,
    classify,
    outcome,
)

PARKED_FIELDS = ("id", "feed", "record_id", "record_version", "seq", "reason", "parked_at")
PING_TIMEOUT = 10.0


class Status(SyncBase):
    def _gauge_backlog(self, ref: FeedRef, direction: str = UP) -> dict[str, Any]:
        """Backlog and oldest unsent age of ``ref`` behind the checkpoint ``direction:feed``
        (``up``, or the platform connector's)."""
        checkpoint = self.repo.checkpoint(f"{direction}:{ref.key}")
        now = self.clock()
        try:
            page = self.local.call(ref.service, "feed", ref.feed, checkpoint, 1)
        except Exception as exc:  # noqa: BLE001  (status reports the reason, never fails)
            return {
                "backlog": None,
                "oldest_unsent_age_seconds": None,
                "local_error": classify(exc)[1],
            }
        backlog = max(int(page["high_water"]) - checkpoint, 0)
        oldest = 0.0
        if page["items"]:
            first = page["items"][0]
            stamp = first.get("updated_at") or first.get("created_at")
            oldest = domain.age_seconds(stamp, now) or 0.0
        labels = {**self.metrics.site, "direction": direction, "feed": ref.key}
        self.metrics.backlog.labels(**labels).set(backlog)
        self.metrics.oldest.labels(**labels).set(oldest)
        return {"backlog": backlog, "oldest_unsent_age_seconds": round(oldest, 3)}

    def status(self) -> dict[str, Any]:
        has_upstream = self.context.identity.upstream is not None
        up: dict[str, Any] = {}
        for ref in self.settings.upward if has_upstream else ():
            name = f"{UP}:{ref.key}"
            parked = self.repo.parked_count(ref.key)
            self.metrics.parked.labels(**self.metrics.site, feed=ref.key).set(parked)
            up[ref.key] = {
                "checkpoint": self.repo.checkpoint(name),
                **self._gauge_backlog(ref),
                **outcome(self.repo.outcome(name)),
                "parked": parked,
            }
        down: dict[str, Any] = {}
        if has_upstream and self.settings.pull_catalog:
            down.update(self._down_status(DOWN, self.catalog_key, self.catalog_feed))
        if has_upstream and self.settings.pull_outcomes:
            down.update(self._down_status(PROXY_DOWN, PROXY_DOWN, OUTCOMES_FEED))
        children: dict[str, Any] = {}
        for mark in self.repo.received_marks():
            children.setdefault(mark["child"], {})[mark["feed"]] = {
                "high_water": mark["seq"],
                "last_received": mark.get("at"),
            }
        return {
            "site_code": self.code,
            "upstream": self.context.identity.upstream,
            "up": up,
            "down": down,
            "children": children,
            "reconcile": outcome(self.repo.outcome(RECONCILE)) if has_upstream else {},
            "key": self.key_status() if has_upstream else {},
            "platform": self.platform_status(),
        }

    def _down_status(self, name: str, checkpoint_key: str, feed: str) -> dict[str, Any]:
        found = self.repo.outcome(name)
        checkpoint = self.repo.checkpoint(checkpoint_key)
        known = int(found.get("upstream_high_water", 0))
        # outcomes: the upstream's whole feed, of which only this subtree's part comes down
        backlog = max(known - checkpoint, 0)
        failing = found.get("last_error_at", "") > found.get("last_success", "")
        stale = 0.0
        if backlog or failing:
            stale = domain.age_seconds(found.get("last_success"), self.clock()) or 0.0
        labels = {**self.metrics.site, "direction": DOWN, "feed": feed}
        self.metrics.backlog.labels(**labels).set(backlog)
        self.metrics.oldest.labels(**labels).set(stale)
        parked = self.repo.parked_count(feed)
        self.metrics.parked.labels(**self.metrics.site, feed=feed).set(parked)
        return {
            feed: {
                "checkpoint": checkpoint,
                "upstream_high_water": known,
                "backlog": backlog,
                "oldest_unsent_age_seconds": round(stale, 3),
                **outcome(found),
                "parked": parked,
            }
        }

    def parked(self, feed: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Poison records left out of replication at this site, with the reason, oldest
        first (``feed`` like ``rating.evaluations`` or ``matters.catalog``; all when omitted)."""
        args = validation.load(ParkedArguments(), {"feed": feed, "limit": limit})
        self._check_feed(args["feed"])
        keys = [args["feed"]] if args["feed"] else self._parked_feeds()
        return [
            {k: doc.get(k) for k in PARKED_FIELDS}
            for doc in self.repo.parked_records(keys, args["limit"])
        ]

    def ping_upstream(self) -> dict[str, Any]:
        """Call the upstream site's ``sync.site_info()``: who answered and how fast."""
        identity = self.context.identity
        started = self.monotonic()
        try:
            with self.upstream.session(PING_TIMEOUT) as up:
                answer = up.site_info()
        except LinkFailure as exc:
            if exc.reason == "unknown_service":
                raise UpstreamUnavailable("上级站点的同步服务未运行") from None
            if exc.reason == "timeout":
                raise UpstreamUnavailable(
                    f"上级站点同步服务在 {PING_TIMEOUT:g} 秒内没有应答"
                ) from None
            raise
        if answer["site_code"] != identity.upstream:
            raise Conflict(
                f"上级消息代理上应答的是站点 {answer['site_code']}，不是配置的 {identity.upstream}",
                {"UPSTREAM_AMQP_URI": ["指向了错误的站点"]},
            )
        return {
            "site_code": identity.code,
            "upstream": answer,
            "round_trip_ms": round((self.monotonic() - started) * 1000, 1),
        }
