"""Calling (叫号): the next ticket for a window by the calling rule, claimed atomically
against every other window and process; recalls; automatic no-shows."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from services.common.clock import iso, parse_iso
from services.common.errors import Conflict, Forbidden
from services.common.store import Doc
from services.queue import domain, schemas
from services.queue.domain import Setup
from services.queue.usecases.base import QueueBase

HEADS_PER_QUEUE = 5  # candidates read per category for one call; more are read if CAS is lost
CALL_ROUNDS = 10


class Calling(QueueBase):
    def call_next(self, window: str, staff_id: str | None = None) -> dict[str, Any] | None:
        """叫号: the next ticket for this window by the calling rule, or None when nobody
        waits."""
        args = self._args(schemas.CallArgs, window=window, staff_id=staff_id)
        number, staff_id = args["window"], args["staff_id"]
        setup, _ = self.setup()
        config = setup.window(number)
        wdoc = self._window_doc(number)
        if wdoc is None or wdoc["state"] != "open":
            state = "closed" if wdoc is None else wdoc["state"]
            rule = f"{number} 号窗口当前{domain.WINDOW_STATES[state]}，不能叫号"
            raise Conflict(rule, {"window": [rule]})
        staff = wdoc.get("staff_id")
        if staff_id is not None and staff_id != staff:
            rule = f"工作人员 {staff_id} 未在 {number} 号窗口签到"
            raise Forbidden(rule, {"staff_id": [rule]})
        by = staff or "system"
        now = self.clock()
        for current in self.repo.at_window(number):
            if current["state"] == "called" and domain.no_show_due(current, setup.policy, now):
                self._auto_no_show(current["id"])
                wdoc = self._window_doc(number) or wdoc  # releasing it changed the window
                continue
            verb = "办结" if current["state"] == "serving" else "处理（重呼、开始办理或过号）"
            rule = f"{number} 号窗口的 {current['number']} 尚未{verb}，请先处理"
            raise Conflict(rule, {"window": [rule]})
        day = self.local(setup, now).date().isoformat()
        now_ts = domain.timestamp(now)
        limit = HEADS_PER_QUEUE
        for _ in range(CALL_ROUNDS):
            candidates = self.repo.sent_to_window(day, number, limit)
            for prefix in config.weights:
                candidates.extend(self.repo.queue_heads(day, prefix, limit))
            order = domain.calling_order(config, candidates, now_ts)
            if not order:
                return None
            for ticket in order:
                changes = domain.transition(
                    ticket, "call", now, by, setup.policy, window=number, staff_id=staff
                )
                won = self.repo.tickets.update(
                    ticket["id"], changes, expect={"state": "waiting", "version": ticket["version"]}
                )
                if won is not None:
                    return self._claimed(setup, wdoc, ticket, won, now, by)
                self.metrics.call_conflicts.labels(**self.metrics.labels).inc()
            limit *= 2  # every candidate went to other windows: look further down the queues
        raise Conflict("叫号繁忙，请稍后再叫", {"window": ["并发叫号过多"]})

    def _claimed(
        self,
        setup: Setup,
        wdoc: Doc,
        before: Mapping[str, Any],
        ticket: Doc,
        now: datetime,
        by: str,
    ) -> dict[str, Any]:
        number = wdoc["number"]
        text = domain.announcement(ticket["number"], number)
        window_changes = {
            "last_ticket": ticket["id"],
            "last_number": ticket["number"],
            "last_call_at": iso(now),
            "announcement": text,
            "updated_at": iso(now),
        }
        moved = self.repo.windows.update(
            wdoc["id"], window_changes, expect={"version": wdoc["version"], "state": "open"}
        )
        if moved is None:
            # The window changed meanwhile (paused, closed, or a second call from the same
            # window won): give the ticket back to the queue with its place in time.
            self.repo.tickets.update(
                ticket["id"],
                domain.revert_call(ticket, before, now, by),
                {"version": ticket["version"]},
            )
            rule = f"{number} 号窗口状态刚刚变化，本次叫号已撤回，请重试"
            raise Conflict(rule, {"window": [rule]})
        category = ticket["category"]
        labels = self.metrics.by_category(category)
        self.metrics.waiting.labels(**labels).dec()
        wait = (now - parse_iso(ticket["taken_at"])).total_seconds()
        self.metrics.wait.labels(**labels).observe(wait)
        predicted = (ticket.get("estimate") or {}).get("expected_seconds")
        if predicted is not None:
            self.metrics.estimate_error.labels(**labels).observe(abs(wait - predicted))
        target = setup.policy.waiting_target_minutes * 60
        self._count(date.fromisoformat(ticket["date"]), category, "called", wait, target)
        return {**domain.ticket_view(ticket), "announcement": text, "waited_seconds": round(wait)}

    def _auto_no_show(self, ticket_id: str) -> None:
        with contextlib.suppress(Conflict):  # someone else moved it on meanwhile
            self.act(ticket_id, "no_show", "system")

    def recall(
        self, ticket_id: str, window: str | None = None, by: str | None = None
    ) -> dict[str, Any]:
        """重呼: call the same ticket again after the cool-down."""
        args = self._args(schemas.ActionArgs, ticket_id=ticket_id, window=window, by=by)
        ticket_id = args["ticket_id"]
        ticket = self.act(
            ticket_id, "recall", self._by(args["by"], ticket_id), window=args["window"]
        )
        announcement = domain.announcement(ticket["number"], ticket["window"])
        return {**domain.ticket_view(ticket), "announcement": announcement}

    def auto_no_shows(self) -> None:
        """Called tickets past their last call and cool-down become no-shows (timer)."""
        setup, _ = self.setup()
        now = self.clock()
        for ticket in self.repo.tickets.find({"state": "called"}):
            if domain.no_show_due(ticket, setup.policy, now):
                self._auto_no_show(ticket["id"])
