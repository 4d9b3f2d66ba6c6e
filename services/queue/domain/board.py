"""The hall's board (叫号屏): announcements and the board's content from windows and calls."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

from services.common.errors import HallError
from services.queue.domain.categories import Setup

RECENT_CALLS = 10  # calls shown under the windows


class TooManyViewers(HallError):
    """Every board connection of this process (``QUEUE.max_streams``) is taken: HTTP 503,
    the screen retries later."""

    code = "too_many_viewers"
    http_status = 503

    def __init__(self, limit: int) -> None:
        super().__init__(f"叫号屏连接已满（每个进程最多 {limit} 个），请稍后重试")


def announcement(number: str, window: str) -> str:
    return f"请{number}号到{window}号窗口办理"


DIGITS = "零一二三四五六七八九"


def spoken(number: str, window: str) -> str:
    """What the board says aloud: letters and digits one by one (A001 → "A 零 零 一"), so
    a speech engine never reads "一百零一" or "A 千"; spaces keep every symbol apart."""

    def by_symbol(text: str) -> str:
        return " ".join(DIGITS[int(c)] if c.isdigit() else c for c in text)

    return f"请 {by_symbol(number)} 号，到 {by_symbol(window)} 号窗口办理"


def call_id(ticket_id: str, called_at: str) -> str:
    """One call of one ticket (a recall is a new call): what a board announces once."""
    return hashlib.sha256(f"{ticket_id}|{called_at}".encode()).hexdigest()[:20]


def board_windows(setup: Setup, docs: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Each configured window's state and latest call (``docs``: stored windows by number)."""
    shown = []
    for number, window in setup.windows.items():
        doc = docs.get(number, {})
        shown.append(
            {
                "window": number,
                "name": window.name,
                "state": doc.get("state", "closed"),
                "number": doc.get("last_number"),
                "announcement": doc.get("announcement"),
                "called_at": doc.get("last_call_at"),
            }
        )
    return shown


def recent_calls(tickets: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The latest calls (tickets newest call first) with their announcement text."""
    return [
        {
            "number": t["number"],
            "window": t["window"],
            "category": t["category"],
            "announcement": announcement(t["number"], t["window"]),
            "spoken": spoken(t["number"], t["window"]),
            "call_id": call_id(t["id"], t["last_called_at"]),
            "called_at": t["last_called_at"],
            "state": t["state"],
        }
        for t in tickets
        if t.get("window")
    ]
