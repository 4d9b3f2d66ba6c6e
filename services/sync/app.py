"""``SyncApp``: the use cases of sync, composed from ``services/sync/usecases``: pushing the
site's feeds up (``Replicator``), receiving children's batches (``Receiver``), pulling the
catalog down, reconciliation, the key check, status, and the 好差评 platform connector
(``PlatformPush``) (docs/architecture.md, "Replication"). Framework-free: RPC comes
through ``ports`` (implemented in ``adapters/``), and the lock, ``spawn`` and monotonic
clock are handed in by the provider."""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable

from services.common.clock import Clock, utc_now
from services.common.runtime import SiteContext
from services.sync.metrics import SyncMetrics
from services.sync.ports import Local, Lock, NoUpstream, Platform, Spawn, Upstream, run_now
from services.sync.settings import SyncSettings
from services.sync.store import SyncRepository
from services.sync.usecases.base import SyncState
from services.sync.usecases.catalog import CatalogPull
from services.sync.usecases.exchanges import Exchanges
from services.sync.usecases.keys import KeyCheck
from services.sync.usecases.platform import PlatformPush
from services.sync.usecases.receiver import Receiver
from services.sync.usecases.reconciliation import Reconciliation
from services.sync.usecases.status import Status


class _NoLocal:
    def call(self, service: str, method: str, *args: object) -> object:
        raise RuntimeError("SyncApp.for_worker(local) gives the app its local RPC")


# Reconciliation resends through the Replicator it extends (the same preparing and sending).
class SyncApp(Exchanges, KeyCheck, Reconciliation, CatalogPull, Status, Receiver, PlatformPush):
    """Built once per container. ``for_worker(local)`` is the view one worker uses: the same
    state, settings and repository, with that worker's RPC to this site's services."""

    def __init__(
        self,
        context: SiteContext,
        settings: SyncSettings,
        clock: Clock = utc_now,
        *,
        upstream: Upstream | None = None,
        local: Local | None = None,
        lock: Lock | None = None,
        platform: Platform | None = None,
        spawn: Spawn = run_now,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.context = context
        self.settings = settings
        self.clock = clock
        self.monotonic = monotonic
        self.spawn = spawn
        self.code = context.identity.code
        self.repo = SyncRepository(context.store, clock)
        self.metrics = SyncMetrics(context.metrics)
        self.state = SyncState(lock=lock if lock is not None else threading.Lock())
        self.upstream = upstream if upstream is not None else NoUpstream()
        self.local = local if local is not None else _NoLocal()
        self.platform = platform
        self._schedule()

    def for_worker(self, local: Local) -> SyncApp:
        """This app with ``local`` as its RPC to the site's services (a shallow copy: the
        state of the exchanges stays shared)."""
        view = copy.copy(self)
        view.local = local
        return view
