"""The matters use cases, composed: catalog lifecycle and replication (``usecases/catalog``),
the current view, reading and search (``usecases/catalog_view``), applications
(``usecases/applications``), reading applications and gauges (``usecases/listing``),
a citizen's progress query (``usecases/progress``), 代办 across tiers
(``usecases/proxy``), and what is published to other
services (``usecases/outbox``).

One ``MattersApp`` per container, built by ``provider.MattersProvider``; the entrypoints in
``service.py`` call it and dispatch the wake-up hints it returns. Rules come from
``domain``; persistence goes through ``store.MattersRepository`` only (docs/architecture.md,
"Service template").
"""

from __future__ import annotations

import time

from services.common.clock import Clock, utc_now
from services.common.privacy import site_salt
from services.common.runtime import SiteContext
from services.matters.metrics import MattersMetrics
from services.matters.search import CatalogIndex
from services.matters.settings import MattersSettings
from services.matters.store import MattersRepository
from services.matters.usecases.applications import Applications
from services.matters.usecases.catalog import Catalog
from services.matters.usecases.catalog_view import CatalogView
from services.matters.usecases.listing import Listing
from services.matters.usecases.outbox import Outbox
from services.matters.usecases.progress import Progress
from services.matters.usecases.proxy import Proxy

__all__ = ["MattersApp"]


class MattersApp(Catalog, CatalogView, Applications, Listing, Outbox, Progress, Proxy):
    def __init__(
        self, context: SiteContext, settings: MattersSettings, clock: Clock = utc_now
    ) -> None:
        self.context = context
        self.settings = settings
        self.clock = clock
        self.identity = context.identity
        self.calendar = context.calendar
        self.repo = MattersRepository(context.store)
        self.metrics = MattersMetrics(context.metrics)
        self.index = CatalogIndex()
        self.salt = site_salt(settings.privacy_salt, self.repo.settings)
        self._last_tick = 0.0

    def start(self) -> None:
        """Container start: load the seed catalog if due, project, repair, refresh gauges."""
        seed = self.settings.seed_catalog
        if self.settings.catalog_source and seed and self.repo.catalog_is_empty():
            self.load_seed(seed)
        self.project_catalog()
        self.tick(force=True)

    def tick(self, force: bool = False) -> list[str]:
        """Periodic work; returns invitation ids written by the sweep (for hints)."""
        if not force and time.monotonic() - self._last_tick < self.settings.sweep_interval_seconds:
            return []
        self._last_tick = time.monotonic()
        self.project_catalog()
        repaired = self.sweep_outbox()
        self.take_in()
        self.refresh_gauges()
        return repaired
