"""The rating pad (评价器), a device paired to one window: the page's shell."""

from __future__ import annotations

import html

from werkzeug.wrappers import Request, Response

from services.common import service as base
from services.gateway.app import GatewayApp
from services.gateway.web.screens import device_page


class Pad:
    app: GatewayApp

    @base.api("GET", "/pad", exposed=True)
    def pad_page(self, request: Request) -> Response:
        settings = self.app.settings
        return device_page(
            "pad",
            "评价器",
            site_name=html.escape(self.app.site_name),
            idle=str(settings.pad_idle_seconds),
            thanks=str(settings.pad_thanks_seconds),
        )
