"""The call board relayed to the hall's screens (叫号屏): one follower per gateway process
asks ``queue.board`` and keeps the latest; every screen's event stream reads that copy,
so twenty boards cost the queue one caller, not twenty."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import eventlet
from nameko.extensions import DependencyProvider

from services.common.errors import HallError
from services.common.runtime import SiteRuntime
from services.gateway.settings import GatewaySettings

STREAM_TICK_S = 0.05  # how often a stream looks for a newer board


class TooManyScreens(HallError):
    """Every stream slot of this gateway process is taken: HTTP 503, the screen retries."""

    code = "too_many_screens"
    http_status = 503

    def __init__(self, limit: int) -> None:
        super().__init__(f"叫号屏连接已满（每个网关进程最多 {limit} 个），请稍后重试")


class FollowedBoard:
    """The newest board the follower got, when, and the open screen streams."""

    def __init__(self, max_streams: int) -> None:
        self.board: dict[str, Any] | None = None
        self.fetched_at = 0.0  # time.monotonic() of the last good answer
        self.problem: str | None = "尚未取得叫号数据"
        self.max_streams = max_streams
        self.streams = 0

    def publish(self, board: dict[str, Any]) -> None:
        self.board, self.fetched_at, self.problem = board, time.monotonic(), None

    def fail(self, reason: str) -> None:
        self.problem = reason

    def spoken_text(self, call_id: str) -> str | None:
        """The words of a call on the board now: the only text the voice route will say."""
        for call in (self.board or {}).get("recent", []):
            if call.get("call_id") == call_id:
                return str(call["spoken"])
        return None

    def enter(self) -> None:
        """Take a stream slot (give it back with ``leave``), or ``TooManyScreens``."""
        if self.streams >= self.max_streams:
            raise TooManyScreens(self.max_streams)
        self.streams += 1

    def leave(self) -> None:
        self.streams = max(0, self.streams - 1)

    def stream(self, heartbeat_s: float, lifetime_s: float) -> Iterator[bytes]:
        """Server-sent events: ``board`` at each new version, ``status`` when the link to
        the queue breaks or mends, a comment as heartbeat; ``bye`` at the end (the screen
        reconnects at once)."""
        yield b"retry: 2000\n\n"
        shown, said, quiet, started = -1, "", 0.0, time.monotonic()
        while time.monotonic() - started < lifetime_s:
            board, status = self.board, self.problem or "ok"
            if status != said:
                said = status
                yield _event("status", {"status": status})
            if board is not None and board["version"] != shown:
                shown, quiet = board["version"], 0.0
                yield _event("board", board)
            elif quiet >= heartbeat_s:
                quiet = 0.0
                yield b": heartbeat\n\n"
            eventlet.sleep(STREAM_TICK_S)
            quiet += STREAM_TICK_S
        yield _event("bye", {})


def _event(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


class BoardFeed(DependencyProvider):  # type: ignore[misc]
    """One ``FollowedBoard`` per container."""

    site_runtime = SiteRuntime()

    def setup(self) -> None:
        settings = GatewaySettings.from_section(self.site_runtime.ready().config.section)
        self.followed = FollowedBoard(settings.board_max_streams)

    def get_dependency(self, worker_ctx: Any) -> FollowedBoard:
        return self.followed
