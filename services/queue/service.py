"""The `queue` service (取号叫号): tickets, calling, windows, appointments and the board.

Thin Nameko entrypoints: validate at the boundary (schemas), run the use case (app.Hall,
which applies domain rules and persists with compare-and-set), dispatch wake-up hints.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import eventlet
from nameko.events import EventDispatcher
from nameko.timer import timer
from werkzeug.wrappers import Request, Response

from services.common import service as base
from services.common.errors import InvalidInput
from services.common.rpc import rpc
from services.queue import schemas
from services.queue.app import Hall, HallProvider
from services.queue.schemas import text

log = logging.getLogger(__name__)

BOARD_POLL_INTERVAL_S = 0.2
_CHUNK = "eventlet.minimum_write_chunk_size"


class QueueService(base.SiteService):
    name = "queue"
    feeds = ("evaluation_invitations", "daily_figures")
    replicated_feeds = ("daily_figures",)

    hall: Hall = HallProvider()
    dispatch = EventDispatcher()

    # --- configuration ---------------------------------------------------------------------

    @rpc
    def configure(
        self, config: dict[str, Any], by: str, expected_version: int | None = None
    ) -> dict[str, Any]:
        """Replace the site's queue configuration with a new version (manager only)."""
        who = text(by, "by", 64)
        if expected_version is not None and (
            isinstance(expected_version, bool) or not isinstance(expected_version, int)
        ):
            raise InvalidInput.field("expected_version", "应为整数")
        return self.hall.configure(config, str(who), expected_version)

    @rpc
    def configuration(self, version: int | None = None) -> dict[str, Any]:
        """The current configuration (or version ``version`` of it)."""
        if version is None:
            return self.hall.configuration()
        return self.hall.config_history(int(version))

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
        args = schemas.load(
            schemas.TakeSchema(),
            {
                "category": category,
                "channel": channel,
                "phone": phone,
                "priority": priority,
                "matter_code": matter_code,
            },
            "取号信息",
        )
        return self.hall.take(args)

    @rpc
    def ticket(self, ticket_id: str) -> dict[str, Any]:
        return self.hall.ticket(_id(ticket_id))

    @rpc
    def ticket_history(self, ticket_id: str) -> list[dict[str, Any]]:
        """The audit trail of one ticket: who, when, from, to."""
        return self.hall.history(_id(ticket_id))

    @rpc
    def call_next(self, window: str, staff_id: str | None = None) -> dict[str, Any] | None:
        """The next ticket for ``window`` by the calling rule, or None when nobody waits."""
        return self.hall.call_next(_window(window), _opt(staff_id, "staff_id"))

    @rpc
    def recall(
        self, ticket_id: str, window: str | None = None, by: str | None = None
    ) -> dict[str, Any]:
        return self.hall.recall(_id(ticket_id), _opt_window(window), _opt(by, "by"))

    @rpc
    def start_service(
        self, ticket_id: str, window: str | None = None, by: str | None = None
    ) -> dict[str, Any]:
        return self.hall.do(_id(ticket_id), "start", _opt(by, "by"), window=_opt_window(window))

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
        args = schemas.load(
            schemas.CompleteSchema(),
            {"outcome": outcome, "application_id": application_id, "matter_code": matter_code},
            "办结信息",
        )
        done = self.hall.do(
            _id(ticket_id), "complete", _opt(by, "by"), window=_opt_window(window), **args
        )
        self._hint(f"ticket:{done['id']}")
        return done

    @rpc
    def no_show(
        self, ticket_id: str, window: str | None = None, by: str | None = None
    ) -> dict[str, Any]:
        return self.hall.do(_id(ticket_id), "no_show", _opt(by, "by"), window=_opt_window(window))

    @rpc
    def requeue(self, ticket_id: str, by: str | None = None) -> dict[str, Any]:
        return self.hall.requeue(_id(ticket_id), _opt(by, "by"))

    @rpc
    def transfer(
        self,
        ticket_id: str,
        category: str | None = None,
        window: str | None = None,
        by: str | None = None,
    ) -> dict[str, Any]:
        return self.hall.transfer(
            _id(ticket_id), _opt(category, "category", 1), _opt_window(window), _opt(by, "by")
        )

    @rpc
    def hold(
        self, ticket_id: str, reason: str | None = None, by: str | None = None
    ) -> dict[str, Any]:
        return self.hall.do(
            _id(ticket_id), "hold", _opt(by, "by"), reason=_opt(reason, "reason", 200)
        )

    @rpc
    def resume(self, ticket_id: str, by: str | None = None) -> dict[str, Any]:
        return self.hall.do(_id(ticket_id), "resume", _opt(by, "by"))

    @rpc
    def cancel(
        self, ticket_id: str, reason: str | None = None, by: str | None = None
    ) -> dict[str, Any]:
        by = _opt(by, "by") or "citizen"
        return self.hall.do(_id(ticket_id), "cancel", by, reason=_opt(reason, "reason", 200))

    # --- windows ---------------------------------------------------------------------------

    @rpc
    def windows(self) -> list[dict[str, Any]]:
        return self.hall.windows()

    @rpc
    def sign_in(self, window: str, staff_id: str) -> dict[str, Any]:
        return self.hall.sign_in(_window(window), str(text(staff_id, "staff_id", 64)))

    @rpc
    def sign_out(self, window: str, staff_id: str) -> dict[str, Any]:
        return self.hall.sign_out(_window(window), str(text(staff_id, "staff_id", 64)))

    @rpc
    def open_window(self, window: str, staff_id: str | None = None) -> dict[str, Any]:
        return self.hall.open_window(_window(window), _opt(staff_id, "staff_id"))

    @rpc
    def pause_window(
        self, window: str, reason: str | None = None, by: str | None = None
    ) -> dict[str, Any]:
        return self.hall.pause_window(_window(window), _opt(reason, "reason", 200), _opt(by, "by"))

    @rpc
    def close_window(self, window: str, by: str | None = None) -> dict[str, Any]:
        return self.hall.close_window(_window(window), _opt(by, "by"))

    # --- day close -------------------------------------------------------------------------

    @rpc
    def close_day(
        self, date: str | None = None, by: str | None = None, early: bool = False
    ) -> dict[str, Any]:
        """Expire the day's unserved tickets (with a reason) and publish its figures."""
        return self.hall.close_day(_opt(date, "date", 10), _opt(by, "by") or "manager", bool(early))

    # --- appointments ----------------------------------------------------------------------

    @rpc
    def slots(self, category: str, date: str) -> list[dict[str, Any]]:
        args = schemas.load(
            schemas.BookSchema(only=("category", "date")), {"category": category, "date": date}
        )
        return self.hall.slots(args["category"], args["date"])

    @rpc
    def book(
        self, category: str, date: str, slot: str, phone: str, channel: str = "web"
    ) -> dict[str, Any]:
        args = schemas.load(
            schemas.BookSchema(),
            {"category": category, "date": date, "slot": slot, "phone": phone, "channel": channel},
            "预约信息",
        )
        return self.hall.book(args)

    @rpc
    def booking(self, booking: str) -> dict[str, Any]:
        return self.hall.booking(str(text(booking, "booking")))

    @rpc
    def cancel_booking(self, booking: str) -> dict[str, Any]:
        return self.hall.cancel_booking(str(text(booking, "booking")))

    @rpc
    def check_in(self, booking: str) -> dict[str, Any]:
        return self.hall.check_in(str(text(booking, "booking")))

    # --- board -----------------------------------------------------------------------------

    @rpc
    def board(self) -> dict[str, Any]:
        """Latest call per window, recent calls with announcement text, waiting counts."""
        return self.hall.board()

    @base.api("GET", "/board")
    def board_http(self, request: Request) -> Response:
        """The board as JSON; ``?after=<version>`` long-polls until a newer version (or the
        poll time runs out, answering the current board)."""
        after = request.args.get("after")
        if after is None:
            return base.json_response(self.hall.board())
        try:
            since = int(after)
        except ValueError:
            raise InvalidInput.field("after", "应为整数（上次看板的 version）") from None
        hall = self.hall
        # The body waits outside the worker, so a waiting viewer holds no worker slot.
        request.environ[_CHUNK] = 0
        return Response(_long_poll(hall, since), mimetype=base.JSON_TYPE, direct_passthrough=True)

    @base.api("GET", "/board/stream")
    def board_stream(self, request: Request) -> Response:
        """Server-sent events: the board whenever it changes, a heartbeat comment every
        ``board_heartbeat_seconds``, the stream ends after ``board_stream_seconds`` (the
        browser's EventSource reconnects)."""
        request.environ[_CHUNK] = 0  # send each event at once, not in 4 KB batches
        response = Response(
            _stream(self.hall), mimetype="text/event-stream", direct_passthrough=True
        )
        response.headers["Cache-Control"] = "no-cache"
        response.headers["X-Accel-Buffering"] = "no"
        return response

    # --- periodic work ---------------------------------------------------------------------

    @timer(interval=1)
    def tick(self) -> None:
        """Auto no-shows, invitation and booking sweeps, figures, gauges, day close."""
        for invitation_id in self.hall.tick():
            self._hint(invitation_id)

    def _hint(self, invitation_id: str) -> None:
        try:
            self.dispatch("evaluation_invited", {"id": invitation_id})
        except Exception:  # a hint only: rating's timer pulls the feed anyway
            log.warning("evaluation_invited hint not sent for %s", invitation_id)


