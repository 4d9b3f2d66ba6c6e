"""The ``sync`` service: replication between this site and its upstream
(docs/architecture.md, "Replication"). Each entrypoint is one call into ``SyncApp``.

Upward, the site's own feeds (and what its children sent it) go to the upstream's
``sync.ingest``; downward, the upstream's catalog comes through ``sync.catalog_changes``.
A child's broker user may reach only ``sync`` on its upstream, so everything a child needs
from upstream is an RPC of this service.
"""

from __future__ import annotations

from typing import Any

from nameko.timer import Timer

from services.common import service as base
from services.common.rpc import rpc
from services.sync.access import ACCESS
from services.sync.app import SyncApp
from services.sync.provider import SyncProvider

TICK_S = 1.0  # how often the timer looks for due work; intervals come from SYNC:


class StoppingTimer(Timer):  # type: ignore[misc]
    """The tick's timer. Nameko stops entrypoints (all at once) before it waits for running
    workers; this one first tells a running exchange to end at its next batch or job, so a
    stop does not wait out every remaining feed (each call to a peer that is already gone
    would wait for its timeout)."""

    def stop(self) -> None:
        for provider in self.container.dependencies:
            if isinstance(provider, SyncProvider):
                provider.stopping()
        super().stop()


class SyncService(base.SiteService):
    name = "sync"
    access = ACCESS
    app: SyncApp = SyncProvider()

    @StoppingTimer.decorator(interval=TICK_S)
    def tick(self) -> None:
        """Push, pull, reconcile and refresh gauges when each is due (backoff on failure)."""
        self.app.tick()

    @rpc
    def push_now(self) -> dict[str, Any]:
        """Operator's button: push every feed and pull the catalog now; returns the outcome
        of each and the status."""
        return self.app.push_now()

    @rpc
    def reconcile_now(self) -> dict[str, Any]:
        """Compare counts per origin per day with the upstream now and resend what is missing."""
        return self.app.reconcile_now()

    @rpc
    def status(self) -> dict[str, Any]:
        """Per direction and feed: backlog, age of the oldest unsent record, last success,
        last error, parked records; and the high-water mark held for each child."""
        return self.app.status()

    @rpc
    def check_key(self) -> dict[str, Any]:
        """Operator's key check: ask the upstream now whether it accepts this site's
        ``SYNC.key`` (``ok``, or ``reason``/``error`` naming the site and the cause)."""
        return self.app.check_key_now()

    @rpc
    def parked(self, feed: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Poison records left out of replication at this site, with the reason, oldest
        first (``feed`` like ``rating.evaluations`` or ``matters.catalog``; all when omitted)."""
        return self.app.parked(feed, limit)

    @rpc
    def retry_parked(self, feed: str | None = None) -> dict[str, Any]:
        """Send parked records again (e.g. after the upstream was upgraded; parked catalog
        versions: apply them locally again); those accepted leave the parked list, those
        refused again stay."""
        return self.app.retry_parked(feed)

    @rpc
    def ingest(self, batch: dict[str, Any]) -> dict[str, Any]:
        """Called by a child: verify, apply durably, reply with the high-water mark held for
        the child's feed. ``Forbidden`` (nothing stored) for a bad signature or a record
        from outside the child's subtree."""
        return self.app.ingest(batch)

    @rpc
    def verify_key(self, probe: dict[str, Any]) -> dict[str, Any]:
        """Called by a child: is ``probe`` signed with a key registered for it here?
        ``Forbidden`` (unknown child, wrong key) or ``{"ok": true, "key": "current" |
        "previous"}`` (``previous``: the old key of a rotation in progress)."""
        return self.app.verify_key(probe)

    @rpc
    def catalog_changes(self, since: int = 0, limit: int = 500) -> dict[str, Any]:
        """Called by a child: a page of this site's catalog feed after ``since``."""
        return self.app.catalog_changes(since, limit)

    @rpc
    def proxy_outcomes(self, request: dict[str, Any]) -> dict[str, Any]:
        """Called by a child: a page of this site's 代办 outcomes after ``request.since``,
        only those of the child's subtree (``more``: read on). ``Forbidden`` for a bad
        signature or an unknown child."""
        return self.app.proxy_outcomes(request)

    @rpc
    def reconcile_counts(self, request: dict[str, Any]) -> dict[str, Any]:
        """Called by a child: the records held here per origin per day for its counts."""
        return self.app.reconcile_counts(request)

    @rpc
    def ping_upstream(self) -> dict[str, Any]:
        """Call the upstream site's ``sync.site_info()`` and report who answered and how fast."""
        return self.app.ping_upstream()
