"""The window console (窗口叫号), for a clerk signed in at a window: the page's shell. The
page works through the bridge (``/rpc/queue/…``, ``/rpc/matters/…``, ``/rpc/rating/…``)
as the clerk, so the services' own role table decides every button."""

from __future__ import annotations

from werkzeug.wrappers import Request, Response

from services.common import service as base
from services.gateway.web.staff import StaffPages


class WindowConsole(StaffPages):
    @base.api("GET", "/window", exposed=True)
    def window_page(self, request: Request) -> Response:
        return self.staff_page(request, "window", "窗口叫号", {"clerk", "manager"})
