"""``SyncProvider``: builds the container's ``SyncApp`` once, with eventlet's lock and
``spawn`` and the Nameko adapters; each worker gets the app bound to its own local RPC.

The ``SYNC:`` section is validated in ``bind`` (while Nameko constructs the container), so
a bad section refuses the start before anything is created on disk."""

from __future__ import annotations

import logging
import time
from typing import Any

import eventlet
from eventlet.semaphore import Semaphore
from nameko.extensions import DependencyProvider
from nameko.rpc import ReplyListener

from services.common.clock import utc_now
from services.common.runtime import SiteRuntime
from services.common.site import Tier
from services.sync.adapters.local import LocalCaller
from services.sync.adapters.platform_http import PlatformHttp
from services.sync.adapters.upstream import UpstreamLink
from services.sync.app import SyncApp
from services.sync.settings import SyncSettings

log = logging.getLogger(__name__)


class SyncProvider(DependencyProvider):  # type: ignore[misc]
    site_runtime = SiteRuntime()
    # One reply queue per container for RPC to this site's services, shared by every call.
    listener = ReplyListener()
    settings: SyncSettings | None = None
    app: SyncApp | None = None

    def bind(self, container: Any, attr_name: str) -> SyncProvider:
        instance: SyncProvider = super().bind(container, attr_name)
        site = container.config.get("SITE") or {}
        site = site if isinstance(site, dict) else {}
        tier = site.get("tier")
        instance.settings = SyncSettings.from_section(
            container.config.get("SYNC") or {},
            Tier(tier) if tier in set(Tier) else None,
            site_code=str(site.get("code", "")),
        )
        return instance

    def setup(self) -> None:
        context = self.site_runtime.ready()
        settings = self.settings
        assert settings is not None, "bind() validates the section"
        self.app = SyncApp(
            context,
            settings,
            utc_now,
            upstream=UpstreamLink(
                context.config.upstream_amqp_uri, context.identity.code, settings.rpc_timeout * 2
            ),
            lock=Semaphore(),
            platform=(
                PlatformHttp(settings.platform, context.identity.code)
                if settings.platform is not None
                else None
            ),
            spawn=eventlet.spawn,
            monotonic=time.monotonic,
        )
        if context.identity.upstream and not settings.key:
            log.warning(
                "sync: SYNC.key is not set; nothing can be pushed to %s", context.identity.upstream
            )

    def get_dependency(self, worker_ctx: Any) -> SyncApp:
        assert self.app is not None
        assert self.settings is not None
        return self.app.for_worker(
            LocalCaller(worker_ctx, self.listener, self.settings.local_timeout, self.site_runtime)
        )

    def stopping(self) -> None:
        """The container begins to stop: a running exchange ends at its next batch."""
        if self.app is not None:
            self.app.stop()

    def stop(self) -> None:
        if self.app is not None:
            self.app.close()

    def kill(self) -> None:
        self.stop()
