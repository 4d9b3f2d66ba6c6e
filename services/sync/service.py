"""The ``sync`` service: replication between this site and its upstream (DESIGN §6).

Upward, the site's own feeds (and what its children sent it) go to the upstream's
``sync.ingest``; downward, the upstream's catalog comes through ``sync.catalog_changes``.
A child's broker user may reach only ``sync`` on its upstream, so everything a child needs
from upstream is an RPC of this service.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from nameko.exceptions import RpcTimeout, UnknownService
from nameko.extensions import DependencyProvider
from nameko.timer import Timer

from services.common import service as base
from services.common.config import ConfigError
from services.common.errors import Conflict, InvalidInput, UpstreamUnavailable
from services.common.rpc import rpc
from services.common.runtime import SiteRuntime
from services.common.site import Tier, is_proper_ancestor
from services.sync.local import LocalCaller, LocalRpc
from services.sync.replicator import Receiver, Replicator, SyncContext, SyncMetrics
from services.sync.schemas import Settings, load_settings
from services.sync.store import SyncRepository
from services.sync.upstream import UpstreamRpc

log = logging.getLogger(__name__)
TICK_S = 1.0  # how often the timer looks for due work; intervals come from SYNC:


class SyncState(DependencyProvider):  # type: ignore[misc]
    """Builds the container's ``SyncContext`` once; the ``SYNC:`` section is validated in
    ``bind`` so a bad section refuses the start, like the rest of the site config."""

    site_runtime = SiteRuntime()
    settings: Settings | None = None
    context: SyncContext | None = None

    def bind(self, container: Any, attr_name: str) -> SyncState:
        instance: SyncState = super().bind(container, attr_name)
        site = container.config.get("SITE") or {}
        tier = site.get("tier") if isinstance(site, dict) else None
        try:
            settings = load_settings(
                container.config.get("SYNC") or {}, Tier(tier) if tier in set(Tier) else None
            )
        except InvalidInput as exc:
            raise ConfigError(exc.message, exc.fields) from None
        own = str(site.get("code", "")) if isinstance(site, dict) else ""
        for child in settings.children:
            if own and not is_proper_ancestor(own, child):
                raise ConfigError.field(f"SYNC.children.{child}", f"不是本站点 {own} 的下级站点")
        instance.settings = settings
        return instance

    def setup(self) -> None:
        context = self.site_runtime.ready()
        assert self.settings is not None
        self.context = SyncContext(
            identity=context.identity,
            settings=self.settings,
            repo=SyncRepository(context.store),
            metrics=SyncMetrics(context.metrics),
        )
        if context.identity.upstream and not self.settings.key:
            log.warning(
                "sync: SYNC.key is not set; nothing can be pushed to %s", context.identity.upstream
            )

    def get_dependency(self, worker_ctx: Any) -> SyncContext:
        assert self.context is not None
        return self.context

    def stop(self) -> None:
        if self.context is not None:
            self.context.close_session()

    def kill(self) -> None:
        self.stop()


class StoppingTimer(Timer):  # type: ignore[misc]
    """The tick's timer. Nameko stops entrypoints (all at once) before it waits for running
    workers; this one first tells a running exchange to end at its next batch or job, so a
    stop does not wait out every remaining feed (each call to a peer that is already gone
    would wait for its timeout)."""

    def stop(self) -> None:
        for provider in self.container.dependencies:
            if isinstance(provider, SyncState) and provider.context is not None:
                provider.context.stopping = True
        super().stop()


class SyncService(base.SiteService):
    name = "sync"
    upstream = UpstreamRpc(timeout=10.0)
    local: LocalCaller = LocalRpc()
    state: SyncContext = SyncState()

    def _replicator(self) -> Replicator:
        self.local.timeout = self.state.settings.local_timeout
        return Replicator(self.state, self.local, self.upstream)

    def _receiver(self) -> Receiver:
        self.local.timeout = self.state.settings.local_timeout
        return Receiver(self.state, self.local)

    @StoppingTimer.decorator(interval=TICK_S)
    def tick(self) -> None:
        """Push, pull, reconcile and refresh gauges when each is due (backoff on failure)."""
        self._replicator().tick()

    @rpc
    def push_now(self) -> dict[str, Any]:
        """Operator's button: push every feed and pull the catalog now; returns the outcome
        of each and the status."""
        return self._replicator().push_now()

    @rpc
    def reconcile_now(self) -> dict[str, Any]:
        """Compare counts per origin per day with the upstream now and resend what is missing."""
        return self._replicator().reconcile_now()

    @rpc
    def status(self) -> dict[str, Any]:
        """Per direction and feed: backlog, age of the oldest unsent record, last success,
        last error, parked records; and the high-water mark held for each child."""
        return self._replicator().status()

    @rpc
    def check_key(self) -> dict[str, Any]:
        """Operator's key check: ask the upstream now whether it accepts this site's
        ``SYNC.key`` (``ok``, or ``reason``/``error`` naming the site and the cause)."""
        return self._replicator().check_key_now()

    @rpc
    def parked(self, feed: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Poison records left out of replication at this site, with the reason, oldest
        first (``feed`` like ``rating.evaluations``; all upward feeds when omitted)."""
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
            raise InvalidInput.field("limit", "必须是 1 到 1000 之间的整数")
        keys = [ref.key for ref in self.state.settings.upward]
        if feed is not None and feed not in keys:
            raise InvalidInput.field("feed", f"可用：{', '.join(keys)}")
        fields = ("id", "feed", "record_id", "record_version", "seq", "reason", "parked_at")
        return [
            {k: doc.get(k) for k in fields}
            for doc in self.state.repo.parked_records([feed] if feed else keys, limit)
        ]

    @rpc
    def retry_parked(self, feed: str | None = None) -> dict[str, Any]:
        """Send parked records again (e.g. after the upstream was upgraded); those accepted
        leave the parked list, those refused again stay with the new reason."""
        keys = [ref.key for ref in self.state.settings.upward]
        if feed is not None and feed not in keys:
            raise InvalidInput.field("feed", f"可用：{', '.join(keys)}")
        return self._replicator().retry_parked(feed)

    @rpc
    def ingest(self, batch: dict[str, Any]) -> dict[str, Any]:
        """Called by a child: verify, apply durably, reply with the high-water mark held for
        the child's feed. ``Forbidden`` (nothing stored) for a bad signature or a record
        from outside the child's subtree."""
        return self._receiver().ingest(batch)

    @rpc
    def verify_key(self, probe: dict[str, Any]) -> dict[str, Any]:
        """Called by a child: is ``probe`` signed with a key registered for it here?
        ``Forbidden`` (unknown child, wrong key) or ``{"ok": true, "key": "current" |
        "previous"}`` (``previous``: the old key of a rotation in progress)."""
        return self._receiver().verify_key(probe)

    @rpc
    def catalog_changes(self, since: int = 0, limit: int = 500) -> dict[str, Any]:
        """Called by a child: a page of this site's catalog feed after ``since``."""
        return self._receiver().catalog_changes(since, limit)

    @rpc
    def reconcile_counts(self, request: dict[str, Any]) -> dict[str, Any]:
        """Called by a child: the records held here per origin per day for its counts."""
        return self._receiver().reconcile_counts(request)

    @rpc
    def ping_upstream(self) -> dict[str, Any]:
        """Call the upstream site's ``sync.site_info()`` and report who answered and how fast."""
        identity = self.runtime.identity
        started = time.perf_counter()
        try:
            with self.upstream.proxy() as upstream:
                answer = upstream.sync.site_info()
        except UnknownService:
            raise UpstreamUnavailable("上级站点的同步服务未运行") from None
        except RpcTimeout:
            raise UpstreamUnavailable("上级站点同步服务在 10 秒内没有应答") from None
        if answer["site_code"] != identity.upstream:
            raise Conflict(
                f"上级消息代理上应答的是站点 {answer['site_code']}，不是配置的 {identity.upstream}",
                {"UPSTREAM_AMQP_URI": ["指向了错误的站点"]},
            )
        return {
            "site_code": identity.code,
            "upstream": answer,
            "round_trip_ms": round((time.perf_counter() - started) * 1000, 1),
        }
