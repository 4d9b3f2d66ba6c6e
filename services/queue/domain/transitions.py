"""The ticket state machine: which action may start from which state, and a table mapping
each action to the small function computing its changes (docs/architecture.md, "Service
template": long if/elif chains over action strings become tables)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.common.clock import iso, parse_iso
from services.common.errors import Conflict, InvalidInput
from services.queue.domain.categories import Policy
from services.queue.domain.tickets import history_entry, with_history
from services.queue.domain.vocabulary import (
    ACTION_NAMES,
    ACTIVE_AT_WINDOW,
    LANE_NORMAL,
    OUTCOMES,
    STATE_NAMES,
)

# action -> (states it may start from, state it leads to)
TRANSITIONS: dict[str, tuple[frozenset[str], str]] = {
    "call": (frozenset({"waiting"}), "called"),
    "recall": (frozenset({"called"}), "called"),
    "start": (frozenset({"called"}), "serving"),
    "complete": (frozenset({"called", "serving"}), "completed"),
    "no_show": (frozenset({"called"}), "no_show"),
    "requeue": (frozenset({"no_show"}), "waiting"),
    "transfer": (frozenset({"waiting", "called", "serving", "held"}), "waiting"),
    "hold": (frozenset({"waiting", "called", "serving"}), "held"),
    "resume": (frozenset({"held"}), "waiting"),
    "cancel": (frozenset({"waiting", "called", "held"}), "cancelled"),
    "expire": (frozenset({"waiting", "called", "serving", "held"}), "expired"),
}
AT_WINDOW = frozenset({"recall", "start", "no_show", "complete"})


@dataclass(frozen=True)
class Move:
    """One action about to be applied: the ticket as read, when, under which policy."""

    ticket: Mapping[str, Any]
    now: datetime
    policy: Policy
    details: Mapping[str, Any]

    @property
    def moment(self) -> str:
        return iso(self.now)

    @property
    def number(self) -> str:
        return str(self.ticket["number"])


# (changes beyond state and updated_at, extra fields of the audit entry)
Effect = tuple[dict[str, Any], dict[str, Any]]


def _seconds_since(ticket: Mapping[str, Any], key: str, now: datetime) -> float:
    value = ticket.get(key)
    return (now - parse_iso(value)).total_seconds() if value else math.inf


def no_show_due(ticket: Mapping[str, Any], policy: Policy, now: datetime) -> bool:
    """Called the configured number of times and the cool-down since the last call is over."""
    return (
        ticket.get("state") == "called"
        and int(ticket.get("calls", 0)) >= policy.no_show_after_calls
        and _seconds_since(ticket, "last_called_at", now) >= policy.recall_cooldown_seconds
    )


def _call(m: Move) -> Effect:
    window = str(m.details.get("window"))
    changes: dict[str, Any] = {
        "window": window,
        "staff_id": m.details.get("staff_id"),
        "calls": 1,
        "last_called_at": m.moment,
        "first_called_at": m.ticket.get("first_called_at") or m.moment,
        "target_window": None,
    }
    if not m.ticket.get("first_called_at") and m.ticket.get("taken_at"):
        waited = (m.now - parse_iso(m.ticket["taken_at"])).total_seconds()
        changes["waited_seconds"] = round(waited)  # actual, beside the estimate
    return changes, {"window": window}


def _recall(m: Move) -> Effect:
    calls = int(m.ticket.get("calls", 0))
    if calls >= m.policy.no_show_after_calls:
        rule = f"{m.number} 已呼叫{calls}次，请标记过号"
        raise Conflict(rule, {"calls": [rule]})
    if _seconds_since(m.ticket, "last_called_at", m.now) < m.policy.recall_cooldown_seconds:
        rule = f"距上次呼叫不足{m.policy.recall_cooldown_seconds}秒，请稍后再呼"
        raise Conflict(rule, {"calls": [rule]})
    return {"calls": calls + 1, "last_called_at": m.moment}, {"window": m.ticket.get("window")}


def _start(m: Move) -> Effect:
    return {"started_at": m.moment}, {}


def _complete(m: Move) -> Effect:
    outcome = m.details.get("outcome") or "done"
    if outcome not in OUTCOMES:
        raise InvalidInput.field("outcome", f"应为 {'、'.join(OUTCOMES)} 之一")
    changes = {
        "ended_at": m.moment,
        "started_at": m.ticket.get("started_at") or m.ticket.get("last_called_at"),
        "outcome": outcome,
        "application_id": m.details.get("application_id"),
        "matter_code": m.details.get("matter_code") or m.ticket.get("matter_code"),
        "invited": False,  # outbox flag: cleared once the evaluation invitation exists
    }
    return changes, {"outcome": outcome}


def _no_show(m: Move) -> Effect:
    if not no_show_due(m.ticket, m.policy, m.now):
        rule = (
            f"{m.number} 须呼叫满{m.policy.no_show_after_calls}次且间隔"
            f"{m.policy.recall_cooldown_seconds}秒后才能标记过号"
            f"（已呼叫{m.ticket.get('calls', 0)}次）"
        )
        raise Conflict(rule, {"calls": [rule]})
    return {"ended_at": m.moment}, {}


def _requeue(m: Move) -> Effect:
    if m.ticket.get("requeued"):
        rule = f"{m.number} 已过号重排过一次，不能再次重排"
        raise Conflict(rule, {"state": [rule]})
    changes = {
        "requeued": True,
        "order_key": m.details["order_key"],
        "lane": LANE_NORMAL,
        "window": None,
        "staff_id": None,
        "calls": 0,
        "ended_at": None,
    }
    return changes, {}


def _transfer(m: Move) -> Effect:
    category = m.details.get("category") or m.ticket["category"]
    window = m.details.get("window")
    if category == m.ticket["category"] and window is None:
        rule = "转移须指定新的业务类别或窗口"
        raise InvalidInput(rule, {"category": [rule], "window": [rule]})
    target = None if window is None else str(window)
    changes = {
        "category": category,
        "category_name": m.details.get("category_name") or m.ticket["category_name"],
        "target_window": target,
        "window": None,
        "staff_id": None,
        "calls": 0,
        "started_at": None,
    }
    return changes, {"category": category, "window": target}


def _hold(m: Move) -> Effect:
    reason = m.details.get("reason")
    return {"reason": reason, "held_from_window": m.ticket.get("window")}, {"reason": reason}


def _resume(m: Move) -> Effect:
    # back to the window that held it, keeping its place in time
    changes = {
        "target_window": m.ticket.get("held_from_window") or m.ticket.get("target_window"),
        "window": None,
        "calls": 0,
        "started_at": None,
        "reason": None,
    }
    return changes, {}


def _end(m: Move) -> Effect:
    reason = m.details.get("reason")
    return {"reason": reason, "ended_at": m.moment}, {"reason": reason}


EFFECTS: dict[str, Callable[[Move], Effect]] = {
    "call": _call,
    "recall": _recall,
    "start": _start,
    "complete": _complete,
    "no_show": _no_show,
    "requeue": _requeue,
    "transfer": _transfer,
    "hold": _hold,
    "resume": _resume,
    "cancel": _end,
    "expire": _end,
}


def transition(
    ticket: Mapping[str, Any],
    action: str,
    now: datetime,
    by: str,
    policy: Policy,
    **details: Any,
) -> dict[str, Any]:
    """The changes one action makes to a ticket (with its audit entry), or ``Conflict``.

    ``details`` per action: call(window, staff_id); recall/start/no_show(window optional);
    complete(outcome, application_id, matter_code); transfer(category, category_name,
    window); hold/cancel/expire(reason); requeue(order_key)."""
    allowed, target = TRANSITIONS[action]
    state = ticket["state"]
    number = ticket["number"]
    if state not in allowed:
        rule = f"{number} 当前为“{STATE_NAMES[state]}”，不能{ACTION_NAMES[action]}"
        raise Conflict(rule, {"state": [rule]})
    window = details.get("window")
    at_window = action in AT_WINDOW and window is not None
    if at_window and state in ACTIVE_AT_WINDOW and ticket.get("window") != str(window):
        rule = f"{number} 由 {ticket.get('window')} 号窗口叫号，不属于 {window} 号窗口"
        raise Conflict(rule, {"window": [rule]})
    effect, extra = EFFECTS[action](Move(ticket, now, policy, details))
    changes: dict[str, Any] = {"state": target, "updated_at": iso(now), **effect}
    changes["history"] = with_history(
        ticket, history_entry(now, by, action, state, target, **extra)
    )
    return changes


def revert_call(
    ticket: Mapping[str, Any], before: Mapping[str, Any], now: datetime, by: str
) -> dict[str, Any]:
    """Undo a call that lost the race for its window (see the calling use case)."""
    return {
        "state": "waiting",
        "target_window": before.get("target_window"),
        "window": None,
        "staff_id": None,
        "calls": 0,
        "last_called_at": None,
        "first_called_at": None,
        "updated_at": iso(now),
        "history": with_history(
            ticket, history_entry(now, by, "revert_call", ticket["state"], "waiting")
        ),
    }


def requeue_key(ticket: Mapping[str, Any], queue_ahead: Sequence[float], behind: int) -> float:
    """The order key placing a requeued no-show behind ``behind`` waiting people.

    ``queue_ahead`` holds the ascending order keys of the waiting tickets of its category."""
    keys = sorted(queue_ahead)
    if len(keys) <= behind:
        base = keys[-1] if keys else float(ticket["order_key"])
        return round(max(base, float(ticket["order_key"])) + 0.001, 6)
    before, after = keys[behind - 1] if behind else -math.inf, keys[behind]
    if before == -math.inf:
        return round(after - 0.001, 6)
    return round((before + after) / 2, 6)
