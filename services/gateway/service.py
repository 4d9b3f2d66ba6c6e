"""The ``gateway`` service: the site's door for people and devices (docs/security.md,
"Gateway"). Staff sign in with a password (a session cookie plus a CSRF token), devices
pair once with a one-time code (a bearer token); either way, ``POST /rpc/<service>/
<method>`` calls a service of this site with an identity signed for that person or device,
and the service's own role table decides. Accounts and devices are managed by the operator
over RPC (``hallctl staff …``, ``hallctl device …``). Each entrypoint is one call into
``GatewayApp`` or the bridge."""

from __future__ import annotations

import logging
from typing import Any

import eventlet
from nameko.exceptions import UnknownService
from nameko.timer import timer
from werkzeug.wrappers import Request, Response

from services.common import service as base
from services.common.callers import SignedRpcProxy
from services.common.errors import HallError, NotFound, http_response
from services.common.identity import Principal, Unauthenticated
from services.common.rpc import rpc
from services.common.validation import load
from services.gateway import schemas
from services.gateway.access import ACCESS
from services.gateway.adapters.boardfeed import BoardFeed, FollowedBoard
from services.gateway.adapters.bridge import BRIDGED, Bridge
from services.gateway.adapters.voice import Voice, VoiceProvider
from services.gateway.app import GatewayApp
from services.gateway.provider import GatewayProvider

# Mixins by module: `nameko run` takes every class with entrypoints in this namespace.
from services.gateway.web import citizen, dashboard, manage, pad, public, screens, window
from services.gateway.web.staff import COOKIE

log = logging.getLogger(__name__)
FOLLOW_SECONDS = 0.1  # how stale the board a screen shows may be, at most (10 reads a second)
FOLLOW_TIMEOUT_SECONDS = 5
OPERATOR = "operator:hallctl"


class GatewayService(
    screens.Screens,
    screens.Kiosk,
    pad.Pad,
    window.WindowConsole,
    manage.ManageConsole,
    citizen.CitizenPages,
    public.PublicPages,
    dashboard.DashboardPages,
    base.SiteService,
):
    name = "gateway"
    access = ACCESS
    app: GatewayApp = GatewayProvider()
    bridge = Bridge()
    board_feed: FollowedBoard = BoardFeed()
    voice: Voice = VoiceProvider()
    queue = SignedRpcProxy("queue")

    @timer(interval=FOLLOW_SECONDS)
    def follow_board(self) -> None:
        """Keep this process's copy of the call board fresh for every screen it serves;
        a queue that does not answer shows on the screens as a status line, and the
        screens keep the last board."""
        try:
            reply = self.queue.board.call_async()
            with eventlet.Timeout(FOLLOW_TIMEOUT_SECONDS):
                self.board_feed.publish(reply.result())
        except (UnknownService, HallError, eventlet.Timeout) as exc:
            self.board_feed.fail("叫号服务暂时无法连接")
            log.warning("board follower: %s", type(exc).__name__)

    # --- the operator's RPCs -----------------------------------------------------------------
    @rpc
    def add_staff(self, account: dict[str, Any]) -> dict[str, Any]:
        return self.app.add_staff(account, OPERATOR)

    @rpc
    def disable_staff(self, staff_id: str) -> dict[str, Any]:
        return self.app.disable_staff(staff_id, OPERATOR)

    @rpc
    def reset_password(self, staff_id: str, password: str) -> dict[str, Any]:
        return self.app.reset_password(staff_id, password, OPERATOR)

    @rpc
    def list_staff(self) -> list[dict[str, Any]]:
        return self.app.list_staff()

    @rpc
    def create_pairing(self, role: str, window: str | None = None) -> dict[str, Any]:
        return self.app.create_pairing(role, window, OPERATOR)

    @rpc
    def revoke_device(self, device_id: str) -> dict[str, Any]:
        return self.app.revoke_device(device_id, OPERATOR)

    @rpc
    def list_devices(self) -> list[dict[str, Any]]:
        return self.app.list_devices()

    @rpc
    def audit(self, limit: int = 100) -> list[dict[str, Any]]:
        return self.app.audit_log(limit)

    # --- people and devices, over HTTP -------------------------------------------------------
    @base.api("POST", "/login", exposed=True)
    def login(self, request: Request) -> Response:
        signed = self.app.login(screens.request_json(request), screens.client_of(self.app, request))
        answer = base.json_response(signed.view)
        answer.set_cookie(
            COOKIE,
            signed.secret,
            httponly=True,
            samesite="Strict",
            secure=self.app.settings.cookie_secure,
            path="/",
        )
        return answer

    @base.api("POST", "/logout", exposed=True)
    def logout(self, request: Request) -> Response:
        secret = request.cookies.get(COOKIE)
        if secret:
            self.app.session_principal(secret, request.headers.get("X-CSRF-Token"))
            self.app.logout(secret, screens.client_of(self.app, request))
        answer = base.json_response({"ok": True})
        answer.delete_cookie(COOKIE, path="/")
        return answer

    @base.api("POST", "/pair", exposed=True)
    def pair(self, request: Request) -> dict[str, Any]:
        return self.app.pair(screens.request_json(request), screens.client_of(self.app, request))

    @base.api("GET", "/me", exposed=True)
    def me(self, request: Request) -> dict[str, Any]:
        who = self._principal(request)
        return {
            "kind": who.kind.value,
            "id": who.id,
            "roles": sorted(who.roles),
            "window": who.window,
        }

    @base.api("POST", "/rpc/<string:service>/<string:method>", exposed=True)
    def rpc_bridge(self, request: Request, service: str, method: str) -> Response:
        principal = self._principal(request)
        if service not in BRIDGED:
            raise NotFound(f"网关不转发到 {service[:32]}", {"service": ["不可转发"]})
        call = load(schemas.BridgeSchema, screens.request_json(request))
        labels = self.app.metrics.labels
        try:
            result = self.bridge(principal, (service, method), (call["args"], call["kwargs"]))
        except HallError as error:
            self.app.metrics.bridged.labels(**labels, target=service, outcome=error.code).inc()
            status, headers, body = http_response(error)
            return Response(body, status=status, headers=headers)
        self.app.metrics.bridged.labels(**labels, target=service, outcome="ok").inc()
        return base.json_response({"result": result})

    def _principal(self, request: Request) -> Principal:
        """The device of the bearer token, or the staff member of the session cookie."""
        bearer = request.headers.get("Authorization", "")
        if bearer.startswith("Bearer "):
            return self.app.device_principal(bearer[len("Bearer ") :].strip())
        secret = request.cookies.get(COOKIE)
        if not secret:
            raise Unauthenticated("请先登录")
        return self.app.session_principal(secret, request.headers.get("X-CSRF-Token"))
