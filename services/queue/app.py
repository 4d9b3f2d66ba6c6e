"""The queue's use cases: each validates, applies the domain rules, persists through the
repository with compare-and-set, and keeps metrics and daily figures in step.

One ``Hall`` per container (built by ``HallProvider``); it holds no per-call state, so the
service's workers share it. Nothing here imports Nameko except the provider at the end.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import secrets
import threading
import time as systime
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import uuid4

from nameko.extensions import DependencyProvider

from services.common.errors import Conflict, Forbidden, HallError, InvalidInput, NotFound
from services.common.runtime import SiteContext, SiteRuntime
from services.common.store import Doc
from services.queue import domain, schemas
from services.queue.domain import Setup
from services.queue.store import CURRENT_CONFIG, QueueRepository

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
ESTIMATE_TTL_S = 5.0  # how long a category's moving average is reused before re-reading
HEADS_PER_QUEUE = 5  # candidates read per category for one call; more are read if CAS is lost
SALT = "privacy_salt"  # config-collection record holding a generated salt
CALL_ROUNDS = 10
WAIT_BUCKETS = (60, 300, 600, 900, 1200, 1800, 2700, 3600, 5400, 7200, 10800)
SERVICE_BUCKETS = (60, 180, 300, 600, 900, 1200, 1800, 2700, 3600, 5400)
ERROR_BUCKETS = (30, 60, 120, 300, 600, 900, 1800, 3600)
_ERRORS = {
    "invalid": InvalidInput,
    "conflict": Conflict,
    "forbidden": Forbidden,
    "not_found": NotFound,
}


def typed(exc: domain.RuleError) -> HallError:
    """The common typed error for a domain refusal."""
    error: HallError = _ERRORS[exc.kind](exc.message, exc.fields)
    return error


def system_clock() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Operations:
    """Section-only operational settings (not versioned with the site configuration)."""

    privacy_salt: str = ""
    sweep_seconds: float = 5.0
    figures_seconds: float = 30.0
    board_poll_seconds: float = 25.0
    board_heartbeat_seconds: float = 15.0
    board_stream_seconds: float = 300.0

    @classmethod
    def from_section(cls, section: Mapping[str, Any]) -> Operations:
        values: dict[str, Any] = {}
        for key in cls.__dataclass_fields__:
            if key not in section:
                continue
            value = section[key]
            if key == "privacy_salt":
                values[key] = "" if value is None else str(value)
                continue
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise InvalidInput.field(f"QUEUE.{key}", "应为正数（秒）")
            values[key] = float(value)
        return cls(**values)


OPERATION_KEYS = tuple(Operations.__dataclass_fields__)


def split_section(section: Mapping[str, Any]) -> tuple[dict[str, Any], Operations]:
    """The QUEUE section as (site configuration to validate, operational settings)."""
    data = {k: v for k, v in dict(section or {}).items() if k not in OPERATION_KEYS}
    return data, Operations.from_section(section or {})


class QueueMetrics:
    """Queue metrics (names ``hall_queue_*``; labels: category, channel, state, reason)."""

    def __init__(self, context: SiteContext) -> None:
        m = context.metrics
        self.labels = m.site_labels()
        self.waiting = m.gauge("hall_queue_waiting", "Tickets waiting now, today", ["category"])
        self.over_target = m.gauge(
            "hall_queue_wait_over_target",
            "Tickets waiting now that have waited longer than the waiting-time target",
            ["category"],
        )
        self.issued = m.counter(
            "hall_queue_tickets_issued_total", "Tickets issued", ["category", "channel"]
        )
        self.refused = m.counter(
            "hall_queue_tickets_refused_total", "Ticket requests refused", ["category"]
        )
        self.wait = m.histogram(
            "hall_queue_wait_seconds",
            "Wait from taking a ticket to its first call",
            ["category"],
            buckets=WAIT_BUCKETS,
        )
        self.service = m.histogram(
            "hall_queue_service_seconds",
            "Service time from start (or call) to completion",
            ["category"],
            buckets=SERVICE_BUCKETS,
        )
        self.within_target = m.gauge(
            "hall_queue_within_target_ratio",
            "Share of today's called tickets that waited no longer than the target",
            ["category"],
        )
        self.estimate_error = m.histogram(
            "hall_queue_estimate_error_seconds",
            "Absolute difference between the predicted and the actual wait",
            ["category"],
            buckets=ERROR_BUCKETS,
        )
        self.outcomes = m.counter(
            "hall_queue_tickets_closed_total",
            "Tickets reaching a final state",
            ["category", "state"],
        )
        self.windows = m.gauge("hall_queue_windows", "Windows by state", ["state"])
        self.call_conflicts = m.counter(
            "hall_queue_call_conflicts_total",
            "Calls that lost a compare-and-set to another window and took the next ticket",
        )
        self.invitations_pending = m.gauge(
            "hall_queue_invitations_pending",
            "Completed tickets whose evaluation invitation is not yet written",
        )
        self.bookings = m.counter(
            "hall_queue_bookings_total", "Bookings by what became of them", ["category", "state"]
        )


class Hall:
    """The queue of one site."""

    def __init__(
        self,
        context: SiteContext,
        operations: Operations,
        clock: Clock = system_clock,
        metrics: QueueMetrics | None = None,
    ) -> None:
        self.context = context
        self.site_code = context.identity.code
        self.repo = QueueRepository(context.store)
        self.ops = operations
        self.salt = operations.privacy_salt
        self.clock = clock
        self.metrics = metrics or QueueMetrics(context)
        self._setup: tuple[int, Setup, Doc] | None = None
        self._board: tuple[int, dict[str, Any]] | None = None
        self._windows: tuple[int, dict[str, Doc]] | None = None
        self._means: dict[str, tuple[float, float]] = {}
        self._pending: dict[tuple[str, str], dict[str, Any]] = {}
        self._pending_lock = threading.Lock()
        self._last: dict[str, float] = {}

    # --- configuration -------------------------------------------------------------------

    def seed(self, data: Mapping[str, Any]) -> None:
        """Store the config file's section as the first version, or as a new version when
        the file changed since it was last applied (manager changes otherwise persist)."""
        loaded = schemas.load_config(data, from_section=True)
        digest = hashlib.sha256(
            json.dumps(loaded, sort_keys=True, default=str).encode()
        ).hexdigest()
        current = self.repo.config.get(CURRENT_CONFIG)
        if current is None or current.get("seed_digest") != digest:
            self._store_config(loaded, "config-file", None, seed_digest=digest)
        if not self.salt:  # none configured: one random salt per site, kept in its store
            self.repo.insert_once(
                self.repo.config,
                {"id": SALT, "site_code": self.site_code, "salt": secrets.token_hex(16)},
            )
            self.salt = str((self.repo.config.get(SALT) or {})["salt"])

    def configure(
        self, data: Mapping[str, Any], by: str, expected_version: int | None = None
    ) -> dict[str, Any]:
        loaded = schemas.load_config(data, from_section=False)
        self._store_config(loaded, by, expected_version)
        return self.configuration()

    def _store_config(
        self, loaded: dict[str, Any], by: str, expected: int | None, seed_digest: str | None = None
    ) -> Doc:
        now = domain.iso(self.clock())

        def change(doc: Doc | None) -> dict[str, Any]:
            assert doc is not None
            if expected is not None and doc["config_version"] != expected:
                rule = f"配置已被他人改为第 {doc['config_version']} 版，请刷新后再改"
                raise Conflict(rule, {"expected_version": [rule]})
            changes = {
                "config": loaded,
                "config_version": doc["config_version"] + 1,
                "changed_by": by,
                "updated_at": now,
            }
            if seed_digest is not None:
                changes["seed_digest"] = seed_digest
            return changes

        def create() -> Doc:
            return {
                "id": CURRENT_CONFIG,
                "site_code": self.site_code,
                "config": {},
                "config_version": 0,
                "seed_digest": None,
                "created_at": now,
                "updated_at": now,
            }

        doc = self.repo.modify(self.repo.config, CURRENT_CONFIG, change, create)
        assert doc is not None
        self.repo.insert_once(
            self.repo.config,
            {
                "id": f"v{doc['config_version']}",
                "site_code": self.site_code,
                "config": loaded,
                "config_version": doc["config_version"],
                "changed_by": by,
                "created_at": now,
                "updated_at": now,
            },
        )
        return doc

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

    def configuration(self) -> dict[str, Any]:
        doc = self.repo.config.get(CURRENT_CONFIG)
        if doc is None:
            return {"config_version": 0, "config": {}, "changed_by": None, "updated_at": None}
        return {
            "config_version": doc["config_version"],
            "config": doc["config"],
            "changed_by": doc.get("changed_by"),
            "updated_at": doc.get("updated_at"),
        }

    def config_history(self, version: int) -> dict[str, Any]:
        doc = self.repo.config.get(f"v{version}")
        if doc is None:
            raise NotFound(f"没有第 {version} 版配置", {"version": ["不存在"]})
        return {k: doc[k] for k in ("config_version", "config", "changed_by", "created_at")}

    # --- time ----------------------------------------------------------------------------

    def local(self, setup: Setup, now: datetime) -> datetime:
        return now.astimezone(domain.zone(setup.policy.timezone))

    def _working(self, category: domain.Category, day: date) -> bool:
        return self.context.calendar.is_working_day(day) if category.working_days_only else True

    # --- tickets -------------------------------------------------------------------------

    def take(self, args: Mapping[str, Any], by: str | None = None) -> dict[str, Any]:
        """取号: a new waiting ticket with people ahead and an estimate."""
        setup, version = self.setup()
        try:
            category = setup.category(args["category"])
        except domain.RuleError as exc:
            raise typed(exc) from None
        return self._issue(
            setup,
            version,
            category,
            channel=args.get("channel") or "kiosk",
            by=by or args.get("channel") or "kiosk",
            phone=args.get("phone"),
            priority=args.get("priority"),
            matter_code=args.get("matter_code"),
        )

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
        now = now or self.clock()
        local = self.local(setup, now)
        day = local.date()
        working = self._working(category, day)
        appointment = booking_id is not None
        try:
            domain.check_issue(category, local, working, None, appointment=appointment)
            protected = domain.protect_phone(phone, self.salt) if phone else None
            value = self.context.store.next_value(domain.counter_key(day, category.prefix))
            domain.check_issue(category, local, working, value, appointment=appointment)
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
        except domain.RuleError as exc:
            self.metrics.refused.labels(**self.metrics.labels, category=category.prefix).inc()
            raise typed(exc) from None
        newest = order_key is None and ticket["lane"] == domain.LANE_NORMAL
        ahead = self.repo.people_ahead(ticket, newest=newest)
        estimate = domain.estimate_wait(
            ahead, self._mean_service(setup, category), self._open_windows(setup, category.prefix)
        )
        ticket["people_ahead_at_issue"] = ahead
        ticket["estimate"] = estimate
        self.repo.tickets.insert(ticket)  # a duplicate id (number) raises Conflict: never hidden
        self._count(day, category.prefix, "issued")
        labels = {**self.metrics.labels, "category": category.prefix}
        self.metrics.issued.labels(**labels, channel=channel).inc()
        self.metrics.waiting.labels(**labels).inc()
        return {**self.view(ticket), "people_ahead": ahead, "estimate": estimate}

    def view(self, ticket: Mapping[str, Any]) -> dict[str, Any]:
        """What clerks and citizens see of a ticket (never the phone hash)."""
        hidden = {"phone_hash", "history", "_seq", "order_key", "lane", "invited"}
        shown = {k: v for k, v in ticket.items() if k not in hidden}
        shown["state_name"] = domain.STATE_NAMES[ticket["state"]]
        shown["green_channel"] = ticket.get("lane") == domain.LANE_GREEN
        return shown

    def ticket(self, ticket_id: str) -> dict[str, Any]:
        return self.view(self._get(ticket_id))

    def history(self, ticket_id: str) -> list[dict[str, Any]]:
        return list(self._get(ticket_id).get("history", []))

    def _get(self, ticket_id: str) -> Doc:
        doc = self.repo.tickets.get(ticket_id)
        if doc is None:
            raise NotFound(f"没有这张号：{ticket_id}", {"ticket_id": ["不存在"]})
        return doc

    def act(self, ticket_id: str, action: str, by: str, **details: Any) -> Doc:
        """Apply one state-machine action with compare-and-set, re-checking on a lost race."""
        setup, _ = self.setup()
        now = self.clock()
        for _ in range(10):
            ticket = self._get(ticket_id)
            try:
                changes = domain.transition(ticket, action, now, by, setup.policy, **details)
            except domain.RuleError as exc:
                raise typed(exc) from None
            updated = self.repo.tickets.update(
                ticket_id, changes, expect={"version": ticket["version"]}
            )
            if updated is not None:
                self._after(ticket, updated, action, setup, now)
                return updated
        raise Conflict("这张号正被同时处理，请重试", {"ticket_id": ["并发修改"]})

    def do(self, ticket_id: str, action: str, by: str | None, **details: Any) -> dict[str, Any]:
        """``act`` for an entrypoint: the actor defaults to the staff at the ticket's window."""
        return self.view(self.act(ticket_id, action, self._by(by, ticket_id), **details))

    def _after(self, before: Doc, after: Doc, action: str, setup: Setup, now: datetime) -> None:
        """Metrics, figures, the window's board entry and the invitation after an action."""
        labels = {**self.metrics.labels, "category": after["category"]}
        if before["state"] == "waiting" and after["state"] != "waiting":
            self.metrics.waiting.labels(**{**labels, "category": before["category"]}).dec()
        if after["state"] == "waiting" and before["state"] != "waiting":
            self.metrics.waiting.labels(**labels).inc()
        if before["state"] == "waiting" and after["state"] == "waiting":  # transfer between
            self.metrics.waiting.labels(**{**labels, "category": before["category"]}).dec()
            self.metrics.waiting.labels(**labels).inc()
        day = date.fromisoformat(after["date"])
        if action == "complete":
            started = domain.parse_iso(after["started_at"])
            seconds = max(0.0, (now - started).total_seconds())
            self.metrics.service.labels(**labels).observe(seconds)
            self._count(day, after["category"], "served")
            self.invite(after)
        if action == "no_show":
            self._count(day, after["category"], "no_show")
        if after["state"] in ("completed", "no_show", "cancelled", "expired"):
            self.metrics.outcomes.labels(**labels, state=after["state"]).inc()
        if action == "recall":
            self._window_called(after, now)

    # --- calling ---------------------------------------------------------------------------

    def call_next(self, number: str, staff_id: str | None = None) -> dict[str, Any] | None:
        """叫号: the next ticket for this window by the calling rule, claimed atomically."""
        setup, _ = self.setup()
        try:
            window = setup.window(number)
        except domain.RuleError as exc:
            raise typed(exc) from None
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
            for prefix in window.weights:
                candidates.extend(self.repo.queue_heads(day, prefix, limit))
            order = domain.calling_order(window, candidates, now_ts)
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
            "last_call_at": domain.iso(now),
            "announcement": text,
            "updated_at": domain.iso(now),
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
        labels = {**self.metrics.labels, "category": category}
        self.metrics.waiting.labels(**labels).dec()
        wait = (now - domain.parse_iso(ticket["taken_at"])).total_seconds()
        self.metrics.wait.labels(**labels).observe(wait)
        predicted = (ticket.get("estimate") or {}).get("expected_seconds")
        if predicted is not None:
            self.metrics.estimate_error.labels(**labels).observe(abs(wait - predicted))
        target = setup.policy.waiting_target_minutes * 60
        day = date.fromisoformat(ticket["date"])
        self._count(day, category, "called", wait=wait, target=target)
        return {**self.view(ticket), "announcement": text, "waited_seconds": round(wait)}

    def _auto_no_show(self, ticket_id: str) -> None:
        with contextlib.suppress(Conflict):  # someone else moved it on meanwhile
            self.act(ticket_id, "no_show", "system")

    def recall(self, ticket_id: str, window: str | None, by: str | None) -> dict[str, Any]:
        ticket = self.act(ticket_id, "recall", self._by(by, ticket_id), window=window)
        return {**self.view(ticket), "announcement": self._announce(ticket)}

    def _announce(self, ticket: Mapping[str, Any]) -> str:
        return domain.announcement(ticket["number"], ticket["window"])

    def _by(self, by: str | None, ticket_id: str | None = None) -> str:
        if by:
            return by
        if ticket_id:
            doc = self.repo.tickets.get(ticket_id)
            if doc and doc.get("staff_id"):
                return str(doc["staff_id"])
        return "staff"

    def requeue(self, ticket_id: str, by: str | None) -> dict[str, Any]:
        setup, _ = self.setup()
        ticket = self._get(ticket_id)
        today = self.local(setup, self.clock()).date().isoformat()
        if ticket["date"] != today:
            rule = f"{ticket['number']} 不是今天的号，不能重排"
            raise Conflict(rule, {"ticket_id": [rule]})
        keys = self.repo.waiting_keys(today, ticket["category"])
        key = domain.requeue_key(ticket, keys, setup.policy.requeue_behind)
        return self.view(self.act(ticket_id, "requeue", by or "staff", order_key=key))

    def transfer(
        self, ticket_id: str, category: str | None, window: str | None, by: str | None
    ) -> dict[str, Any]:
        setup, _ = self.setup()
        details: dict[str, Any] = {}
        try:
            if category is not None:
                details["category"] = setup.category(category).prefix
                details["category_name"] = setup.category(category).name
            if window is not None:
                details["window"] = setup.window(window).number
        except domain.RuleError as exc:
            raise typed(exc) from None
        return self.view(self.act(ticket_id, "transfer", self._by(by, ticket_id), **details))

    # --- evaluation invitations (outbox) ----------------------------------------------------

    def invite(self, ticket: Doc) -> bool:
        """Write the ticket's invitation (deterministic id), then clear its flag. Returns
        whether this call created the record. Safe to repeat: the sweep calls it too."""
        setup, _ = self.setup()
        department = None
        category = setup.categories.get(ticket["category"])
        if category is not None:
            department = category.department
        created = self.repo.insert_once(
            self.repo.invitations, domain.invitation(ticket, department, self.clock())
        )
        self.repo.tickets.update(ticket["id"], {"invited": True}, expect={"invited": False})
        return created

    def sweep_invitations(self, limit: int = 200) -> list[str]:
        """Repair completed tickets whose invitation was not written (crash in between)."""
        repaired = []
        pending = self.repo.tickets.find({"invited": False}, limit=limit)
        for ticket in pending:
            self.invite(ticket)
            repaired.append(f"ticket:{ticket['id']}")
        self.metrics.invitations_pending.labels(**self.metrics.labels).set(
            self.repo.tickets.count({"invited": False})
        )
        return repaired

    # --- windows -----------------------------------------------------------------------------

    def _window_doc(self, number: str) -> Doc | None:
        return self.repo.windows.get(self.repo.window_id(self.site_code, number))

    def _window_action(
        self,
        number: str,
        action: str,
        by: str,
        change: Callable[[Doc], dict[str, Any]],
    ) -> dict[str, Any]:
        setup, _ = self.setup()
        try:
            setup.window(number)
        except domain.RuleError as exc:
            raise typed(exc) from None
        now = domain.iso(self.clock())
        number = str(number)

        def apply(doc: Doc | None) -> dict[str, Any]:
            assert doc is not None
            changes = change(doc)
            entry = {"at": now, "by": by, "action": action, "from": doc["state"]}
            entry["to"] = changes.get("state", doc["state"])
            history = [*doc.get("history", []), entry][-domain.HISTORY_LIMIT :]
            return {**changes, "history": history, "updated_at": now}

        def create() -> Doc:
            return {
                "id": self.repo.window_id(self.site_code, number),
                "site_code": self.site_code,
                "number": number,
                "state": "closed",
                "staff_id": None,
                "backup": False,
                "last_ticket": None,
                "last_number": None,
                "last_call_at": None,
                "announcement": None,
                "pause_reason": None,
                "history": [],
                "created_at": now,
                "updated_at": now,
            }

        doc = self.repo.modify(self.repo.windows, create()["id"], apply, create)
        assert doc is not None
        self._refresh_window_gauge()
        return self.window_view(doc)

    def window_view(self, doc: Mapping[str, Any]) -> dict[str, Any]:
        shown = {k: v for k, v in doc.items() if k not in ("history", "_seq")}
        shown["state_name"] = domain.WINDOW_STATES[doc["state"]]
        return shown

    def sign_in(self, number: str, staff_id: str) -> dict[str, Any]:
        setup, _ = self.setup()
        number = str(number)
        try:
            backup = domain.check_sign_in(setup, staff_id, number)
        except domain.RuleError as exc:
            raise typed(exc) from None
        for other in self.repo.windows.find({"staff_id": staff_id}):
            if other["number"] != number:
                rule = f"{staff_id} 已在 {other['number']} 号窗口签到，请先签退"
                raise Conflict(rule, {"staff_id": [rule]})

        def change(doc: Doc) -> dict[str, Any]:
            if doc.get("staff_id") not in (None, staff_id):
                rule = f"{number} 号窗口已由 {doc['staff_id']} 签到，请其先签退"
                raise Conflict(rule, {"window": [rule]})
            return {"staff_id": staff_id, "backup": backup}

        return self._window_action(number, "sign_in", staff_id, change)

    def sign_out(self, number: str, staff_id: str) -> dict[str, Any]:
        number = str(number)
        self._refuse_if_busy(number, "签退")

        def change(doc: Doc) -> dict[str, Any]:
            if doc.get("staff_id") != staff_id:
                rule = f"{staff_id} 未在 {number} 号窗口签到"
                raise Conflict(rule, {"staff_id": [rule]})
            return {"staff_id": None, "backup": False, "state": "closed"}

        return self._window_action(number, "sign_out", staff_id, change)

    def open_window(self, number: str, staff_id: str | None) -> dict[str, Any]:
        number = str(number)
        if staff_id is not None:
            current = self._window_doc(number)
            if current is None or current.get("staff_id") != staff_id:
                self.sign_in(number, staff_id)

        def change(doc: Doc) -> dict[str, Any]:
            if not doc.get("staff_id"):
                rule = f"{number} 号窗口没有工作人员签到，不能开放"
                raise Conflict(rule, {"staff_id": [rule]})
            return {"state": "open", "pause_reason": None}

        return self._window_action(number, "open", staff_id or "staff", change)

    def pause_window(self, number: str, reason: str | None, by: str | None) -> dict[str, Any]:
        number = str(number)

        def change(doc: Doc) -> dict[str, Any]:
            if doc["state"] != "open":
                rule = f"{number} 号窗口当前{domain.WINDOW_STATES[doc['state']]}，不能暂停"
                raise Conflict(rule, {"window": [rule]})
            return {"state": "paused", "pause_reason": reason or "暂停服务"}

        return self._window_action(number, "pause", by or "staff", change)

    def close_window(self, number: str, by: str | None) -> dict[str, Any]:
        number = str(number)
        self._refuse_if_busy(number, "关闭")
        return self._window_action(
            number, "close", by or "staff", lambda _doc: {"state": "closed", "pause_reason": None}
        )

    def _refuse_if_busy(self, number: str, verb: str) -> None:
        busy = self.repo.at_window(number)
        if busy:
            rule = f"{number} 号窗口的 {busy[0]['number']} 尚未处理完，不能{verb}"
            raise Conflict(rule, {"window": [rule]})

    def windows(self) -> list[dict[str, Any]]:
        setup, _ = self.setup()
        docs = {d["number"]: d for d in self.repo.windows.find()}
        result = []
        for number, window in setup.windows.items():
            doc = docs.get(number) or {"state": "closed", "staff_id": None, "number": number}
            result.append(
                {
                    **self.window_view(doc),
                    "name": window.name,
                    "kind": window.kind,
                    "categories": dict(window.weights),
                }
            )
        return result

    def _window_called(self, ticket: Mapping[str, Any], now: datetime) -> None:
        number = ticket.get("window")
        if not number:
            return
        text = domain.announcement(ticket["number"], number)

        def change(doc: Doc | None) -> dict[str, Any]:
            assert doc is not None
            return {"last_call_at": domain.iso(now), "announcement": text}

        self.repo.modify(self.repo.windows, self.repo.window_id(self.site_code, number), change)

    def _refresh_window_gauge(self) -> None:
        counts = dict.fromkeys(domain.WINDOW_STATES, 0)
        for doc in self._window_docs().values():
            counts[doc["state"]] = counts.get(doc["state"], 0) + 1
        for state, count in counts.items():
            self.metrics.windows.labels(**self.metrics.labels, state=state).set(count)

    # --- estimates -----------------------------------------------------------------------------

    def _mean_service(self, setup: Setup, category: domain.Category) -> float:
        """Moving average of the last ``estimate_window`` real service times of the
        category (from completed tickets; cached for ESTIMATE_TTL_S), else its configured
        expected minutes."""
        cached = self._means.get(category.prefix)
        now = systime.monotonic()
        if cached is None or now - cached[0] > ESTIMATE_TTL_S:
            recent = self.repo.recent_completed(category.prefix, setup.policy.estimate_window)
            samples = [
                (
                    domain.parse_iso(t["ended_at"]) - domain.parse_iso(t["started_at"])
                ).total_seconds()
                for t in recent
                if t.get("started_at") and t.get("ended_at")
            ]
            cached = (now, domain.moving_average(samples, category.service_minutes * 60))
            self._means[category.prefix] = cached
        return cached[1]

    def _window_docs(self) -> dict[str, Doc]:
        """Every window's stored state, re-read only when a window changed."""
        seq = self.repo.windows.last_seq()
        if self._windows is None or self._windows[0] != seq:
            self._windows = (seq, {d["number"]: d for d in self.repo.windows.find()})
        return self._windows[1]

    def _open_windows(self, setup: Setup, prefix: str) -> int:
        return sum(
            1
            for doc in self._window_docs().values()
            if doc["state"] == "open"
            and doc["number"] in setup.windows
            and setup.windows[doc["number"]].serves(prefix)
        )

    # --- daily figures ------------------------------------------------------------------------

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

    def flush_stats(self) -> None:
        with self._pending_lock:
            pending, self._pending = self._pending, {}
        for (day, prefix), delta in pending.items():

            def change(doc: Doc | None, delta: dict[str, Any] = delta) -> dict[str, Any]:
                assert doc is not None
                return {**domain.merge_stats(doc, delta), "dirty": True}

            def create(day: str = day, prefix: str = prefix) -> Doc:
                return domain.empty_stats(self.site_code, date.fromisoformat(day), prefix)

            try:
                self.repo.modify(
                    self.repo.day_stats,
                    domain.empty_stats(self.site_code, date.fromisoformat(day), prefix)["id"],
                    change,
                    create,
                )
            except Exception:
                with self._pending_lock:  # keep it for the next flush
                    again = self._pending.setdefault((day, prefix), {})
                    self._pending[(day, prefix)] = {**again, **domain.merge_stats(again, delta)}
                raise

    def publish_figures(self) -> int:
        """Copy changed day stats into the ``daily_figures`` feed; returns how many."""
        self.flush_stats()
        published = 0
        now = domain.iso(self.clock())
        for stats in self.repo.day_stats.find({"dirty": True}):
            figure = domain.figures(stats)

            def change(doc: Doc | None, figure: dict[str, Any] = figure) -> dict[str, Any]:
                assert doc is not None
                fresh = {k: v for k, v in figure.items() if doc.get(k) != v}
                return {**fresh, "updated_at": now} if fresh else {}

            def create(figure: dict[str, Any] = figure) -> Doc:
                return {**figure, "created_at": now, "updated_at": now}

            self.repo.modify(self.repo.figures, figure["id"], change, create)
            self.repo.day_stats.update(
                stats["id"], {"dirty": False}, expect={"version": stats["version"]}
            )
            published += 1
            if stats["date"] == self._today():
                share = figure["within_target_share"]
                if share is not None:
                    self.metrics.within_target.labels(
                        **self.metrics.labels, category=stats["category"]
                    ).set(share)
        return published

    def _today(self) -> str:
        setup, _ = self.setup()
        return self.local(setup, self.clock()).date().isoformat()

    def refresh_gauges(self) -> None:
        """Gauges from the store, so they are right after a restart."""
        setup, _ = self.setup()
        today = self._today()
        target_s = setup.policy.waiting_target_minutes * 60
        for prefix in setup.categories:
            labels = {**self.metrics.labels, "category": prefix}
            waiting = self.repo.waiting(today, prefix)
            self.metrics.waiting.labels(**labels).set(len(waiting))
            self.metrics.over_target.labels(**labels).set(
                domain.waiting_over_target(waiting, self.clock(), target_s)
            )
            stats = self.repo.day_stats.get(
                domain.empty_stats(self.site_code, date.fromisoformat(today), prefix)["id"]
            )
            if stats and stats.get("called"):
                self.metrics.within_target.labels(**labels).set(
                    round(stats.get("within_target", 0) / stats["called"], 4)
                )
        self._refresh_window_gauge()
        self.metrics.invitations_pending.labels(**self.metrics.labels).set(
            self.repo.tickets.count({"invited": False})
        )

    # --- day close ------------------------------------------------------------------------------

    def close_day(self, day: str | None, by: str, early: bool = False) -> dict[str, Any]:
        """闭厅: unserved tickets of ``day`` (and earlier) expire with a reason; bookings not
        checked in become no-shows; the day's figures are recounted and published."""
        setup, _ = self.setup()
        now = self.clock()
        local = self.local(setup, now)
        today = local.date()
        target = today if day is None else _parse_day(day)
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
                expired += 1
                days.add(ticket["date"])
            except Conflict:
                continue
        missed = self.sweep_bookings(force_day=target)
        self.flush_stats()
        for d in sorted(days):
            self.recount(date.fromisoformat(d))
        self.publish_figures()
        closed = {"id": f"closed:{target.isoformat()}", "site_code": self.site_code}
        self.repo.insert_once(self.repo.config, {**closed, "by": by, "at": domain.iso(now)})
        return {"date": target.isoformat(), "expired": expired, "booking_no_shows": missed}

    def recount(self, day: date) -> None:
        setup, _ = self.setup()
        # Read-only use; as Mappings, ``get`` with an Any default stays Any (on ``Doc`` mypy
        # widens it to ``Any | None``).
        tickets: Sequence[Mapping[str, Any]] = self.repo.tickets.find({"date": day.isoformat()})
        prefixes: set[str] = {t["category"] for t in tickets} | {
            t.get("issued_category", t["category"]) for t in tickets
        }
        target = setup.policy.waiting_target_minutes * 60
        for prefix in sorted(prefixes):
            fresh = domain.stats_from_tickets(self.site_code, day, prefix, tickets, target)
            fields = {k: v for k, v in fresh.items() if k not in ("id",)}

            def change(_doc: Doc | None, fields: dict[str, Any] = fields) -> dict[str, Any]:
                return {**fields, "dirty": True}

            def create(fresh: Doc = fresh) -> Doc:
                return fresh

            self.repo.modify(self.repo.day_stats, fresh["id"], change, create)

    def day_closed(self, day: str) -> bool:
        return self.repo.config.get(f"closed:{day}") is not None

    # --- appointments -------------------------------------------------------------------------

    def book(self, args: Mapping[str, Any]) -> dict[str, Any]:
        """预约: a slot of a category on a working day, within capacity."""
        setup, _ = self.setup()
        now = self.clock()
        local = self.local(setup, now)
        day: date = args["date"]
        try:
            category = setup.category(args["category"])
            slot = domain.parse_hhmm(args["slot"], "slot")
            working = self._working(category, day)
            domain.check_booking(category, day, slot, local, working, setup.policy)
            phone_hash, masked = domain.protect_phone(args["phone"], self.salt)
        except domain.RuleError as exc:
            raise typed(exc) from None
        self._refuse_blocked(phone_hash, local.date(), setup)
        for other in self.repo.bookings.find({"phone_hash": phone_hash, "state": "booked"}):
            if other["date"] == day.isoformat() and other["category"] == category.prefix:
                rule = f"您已预约 {other['date']} {other['slot']} 的{category.name}，请勿重复预约"
                raise Conflict(rule, {"phone": [rule]})
        key = _slot_key(day, category.prefix, args["slot"])
        if self.context.store.next_value(key) > category.slot_capacity:
            self.context.store.next_value(key, -1)
            rule = f"{day.isoformat()} {args['slot']} 的{category.name}已约满，请选择其他时段"
            raise Conflict(rule, {"slot": [rule]})
        moment = domain.iso(now)
        for _ in range(20):
            booking = {
                "id": f"{self.site_code}-{uuid4().hex}",
                "schema": 1,
                "site_code": self.site_code,
                "code": f"{secrets.randbelow(10**8):08d}",
                "category": category.prefix,
                "category_name": category.name,
                "date": day.isoformat(),
                "slot": f"{slot:%H:%M}",
                "phone_hash": phone_hash,
                "phone_masked": masked,
                "channel": args.get("channel", "web"),
                "state": "booked",
                "ticket_id": None,
                "created_at": moment,
                "updated_at": moment,
            }
            if self.repo.insert_once(self.repo.bookings, booking):
                labels = {**self.metrics.labels, "category": category.prefix}
                self.metrics.bookings.labels(**labels, state="booked").inc()
                return self.booking_view(booking)
        self.context.store.next_value(key, -1)  # pragma: no cover - 20 code collisions
        raise Conflict("预约码生成失败，请重试")  # pragma: no cover

    def booking_view(self, booking: Mapping[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in booking.items() if k not in ("phone_hash", "_seq")}

    def _refuse_blocked(self, phone_hash: str, today: date, setup: Setup) -> None:
        missed = self.repo.bookings.find({"phone_hash": phone_hash, "state": "no_show"})
        until = domain.booking_block(
            (date.fromisoformat(b["date"]) for b in missed), today, setup.policy
        )
        if until is not None:
            p = setup.policy
            rule = (
                f"您在{p.booking_no_show_days}天内有{p.booking_no_show_limit}次预约未到，"
                f"{until.isoformat()} 前不能预约"
            )
            raise Forbidden(rule, {"phone": [rule]})

    def _booking(self, ref: str) -> Doc:
        doc = self.repo.bookings.get(ref)
        if doc is None:
            found = self.repo.bookings.find({"code": ref}, limit=1)
            doc = found[0] if found else None
        if doc is None:
            raise NotFound("没有这个预约", {"booking": ["预约号或预约码不存在"]})
        return doc

    def booking(self, ref: str) -> dict[str, Any]:
        return self.booking_view(self._booking(ref))

    def cancel_booking(self, ref: str) -> dict[str, Any]:
        doc = self._booking(ref)
        if doc["state"] != "booked":
            rule = f"预约当前为 {doc['state']}，不能取消"
            raise Conflict(rule, {"booking": [rule]})
        now = domain.iso(self.clock())
        updated = self.repo.bookings.update(
            doc["id"], {"state": "cancelled", "updated_at": now}, expect={"state": "booked"}
        )
        if updated is None:
            raise Conflict("预约刚刚被处理，不能取消", {"booking": ["并发修改"]})
        self.context.store.next_value(_slot_key_doc(doc), -1)
        labels = {**self.metrics.labels, "category": doc["category"]}
        self.metrics.bookings.labels(**labels, state="cancelled").inc()
        return self.booking_view(updated)

    def slots(self, prefix: str, day: date) -> list[dict[str, Any]]:
        setup, _ = self.setup()
        try:
            category = setup.category(prefix)
        except domain.RuleError as exc:
            raise typed(exc) from None
        result = []
        for start in domain.slot_starts(category):
            text = f"{start:%H:%M}"
            taken = self.context.store.next_value(_slot_key(day, prefix, text), 0)
            result.append(
                {
                    "slot": text,
                    "capacity": category.slot_capacity,
                    "booked": taken,
                    "available": max(0, category.slot_capacity - taken),
                }
            )
        return result

    def check_in(self, ref: str) -> dict[str, Any]:
        """签到: on time → appointment lane; late → normal queue; too early → refused."""
        setup, version = self.setup()
        doc = self._booking(ref)
        if doc["state"] != "booked":
            rule = f"预约当前为 {doc['state']}，不能签到"
            raise Conflict(rule, {"booking": [rule]})
        now = self.clock()
        local = self.local(setup, now)
        slot_at = datetime.combine(
            date.fromisoformat(doc["date"]),
            domain.parse_hhmm(doc["slot"], "slot"),
            tzinfo=local.tzinfo,
        )
        try:
            on_time = domain.check_in_window(slot_at, local, setup.policy)
            category = setup.category(doc["category"])
        except domain.RuleError as exc:
            raise typed(exc) from None
        claimed = self.repo.bookings.update(
            doc["id"],
            {"state": "checked_in", "checked_in_at": domain.iso(now), "on_time": on_time},
            expect={"state": "booked"},
        )
        if claimed is None:
            raise Conflict("该预约已签到或已取消", {"booking": ["并发修改"]})
        try:
            ticket = self._issue(
                setup,
                version,
                category,
                channel="appointment",
                by="appointment",
                booking_id=doc["id"],
                on_time=on_time,
                order_key=domain.timestamp(slot_at) if on_time else None,
                now=now,
            )
        except BaseException:
            self.repo.bookings.update(doc["id"], {"state": "booked"}, {"state": "checked_in"})
            raise
        self.repo.bookings.update(doc["id"], {"ticket_id": ticket["id"]})
        labels = {**self.metrics.labels, "category": category.prefix}
        self.metrics.bookings.labels(**labels, state="checked_in").inc()
        return {**ticket, "on_time": on_time}

    def repair_check_ins(self) -> int:
        """A crash between claiming a booking and recording its ticket leaves it checked in
        without a ticket (the citizen could not check in again). Older than one sweep
        interval, such a booking gets its ticket linked if it was issued, or goes back to
        booked so the citizen can check in again. Returns how many were repaired."""
        setup, _ = self.setup()
        now = self.clock()
        today = self.local(setup, now).date().isoformat()
        settled = domain.iso(now - timedelta(seconds=self.ops.sweep_seconds))
        stranded = [
            doc
            for doc in self.repo.bookings.find({"date": today, "state": "checked_in"})
            if doc.get("ticket_id") is None and doc["checked_in_at"] < settled
        ]
        if not stranded:
            return 0
        issued = {
            t["booking_id"]: t["id"]
            for t in self.repo.tickets.find(
                {"state": {"$in": list(domain.STATE_NAMES)}, "date": today}
            )
            if t.get("booking_id")
        }
        repaired = 0
        for doc in stranded:
            ticket_id = issued.get(doc["id"])
            changes = (
                {"ticket_id": ticket_id}
                if ticket_id is not None
                else {"state": "booked", "checked_in_at": None, "on_time": None}
            )
            expect = {"state": "checked_in", "version": doc["version"]}
            if self.repo.bookings.update(doc["id"], changes, expect) is not None:
                repaired += 1
        return repaired

    def sweep_bookings(self, force_day: date | None = None) -> int:
        """Bookings past their check-in window become no-shows (they count towards a block)."""
        setup, _ = self.setup()
        now = self.clock()
        local = self.local(setup, now)
        limit_day = max(local.date(), force_day or local.date())
        missed = 0
        for doc in self.repo.bookings.find(
            {"date": {"$lte": limit_day.isoformat()}, "state": "booked"}
        ):
            slot_at = datetime.combine(
                date.fromisoformat(doc["date"]),
                domain.parse_hhmm(doc["slot"], "slot"),
                tzinfo=local.tzinfo,
            )
            closing = force_day is not None and doc["date"] <= force_day.isoformat()
            if closing or domain.booking_missed(slot_at, local, setup.policy):
                done = self.repo.bookings.update(
                    doc["id"],
                    {"state": "no_show", "updated_at": domain.iso(now)},
                    expect={"state": "booked"},
                )
                if done is not None:
                    missed += 1
                    labels = {**self.metrics.labels, "category": doc["category"]}
                    self.metrics.bookings.labels(**labels, state="no_show").inc()
        return missed

    # --- board ----------------------------------------------------------------------------------

    def board_version(self) -> int:
        return self.repo.tickets.last_seq() + self.repo.windows.last_seq()

    def board(self) -> dict[str, Any]:
        """The live board: each window's latest call, recent calls, waiting per category."""
        version = self.board_version()
        cached = self._board
        if cached is not None and cached[0] == version:
            return cached[1]
        setup, _ = self.setup()
        today = self._today()
        docs = self._window_docs()
        windows = []
        for number, window in setup.windows.items():
            doc = docs.get(number, {})
            windows.append(
                {
                    "window": number,
                    "name": window.name,
                    "state": doc.get("state", "closed"),
                    "number": doc.get("last_number"),
                    "announcement": doc.get("announcement"),
                    "called_at": doc.get("last_call_at"),
                }
            )
        recent = [
            {
                "number": t["number"],
                "window": t["window"],
                "category": t["category"],
                "announcement": domain.announcement(t["number"], t["window"]),
                "called_at": t["last_called_at"],
                "state": t["state"],
            }
            for t in self.repo.tickets.find(
                {"date": today, "last_called_at": {"$ne": None}},
                sort=[("last_called_at", -1)],
                limit=10,
            )
            if t.get("window")
        ]
        waiting = [
            {"category": p, "name": c.name, "waiting": self.repo.waiting_count(today, p)}
            for p, c in setup.categories.items()
        ]
        board = {
            "site_code": self.site_code,
            "date": today,
            "version": version,
            "announcement": recent[0]["announcement"] if recent else None,
            "windows": windows,
            "recent": recent,
            "waiting": waiting,
            "updated_at": domain.iso(self.clock()),
        }
        self._board = (version, board)
        return board

    # --- timer ---------------------------------------------------------------------------------

    def due(self, task: str, every: float) -> bool:
        now = systime.monotonic()
        if now - self._last.get(task, -1e9) < every:
            return False
        self._last[task] = now
        return True

    def tick(self) -> list[str]:
        """Periodic work; returns invitation ids repaired (for the event hint)."""
        repaired: list[str] = []
        setup, _ = self.setup()
        now = self.clock()
        for ticket in self.repo.tickets.find({"state": "called"}):
            if domain.no_show_due(ticket, setup.policy, now):
                self._auto_no_show(ticket["id"])
        if self.due("invitations", self.ops.sweep_seconds):
            repaired = self.sweep_invitations()
        if self.due("bookings", self.ops.sweep_seconds):
            self.repair_check_ins()
            self.sweep_bookings()
        if self.due("figures", self.ops.figures_seconds):
            self.publish_figures()
            self.refresh_gauges()
        if self.due("close", self.ops.sweep_seconds):
            self._auto_close(setup, now)
        return repaired

    def _auto_close(self, setup: Setup, now: datetime) -> None:
        local = self.local(setup, now)
        if local.time() >= setup.policy.day_close_time and not self.day_closed(
            local.date().isoformat()
        ):
            self.close_day(None, "system")
            return
        yesterday = (local.date() - timedelta(days=1)).isoformat()
        stale = self.repo.tickets.find(
            {"state": {"$in": list(domain.UNSERVED)}, "date": {"$lte": yesterday}}, limit=1
        )
        if stale:  # the service was down at closing time: close the missed day now
            self.close_day(stale[0]["date"], "system")


def _parse_day(text: str) -> date:
    try:
        return date.fromisoformat(str(text))
    except ValueError:
        raise InvalidInput.field("date", "日期应写成 YYYY-MM-DD") from None


def _slot_key(day: date, prefix: str, slot: str) -> str:
    return f"slot:{day.isoformat()}:{prefix}:{slot}"


def _slot_key_doc(doc: Mapping[str, Any]) -> str:
    return _slot_key(date.fromisoformat(doc["date"]), doc["category"], doc["slot"])


# --- Nameko wiring ------------------------------------------------------------------------


class HallProvider(DependencyProvider):  # type: ignore[misc]
    """One ``Hall`` per container, built in ``setup`` from the shared site runtime; the
    QUEUE section is validated in ``bind`` so a bad section refuses the start early."""

    site_runtime = SiteRuntime()
    clock: Clock = staticmethod(system_clock)
    hall_class: type[Hall] = Hall

    def bind(self, container: Any, attr_name: str) -> HallProvider:
        instance: HallProvider = super().bind(container, attr_name)
        from services.common.config import ConfigError

        section = container.config.get("QUEUE") or {}
        try:
            if not isinstance(section, Mapping):
                raise InvalidInput.field("QUEUE", "服务配置段必须是映射")
            data, ops = split_section(section)
            schemas.load_config(data, from_section=True)
        except InvalidInput as exc:
            raise ConfigError(exc.message, exc.fields) from None
        instance.section_data, instance.operations = data, ops
        return instance

    def setup(self) -> None:
        context = self.site_runtime.ready()
        self.hall = self.hall_class(context, self.operations, self.clock)
        self.hall.seed(self.section_data)
        self.hall.refresh_gauges()

    def get_dependency(self, worker_ctx: Any) -> Hall:
        return self.hall
