"""The `queue` service (取号叫号): tickets, calling, windows, appointments and the board.

Thin Nameko entrypoints: each is one call into ``QueueApp`` (app.py), which validates its
arguments, applies the domain rules and persists with compare-and-set; the service only
dispatches the wake-up hints and streams the board.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import eventlet
from nameko.timer import timer
from werkzeug.wrappers import Request, Response

from services.common import service as base
from services.common.rpc import rpc
from services.common.streams import LiveBody, live_body
from services.queue import schemas
from services.queue.access import ACCESS
from services.queue.app import QueueApp
from services.queue.domain.board import TooManyViewers
from services.queue.provider import QueueProvider

BOARD_POLL_INTERVAL_S = 0.2


class QueueService(base.SiteService, base.InvitationSource):
    name = "queue"
    access = ACCESS
    feeds = ("evaluation_invitations", "daily_figures")
    replicated_feeds = ("daily_figures",)

    app: QueueApp = QueueProvider()

    # --- configuration ---------------------------------------------------------------------

    @rpc
    def configure(
        self, config: dict[str, Any], by: str | None = None, expected_version: int | None = None
    ) -> dict[str, Any]:
        """Replace the site's queue configuration with a new version (manager only)."""
        return self.app.configure(config, by, expected_version)

    @rpc
    def configuration(self, version: int | None = None) -> dict[str, Any]:
        """The current configuration (or version ``version`` of it)."""
        return self.app.configuration(version)

    # --- tickets ---------------------------------------------------------------------------

    @rpc
    def take_ticket(
        self,
        category: str,
        channel: str = "kiosk",
        phone: str | None = None,
        priority: str | None = None,
        matter_code: str | None = None,
    ) -> dict[str, Any]:
        return self.app.take_ticket(category, channel, phone, priority, matter_code)

    @rpc
    def ticket(self, ticket_id: str) -> dict[str, Any]:
        return self.app.ticket(ticket_id)

    @rpc
    def ticket_history(self, ticket_id: str) -> list[dict[str, Any]]:
        """The audit trail of one ticket: who, when, from, to."""
        return self.app.ticket_history(ticket_id)

    @rpc
    def today_figures(self) -> list[dict[str, Any]]:
        """Today's figures per category, current to the last action (每日数据)."""
        return self.app.today_figures()

    @rpc
    def subtree_figures(self, date_from: str, date_to: str) -> dict[str, Any]:
        """Per site and day, the figures of this site and its replicated subtree."""
        return self.app.subtree_figures(date_from, date_to)

    @rpc
    def window_today(self, window: str) -> dict[str, Any]:
        """Today's counts of one window: called, completed, no-shows."""
        return self.app.window_today(window)

    @rpc
    def call_next(self, window: str, staff_id: str | None = None) -> dict[str, Any] | None:
        """The next ticket for ``window`` by the calling rule, or None when nobody waits."""
        return self.app.call_next(window, staff_id)

    @rpc
    def recall(
        self, ticket_id: str, window: str | None = None, by: str | None = None
    ) -> dict[str, Any]:
        return self.app.recall(ticket_id, window, by)

    @rpc
    def start_service(
        self, ticket_id: str, window: str | None = None, by: str | None = None
    ) -> dict[str, Any]:
        return self.app.start_service(ticket_id, window, by)

    @rpc
    def complete(
        self,
        ticket_id: str,
        outcome: str = "done",
        application_id: str | None = None,
        matter_code: str | None = None,
        window: str | None = None,
        by: str | None = None,
    ) -> dict[str, Any]:
        done = self.app.complete(ticket_id, outcome, application_id, matter_code, window, by)
        self.hint_invited([f"ticket:{done['id']}"])
        return done

    @rpc
    def no_show(
        self, ticket_id: str, window: str | None = None, by: str | None = None
    ) -> dict[str, Any]:
        return self.app.no_show(ticket_id, window, by)

    @rpc
    def requeue(self, ticket_id: str, by: str | None = None) -> dict[str, Any]:
        return self.app.requeue(ticket_id, by)

    @rpc
    def transfer(
        self,
        ticket_id: str,
        category: str | None = None,
        window: str | None = None,
        by: str | None = None,
    ) -> dict[str, Any]:
        return self.app.transfer(ticket_id, category, window, by)

    @rpc
    def hold(
        self, ticket_id: str, reason: str | None = None, by: str | None = None
    ) -> dict[str, Any]:
        return self.app.hold(ticket_id, reason, by)

    @rpc
    def resume(self, ticket_id: str, by: str | None = None) -> dict[str, Any]:
        return self.app.resume(ticket_id, by)

    @rpc
    def cancel(
        self, ticket_id: str, reason: str | None = None, by: str | None = None
    ) -> dict[str, Any]:
        return self.app.cancel(ticket_id, reason, by)

    # --- windows ---------------------------------------------------------------------------

    @rpc
    def windows(self) -> list[dict[str, Any]]:
        return self.app.windows()

    @rpc
    def sign_in(self, window: str, staff_id: str | None = None) -> dict[str, Any]:
        return self.app.sign_in(window, staff_id)

    @rpc
    def sign_out(self, window: str, staff_id: str | None = None) -> dict[str, Any]:
        return self.app.sign_out(window, staff_id)

    @rpc
    def open_window(self, window: str, staff_id: str | None = None) -> dict[str, Any]:
        return self.app.open_window(window, staff_id)

    @rpc
    def pause_window(
        self, window: str, reason: str | None = None, by: str | None = None
    ) -> dict[str, Any]:
        return self.app.pause_window(window, reason, by)

    @rpc
    def close_window(self, window: str, by: str | None = None) -> dict[str, Any]:
        return self.app.close_window(window, by)

    # --- day close -------------------------------------------------------------------------

    @rpc
    def close_day(
        self, date: str | None = None, by: str | None = None, early: bool = False
    ) -> dict[str, Any]:
        """Expire the day's unserved tickets (with a reason) and publish its figures."""
        return self.app.close_day(date, by, early)

    # --- appointments ----------------------------------------------------------------------

    @rpc
    def slots(self, category: str, date: str) -> list[dict[str, Any]]:
        return self.app.slots(category, date)

    @rpc
    def book(
        self, category: str, date: str, slot: str, phone: str, channel: str = "web"
    ) -> dict[str, Any]:
        return self.app.book(category, date, slot, phone, channel)

    @rpc
    def booking(self, booking: str) -> dict[str, Any]:
        return self.app.booking(booking)

    @rpc
    def cancel_booking(self, booking: str) -> dict[str, Any]:
        return self.app.cancel_booking(booking)

    @rpc
    def check_in(self, booking: str) -> dict[str, Any]:
        return self.app.check_in(booking)

    # --- board -----------------------------------------------------------------------------

    @rpc
    def board(self) -> dict[str, Any]:
        """Latest call per window, recent calls with announcement text, waiting counts."""
        return self.app.board()

    @base.api("GET", "/board")
    def board_http(self, request: Request) -> Response:
        """The board as JSON; ``?after=<version>`` long-polls until a newer version (or the
        poll time runs out, answering the current board)."""
        after = request.args.get("after")
        if after is None:
            return base.json_response(self.app.board())
        since = schemas.board_after(after)
        # The body waits outside the worker, so a waiting viewer holds no worker slot.
        body = _viewer(self.app, request, _long_poll(self.app, since))
        return Response(body, mimetype=base.JSON_TYPE, direct_passthrough=True)

    @base.api("GET", "/board/stream")
    def board_stream(self, request: Request) -> Response:
        """Server-sent events: the board whenever it changes, a heartbeat comment every
        ``board_heartbeat_seconds``, the stream ends after ``board_stream_seconds`` (the
        browser's EventSource reconnects)."""
        body = _viewer(self.app, request, _stream(self.app))
        response = Response(body, mimetype="text/event-stream", direct_passthrough=True)
        response.headers["Cache-Control"] = "no-cache"
        response.headers["X-Accel-Buffering"] = "no"
        return response

    # --- periodic work ---------------------------------------------------------------------

    @timer(interval=1)
    def tick(self) -> None:
        """Auto no-shows, invitation and booking sweeps, figures, gauges, day close."""
        self.hint_invited(self.app.tick())


