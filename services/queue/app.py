"""The queue's use cases (docs/architecture.md, "Service template"): ``QueueApp`` composed
from one mixin per concept in ``usecases/``, plus day close and the periodic work, which
span them all.

One ``QueueApp`` per container (built by ``provider.QueueProvider``); it holds no per-call
state, so the service's workers share it. Each public method validates its arguments
(schemas.py), applies the domain rules and persists through the repository with
compare-and-set. No framework here: the clock is injected.
"""

from __future__ import annotations

import time as systime
from datetime import date, datetime, timedelta
from typing import Any

from services.common.clock import Clock, iso, utc_now
from services.common.errors import Conflict, InvalidInput
from services.common.runtime import SiteContext
from services.queue import domain, schemas
from services.queue.domain import Setup
from services.queue.settings import QueueSettings
from services.queue.usecases.appointments import Appointments
from services.queue.usecases.board import Board
from services.queue.usecases.calling import Calling
from services.queue.usecases.configuration import Configuration
from services.queue.usecases.figures import Figures
from services.queue.usecases.retention import Retention
from services.queue.usecases.tickets import Tickets
from services.queue.usecases.windows import Windows


class QueueApp(Configuration, Tickets, Calling, Windows, Appointments, Figures, Board, Retention):
    """The queue of one site."""

    def __init__(
        self, context: SiteContext, settings: QueueSettings, clock: Clock = utc_now
    ) -> None:
        super().__init__(context, settings, clock)

    # --- day close -------------------------------------------------------------------------

    def close_day(
        self, date: str | None = None, by: str | None = None, early: bool = False
    ) -> dict[str, Any]:
        """闭厅: unserved tickets of ``date`` (default today, and earlier days) expire with a
        reason; bookings not checked in become no-shows; the day's figures are recounted
        and published. Before the closing time only with ``early``."""
        args = self._args(schemas.CloseDayArgs, date=date, by=by, early=early)
        return self._close_day(args["date"], args["by"] or "manager", args["early"])

    def _close_day(self, day: date | None, by: str, early: bool = False) -> dict[str, Any]:
        setup, _ = self.setup()
        now = self.clock()
        local = self.local(setup, now)
        today = local.date()
        target = today if day is None else day
        if target > today:
            raise InvalidInput.field("date", "不能关闭未来的日期")
        if target == today and not early and local.time() < setup.policy.day_close_time:
            rule = f"未到闭厅时间 {setup.policy.day_close_time:%H:%M}；如需提前闭厅请设置 early"
            raise Conflict(rule, {"date": [rule]})
        expired = 0
        unserved = self.repo.tickets.find(
            {"state": {"$in": list(domain.UNSERVED)}, "date": {"$lte": target.isoformat()}}
        )
        days = {target.isoformat()}
        for ticket in unserved:
            reason = (
                "闭厅时仍在办理中，未登记办结"
                if ticket["state"] == "serving"
                else "当日闭厅，未办理的号自动作废"
            )
            try:
                self.act(ticket["id"], "expire", by, reason=reason)
            except Conflict:
                continue
            expired += 1
            days.add(ticket["date"])
        missed = self.sweep_bookings(force_day=target)
        self.flush_stats()
        for d in sorted(days):
            self.recount(date_from(d))
        self.publish_figures()
        closed = {"id": f"closed:{target.isoformat()}", "site_code": self.site_code}
        self.repo.insert_once(self.repo.config, {**closed, "by": by, "at": iso(now)})
        return {"date": target.isoformat(), "expired": expired, "booking_no_shows": missed}

    def day_closed(self, day: str) -> bool:
        return self.repo.config.get(f"closed:{day}") is not None

    # --- periodic work -----------------------------------------------------------------------

    def due(self, task: str, every: float) -> bool:
        now = systime.monotonic()
        if now - self._last.get(task, -1e9) < every:
            return False
        self._last[task] = now
        return True

    def tick(self) -> list[str]:
        """Auto no-shows, invitation and booking sweeps, figures, gauges, day close,
        retention; returns the invitation ids repaired (for the event hint)."""
        repaired: list[str] = []
        self.auto_no_shows()
        if self.due("invitations", self.settings.sweep_seconds):
            repaired = self.sweep_invitations()
        if self.due("bookings", self.settings.sweep_seconds):
            self.repair_check_ins()
            self.sweep_bookings()
        if self.due("figures", self.settings.figures_seconds):
            self.publish_figures()
            self.refresh_gauges()
        if self.due("close", self.settings.sweep_seconds):
            setup, _ = self.setup()
            self._auto_close(setup, self.clock())
        if self.due("prune", self.settings.prune_seconds):
            self.prune()
        return repaired

    def _auto_close(self, setup: Setup, now: datetime) -> None:
        local = self.local(setup, now)
        if local.time() >= setup.policy.day_close_time and not self.day_closed(
            local.date().isoformat()
        ):
            self._close_day(None, "system")
            return
        yesterday = (local.date() - timedelta(days=1)).isoformat()
        stale = self.repo.tickets.find(
            {"state": {"$in": list(domain.UNSERVED)}, "date": {"$lte": yesterday}}, limit=1
        )
        if stale:  # the service was down at closing time: close the missed day now
            self._close_day(date_from(stale[0]["date"]), "system")


def date_from(text: str) -> date:
    return date.fromisoformat(text)
