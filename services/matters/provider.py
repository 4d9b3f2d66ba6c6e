"""One ``MattersApp`` per container, built at container start (never per call)."""

from __future__ import annotations

from typing import Any

from nameko.extensions import DependencyProvider

from services.common.runtime import SiteRuntime
from services.matters.app import MattersApp
from services.matters.settings import MattersSettings


class MattersProvider(DependencyProvider):  # type: ignore[misc]
    """Builds the app (repository, search index, metrics) once and hands it to workers."""

    site_runtime = SiteRuntime()
    app: MattersApp | None = None

    def setup(self) -> None:
        ctx = self.site_runtime.ready()
        settings = MattersSettings.from_section(ctx.config.section, ctx.identity.tier)
        app = MattersApp(ctx, settings)
        app.start()
        self.app = app

    def stop(self) -> None:
        self.app = None

    def kill(self) -> None:
        self.app = None

    def get_dependency(self, worker_ctx: Any) -> MattersApp:
        assert self.app is not None, "the container has started"
        return self.app
