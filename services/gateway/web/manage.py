"""The manager's console (大厅管理): the page's shell, for a signed-in manager."""

from __future__ import annotations

from werkzeug.wrappers import Request, Response

from services.common import service as base
from services.gateway.web.staff import StaffPages


class ManageConsole(StaffPages):
    @base.api("GET", "/manage", exposed=True)
    def manage_page(self, request: Request) -> Response:
        return self.staff_page(request, "manage", "大厅管理", {"manager"})
