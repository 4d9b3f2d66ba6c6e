"""The hall's screens served by the gateway (docs/screens.md): pages and their assets from
the package (no CDN, nothing from the internet at run time), the call board's live
stream and its voice. A page shell holds no data: a device page asks for its pairing
code, then reads everything with its bearer token."""

from __future__ import annotations

import html
import json
from importlib import resources
from string import Template
from typing import Any

import segno
from werkzeug.wrappers import Request, Response

from services.common import service as base
from services.common.errors import Forbidden, InvalidInput, NotFound
from services.common.identity import Kind, Principal
from services.common.streams import live_body
from services.common.validation import load
from services.gateway import domain, schemas
from services.gateway.adapters.boardfeed import FollowedBoard
from services.gateway.adapters.voice import Voice
from services.gateway.app import GatewayApp

WEB = resources.files("services.gateway.web")
TYPES = {".css": "text/css", ".js": "text/javascript"}
# Every script and style shipped in web/, by name; nothing else is served from /static.
ASSETS = {
    item.name: TYPES[suffix]
    for item in WEB.iterdir()
    if (suffix := "." + item.name.rsplit(".", 1)[-1]) in TYPES
}
# Only the page's own scripts, styles, sounds and connections: an injected script or a
# framing page gets nothing (docs/security.md).
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "media-src 'self' blob:; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'self'"
)
SECURE_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def as_gateway(app: GatewayApp, bridge: Any) -> Any:
    """``call(service, method, *args, **kwargs)``: an RPC of this site made as the gateway
    itself, through the bridge (its deadline: a service down is a typed error, not a page
    that hangs). For the public and the citizens' pages, which have no signed-in person."""
    me = Principal(Kind.SERVICE, "gateway", app.site)

    def call(service: str, method: str, *args: Any, **kwargs: Any) -> Any:
        return bridge(me, (service, method), (list(args), kwargs))

    return call


def request_json(request: Request) -> Any:
    try:
        return json.loads(request.get_data(as_text=True) or "{}")
    except ValueError:
        raise InvalidInput.field("body", "应为 JSON") from None


def client_of(app: GatewayApp, request: Request) -> str:
    """The client's address, as the lockouts, the progress throttle and the audit count it:
    the socket's, or behind ``GATEWAY.trusted_proxies`` what they forwarded
    (``domain.client_address``). Repeated ``X-Forwarded-For`` headers count as one list."""
    forwarded = ",".join(request.headers.getlist("X-Forwarded-For"))
    return domain.client_address(
        str(request.remote_addr or ""), forwarded, app.settings.trusted_proxies
    )


def template(name: str, **values: str) -> str:
    """``web/<name>.html`` with ``$names`` filled in (escaped by the caller)."""
    return Template((WEB / f"{name}.html").read_text(encoding="utf-8")).substitute(values)


def page(name: str, **values: str) -> Response:
    return Response(template(name, **values), mimetype="text/html", headers=SECURE_HEADERS)


def device_page(name: str, device: str, **values: str) -> Response:
    """A paired device's page, with the pairing form it shows until it has a token."""
    return page(name, pairing=template("pairing", device=device), **values)


class Screens:
    """Routes mixed into ``GatewayService`` (which provides ``app``, ``board_feed``,
    ``voice`` and ``_principal``)."""

    app: GatewayApp
    board_feed: FollowedBoard
    voice: Voice

    def _principal(self, request: Request) -> Principal:
        raise NotImplementedError

    @base.api("GET", "/board", exposed=True)
    def board_page(self, request: Request) -> Response:
        return device_page("board", "叫号屏", site_name=html.escape(self.app.site_name))

    @base.api("GET", "/static/<string:name>", exposed=True)
    def static(self, request: Request, name: str) -> Response:
        if name not in ASSETS:
            raise NotFound("没有这个文件", {"name": ["不存在"]})
        body = (WEB / name).read_bytes()
        return Response(body, mimetype=ASSETS[name], headers={"X-Content-Type-Options": "nosniff"})

    @base.api("GET", "/board/stream", exposed=True)
    def board_stream(self, request: Request) -> Response:
        """Server-sent events for a paired board (or kiosk): read with ``fetch`` so the
        device's token travels in the Authorization header, never in the URL."""
        self._screen(request)
        feed, settings = self.board_feed, self.app.settings
        feed.enter()
        body = feed.stream(settings.board_heartbeat_seconds, settings.board_stream_seconds)
        live = live_body(request, body, feed.leave, settings.board_idle_seconds)
        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return Response(
            live, mimetype="text/event-stream", headers=headers, direct_passthrough=True
        )

    @base.api("GET", "/board/announce/<string:call_id>.wav", exposed=True)
    def announce(self, request: Request, call_id: str) -> Response:
        """The words of a call on the board now, as Mandarin speech: no other text can be
        made to play (a call id the board does not show is 404)."""
        self._screen(request)
        text = self.board_feed.spoken_text(call_id)
        if text is None:
            raise NotFound("叫号屏上没有这次呼叫", {"call_id": ["不在叫号屏上"]})
        return Response(self.voice.wav(text), mimetype="audio/wav")

    def _screen(self, request: Request) -> None:
        who = self._principal(request)
        if not who.roles & {"board", "kiosk", "manager"}:
            raise Forbidden("此设备不能显示叫号屏", {"role": ["需要叫号屏、取号机或管理员"]})

    def health_notes(self) -> dict[str, Any]:
        feed = self.board_feed
        return {"board": feed.problem or "ok", "voice": self.voice.problem() or "ok"}