def _viewer(app: QueueApp, request: Request, body: Iterator[bytes]) -> LiveBody:
    """Admit one board viewer (one of the process's ``max_streams``) or refuse with 503."""
    if not app.enter_viewer():
        if hasattr(body, "close"):
            body.close()
        raise TooManyViewers(app.settings.max_streams)
    return live_body(request, body, app.leave_viewer, app.settings.board_idle_seconds)


def _long_poll(app: QueueApp, since: int) -> Iterator[bytes]:
    waited = 0.0
    while app.board_version() <= since and waited < app.settings.board_poll_seconds:
        eventlet.sleep(BOARD_POLL_INTERVAL_S)
        waited += BOARD_POLL_INTERVAL_S
    yield json.dumps(app.board(), ensure_ascii=False).encode()


def _stream(app: QueueApp) -> Iterator[bytes]:
    settings = app.settings
    yield b"retry: 3000\n\n"
    version = -1
    lifetime = quiet = 0.0
    while lifetime < settings.board_stream_seconds:
        current = app.board_version()
        if current != version:
            version = current
            payload = json.dumps(app.board(), ensure_ascii=False)
            yield f"event: board\nid: {version}\ndata: {payload}\n\n".encode()
            quiet = 0.0
        elif quiet >= settings.board_heartbeat_seconds:
            yield b": heartbeat\n\n"
            quiet = 0.0
        eventlet.sleep(BOARD_POLL_INTERVAL_S)
        lifetime += BOARD_POLL_INTERVAL_S
        quiet += BOARD_POLL_INTERVAL_S
    yield b"event: bye\ndata: {}\n\n"
