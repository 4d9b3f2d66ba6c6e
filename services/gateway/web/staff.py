"""Pages for signed-in staff (the window console, the manager's console) and the sign-in
page itself. A staff page's shell is rendered only for a live session of the right role:
without one the browser is sent to ``/login`` (and back after signing in), with the wrong
role it gets a 403 page. The shell carries the session's CSRF token, which the page's
script sends with every JSON call (``X-CSRF-Token``); another origin cannot read it."""

from __future__ import annotations

import html
import re
from urllib.parse import quote

from werkzeug.wrappers import Request, Response

from services.common import service as base
from services.common.identity import Principal, Unauthenticated
from services.gateway import domain
from services.gateway.app import GatewayApp
from services.gateway.web.screens import SECURE_HEADERS, page, template

COOKIE = "hall_session"
# Where a sign-in may send the browser back to: this gateway's own pages only, never
# another host (``//evil``) or a script URL.
RETURNABLE = re.compile(r"/(window|manage|dashboard)\Z")


def staff_bar(app: GatewayApp, who: Principal, title: str) -> str:
    window = f"{who.window} 号窗口" if who.window else "未绑定窗口"
    return template(
        "staffbar",
        title=html.escape(title),
        site_name=html.escape(app.site_name),
        staff=html.escape(app.staff_name(who.id)),
        window=html.escape(window),
    )


class StaffPages:
    """Routes mixed into ``GatewayService`` (which provides ``app``)."""

    app: GatewayApp

    @base.api("GET", "/login", exposed=True)
    def login_page(self, request: Request) -> Response:
        wanted = request.args.get("next", "")
        reason = "登录已过期，请重新登录" if request.args.get("expired") else ""
        return page(
            "login",
            site_name=html.escape(self.app.site_name),
            next=wanted if RETURNABLE.match(wanted) else "",
            reason=reason,
        )

    def staff_page(self, request: Request, name: str, title: str, roles: set[str]) -> Response:
        """``web/<name>.html`` for a live session holding one of ``roles``, with the staff
        bar and the CSRF token filled in; else a redirect to sign in, or a 403 page."""
        secret = request.cookies.get(COOKIE, "")
        try:
            who = self.app.page_principal(secret) if secret else None
        except Unauthenticated:
            who = None
        if who is None:
            expired = "&expired=1" if secret else ""
            target = f"/login?next={quote(request.path, safe='')}{expired}"
            return Response(status=303, headers={**SECURE_HEADERS, "Location": target})
        if not who.roles & roles:
            answer = page("denied", site_name=html.escape(self.app.site_name))
            answer.status_code = 403
            return answer
        return page(
            name,
            bar=staff_bar(self.app, who, title),
            csrf=domain.csrf_token(secret),
            window=html.escape(who.window or ""),
            staff_id=html.escape(who.id),
            site_name=html.escape(self.app.site_name),
        )
