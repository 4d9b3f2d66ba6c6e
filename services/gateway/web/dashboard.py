"""The supervisor's dashboard (辖区看板, ``/dashboard``): the page's shell, the table of the
subtree's sites as JSON, and the same table as CSV or XLSX.

The gateway asks the services *as the signed-in person* (the bridge carries a token signed
for them), so the services' role tables decide what a supervisor or manager may read; the
gateway adds no rights of its own. The drill-down, the trends and the rankings are read by
the page itself through ``/rpc/rating/…`` and ``/rpc/queue/…``.

The table is ``POST`` with the CSRF token like every JSON route. The exports are ``GET``
(a download link) answered only for a live session: the cookie is ``SameSite=Strict``, so
another site cannot make the browser send it, and the URL holds dates only, no personal
data."""

from __future__ import annotations

from typing import Any

from werkzeug.wrappers import Request, Response

from services.common import service as base
from services.common.errors import Forbidden
from services.common.identity import Kind, Principal, Unauthenticated
from services.gateway import dashboard
from services.gateway.web.screens import SECURE_HEADERS, request_json
from services.gateway.web.staff import COOKIE, StaffPages

ROLES = {"supervisor", "manager"}
TITLE = "辖区看板"


class DashboardPages(StaffPages):
    """Routes mixed into ``GatewayService`` (which provides ``app``, ``bridge`` and
    ``_principal``)."""

    bridge: Any

    def _principal(self, request: Request) -> Principal:
        raise NotImplementedError

    @base.api("GET", "/dashboard", exposed=True)
    def dashboard_page(self, request: Request) -> Response:
        return self.staff_page(request, "dashboard", TITLE, ROLES)

    @base.api("POST", "/dashboard/table", exposed=True)
    def dashboard_table(self, request: Request) -> dict[str, Any]:
        """``{"date_from"?, "date_to"?}`` (default today) → the table (services/gateway/
        dashboard.py)."""
        return self._table(self._reader(self._principal(request)), request_json(request))

    @base.api("GET", "/dashboard/export.csv", exposed=True)
    def dashboard_csv(self, request: Request) -> Response:
        table = self._table(self._page_reader(request), request.args)
        return _download(dashboard.export_csv(table), "text/csv; charset=utf-8", table, "csv")

    @base.api("GET", "/dashboard/export.xlsx", exposed=True)
    def dashboard_xlsx(self, request: Request) -> Response:
        table = self._table(self._page_reader(request), request.args)
        kind = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        return _download(dashboard.export_xlsx(table), kind, table, "xlsx")

    def _table(self, who: Principal, args: Any) -> dict[str, Any]:
        def call(service: str, method: str, *arguments: Any) -> Any:
            return self.bridge(who, (service, method), (list(arguments), {}))

        wanted = {k: args.get(k) for k in ("date_from", "date_to") if args.get(k)}
        board = dashboard.Dashboard(self.app.site, self.app.settings)
        return board.table(call, wanted, self.app.clock())

    def _page_reader(self, request: Request) -> Principal:
        """The session of a download link (no CSRF header on a link: see the module)."""
        secret = request.cookies.get(COOKIE, "")
        if not secret:
            raise Unauthenticated("请先登录")
        return self._reader(self.app.page_principal(secret))

    @staticmethod
    def _reader(who: Principal) -> Principal:
        if who.kind is not Kind.STAFF or not who.roles & ROLES:
            raise Forbidden("只有督查人员和大厅管理员可以查看辖区看板", {"role": ["需要督查"]})
        return who


def _download(body: bytes, mimetype: str, table: dict[str, Any], suffix: str) -> Response:
    name = f"dashboard-{table['site_code']}-{table['date_from']}-{table['date_to']}.{suffix}"
    headers = {
        **SECURE_HEADERS,
        "Content-Disposition": f'attachment; filename="{name}"',
        "Cache-Control": "no-store",
    }
    return Response(body, mimetype=mimetype, headers=headers)
