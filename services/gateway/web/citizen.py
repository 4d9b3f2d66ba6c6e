"""The citizen's phone pages (390×844, no sign-in): rating a ticket or an application from
its QR code (``/m/r/<token>``) and an application's progress (``/m/a``), and the window
console's QR link for a 受理凭证. The use cases are ``services.gateway.citizen``; the
form's values travel in a JSON body, never in the URL."""

from __future__ import annotations

import html
from typing import Any

from werkzeug.wrappers import Request, Response

from services.common import service as base
from services.common.errors import Forbidden, NotFound, UpstreamUnavailable
from services.common.identity import Principal
from services.common.validation import load
from services.gateway import schemas
from services.gateway.app import GatewayApp
from services.gateway.citizen import Citizens
from services.gateway.web.screens import as_gateway, client_of, page, qr_link, request_json

# The rating page's first screen, by the invitation's state (rating.invitation_status).
STATES = {
    "none": "服务结束后即可评价，请在办结后再扫码",
    "open": "请对本次服务进行评价",
    "answered": "本次服务已评价过，无需重复评价，感谢您的参与",
    "down": "评价服务暂时无法连接，请稍后刷新本页",
}


class CitizenPages:
    """Routes mixed into ``GatewayService`` (which provides ``app``, ``bridge`` and
    ``_principal``)."""

    app: GatewayApp
    bridge: Any

    def _principal(self, request: Request) -> Principal:
        raise NotImplementedError

    def _citizens(self) -> Citizens:
        """The use cases, calling rating and matters as the gateway itself."""
        return Citizens(self.app, as_gateway(self.app, self.bridge))

    @base.api("GET", "/m/r/<string:token>", exposed=True)
    def rate_page(self, request: Request, token: str) -> Response:
        try:
            state = self._citizens().rating_state(token)
        except NotFound:
            return self._no_link()
        except UpstreamUnavailable:
            state = "down"
        return page(
            "rate",
            site_name=html.escape(self.app.site_name),
            state=state,
            heading=STATES[state],
        )

    @base.api("POST", "/m/r/<string:token>", exposed=True)
    def rate(self, request: Request, token: str) -> dict[str, Any]:
        return self._citizens().rate(token, request_json(request))

    @base.api("GET", "/m/a", exposed=True)
    def progress_page(self, request: Request) -> Response:
        return page("progress", site_name=html.escape(self.app.site_name))

    @base.api("POST", "/m/a", exposed=True)
    def progress(self, request: Request) -> dict[str, Any]:
        address = client_of(self.app, request)
        return self._citizens().progress(request_json(request), address)

    @base.api("POST", "/desk/receipt-link", exposed=True)
    def receipt_link(self, request: Request) -> dict[str, Any]:
        """The QR code of an application's rating page, for its printed 受理凭证."""
        who = self._principal(request)
        if not who.roles & {"clerk", "manager"}:
            raise Forbidden("只有窗口人员可以打印受理凭证", {"role": ["需要窗口人员或管理员"]})
        data = load(schemas.ReceiptLinkSchema, request_json(request))
        token = self._citizens().token("application", data["application_id"])
        link, qr = qr_link(self.app, request, f"/m/r/{token}")
        return {"link": link, "qr": qr}

    def _no_link(self) -> Response:
        answer = page("nolink", site_name=html.escape(self.app.site_name))
        answer.status_code = 404
        return answer
