"""Builds the queue's ``QueueApp`` once per container for Nameko."""

from __future__ import annotations

from typing import Any

from nameko.extensions import DependencyProvider

from services.common.clock import Clock, utc_now
from services.common.runtime import SiteRuntime
from services.queue.app import QueueApp
from services.queue.settings import QueueSettings


class QueueProvider(DependencyProvider):  # type: ignore[misc]
    """One ``QueueApp`` per container, built in ``setup`` from the shared site runtime; the
    QUEUE section is validated in ``bind`` so a bad section refuses the start early."""

    site_runtime = SiteRuntime()
    clock: Clock = staticmethod(utc_now)
    app_class: type[QueueApp] = QueueApp

    def bind(self, container: Any, attr_name: str) -> QueueProvider:
        instance: QueueProvider = super().bind(container, attr_name)
        QueueSettings.from_section(container.config.get("QUEUE"))  # refuse a bad section now
        return instance

    def setup(self) -> None:
        context = self.site_runtime.ready()
        settings = QueueSettings.from_section(context.config.section, context.identity.tier)
        self.app = self.app_class(context, settings, self.clock)
        self.app.seed()
        self.app.refresh_gauges()

    def get_dependency(self, worker_ctx: Any) -> QueueApp:
        return self.app