class Kiosk:
    """The ticket machine's routes (取号机) and the ticket's mobile page, mixed into
    ``GatewayService`` (which provides ``queue``, the gateway's own signed proxy)."""

    app: GatewayApp
    bridge: Any
    queue: Any

    @base.api("GET", "/m/t/<string:token>", exposed=True)
    def ticket_page(self, request: Request, token: str) -> Response:
        """The ticket's progress for whoever holds its link (no sign-in): the number, its
        state, the people ahead or the window to go to, then a link to rate it; nothing
        personal."""
        ticket_id = self.app.ticket_of(token)
        ticket = self.queue.ticket(ticket_id)
        # once served, the ticket's own token rates it (一次一评, web/citizen.py)
        done = ticket["state"] == "completed"
        rate = template("ratelink", token=self.app.ticket_token(ticket_id)) if done else ""
        return page(
            "ticket",
            rate=rate,
            site_name=html.escape(self.app.site_name),
            number=html.escape(ticket["number"]),
            state=html.escape(ticket["state"]),
            state_name=html.escape(ticket["state_name"]),
            where=html.escape(where(ticket)),
        )

    def _principal(self, request: Request) -> Principal:
        raise NotImplementedError

    @base.api("GET", "/kiosk", exposed=True)
    def kiosk_page(self, request: Request) -> Response:
        settings = self.app.settings
        return device_page(
            "kiosk",
            "取号机",
            site_name=html.escape(self.app.site_name),
            idle=str(settings.kiosk_idle_seconds),
        )

    @base.api("POST", "/kiosk/ticket", exposed=True)
    def kiosk_ticket(self, request: Request) -> dict[str, Any]:
        """A walk-in ticket or a booking's check-in, taken as this kiosk, with the QR code
        (an SVG drawn here) of the ticket's mobile page for the printed slip."""
        who = self._principal(request)
        if "kiosk" not in who.roles:
            raise Forbidden("只有取号机可以取号", {"role": ["需要取号机"]})
        data = load(schemas.KioskSchema, request_json(request))
        if data["booking"]:
            ticket = self.bridge(who, ("queue", "check_in"), ([data["booking"]], {}))
        else:
            wanted = [data["category"], "kiosk", data["phone"] or None, data["priority"] or None]
            ticket = self.bridge(who, ("queue", "take_ticket"), (wanted, {}))
        link, qr = qr_link(self.app, request, f"/m/t/{self.app.ticket_token(ticket['id'])}")
        shown = ("number", "category", "green_channel", "people_ahead", "estimate", "created_at")
        return {"ticket": {k: ticket.get(k) for k in shown}, "link": link, "qr": qr}


def qr_link(app: GatewayApp, request: Request, path: str) -> tuple[str, str]:
    """The address of this gateway's ``path`` as printed (``GATEWAY.public_url``, else the
    address the request came to) and its QR code, an SVG drawn here (no CDN)."""
    link = f"{app.settings.public_url or request.host_url.rstrip('/')}{path}"
    return link, segno.make(link, error="m").svg_data_uri(scale=4, border=2)


def where(ticket: dict[str, Any]) -> str:
    if ticket["state"] == "called":
        return f"请到 {ticket['window']} 号窗口办理"
    if ticket["state"] == "waiting":
        return f"您前面还有 {ticket.get('people_ahead', 0)} 人，请留意叫号"
    if ticket["state"] == "serving":
        return f"正在 {ticket['window']} 号窗口办理"
    return "本号已结束，如需继续办理请重新取号"
