"""Builds the gateway's ``GatewayApp`` once per container for Nameko."""

from __future__ import annotations

from typing import Any

from nameko.extensions import DependencyProvider

from services.common.clock import Clock, utc_now
from services.common.runtime import SiteRuntime
from services.gateway.app import GatewayApp
from services.gateway.settings import GatewaySettings


class GatewayProvider(DependencyProvider):  # type: ignore[misc]
    site_runtime = SiteRuntime()
    clock: Clock = staticmethod(utc_now)

    def bind(self, container: Any, attr_name: str) -> GatewayProvider:
        instance: GatewayProvider = super().bind(container, attr_name)
        GatewaySettings.from_section(container.config.get("GATEWAY"))  # refuse a bad section now
        return instance

    def setup(self) -> None:
        context = self.site_runtime.ready()
        settings = GatewaySettings.from_section(context.config.section)
        self.app = GatewayApp(context, settings, self.clock)

    def get_dependency(self, worker_ctx: Any) -> GatewayApp:
        return self.app
