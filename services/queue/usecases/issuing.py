"""Issuing a ticket (出号), shared by taking one at a kiosk (usecases/tickets.py) and by an
appointment's check-in (usecases/appointments.py): the checks, the walk-in daily cap, the
number, people ahead and the estimate."""

from __future__ import annotations

import time as systime
from datetime import date, datetime
from typing import Any

from services.common.errors import Conflict, InvalidInput
from services.queue import domain
from services.queue.domain import Setup
from services.queue.usecases.base import QueueBase

ESTIMATE_TTL_S = 5.0  # how long a category's moving average is reused before re-reading


class Issuing(QueueBase):
    def _issue(
        self,
        setup: Setup,
        version: int,
        category: domain.Category,
        *,
        channel: str,
        by: str,
        phone: str | None = None,
        priority: str | None = None,
        matter_code: str | None = None,
        booking_id: str | None = None,
        on_time: bool = False,
        order_key: float | None = None,
        now: datetime | None = None,
    ) -> dict[str, Any]:
        """A new waiting ticket. A refusal writes nothing (the walk-in count it may have
        taken in a race is given back)."""
        now = now or self.clock()
        local = self.local(setup, now)
        day = local.date()
        working = self._working(category, day)
        appointment = booking_id is not None
        try:
            domain.check_issue(category, local, working, None, appointment=appointment)
            protected = domain.protect_phone(phone, self.salt) if phone else None
            if not appointment:
                self._count_walk_in(category, local, working, day)
            value = self.context.store.next_value(domain.counter_key(day, category.prefix))
            ticket = domain.new_ticket(
                site_code=self.site_code,
                day=day,
                category=category,
                value=value,
                channel=channel,
                now=now,
                by=by,
                priority=priority,
                phone=protected,
                booking_id=booking_id,
                appointment_on_time=on_time,
                order_key=order_key,
                matter_code=matter_code,
                config_version=version,
            )
        except (InvalidInput, Conflict):
            self.metrics.refused.labels(**self.metrics.by_category(category.prefix)).inc()
            raise
        newest = order_key is None and ticket["lane"] == domain.LANE_NORMAL
        ahead = self.repo.people_ahead(ticket, newest=newest)
        estimate = domain.estimate_wait(
            ahead, self._mean_service(setup, category), self._open_windows(setup, category.prefix)
        )
        ticket["people_ahead_at_issue"] = ahead
        ticket["estimate"] = estimate
        self.repo.insert_ticket(ticket)
        self._count(day, category.prefix, "issued")
        labels = self.metrics.by_category(category.prefix)
        self.metrics.issued.labels(**labels, channel=channel).inc()
        self.metrics.waiting.labels(**labels).inc()
        return {**domain.ticket_view(ticket), "people_ahead": ahead, "estimate": estimate}

    def _count_walk_in(
        self, category: domain.Category, local: datetime, working: bool, day: date
    ) -> None:
        """Count one walk-in ticket against ``daily_cap`` (its own counter: appointments
        never use it up); at the cap the request is refused without writing, and a request
        that lost the race for the last one gives its count back."""
        if category.daily_cap is None:
            return
        key = domain.walk_in_key(day, category.prefix)
        store = self.context.store
        domain.check_issue(category, local, working, store.next_value(key, 0) + 1)
        taken = store.next_value(key)
        try:
            domain.check_issue(category, local, working, taken)
        except Conflict:
            store.next_value(key, -1)
            raise

    def _mean_service(self, setup: Setup, category: domain.Category) -> float:
        """Moving average of the last ``estimate_window`` real service times of the
        category (from completed tickets; cached for ESTIMATE_TTL_S), else its configured
        expected minutes."""
        cached = self._means.get(category.prefix)
        now = systime.monotonic()
        if cached is None or now - cached[0] > ESTIMATE_TTL_S:
            recent = self.repo.recent_completed(category.prefix, setup.policy.estimate_window)
            samples = [
                domain.service_seconds(t)
                for t in recent
                if t.get("started_at") and t.get("ended_at")
            ]
            cached = (now, domain.moving_average(samples, category.service_minutes * 60))
            self._means[category.prefix] = cached
        return cached[1]

    def _open_windows(self, setup: Setup, prefix: str) -> int:
        return sum(
            1
            for doc in self._window_docs().values()
            if doc["state"] == "open"
            and doc["number"] in setup.windows
            and setup.windows[doc["number"]].serves(prefix)
        )
