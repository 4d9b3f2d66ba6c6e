"""One ``RatingApp`` per container, and the background loop that folds the rollups."""

from __future__ import annotations

import logging
from typing import Any

import eventlet
from nameko.extensions import DependencyProvider

from services.common.errors import StoreUnavailable
from services.common.runtime import SiteRuntime
from services.rating.adapters.group_commit import GroupCommit
from services.rating.app import RatingApp
from services.rating.settings import RatingSettings

log = logging.getLogger(__name__)

# How often the background folder folds new records into the rollups. Under load a longer
# pause folds bigger batches (fewer commits); ``stats`` folds whatever is left before reading.
FOLD_IDLE_S = 0.5
FOLD_BUSY_S = 0.25
FOLD_RETRY_S = 5.0


class RatingProvider(DependencyProvider):  # type: ignore[misc]
    """Validates ``RATING:`` while the container is built (a bad value refuses the start
    before anything touches disk), builds the app in ``setup``, and folds the rollups."""

    site_runtime = SiteRuntime()
    settings: RatingSettings
    app: RatingApp | None = None

    def bind(self, container: Any, attr_name: str) -> RatingProvider:
        instance: RatingProvider = super().bind(container, attr_name)
        validated = instance.site_runtime.validated
        assert validated is not None, "SiteRuntime.bind validates the site first"
        config = validated[0]
        instance.settings = RatingSettings.from_section(config.section, config.identity.tier)
        return instance

    def setup(self) -> None:
        app = RatingApp(self.site_runtime.ready(), self.settings)
        app.insert_evaluation = GroupCommit(app.repo.evaluations).insert
        self.app = app
        self.running = False

    def start(self) -> None:
        self.running = True
        self.container.spawn_managed_thread(self._fold_loop)

    def _fold_loop(self) -> None:
        app = self.app
        assert app is not None, "set up before started"
        while self.running:
            try:
                busy = app.dirty and app.fold() > 0
            except StoreUnavailable as exc:
                log.warning("rating: rollup fold postponed: %s", exc)
                busy = False
            except Exception:
                # A record the fold cannot handle must not kill the container (it would die
                # again after every restart): evaluations and cases keep working, the stats
                # lag, and the error shows in the log and in hall_rating_fold_errors_total.
                log.exception("rating: rollup fold failed; retrying in %s s", FOLD_RETRY_S)
                app.metrics.fold_errors.labels(**app.metrics.labels()).inc()
                eventlet.sleep(FOLD_RETRY_S)
                continue
            eventlet.sleep(FOLD_BUSY_S if busy else FOLD_IDLE_S)

    def stop(self) -> None:
        self.running = False
        if self.app is not None:  # wait for a fold in progress: the store closes after us
            for folder in self.app.repo.folders.values():
                with folder.lock:
                    pass

    def kill(self) -> None:
        self.running = False

    def get_dependency(self, worker_ctx: Any) -> RatingApp:
        assert self.app is not None, "the container has started"
        return self.app
