"""What every queue use case shares: the attributes (declared once here for mypy), the
current configuration, the site-local day, and applying one ticket action with
compare-and-set together with what follows it (metrics, figures, the invitation)."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from marshmallow import Schema

from services.common import validation
from services.common.clock import Clock, iso, parse_iso
from services.common.errors import Conflict, NotFound
from services.common.runtime import SiteContext
from services.common.store import Doc
from services.queue import domain
from services.queue.domain import Setup
from services.queue.metrics import QueueMetrics
from services.queue.settings import QueueSettings
from services.queue.store import CURRENT_CONFIG, QueueRepository

ACT_ATTEMPTS = 10


class QueueBase:
    """The shared state of one site's queue (one per container, no per-call state)."""

    def __init__(self, context: SiteContext, settings: QueueSettings, clock: Clock) -> None:
        self.context = context
        self.settings = settings
        self.clock = clock
        self.site_code = context.identity.code
        self.repo = QueueRepository(context.store)
        self.metrics = QueueMetrics(context.metrics)
        self.salt = settings.privacy_salt  # settled by ``seed`` (configured or generated)
        self._setup: tuple[int, Setup, Doc] | None = None
        self._board: tuple[int, dict[str, Any]] | None = None
        self._windows: tuple[int, dict[str, Doc]] | None = None
        self._means: dict[str, tuple[float, float]] = {}
        self._pending: dict[tuple[str, str], dict[str, Any]] = {}
        self._pending_lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._viewers = 0  # board streams and long-polls open now (usecases/board.py)
        self._viewers_lock = threading.Lock()

    @staticmethod
    def _args(schema: type[Schema], **values: Any) -> dict[str, Any]:
        """The entrypoint's arguments validated by ``schema`` (docs/architecture.md,
        "Validation"): a refusal names each field and its rule."""
        return validation.load(schema, values)

    # --- configuration and time ----------------------------------------------------------

    def setup(self) -> tuple[Setup, int]:
        """The current configuration, parsed once per change (any write to the config
        collection moves its feed position, which is cheap to read)."""
        seq = self.repo.config.last_seq()
        cached = self._setup
        if cached is None or cached[0] != seq:
            doc = self.repo.config.get(CURRENT_CONFIG)
            if doc is None:
                return Setup(), 0
            cached = (seq, domain.build_setup(doc["config"]), doc)
            self._setup = cached
        return cached[1], int(cached[2]["config_version"])

    def local(self, setup: Setup, now: datetime) -> datetime:
        return now.astimezone(domain.zone(setup.policy.timezone))

    def _working(self, category: domain.Category, day: date) -> bool:
        return self.context.calendar.is_working_day(day) if category.working_days_only else True

    def _today(self) -> str:
        setup, _ = self.setup()
        return self.local(setup, self.clock()).date().isoformat()

    # --- one ticket ------------------------------------------------------------------------

    def _get(self, ticket_id: str) -> Doc:
        doc = self.repo.tickets.get(ticket_id)
        if doc is None:
            raise NotFound(f"没有这张号：{ticket_id}", {"ticket_id": ["不存在"]})
        return doc

    def _by(self, by: str | None, ticket_id: str | None = None) -> str:
        """The actor: given, else the staff at the ticket's window, else "staff"."""
        if by:
            return by
        if ticket_id:
            doc = self.repo.tickets.get(ticket_id)
            if doc and doc.get("staff_id"):
                return str(doc["staff_id"])
        return "staff"

    def act(self, ticket_id: str, action: str, by: str, **details: Any) -> Doc:
        """Apply one state-machine action with compare-and-set, re-checking on a lost race."""
        setup, _ = self.setup()
        now = self.clock()
        for _ in range(ACT_ATTEMPTS):
            ticket = self._get(ticket_id)
            changes = domain.transition(ticket, action, now, by, setup.policy, **details)
            updated = self.repo.tickets.update(
                ticket_id, changes, expect={"version": ticket["version"]}
            )
            if updated is not None:
                self._after(ticket, updated, action, now)
                return updated
        raise Conflict("这张号正被同时处理，请重试", {"ticket_id": ["并发修改"]})

    def _after(self, before: Doc, after: Doc, action: str, now: datetime) -> None:
        """Metrics, figures, the window's board entry and the invitation after an action."""
        labels = self.metrics.by_category(after["category"])
        left = self.metrics.by_category(before["category"])
        if before["state"] == "waiting":
            self.metrics.waiting.labels(**left).dec()  # a transfer leaves and rejoins
        if after["state"] == "waiting":
            self.metrics.waiting.labels(**labels).inc()
        day = date.fromisoformat(after["date"])
        if action == "complete":
            seconds = max(0.0, (now - parse_iso(after["started_at"])).total_seconds())
            self.metrics.service.labels(**labels).observe(seconds)
            self._count(day, after["category"], "served")
            self.invite(after)
        if action == "no_show":
            self._count(day, after["category"], "no_show")
        if after["state"] in domain.FINAL_STATES:
            self.metrics.outcomes.labels(**labels, state=after["state"]).inc()
        if action == "recall":
            self._window_called(after, now)

    def _count(
        self, day: date, prefix: str, what: str, wait: float | None = None, target: float = 0
    ) -> None:
        """Add one event to the day's figures. Kept in memory and added to the stored day
        stats by ``flush_stats`` (timer, every ``figures_seconds``): three fewer writes per
        ticket. A crash loses at most that interval's increments, and day close recounts the
        day from the tickets themselves, so the final figures are exact."""
        with self._pending_lock:
            delta = self._pending.setdefault((day.isoformat(), prefix), {})
            if wait is not None:
                delta.update(domain.add_wait(delta, wait, target))  # counts "called" too
            else:
                delta[what] = delta.get(what, 0) + 1

    # --- evaluation invitations (outbox) -----------------------------------------------------

    def invite(self, ticket: Mapping[str, Any]) -> bool:
        """Write the ticket's invitation (deterministic id), then clear its flag. Returns
        whether this call created the record. Safe to repeat: the sweep calls it too."""
        setup, _ = self.setup()
        category = setup.categories.get(ticket["category"])
        department = category.department if category is not None else None
        created = self.repo.insert_invitation(domain.invitation(ticket, department, self.clock()))
        self.repo.tickets.update(ticket["id"], {"invited": True}, expect={"invited": False})
        return created

    def sweep_invitations(self, limit: int = 200) -> list[str]:
        """Repair completed tickets whose invitation was not written (crash in between)."""
        repaired = []
        for ticket in self.repo.tickets.find({"invited": False}, limit=limit):
            self.invite(ticket)
            repaired.append(f"ticket:{ticket['id']}")
        self.metrics.invitations_pending.labels(**self.metrics.labels).set(
            self.repo.tickets.count({"invited": False})
        )
        return repaired

    # --- windows as the tickets see them -----------------------------------------------------

    def _window_doc(self, number: str) -> Doc | None:
        return self.repo.windows.get(domain.window_id(self.site_code, number))

    def _window_docs(self) -> dict[str, Doc]:
        """Every window's stored state, re-read only when a window changed."""
        seq = self.repo.windows.last_seq()
        if self._windows is None or self._windows[0] != seq:
            self._windows = (seq, {d["number"]: d for d in self.repo.windows.find()})
        return self._windows[1]

    def _window_called(self, ticket: Mapping[str, Any], now: datetime) -> None:
        number = ticket.get("window")
        if not number:
            return
        text = domain.announcement(ticket["number"], number)

        def change(_doc: Doc | None) -> dict[str, Any]:
            return {"last_call_at": iso(now), "announcement": text}

        self.repo.modify(self.repo.windows, domain.window_id(self.site_code, number), change)

    def _refresh_window_gauge(self) -> None:
        counts = dict.fromkeys(domain.WINDOW_STATES, 0)
        for doc in self._window_docs().values():
            counts[doc["state"]] = counts.get(doc["state"], 0) + 1
        for state, count in counts.items():
            self.metrics.windows.labels(**self.metrics.labels, state=state).set(count)