def _long_poll(hall: Hall, since: int) -> Iterator[bytes]:
    waited = 0.0
    while hall.board_version() <= since and waited < hall.ops.board_poll_seconds:
        eventlet.sleep(BOARD_POLL_INTERVAL_S)
        waited += BOARD_POLL_INTERVAL_S
    yield json.dumps(hall.board(), ensure_ascii=False).encode()


def _stream(hall: Hall) -> Iterator[bytes]:
    ops = hall.ops
    yield b"retry: 3000\n\n"
    version = -1
    lifetime = quiet = 0.0
    while lifetime < ops.board_stream_seconds:
        current = hall.board_version()
        if current != version:
            version = current
            payload = json.dumps(hall.board(), ensure_ascii=False)
            yield f"event: board\nid: {version}\ndata: {payload}\n\n".encode()
            quiet = 0.0
        elif quiet >= ops.board_heartbeat_seconds:
            yield b": heartbeat\n\n"
            quiet = 0.0
        eventlet.sleep(BOARD_POLL_INTERVAL_S)
        lifetime += BOARD_POLL_INTERVAL_S
        quiet += BOARD_POLL_INTERVAL_S
    yield b"event: bye\ndata: {}\n\n"


def _id(value: Any) -> str:
    return str(text(value, "ticket_id", 128))


def _window(value: Any) -> str:
    return str(text(value, "window", 16))


def _opt_window(value: Any) -> str | None:
    return text(value, "window", 16, optional=True)


def _opt(value: Any, name: str, max_len: int = 64) -> str | None:
    return text(value, name, max_len, optional=True)
