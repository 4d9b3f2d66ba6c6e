"""The board (叫号屏): each window's latest call, recent calls with their announcement,
waiting counts per category; versioned so viewers can wait for the next change."""

from __future__ import annotations

from typing import Any

from services.common.clock import iso
from services.queue import domain
from services.queue.domain.board import RECENT_CALLS
from services.queue.usecases.issuing import Issuing


class Board(Issuing):
    def enter_viewer(self) -> bool:
        """Take one of the process's ``max_streams`` board connections (streams and
        long-polls); False when all are taken. Give it back with ``leave_viewer``."""
        with self._viewers_lock:
            if self._viewers >= self.settings.max_streams:
                return False
            self._viewers += 1
        self.metrics.viewers.labels(**self.metrics.labels).set(self._viewers)
        return True

    def leave_viewer(self) -> None:
        with self._viewers_lock:
            self._viewers = max(0, self._viewers - 1)
        self.metrics.viewers.labels(**self.metrics.labels).set(self._viewers)

    def board_version(self) -> int:
        """Moves whenever a ticket or a window changes."""
        return self.repo.tickets.last_seq() + self.repo.windows.last_seq()

    def board(self) -> dict[str, Any]:
        """The live board: each window's latest call, recent calls, waiting per category."""
        version = self.board_version()
        cached = self._board
        if cached is not None and cached[0] == version:
            return cached[1]
        setup, _ = self.setup()
        today = self._today()
        called = self.repo.tickets.find(
            {"date": today, "last_called_at": {"$ne": None}},
            sort=[("last_called_at", -1)],
            limit=RECENT_CALLS,
        )
        recent = domain.recent_calls(called)
        waiting = [self._waiting(setup, today, p) for p in setup.categories]
        board = {
            "site_code": self.site_code,
            "date": today,
            "version": version,
            "announcement": recent[0]["announcement"] if recent else None,
            "windows": domain.board_windows(setup, self._window_docs()),
            "recent": recent,
            "waiting": waiting,
            "updated_at": iso(self.clock()),
        }
        self._board = (version, board)
        return board

    def _waiting(self, setup: domain.Setup, today: str, prefix: str) -> dict[str, Any]:
        """A category's waiting count and the wait a ticket taken now may expect."""
        category = setup.categories[prefix]
        waiting = self.repo.waiting_count(today, prefix)
        mean = self._mean_service(setup, category)
        estimate = domain.estimate_wait(waiting, mean, self._open_windows(setup, prefix))
        return {"category": prefix, "name": category.name, "waiting": waiting, "estimate": estimate}
